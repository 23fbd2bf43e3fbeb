use clap::Args;

use super::{Global, Output, print_json};
use crate::cluster;
use crate::error::Result;
use crate::forward;
use crate::ui::Ui;

#[derive(Args)]
pub struct ServiceCmd {
    /// The Service's name.
    name: String,
    /// Its namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Print only the URLs (one per TCP port of the Service) and serve.
    #[arg(long)]
    url: bool,
    /// The host port for the Service's first port (default: a free one).
    #[arg(long)]
    port: Option<u16>,
}

/// Forwards ports on 127.0.0.1 to the Service until interrupted (Ctrl-C
/// ends it with exit code 0).
pub async fn run(cmd: ServiceCmd, global: &Global, ui: Ui) -> Result<()> {
    let name = global.profile_name()?;
    let profile = global.load(&name)?;
    let ctx = global.ctx(ui).await?;
    let client = cluster::client(&ctx.store, &profile).await?;
    let forwards = forward::listen(&client, &cmd.namespace, &cmd.name, cmd.port).await?;
    let urls: Vec<String> = forwards.iter().map(forward::Forward::url).collect();
    match (global.output, cmd.url) {
        (Output::Json, _) => print_json(&serde_json::json!({
            "service": format!("{}/{}", cmd.namespace, cmd.name),
            "urls": urls,
        })),
        (Output::Text, true) => urls.iter().for_each(|u| println!("{u}")),
        (Output::Text, false) => {
            for (forward, url) in forwards.iter().zip(&urls) {
                println!(
                    "{}/{} port {}: {url}",
                    cmd.namespace, cmd.name, forward.service_port
                );
            }
        }
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    ui.info("Forwarding through the API server; Ctrl-C stops");
    tokio::select! {
        _ = forward::serve(client, cmd.namespace, cmd.name, forwards) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
