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
    let ctx = global.ctx_for(ui, Some(&profile)).await?;
    let (verb, done) = if on {
        ("Enabling", "enabled")
    } else {
        ("Disabling", "disabled")
    };
    // A profile an older berth left running may still run a retired
    // project: replaced first, or this change would put the new manifests
    // in beside the old objects.
    for note in cluster::addons::replace_retired(&ctx, &profile, super::interrupted).await? {
        ui.info(note);
    }
    let profile = global.load(&name)?;
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
    let ctx = global.ctx_for(ui, Some(&profile)).await?;
    let status = cluster::status::status(&ctx, &profile).await?;
    let mut addons = cluster::status::addons(&profile, &status);
    cluster::addons::image_origins(&ctx, &profile, &mut addons).await;
    if global.output == Output::Json {
        print_json(&addons);
        return Ok(());
    }
    let rows: Vec<[String; 7]> = addons
        .iter()
        .map(|addon| {
            let images = match addon.images.as_slice() {
                [] => "none (runs from the node)".to_string(),
                images => images.join(" "),
            };
            let origin = match (addon.images.is_empty(), addon.image_origin) {
                (true, _) => "-".to_string(),
                (false, Some(origin)) => origin.to_string(),
                (false, None) => "unknown".to_string(),
            };
            [
                addon.name.to_string(),
                if addon.enabled { "yes" } else { "no" }.to_string(),
                addon.state.to_string(),
                addon.project.to_string(),
                addon.version.clone().unwrap_or_else(|| "-".into()),
                origin,
                images,
            ]
        })
        .collect();
    let header = [
        "NAME", "ENABLED", "STATE", "PROJECT", "VERSION", "IMAGE", "IMAGES",
    ];
    let lines = super::table(header, &rows);
    println!("{}", lines[0]);
    for (addon, line) in addons.iter().zip(&lines[1..]) {
        println!("{line}");
        if let (true, Some(reason)) = (addon.enabled, &addon.reason) {
            println!("  {reason}");
        }
    }
    Ok(())
}
