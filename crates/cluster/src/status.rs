//! `status`: what runs of a profile, and what does not, with the exit bits
//! `berth status` returns.

use futures_util::future::try_join_all;
use serde::Serialize;

use super::Ctx;
use berth_core::error::Result;
use berth_core::pki::Pki;
use berth_core::profile::Profile;
use berth_engine::ContainerState;

/// Exit bits of `status`, documented in docs/commands.md; 0 when all is well.
pub const NODE_NOT_RUNNING: u8 = 8;
pub const KUBELET_NOT_RUNNING: u8 = 16;
pub const API_NOT_READY: u8 = 32;
pub const KUBECONFIG_WRONG: u8 = 64;

#[derive(Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub role: berth_core::profile::Role,
    pub ip: std::net::Ipv4Addr,
    pub container: String,
    pub privilege: berth_engine::Privilege,
    /// The container's state, which `container` shows.
    #[serde(skip)]
    pub state: Option<ContainerState>,
    pub kubelet: super::health::ActiveState,
    /// berth's units in the node, when it runs.
    pub units: Vec<super::health::UnitHealth>,
    /// One of several control planes: its etcd member, when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<super::etcd::MemberHealth>,
    /// One of several control planes: whether its own API server is ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apiserver: Option<String>,
    /// The engine it is on, of a cluster spread over several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// The load balancer in front of several control planes.
#[derive(Serialize)]
pub struct LoadBalancerStatus {
    pub container: String,
    pub backends: Vec<super::balancer::Backend>,
}

/// The LoadBalancer controller and the ports of the Services it serves.
#[derive(Serialize)]
pub struct ServicesStatus {
    pub address: String,
    pub controller: String,
    pub forwards: Vec<super::service_lb::Forward>,
}

#[derive(Serialize)]
pub struct ProfileStatus {
    pub profile: String,
    pub kubernetes_version: String,
    /// The version an upgrade that has not ended takes the nodes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrading: Option<String>,
    pub endpoint: String,
    /// The ssh that forwards the ports of a profile made with
    /// `--ssh-forward`: running, or down with what starts it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_forward: Option<String>,
    /// The engines of a cluster over several that did not answer: their
    /// nodes are `Unreachable`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<String>,
    pub apiserver: String,
    pub kubeconfig: String,
    pub certificate_expires: String,
    pub certificate_days_left: i64,
    pub dns: super::dns::Dns,
    pub storage: super::storage::Storage,
    /// The enabled addons besides CoreDNS and storage.
    pub addons: Vec<super::addons::AddonStatus>,
    /// The profile's registry, as images in it are named, and its state.
    pub registry: Option<String>,
    /// Host folders in every node, as `HOST:NODE[:ro]`.
    pub mounts: Vec<String>,
    /// The proxy image pulls go through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<berth_core::settings::Proxy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerStatus>,
    /// `None` for a profile made before berth served LoadBalancer Services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<ServicesStatus>,
    /// 1 or 2: the host's cgroup version.
    pub cgroup_version: u8,
    /// Said when the host's cgroup v1 is deprecated for this version.
    pub cgroups_note: Option<&'static str>,
    pub nodes: Vec<NodeStatus>,
    pub exit_code: u8,
}

