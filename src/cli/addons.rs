use clap::Subcommand;

use super::{Global, Output, print_json};
use berth_cluster as cluster;
use berth_core::error::{Error, Result};
use berth_core::ui::Ui;
use berth_node::addons::Addon;

#[derive(Subcommand)]
pub enum AddonsCmd {
    /// Every addon with its state on the profile, its images and versions.
    List,
    /// Enable an addon on a running profile.
    Enable { name: String },
    /// Disable an addon on a running profile; its objects are deleted.
    Disable { name: String },
}

pub async fn run(cmd: AddonsCmd, global: &Global, ui: Ui) -> Result<()> {
    let name = global.profile_name()?;
    let (addon, on) = match &cmd {
        AddonsCmd::List => return list(global, &name, ui).await,
        AddonsCmd::Enable { name } => (parse(name)?, true),
        AddonsCmd::Disable { name } => (parse(name)?, false),
    };
    let _lock = global.lock(&name, ui)?;
    let profile = global.load(&name)?;
    let ctx = global.ctx(ui).await?;
    let (verb, done) = if on {
        ("Enabling", "enabled")
    } else {
        ("Disabling", "disabled")
    };
    let step = ui.step(format!("{verb} {addon} on {name}"));
    if cluster::addons::set(&ctx, profile, addon, on, super::interrupted).await? {
        step.done();
    } else {
        step.done_with(&format!("it was {done}"));
    }
    if on {
        ui.info(format!(
            "`berth addons list -p {name}` shows when {addon} is ready, or what it lacks"
        ));
    }
    Ok(())
}

/// The profile named, which must have `addon` enabled.
pub(super) fn profile_with(global: &Global, addon: Addon) -> Result<berth_core::profile::Profile> {
    let name = global.profile_name()?;
    let profile = global.load(&name)?;
    if !profile.has(addon) {
        return Err(Error::usage(format!(
            "the {addon} addon is not enabled on profile {name}"
        ))
        .with_hint(format!("`berth addons enable {addon} -p {name}` first")));
    }
    Ok(profile)
}

fn parse(name: &str) -> Result<Addon> {
    name.parse().map_err(|e: String| {
        Error::usage(e).with_hint("`berth addons list` shows every addon and its state")
    })
}

async fn list(global: &Global, name: &str, ui: Ui) -> Result<()> {
    let profile = global.load(name)?;
    let ctx = global.ctx(ui).await?;
    let status = cluster::status::status(&ctx, &profile).await?;
    let addons = cluster::status::addons(&profile, &status);
    if global.output == Output::Json {
        print_json(&addons);
        return Ok(());
    }
    println!("{:<16} {:<9} {:<12} IMAGES", "NAME", "ENABLED", "STATE");
    for addon in &addons {
        let images = match addon.images.as_slice() {
            [] => "none (runs from the node)".to_string(),
            images => images.join(" "),
        };
        let enabled = if addon.enabled { "yes" } else { "no" };
        println!(
            "{:<16} {:<9} {:<12} {images}",
            addon.name, enabled, addon.state
        );
        if let (true, Some(reason)) = (addon.enabled, &addon.reason) {
            println!("  {reason}");
        }
    }
    Ok(())
}
