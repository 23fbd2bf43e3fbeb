use clap::Subcommand;

use super::{Global, Output, print_json};
use berth_cluster as cluster;
use berth_core::error::Result;
use berth_core::ui::Ui;

#[derive(Subcommand)]
pub enum RegistryCmd {
    /// Give a running profile a registry of its own (`start --registry`
    /// does it at creation); prints how images in it are named.
    Enable,
}

pub async fn run(cmd: RegistryCmd, global: &Global, ui: Ui) -> Result<()> {
    let name = global.profile_name()?;
    let _lock = global.lock(&name, ui)?;
    let profile = global.load(&name)?;
    let ctx = global.ctx_for(ui, Some(&profile)).await?;
    match cmd {
        RegistryCmd::Enable => {
            let profile = cluster::registry::enable(&ctx, profile, super::interrupted).await?;
            let registry = profile.registry.expect("enabled");
            ui.info(format!(
                "Profile {name} has a registry: `docker push {host}/app:1`, then `image: {host}/app:1` in a pod",
                host = registry.host()
            ));
            match global.output {
                Output::Json => {
                    print_json(&serde_json::json!({"host": registry.host(), "port": registry.port}))
                }
                Output::Text => println!("{}", registry.host()),
            }
        }
    }
    Ok(())
}
