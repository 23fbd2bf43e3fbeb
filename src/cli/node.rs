use std::time::Duration;

use clap::Subcommand;
use serde::Serialize;

use super::{Global, Output, print_json};
use berth_cluster as cluster;
use berth_core::error::Result;
use berth_core::ui::Ui;

#[derive(Subcommand)]
pub enum NodeCmd {
    /// Add a worker node (or a control plane) to a running cluster; of a
    /// cluster over several engines, on the one --engine names (default
    /// the first).
    Add {
        /// A control plane, with an etcd member, behind the load balancer
        /// (for profiles started with --control-planes 3 or 5).
        #[arg(long)]
        control_plane: bool,
        /// How long to wait for the new node to be Ready; 0 returns once its
        /// container runs.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = super::start::parse_duration)]
        wait: Duration,
    },
    /// Drain a node and remove it from the cluster (a control plane's etcd
    /// member first; refused when etcd would lose its majority).
    Delete {
        /// The node's name, as `berth node list` shows it.
        node: String,
    },
    /// List the cluster's nodes.
    List,
}

#[derive(Serialize)]
struct Row {
    name: String,
    /// control-plane, worker, or load-balancer.
    role: String,
    status: String,
    ip: std::net::Ipv4Addr,
    /// None for the load balancer.
    pod_cidr: Option<berth_node::net::Cidr>,
    /// Its container in the Docker engine.
    container: String,
    /// The engine it is on, of a cluster spread over several.
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<String>,
}

pub async fn run(cmd: NodeCmd, global: &Global, ui: Ui) -> Result<()> {
    let name = global.profile_name()?;
    let _lock = global.lock_if(!matches!(cmd, NodeCmd::List), &name, ui)?;
    let mut profile = global.load(&name)?;
    let role = |control_plane: bool| match control_plane {
        true => berth_core::profile::Role::ControlPlane,
        false => berth_core::profile::Role::Worker,
    };
    let ctx = match (&cmd, global.engine.as_slice()) {
        // A cluster over several engines: --engine names where the node goes.
        (NodeCmd::Add { control_plane, .. }, [engine]) if !profile.engines.is_empty() => {
            let host = berth_engine::discover::from_process(Some(engine))?.host;
            let on = profile.engine_named(&host).map_err(|why| {
                berth_core::error::Error::usage(why)
                    .with_hint("name one of them with --engine, or none for the first")
            })?;
            if let Some(node) = profile.next_node(role(*control_plane)) {
                profile.node_engines.insert(node.index, on);
            }
            global.ctx_as_made(ui, &profile).await?
        }
        _ => global.ctx_for(ui, Some(&profile)).await?,
    };
    match cmd {
        NodeCmd::Add {
            wait,
            control_plane,
        } => {
            let role = role(control_plane);
            let wait = (!wait.is_zero()).then_some(wait);
            let node = cluster::add_node(&ctx, profile, role, wait, super::interrupted).await?;
            ui.info(format!("Node {} joined profile {name}", node.name));
            if global.output == Output::Json {
                print_json(&serde_json::json!({"name": node.name}));
            } else {
                println!("{}", node.name);
            }
        }
        NodeCmd::Delete { node } => {
            cluster::delete_node(&ctx, profile, &node, super::interrupted).await?;
            ui.info(format!("Node {node} left profile {name}"));
        }
        NodeCmd::List => {
            let mut rows: Vec<Row> = cluster::node_states(&ctx, &profile)
                .await?
                .into_iter()
                .map(|(node, container)| Row {
                    engine: profile.engine_of(&node).map(|e| e.host.clone()),
                    role: node.role().to_string(),
                    status: cluster::state_of(&container).display().to_string(),
                    ip: node.ip,
                    pod_cidr: Some(node.pod_cidr),
                    container: node.container,
                    name: node.name,
                })
                .collect();
            if profile.load_balancer {
                let state = cluster::balancer::state(&ctx, &profile).await?;
                let container = ctx.names(&profile).load_balancer();
                rows.push(Row {
                    name: container.clone(),
                    role: "load-balancer".into(),
                    status: state.map_or("Missing", |s| s.display()).to_string(),
                    ip: profile.load_balancer_ip(),
                    pod_cidr: None,
                    engine: profile
                        .engine_of(&profile.control_plane())
                        .map(|e| e.host.clone()),
                    container,
                });
            }
            match global.output {
                Output::Json => print_json(&rows),
                Output::Text => {
                    // A cluster over several engines says where each node is.
                    let spread = !profile.engines.is_empty();
                    let engine_column = |engine: Option<String>| match spread {
                        true => format!("  {}", engine.unwrap_or_default()),
                        false => String::new(),
                    };
                    let line = format!(
                        "{:<36} {:<14} {:<8} {:<15} {:<14}{}",
                        "NAME",
                        "ROLE",
                        "STATUS",
                        "IP",
                        "POD CIDR",
                        engine_column(Some("ENGINE".into()))
                    );
                    println!("{}", line.trim_end());
                    for r in rows {
                        let line = format!(
                            "{:<36} {:<14} {:<8} {:<15} {:<14}{}",
                            r.name,
                            r.role,
                            r.status,
                            r.ip,
                            r.pod_cidr.map_or("-".to_string(), |c| c.to_string()),
                            engine_column(r.engine)
                        );
                        println!("{}", line.trim_end());
                    }
                }
            }
        }
    }
    Ok(())
}
