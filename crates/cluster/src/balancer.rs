//! The load balancer in front of several control planes: Debian's haproxy
//! in a container made from the node image (nothing is pulled), on the
//! profile's network below the registry's address, published on 127.0.0.1
//! at the profile's API port. It passes TLS through untouched, so clients
//! see each API server's own certificate, and sends connections only to
//! the API servers whose /readyz says they are ready.

use serde::Serialize;

use super::Ctx;
use berth_core::error::{Error, Result};
use berth_core::pki::Pki;
use berth_core::profile::Profile;
use berth_engine::{ContainerState, NodeContainer};
use berth_node::command;
use berth_node::render::{self, API_PORT, NodeFile};

const CONFIG: &str = "/etc/berth/haproxy.cfg";
/// The certificate and key it asks the API servers with.
const CLIENT_PEM: &str = "/etc/berth/load-balancer.pem";
const SOCKET: &str = "/run/haproxy.sock";
/// The first control plane again, unchecked, for while none is ready (an
/// underscore: no node's name has one).
const WHILE_NONE_READY: &str = "while_none_ready";

/// haproxy's configuration for the profile's control planes. A stopped
/// node's address stops answering at all: a connection to it is given up
/// after a second and tried on another API server, and its server is
/// marked down after two failed checks, which also ends the connections
/// (watches) open through it, so that clients reconnect to another at
/// once. A server that is down is checked four times a second. While no
/// API server is ready, as while a cluster starts, connections go to the
/// first control plane's, which holds them until it serves: every kubelet
/// registers the moment it is ready, as a single control plane's does,
/// instead of backing off for seconds from a balancer that turned it away.
/// haproxy's configuration: every control plane but `away` a server.
fn config(profile: &Profile, away: Option<&str>) -> String {
    let mut out = format!(
        "# Rendered by berth.
global
    log stdout format raw local0 warning
    stats socket {SOCKET} mode 600 level admin
    # Left out, haproxy sizes its tables by the open-files limit, which
    # some engines leave at a billion: 160 GB asked for, 5.6 GB touched,
    # it was killed for memory (seen in a cgroup v2 guest). It needs two
    # files a connection; engines give containers 20000 or more.
    maxconn 4000

defaults
    mode tcp
    log global
    option redispatch
    retries 3
    timeout connect 1s
    timeout check 2s
    # Watches stay open for long.
    timeout client 1h
    timeout server 1h

frontend api
    bind :{API_PORT}
    default_backend control-planes

backend control-planes
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    # Checks alone use TLS, with berth's client certificate: the API
    # servers take no anonymous requests. Traffic passes through as it is.
    default-server check check-ssl verify none crt {CLIENT_PEM} inter 1s downinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions
"
    );
    let servers: Vec<_> = profile
        .control_plane_nodes()
        .into_iter()
        .filter(|n| Some(n.name.as_str()) != away)
        .collect();
    for node in &servers {
        out.push_str(&format!(
            "    server {} {}:{API_PORT}\n",
            node.name, node.ip
        ));
    }
    if let Some(first) = servers.first() {
        out.push_str(&format!(
            "    server {WHILE_NONE_READY} {}:{API_PORT} backup no-check\n",
            first.ip
        ));
    }
    out
}

/// The load balancer's container, labelled as made by this process.
fn container(ctx: &Ctx, profile: &Profile, network: String) -> NodeContainer {
    let name = ctx.names(profile).load_balancer();
    let haproxy = ["/usr/sbin/haproxy", "-W", "-db", "-f", CONFIG];
    NodeContainer {
        api_port: Some(profile.api_port),
        ..super::beside_container(
            ctx,
            profile,
            name,
            &haproxy,
            network,
            profile.load_balancer_ip(),
        )
    }
}

/// Its configuration (without `away`) and the certificate its checks
/// present.
fn files(ctx: &Ctx, profile: &Profile, away: Option<&str>) -> Result<Vec<u8>> {
    let pki = Pki::new(&ctx.store.pki_dir(&profile.name));
    let pem = format!(
        "{}{}",
        pki.read("load-balancer.crt")?,
        pki.read("load-balancer.key")?
    );
    Ok(render::tar_of(&[
        NodeFile::File {
            path: CONFIG.into(),
            content: config(profile, away),
            mode: 0o644,
        },
        NodeFile::File {
            path: CLIENT_PEM.into(),
            content: pem,
            mode: 0o600,
        },
    ]))
}

/// Makes and starts the load balancer of `profile`, when it has one.
pub async fn create(ctx: &Ctx, profile: &Profile) -> Result<()> {
    if !profile.load_balancer {
        return Ok(());
    }
    let network = super::network_id(ctx, profile).await?;
    let id = ctx
        .docker
        .create_container(&container(ctx, profile, network))
        .await?;
    ctx.docker.upload(&id, files(ctx, profile, None)?).await?;
    Ok(ctx.docker.start_container(&id).await?)
}

