use clap::Args;
use futures_util::future::try_join_all;
use serde::Serialize;

use super::{Global, Output, print_json};
use crate::cluster;
use crate::docker::ContainerState;
use crate::error::Result;
use crate::pki::Pki;
use crate::ui::Ui;

#[derive(Args)]
pub struct Status {}

/// Exit bits of `status`, documented in the README; 0 when all is well.
pub const NODE_NOT_RUNNING: u8 = 8;
pub const KUBELET_NOT_RUNNING: u8 = 16;
pub const API_NOT_READY: u8 = 32;
pub const KUBECONFIG_WRONG: u8 = 64;

#[derive(Serialize)]
struct NodeStatus {
    name: String,
    role: crate::profile::Role,
    ip: std::net::Ipv4Addr,
    container: String,
    privilege: crate::docker::Privilege,
    /// The container's state, which `container` shows.
    #[serde(skip)]
    state: Option<ContainerState>,
    kubelet: String,
    /// berth's units in the node, when it runs.
    units: Vec<cluster::health::UnitHealth>,
}

#[derive(Serialize)]
struct ProfileStatus {
    profile: String,
    kubernetes_version: String,
    endpoint: String,
    apiserver: String,
    kubeconfig: String,
    certificate_expires: String,
    certificate_days_left: i64,
    dns: cluster::dns::Dns,
    /// 1 or 2: the host's cgroup version.
    cgroup_version: u8,
    /// Said when the host's cgroup v1 is deprecated for this version.
    cgroups_note: Option<&'static str>,
    nodes: Vec<NodeStatus>,
    exit_code: u8,
}

/// Returns the exit bits: 0 when everything runs.
pub async fn run(_cmd: Status, global: &Global, ui: Ui) -> Result<u8> {
    let name = global.profile_name()?;
    let profile = global.load(&name)?;
    let ctx = global.ctx(ui).await?;
    let mut code = 0;
    let states = cluster::containers(&ctx, &ctx.names(&profile).filter()).await?;
    let nodes = try_join_all(profile.nodes().into_iter().map(|node| {
        let ctx = &ctx;
        let state = states.get(&node.container).copied();
        async move {
            let units = if state.is_some_and(ContainerState::is_running) {
                cluster::health::units(&*ctx.docker, &node).await?
            } else {
                Vec::new()
            };
            let kubelet = units
                .iter()
                .find(|u| u.name == "kubelet")
                .map_or_else(|| "unknown".to_string(), |u| u.active.clone());
            Ok::<_, crate::error::Error>(NodeStatus {
                role: node.role(),
                ip: node.ip,
                container: state.map_or("Missing", ContainerState::display).to_string(),
                privilege: profile.privilege,
                state,
                kubelet,
                units,
                name: node.name,
            })
        }
    }))
    .await?;
    let running = |n: &NodeStatus| n.state.is_some_and(ContainerState::is_running);
    let control_plane_running = running(&nodes[0]);
    let client = cluster::client(&ctx.store, &profile).await?;
    let api_ready = control_plane_running && cluster::api_ready(&client).await;
    let dns = if api_ready {
        cluster::dns::status(&client, &profile).await
    } else {
        cluster::dns::Dns {
            state: cluster::dns::DnsState::Unknown,
            reason: Some("the API server is not ready".into()),
        }
    };
    let entry = crate::kubeconfig::read(&profile.kubeconfig)
        .ok()
        .and_then(|c| crate::kubeconfig::server(&c, &profile.context()));
    let kubeconfig_ok = entry.as_deref() == Some(profile.server().as_str());
    let kubeconfig = match entry {
        _ if kubeconfig_ok => "ok".to_string(),
        Some(server) => format!("points at {server}, not {}", profile.server()),
        None => "missing".to_string(),
    };
    let expiry = Pki::new(&ctx.store.pki_dir(&name)).expiry("apiserver.crt")?;
    let days_left = (expiry - time::OffsetDateTime::now_utc()).whole_days();
    if !nodes.iter().all(running) {
        code |= NODE_NOT_RUNNING;
    }
    if nodes.iter().any(|n| n.kubelet != "active") {
        code |= KUBELET_NOT_RUNNING;
    }
    if !api_ready {
        code |= API_NOT_READY;
    }
    if !kubeconfig_ok {
        code |= KUBECONFIG_WRONG;
    }
    let status = ProfileStatus {
        profile: name.clone(),
        kubernetes_version: profile.kubernetes_version.to_string(),
        endpoint: profile.server(),
        apiserver: if api_ready {
            "ready".into()
        } else {
            "not ready".into()
        },
        kubeconfig,
        certificate_expires: expiry
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        certificate_days_left: days_left,
        dns,
        cgroup_version: if profile.cgroup_v2 { 2 } else { 1 },
        cgroups_note: crate::node::render::cgroup_v1_note(
            &profile.kubernetes_version,
            profile.cgroup_v2,
        ),
        nodes,
        exit_code: code,
    };
    match global.output {
        Output::Json => print_json(&status),
        Output::Text => {
            println!(
                "profile:     {} (Kubernetes {}, {})",
                status.profile, status.kubernetes_version, status.endpoint
            );
            println!("apiserver:   {}", status.apiserver);
            if let Some(note) = &status.cgroups_note {
                println!("cgroups:     v1, {note}");
            }
            println!("kubeconfig:  {}", status.kubeconfig);
            println!(
                "certificate: expires {} ({} days)",
                status.certificate_expires, status.certificate_days_left
            );
            match &status.dns.reason {
                Some(reason) => println!("dns:         {} ({reason})", status.dns.state),
                None => println!("dns:         {}", status.dns.state),
            }
            for n in &status.nodes {
                println!("node:        {} ({}, {})", n.name, n.role, n.ip);
                println!("  container:   {} ({:?})", n.container, n.privilege);
                println!("  kubelet:     {}", n.kubelet);
                for unit in n.units.iter().filter(|u| u.restarts > 0) {
                    println!(
                        "  restarted:   {} {} time{} since the node booted{}",
                        unit.name,
                        unit.restarts,
                        if unit.restarts == 1 { "" } else { "s" },
                        unit.last_fatal
                            .as_ref()
                            .map(|l| format!("; last: {l}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(code)
}
