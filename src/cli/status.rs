use clap::Args;

use super::{Global, Output, print_json};
use berth_cluster as cluster;
use berth_core::error::Result;
use berth_core::ui::Ui;

#[derive(Args)]
pub struct Status {}

/// Returns the exit bits: 0 when everything runs.
pub async fn run(_cmd: Status, global: &Global, ui: Ui) -> Result<u8> {
    let name = global.profile_name()?;
    let profile = global.load(&name)?;
    let ctx = global.ctx_for(ui, Some(&profile)).await?;
    let status = cluster::status::status(&ctx, &profile).await?;
    let engine = global.endpoint_for(Some(&profile))?;
    let code = status.exit_code;
    match global.output {
        Output::Json => {
            let mut json = serde_json::to_value(&status).expect("a status serialises");
            json["engine"] = serde_json::to_value(&engine).expect("an endpoint serialises");
            print_json(&json)
        }
        Output::Text => {
            println!(
                "profile:     {} (Kubernetes {}, {})",
                status.profile, status.kubernetes_version, status.endpoint
            );
            if let Some(to) = &status.upgrading {
                println!(
                    "upgrade:     to {to} not finished (`berth upgrade -p {} --kubernetes-version {to}` carries it on)",
                    status.profile
                );
            }
            match profile.engines.is_empty() {
                true => println!("engine:      {} (from {})", engine.host, engine.found),
                false => {
                    let hosts: Vec<&str> = profile
                        .all_engines()
                        .iter()
                        .map(|e| e.host.as_str())
                        .collect();
                    match status.unreachable.is_empty() {
                        true => println!("engines:     {} (one Swarm)", hosts.join(", ")),
                        false => println!(
                            "engines:     {} (one Swarm; not answering: {})",
                            hosts.join(", "),
                            status.unreachable.join(", ")
                        ),
                    }
                }
            }
            if let Some(forward) = &status.ssh_forward {
                println!("ssh forward: {forward}");
            }
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
            match &status.storage.reason {
                Some(reason) => println!("storage:     {} ({reason})", status.storage.state),
                None => println!("storage:     {}", status.storage.state),
            }
            for addon in &status.addons {
                let line = format!("{:<13}{}", format!("{}:", addon.name), addon.state);
                match &addon.reason {
                    Some(reason) => println!("{line} ({reason})"),
                    None => println!("{line}"),
                }
            }
            if let Some(registry) = &status.registry {
                println!("registry:    {registry}");
            }
            if let Some(mounts) = (!status.mounts.is_empty()).then(|| status.mounts.join(", ")) {
                println!("mounts:      {mounts}");
            }
            if let Some(proxy) = &status.proxy {
                let urls: Vec<String> = [("http", &proxy.http), ("https", &proxy.https)]
                    .into_iter()
                    .filter_map(|(scheme, url)| url.as_ref().map(|u| format!("{scheme} {u}")))
                    .collect();
                println!("proxy:       {}", urls.join(", "));
            }
            if let Some(lb) = &status.load_balancer {
                let backends: Vec<String> = lb
                    .backends
                    .iter()
                    .map(|b| format!("{} {}", b.node, b.state))
                    .collect();
                println!("balancer:    {}", lb.container);
                if !backends.is_empty() {
                    println!("  backends:    {}", backends.join(", "));
                }
            }
            if let Some(services) = &status.services {
                println!(
                    "services:    LoadBalancer on {}, {}",
                    services.address, services.controller
                );
                for f in &services.forwards {
                    let at = match (&f.address, &f.error) {
                        (Some(address), _) => format!("{address}:{}", f.port),
                        (None, Some(error)) => format!("not forwarded: {error}"),
                        (None, None) => "pending".to_string(),
                    };
                    println!(
                        "  {}/{} {}/{}: {at}",
                        f.namespace, f.service, f.port, f.protocol
                    );
                }
            }
            for n in &status.nodes {
                match &n.engine {
                    Some(engine) => println!(
                        "node:        {} ({}, {}, on {engine})",
                        n.name, n.role, n.ip
                    ),
                    None => println!("node:        {} ({}, {})", n.name, n.role, n.ip),
                }
                println!("  container:   {} ({:?})", n.container, n.privilege);
                println!("  kubelet:     {}", n.kubelet);
                if let Some(apiserver) = &n.apiserver {
                    println!("  apiserver:   {apiserver}");
                }
                if let Some(etcd) = &n.etcd {
                    let role = if etcd.leader { "leader" } else { "follower" };
                    match (&etcd.error, etcd.healthy) {
                        (_, true) => println!("  etcd:        healthy, {role}"),
                        (error, false) => println!(
                            "  etcd:        unhealthy ({})",
                            error.as_deref().unwrap_or("no answer")
                        ),
                    }
                }
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
