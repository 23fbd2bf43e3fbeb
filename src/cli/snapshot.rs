use clap::Subcommand;

use super::{Global, Output, mib, print_json, table};
use berth_cluster::snapshot;
use berth_core::error::Result;
use berth_core::snapshot::{self as saved, Manifest};
use berth_core::ui::Ui;

#[derive(Subcommand)]
pub enum SnapshotCmd {
    /// Save the profile's whole cluster (running: frozen for the copy, a
    /// few seconds; or stopped) as SNAPSHOT: a name kept in this berth
    /// home, or a path (with a `/`) that must not exist yet: a directory,
    /// or one file when it ends in `.tar`.
    Save { snapshot: String },
    /// Bring the profile back to SNAPSHOT: its nodes are made anew from it
    /// and started, whether the profile runs, is stopped or was deleted.
    /// `-p` defaults to the snapshot's profile.
    Restore { snapshot: String },
    /// The snapshots kept in this berth home.
    List,
    /// Remove a snapshot.
    Delete { snapshot: String },
}

fn describe(manifest: &Manifest) -> String {
    format!(
        "profile {}, Kubernetes {}, {}, {}",
        manifest.profile,
        manifest.kubernetes_version,
        berth_core::ui::count(manifest.nodes.len(), "node"),
        mib(manifest.bytes())
    )
}

pub async fn run(cmd: SnapshotCmd, global: &Global, ui: Ui) -> Result<()> {
    let home = berth_core::paths::home_dir();
    match cmd {
        SnapshotCmd::Save { snapshot } => {
            let dir = saved::locate(&home, &snapshot)?;
            let name = global.profile_name()?;
            let _lock = global.lock(&name, ui)?;
            let profile = global.load(&name)?;
            let ctx = global.ctx_for(ui, Some(&profile)).await?;
            let started = std::time::Instant::now();
            let manifest = snapshot::save(&ctx, &profile, &dir, super::interrupted).await?;
            ui.info(format!(
                "Saved {} to {} in {:.1} s",
                describe(&manifest),
                dir.display(),
                started.elapsed().as_secs_f64()
            ));
            print_snapshot(global, &dir, &manifest);
        }
        SnapshotCmd::Restore { snapshot } => {
            let dir = saved::locate(&home, &snapshot)?;
            let manifest = saved::read_any(&dir)?;
            let name = match &global.profile {
                Some(_) => global.profile_name()?,
                None => manifest.profile.clone(),
            };
            let _lock = global.lock(&name, ui)?;
            let current = global.store().load(&name).ok().flatten();
            let ctx = global.ctx_for(ui, current.as_ref()).await?;
            let started = std::time::Instant::now();
            let profile = snapshot::restore(&ctx, &dir, &name, super::interrupted).await?;
            ui.info(format!(
                "Profile {name} is back at the snapshot {} ({:.1} s): Kubernetes {} at {}",
                dir.display(),
                started.elapsed().as_secs_f64(),
                profile.kubernetes_version,
                profile.server()
            ));
        }
        SnapshotCmd::List => {
            let found = saved::list(&home);
            match global.output {
                Output::Json => print_json(
                    &found
                        .iter()
                        .map(|(name, manifest)| match manifest {
                            Ok(m) => serde_json::json!({"name": name, "snapshot": m}),
                            Err(why) => serde_json::json!({"name": name, "error": why}),
                        })
                        .collect::<Vec<_>>(),
                ),
                Output::Text => {
                    let rows: Vec<[String; 5]> = found
                        .iter()
                        .map(|(name, manifest)| match manifest {
                            Ok(m) => [
                                name.clone(),
                                m.profile.clone(),
                                m.kubernetes_version.to_string(),
                                m.nodes.len().to_string(),
                                mib(m.bytes()),
                            ],
                            Err(why) => [
                                name.clone(),
                                "-".into(),
                                "-".into(),
                                "-".into(),
                                why.clone(),
                            ],
                        })
                        .collect();
                    for line in table(["NAME", "PROFILE", "VERSION", "NODES", "SIZE"], &rows) {
                        println!("{line}");
                    }
                }
            }
        }
        SnapshotCmd::Delete { snapshot } => {
            let dir = saved::locate(&home, &snapshot)?;
            let manifest = snapshot::delete(&dir)?;
            ui.info(format!(
                "Deleted {} ({})",
                dir.display(),
                describe(&manifest)
            ));
        }
    }
    Ok(())
}

fn print_snapshot(global: &Global, dir: &std::path::Path, manifest: &Manifest) {
    match global.output {
        Output::Json => print_json(&serde_json::json!({"path": dir, "snapshot": manifest})),
        Output::Text => println!("{}", dir.display()),
    }
}