/// The profile's state, read from the engine, the nodes and the API
/// server; its `exit_code` has the bits of what does not run.
pub async fn status(ctx: &Ctx, profile: &Profile) -> Result<ProfileStatus> {
    let name = profile.name.clone();
    let mut code = 0;
    let states = super::containers(ctx, &ctx.names(profile).filter()).await?;
    let unreachable = ctx.docker.unreachable();
    let nodes = try_join_all(profile.nodes().into_iter().map(|node| {
        let unreachable = &unreachable;
        let ctx = &ctx;
        let state = states.get(&node.container).copied();
        async move {
            let running = state.is_some_and(ContainerState::is_running);
            let units = if running {
                super::health::units(&*ctx.docker, &node, &profile.addons_on()).await?
            } else {
                Vec::new()
            };
            let several = profile.load_balancer && node.is_control_plane();
            let (etcd, apiserver) = if several && running {
                let (etcd, ready) = tokio::try_join!(
                    super::etcd::health(ctx, &node.container),
                    own_api_server_ready(ctx, &node.container),
                )?;
                let ready = if ready { "ready" } else { "not ready" };
                (Some(etcd), Some(ready.to_string()))
            } else {
                (None, None)
            };
            let kubelet = units
                .iter()
                .find(|u| u.name == "kubelet")
                .map_or_else(super::health::ActiveState::unknown, |u| u.active.clone());
            Ok::<_, berth_core::error::Error>(NodeStatus {
                role: node.role(),
                ip: node.ip,
                container: match (state, profile.engine_of(&node)) {
                    (None, Some(engine)) if unreachable.contains(&engine.host) => {
                        "Unreachable".to_string()
                    }
                    _ => state.map_or("Missing", ContainerState::display).to_string(),
                },
                privilege: profile.privilege,
                state,
                kubelet,
                units,
                etcd,
                apiserver,
                engine: profile.engine_of(&node).map(|e| e.host.clone()),
                name: node.name,
            })
        }
    }))
    .await?;
    let running = |n: &NodeStatus| n.state.is_some_and(ContainerState::is_running);
    let control_plane_running = nodes
        .iter()
        .any(|n| n.role == berth_core::profile::Role::ControlPlane && running(n));
    let client = ctx.client(profile).await?;
    let api_ready = control_plane_running && super::api_ready(&client).await;
    let dns = if api_ready {
        super::dns::status(&client, profile).await
    } else {
        super::dns::Dns {
            state: super::dns::DnsState::Unknown,
            reason: Some("the API server is not ready".into()),
        }
    };
    let running_units: Vec<(String, &[super::health::UnitHealth])> = nodes
        .iter()
        .filter(|n| running(n))
        .map(|n| (n.name.clone(), &n.units[..]))
        .collect();
    let storage =
        super::storage::status(api_ready.then_some(&client), profile, &running_units).await;
    let mut addons = Vec::new();
    // CoreDNS and storage have sections of their own.
    for addon in profile.addons_on().into_iter().filter(|a| !a.by_default()) {
        addons.push(if api_ready {
            super::addons::state(&client, profile, addon).await
        } else {
            super::addons::AddonStatus::unknown(profile, addon)
        });
    }
    let entry = berth_core::kubeconfig::read(&profile.kubeconfig)
        .ok()
        .and_then(|c| berth_core::kubeconfig::server(&c, &profile.context()));
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
    if nodes.iter().any(|n| !n.kubelet.is_active()) {
        code |= KUBELET_NOT_RUNNING;
    }
    if !api_ready {
        code |= API_NOT_READY;
    }
    if !kubeconfig_ok {
        code |= KUBECONFIG_WRONG;
    }
    Ok(ProfileStatus {
        profile: name.clone(),
        kubernetes_version: profile.kubernetes_version.to_string(),
        upgrading: profile.upgrading.as_ref().map(ToString::to_string),
        unreachable,
        endpoint: profile.server(),
        ssh_forward: super::ssh_forward::running(&ctx.store, profile)
            .await
            .map(|running| match running {
                true => "running".to_string(),
                false => format!("down (`berth start -p {name}` starts it again)"),
            }),
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
        storage,
        addons,
        registry: profile.registry.map(|r| {
            let state = states
                .get(&ctx.names(profile).registry())
                .map_or("Missing", |s| s.display());
            format!("{} ({})", r.host(), state.to_lowercase())
        }),
        mounts: profile.mounts.iter().map(ToString::to_string).collect(),
        proxy: profile.proxy.clone(),
        load_balancer: if profile.load_balancer {
            let container = ctx.names(profile).load_balancer();
            let state = states.get(&container).map_or("Missing", |s| s.display());
            Some(LoadBalancerStatus {
                container: format!("{container} ({})", state.to_lowercase()),
                backends: super::balancer::backends(ctx, profile).await?,
            })
        } else {
            None
        },
        services: match profile.lb_address {
            Some(address) => {
                let container = ctx.names(profile).service_lb();
                let state = states.get(&container).map_or("Missing", |s| s.display());
                Some(ServicesStatus {
                    address: address.to_string(),
                    controller: format!("{container} ({})", state.to_lowercase()),
                    forwards: if api_ready {
                        super::service_lb::forwards(&client).await?
                    } else {
                        Vec::new()
                    },
                })
            }
            None => None,
        },
        cgroup_version: if profile.cgroup_v2 { 2 } else { 1 },
        cgroups_note: berth_node::render::cgroup_v1_note(
            &profile.kubernetes_version,
            profile.cgroup_v2,
        ),
        nodes,
        exit_code: code,
    })
}

/// Whether the API server of the control plane in `container` is ready,
/// asked on that node's loopback.
pub(crate) async fn own_api_server_ready(ctx: &Ctx, container: &str) -> Result<bool> {
    let cmd = berth_node::command::api_server_ready();
    Ok(ctx.docker.exec(container, &cmd).await?.success().is_ok())
}

/// Every addon of the profile with its state, from what `status` found.
pub fn addons(profile: &Profile, status: &ProfileStatus) -> Vec<super::addons::AddonStatus> {
    use super::addons::AddonState;
    use berth_node::addons::Addon;
    Addon::ALL
        .into_iter()
        .map(|addon| {
            let (state, reason) = match addon {
                _ if !profile.has(addon) => (AddonState::Disabled, None),
                // Their states have sections of their own in `status`.
                Addon::Coredns => (status.dns.state.into(), status.dns.reason.clone()),
                Addon::Storage => (status.storage.state.into(), status.storage.reason.clone()),
                other => {
                    let found = status.addons.iter().find(|a| a.name == other.name());
                    let found = found
                        .cloned()
                        .unwrap_or_else(|| super::addons::AddonStatus::unknown(profile, other));
                    (found.state, found.reason)
                }
            };
            super::addons::AddonStatus::new(profile, addon, state, reason)
        })
        .collect()
}
