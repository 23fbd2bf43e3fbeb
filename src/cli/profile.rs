use clap::Args;
use serde::Serialize;

use super::{Global, Output, print_json};
use crate::error::Result;
use crate::ui::Ui;

#[derive(Args)]
pub struct ProfileCmd {
    /// `list`, or the name of the profile to make the default.
    target: String,
}

#[derive(Serialize)]
struct Row {
    name: String,
    status: String,
    kubernetes_version: String,
    nodes: usize,
    endpoint: String,
    age_seconds: u64,
    current: bool,
}

pub async fn run(cmd: ProfileCmd, global: &Global, ui: Ui) -> Result<()> {
    let store = global.store();
    if cmd.target != "list" {
        crate::profile::validate_name(&cmd.target)?;
        store.set_default(&cmd.target)?;
        ui.info(format!("The default profile is now {}", cmd.target));
        return Ok(());
    }
    let docker = crate::docker::Docker::connect().await?;
    let states = docker.containers_by_label("io.berth.profile").await?;
    let current =
        crate::kubeconfig::read(&crate::kubeconfig::resolve(global.kubeconfig.as_deref()))
            .ok()
            .and_then(|c| crate::kubeconfig::current_context(&c));
    let mut rows = Vec::new();
    for name in store.names() {
        let row = match store.load(&name) {
            Ok(Some(p)) => {
                let state = states
                    .get(&p.container())
                    .map(String::as_str)
                    .unwrap_or("missing");
                Row {
                    status: super::status::pretty_state(state),
                    kubernetes_version: p.kubernetes_version.to_string(),
                    nodes: p.nodes().len(),
                    endpoint: p.server(),
                    age_seconds: crate::cluster::now().saturating_sub(p.created),
                    current: current.as_deref() == Some(p.context().as_str()),
                    name,
                }
            }
            _ => Row {
                status: "Broken".into(),
                kubernetes_version: "-".into(),
                nodes: 0,
                endpoint: "-".into(),
                age_seconds: 0,
                current: false,
                name,
            },
        };
        rows.push(row);
    }
    match global.output {
        Output::Json => print_json(&rows),
        Output::Text => {
            println!(
                "  {:<20} {:<8} {:<9} {:>5}  {:<24} AGE",
                "NAME", "STATUS", "VERSION", "NODES", "ENDPOINT"
            );
            for r in rows {
                let mark = if r.current { "*" } else { " " };
                println!(
                    "{mark} {:<20} {:<8} {:<9} {:>5}  {:<24} {}",
                    r.name,
                    r.status,
                    r.kubernetes_version,
                    r.nodes,
                    r.endpoint,
                    age(r.age_seconds)
                );
            }
        }
    }
    Ok(())
}

fn age(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}
