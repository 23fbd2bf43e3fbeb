use clap::Args;
use serde::Serialize;

use super::{Global, Output, print_json};
use berth_core::error::Result;
use berth_core::ui::Ui;

#[derive(Args)]
pub struct ProfileCmd {
    /// `list`, or the name of the profile to make the default.
    target: String,
}

#[derive(Serialize)]
struct Row {
    name: String,
    status: String,
    /// Why a Broken profile is broken.
    reason: Option<String>,
    kubernetes_version: String,
    nodes: usize,
    endpoint: String,
    age_seconds: u64,
    current: bool,
    /// The engines of a cluster spread over several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    engines: Vec<String>,
}

impl Row {
    /// `profile` as its containers' `states` show it.
    fn of(
        name: String,
        profile: &berth_core::profile::Profile,
        states: &std::collections::HashMap<String, berth_engine::ContainerState>,
        current: Option<&str>,
    ) -> Self {
        let gone = profile
            .nodes()
            .into_iter()
            .find(|n| !states.contains_key(&n.container));
        let state = states.get(&profile.control_plane().container);
        Row {
            status: match (&gone, state) {
                (None, Some(state)) => state.display().into(),
                _ => "Broken".into(),
            },
            reason: gone.map(|n| format!("its node container {} is gone", n.container)),
            kubernetes_version: profile.kubernetes_version.to_string(),
            nodes: profile.nodes().len(),
            endpoint: profile.server(),
            age_seconds: berth_node::now().saturating_sub(profile.created),
            current: current == Some(profile.context().as_str()),
            engines: match profile.engines.is_empty() {
                true => Vec::new(),
                false => profile
                    .all_engines()
                    .iter()
                    .map(|e| e.host.clone())
                    .collect(),
            },
            name,
        }
    }

    fn broken(name: String, reason: impl Into<String>) -> Self {
        Row {
            name,
            status: "Broken".into(),
            reason: Some(reason.into()),
            kubernetes_version: "-".into(),
            nodes: 0,
            endpoint: "-".into(),
            age_seconds: 0,
            current: false,
            engines: Vec::new(),
        }
    }
}

pub async fn run(cmd: ProfileCmd, global: &Global, ui: Ui) -> Result<()> {
    let store = global.store();
    if cmd.target != "list" {
        berth_core::profile::validate_name(&cmd.target)?;
        store.set_default(&cmd.target)?;
        ui.info(format!("The default profile is now {}", cmd.target));
        return Ok(());
    }
    let ctx = global.ctx(ui).await?;
    let home = vec![(
        berth_core::names::LABEL_HOME.to_string(),
        Some(ctx.home.display().to_string()),
    )];
    let states = berth_cluster::containers(&ctx, &home).await?;
    let orphans = berth_cluster::orphans(&ctx).await?;
    let current = berth_core::kubeconfig::read(&ctx.kubeconfig)
        .ok()
        .and_then(|c| berth_core::kubeconfig::current_context(&c));
    let mut rows = Vec::new();
    for name in store.names() {
        let row = match store.load(&name) {
            // A cluster over several engines is looked for on them.
            Ok(Some(p)) if !p.engines.is_empty() => {
                let spread = match global.ctx_for(ui, Some(&p)).await {
                    Ok(spread) => berth_cluster::containers(&spread, &home).await,
                    Err(e) => Err(e),
                };
                match spread {
                    Ok(states) => Row::of(name, &p, &states, current.as_deref()),
                    Err(e) => Row::broken(name, e.to_string()),
                }
            }
            Ok(Some(p)) => Row::of(name, &p, &states, current.as_deref()),
            Ok(None) => Row::broken(name, "its state has no profile file: a start was cut off"),
            Err(e) => Row::broken(name, e.to_string()),
        };
        rows.push(row);
    }
    for name in orphans {
        rows.push(Row::broken(
            name,
            "Docker resources without state: a start was cut off",
        ));
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    match global.output {
        Output::Json => print_json(&rows),
        Output::Text => {
            println!(
                "  {:<20} {:<8} {:<9} {:>5}  {:<24} AGE",
                "NAME", "STATUS", "VERSION", "NODES", "ENDPOINT"
            );
            for r in rows {
                let mark = if r.current { "*" } else { " " };
                let reason = match (r.reason, r.engines.len()) {
                    (Some(reason), _) => format!("  ({reason})"),
                    (None, 0) => String::new(),
                    (None, n) => format!("  (on {n} engines)"),
                };
                println!(
                    "{mark} {:<20} {:<8} {:<9} {:>5}  {:<24} {}{reason}",
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