/// Puts the profile's control planes, as they are now, behind the load
/// balancer: haproxy reloads its configuration without dropping a
/// connection to the servers it keeps. A stopped load balancer reads it
/// when it starts.
pub async fn update(ctx: &Ctx, profile: &Profile) -> Result<()> {
    reload(ctx, profile, None).await
}

/// `update` with control plane `node` left out, so that nothing new is
/// sent to it (its sessions go on until it stops).
pub async fn without(ctx: &Ctx, profile: &Profile, node: &str) -> Result<()> {
    reload(ctx, profile, Some(node)).await
}

async fn reload(ctx: &Ctx, profile: &Profile, away: Option<&str>) -> Result<()> {
    let name = ctx.names(profile).load_balancer();
    ctx.docker.upload(&name, files(ctx, profile, away)?).await?;
    if state(ctx, profile)
        .await?
        .is_some_and(ContainerState::is_running)
    {
        ctx.docker
            .exec(&name, &command::reload_haproxy())
            .await?
            .success()
            .map_err(|stderr| {
                Error::failure(format!("the load balancer did not reload: {stderr}"))
                    .with_hint(format!(
                        "`berth stop -p {0}` and `berth start -p {0}` start it with its new servers",
                        profile.name
                    ))
            })?;
    }
    Ok(())
}

/// The load balancer container's state; `None` when the profile has none
/// or it is gone.
pub async fn state(ctx: &Ctx, profile: &Profile) -> Result<Option<ContainerState>> {
    if !profile.load_balancer {
        return Ok(None);
    }
    let names = ctx.names(profile);
    let states = super::containers(ctx, &names.filter()).await?;
    Ok(states.get(&names.load_balancer()).copied())
}

/// One API server behind the load balancer, as haproxy sees it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Backend {
    pub node: String,
    /// haproxy's word: UP, DOWN, MAINT, or UP/DOWN with the checks that
    /// are changing it.
    pub state: String,
}

/// What the load balancer thinks of each API server; empty when it does
/// not run.
pub async fn backends(ctx: &Ctx, profile: &Profile) -> Result<Vec<Backend>> {
    if !state(ctx, profile)
        .await?
        .is_some_and(ContainerState::is_running)
    {
        return Ok(Vec::new());
    }
    let name = ctx.names(profile).load_balancer();
    let out = ctx
        .docker
        .exec(&name, &command::haproxy_stat(SOCKET))
        .await?;
    Ok(parse_stat(&out.stdout))
}

/// The servers of backend `control-planes` in haproxy's `show stat` CSV,
/// whose first line names the columns.
fn parse_stat(csv: &str) -> Vec<Backend> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let column = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(proxy), Some(server), Some(status)) =
        (column("pxname"), column("svname"), column("status"))
    else {
        return Vec::new();
    };
    lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|cells| {
            cells.get(proxy) == Some(&"control-planes")
                && !matches!(
                    cells.get(server),
                    Some(&"BACKEND") | Some(&"FRONTEND") | Some(&WHILE_NONE_READY) | None
                )
        })
        .filter_map(|cells| {
            Some(Backend {
                node: cells.get(server)?.to_string(),
                state: cells.get(status)?.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_plane_is_a_checked_server() {
        let profile = Profile {
            control_planes: vec![1, 2],
            workers: vec![3],
            load_balancer: true,
            ..Profile::example("dev")
        };
        let text = config(&profile, None);
        assert!(text.contains("    server dev 172.30.7.2:6443\n"));
        assert!(text.contains("    server dev-m03 172.30.7.4:6443\n"));
        assert!(!text.contains("dev-m04"), "a worker is a backend");
        assert!(text.contains("uri /readyz"));
        assert!(text.contains("\n    maxconn 4000\n"));
        assert!(text.ends_with("    server while_none_ready 172.30.7.2:6443 backup no-check\n"));
        // The first one away (being upgraded): no server, nor the backup.
        let text = config(&profile, Some("dev"));
        assert!(!text.contains("172.30.7.2"), "{text}");
        assert!(text.contains("    server dev-m02 172.30.7.3:6443\n"));
        assert!(text.ends_with("    server while_none_ready 172.30.7.3:6443 backup no-check\n"));
    }

    #[test]
    fn show_stat_gives_each_servers_state() {
        let csv = "# pxname,svname,qcur,status,weight\n\
                   api,FRONTEND,,OPEN,\n\
                   control-planes,dev,0,UP,1\n\
                   control-planes,dev-m02,0,DOWN,1\n\
                   control-planes,while_none_ready,0,no check,1\n\
                   control-planes,BACKEND,0,UP,1\n";
        assert_eq!(
            parse_stat(csv),
            [
                Backend {
                    node: "dev".into(),
                    state: "UP".into()
                },
                Backend {
                    node: "dev-m02".into(),
                    state: "DOWN".into()
                },
            ]
        );
        assert!(parse_stat("").is_empty());
    }
}
