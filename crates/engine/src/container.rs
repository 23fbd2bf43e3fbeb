//! How a node container is asked of the engine.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointIpamConfig, EndpointSettings, HostConfig,
    HostConfigCgroupnsModeEnum, NetworkingConfig, PortBinding,
};
use serde::{Deserialize, Serialize};

/// How much the node container may do. systemd, containerd and kubelet need
/// nearly everything; `Capabilities` is the most an engine that refuses
/// privileged containers allows (measured: all but CAP_SYS_RESOURCE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    Privileged,
    Capabilities,
}

/// The per-version volume of Kubernetes binaries: read-only in nodes,
/// writable only in the helper that fills it.
#[derive(Debug, Clone)]
pub struct BinariesVolume {
    pub name: String,
    pub writable: bool,
}

/// The API server's port inside a node.
pub const API_PORT: u16 = 6443;

/// Path inside a node where the version's Kubernetes binaries are mounted.
pub const BINARIES_MOUNT: &str = "/opt/berth/kubernetes/bin";

#[derive(Debug, Clone)]
pub struct NodeContainer {
    pub name: String,
    pub hostname: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    /// How a node runs; `None` for a plain container (the registry).
    pub privilege: Option<Privilege>,
    /// cgroup v2 engines give the node a private cgroup namespace; v1
    /// engines bind the host hierarchy, which the node's entrypoint narrows.
    pub cgroup_v2: bool,
    /// A named volume for `/var`, or an anonymous one when `None`.
    pub var_volume: Option<String>,
    pub binaries: Option<BinariesVolume>,
    pub entrypoint: Option<Vec<String>>,
    /// The profile's network and the node's fixed address on it.
    pub network: Option<(String, String)>,
    /// On the host's network instead (no address of its own, nothing
    /// published): what it listens on, the host does.
    pub host_network: bool,
    /// Host port for the API server's port in the node.
    pub api_port: Option<u16>,
    /// More (host port, port in the node) pairs to publish.
    pub ports: Vec<(u16, u16)>,
    /// The engine host's address the ports are published on: its loopback
    /// when that is this machine's, else the one berth reached it at
    /// (`EngineFacts::host_address`).
    pub published_on: std::net::Ipv4Addr,
    pub cpus: Option<f64>,
    pub memory_mib: Option<u64>,
    /// Host folders bound into the container.
    pub mounts: Vec<Mount>,
}

impl NodeContainer {
    /// A short-lived helper container from the node image that runs
    /// `/bin/true` if started; privileged, so that starting it tells
    /// whether the engine allows that. Callers change what they need.
    pub fn helper(name: String, image: &str, labels: HashMap<String, String>) -> Self {
        Self {
            name,
            hostname: "helper".into(),
            image: image.into(),
            labels,
            privilege: Some(Privilege::Privileged),
            cgroup_v2: false,
            var_volume: None,
            binaries: None,
            entrypoint: Some(vec!["/bin/true".into()]),
            network: None,
            host_network: false,
            api_port: None,
            ports: Vec::new(),
            published_on: std::net::Ipv4Addr::LOCALHOST,
            cpus: None,
            memory_mib: None,
            mounts: Vec::new(),
        }
    }

    pub fn to_create_body(&self) -> ContainerCreateBody {
        let mut binds = Vec::new();
        let mut volumes = Vec::new();
        match &self.var_volume {
            Some(volume) => binds.push(format!("{volume}:/var")),
            None => volumes.push("/var".to_string()),
        }
        if let Some(volume) = &self.binaries {
            let mode = if volume.writable { "rw" } else { "ro" };
            binds.push(format!("{}:{BINARIES_MOUNT}:{mode}", volume.name));
        }
        // kube-proxy and the CNI plugins load netfilter modules by name.
        binds.push("/lib/modules:/lib/modules:ro".into());
        if !self.cgroup_v2 {
            binds.push("/sys/fs/cgroup:/sys/fs/cgroup:rw".into());
        }
        binds.extend(self.mounts.iter().map(|m| {
            let mode = if m.read_only { "ro" } else { "rw" };
            format!("{}:{}:{mode}", m.host.display(), m.node)
        }));
        let mut host = HostConfig {
            binds: Some(binds),
            tmpfs: Some(HashMap::from([
                ("/run".into(), "rw,nosuid,nodev,exec".into()),
                ("/tmp".into(), "rw,nosuid,nodev,exec".into()),
            ])),
            security_opt: Some(vec![
                "seccomp=unconfined".into(),
                "apparmor=unconfined".into(),
            ]),
            cgroupns_mode: Some(if self.cgroup_v2 {
                HostConfigCgroupnsModeEnum::PRIVATE
            } else {
                HostConfigCgroupnsModeEnum::HOST
            }),
            nano_cpus: self.cpus.map(|c| (c * 1e9) as i64),
            memory: self.memory_mib.map(|m| (m * 1024 * 1024) as i64),
            ..Default::default()
        };
        // Published on one address only (the loopback unless the engine
        // is another machine's): the cluster is the user's alone.
        let published: Vec<(u16, u16)> = self
            .api_port
            .map(|host| (host, API_PORT))
            .into_iter()
            .chain(self.ports.iter().copied())
            .collect();
        if !published.is_empty() {
            host.port_bindings = Some(
                published
                    .iter()
                    .map(|(host, inner)| {
                        let binding = PortBinding {
                            host_ip: Some(self.published_on.to_string()),
                            host_port: Some(host.to_string()),
                        };
                        (format!("{inner}/tcp"), Some(vec![binding]))
                    })
                    .collect(),
            );
        }
        if self.host_network {
            host.network_mode = Some("host".into());
        }
        let networking = self.network.as_ref().map(|(network, ip)| {
            host.network_mode = Some(network.clone());
            let endpoint = EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(ip.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network.clone(), endpoint)])),
            }
        });
        match self.privilege {
            None => {}
            Some(Privilege::Privileged) => host.privileged = Some(true),
            Some(Privilege::Capabilities) => {
                host.cap_add = Some(vec!["ALL".into()]);
                host.cap_drop = Some(vec!["SYS_RESOURCE".into()]);
                // What `--security-opt systempaths=unconfined` means in the API.
                host.masked_paths = Some(vec![]);
                host.readonly_paths = Some(vec![]);
                host.device_cgroup_rules = Some(vec!["a *:* rwm".into()]);
                host.devices = Some(vec![DeviceMapping {
                    path_on_host: Some("/dev/kmsg".into()),
                    path_in_container: Some("/dev/kmsg".into()),
                    cgroup_permissions: Some("rwm".into()),
                }]);
            }
        }
        ContainerCreateBody {
            hostname: Some(self.hostname.clone()),
            image: Some(self.image.clone()),
            labels: Some(self.labels.clone()),
            env: Some(vec!["container=docker".into()]),
            entrypoint: self.entrypoint.clone(),
            volumes: (!volumes.is_empty()).then_some(volumes),
            stop_signal: Some("SIGRTMIN+3".into()),
            tty: Some(true),
            exposed_ports: (!published.is_empty()).then(|| {
                published
                    .iter()
                    .map(|(_, inner)| format!("{inner}/tcp"))
                    .collect()
            }),
            host_config: Some(host),
            networking_config: networking,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(privilege: Privilege, cgroup_v2: bool) -> NodeContainer {
        NodeContainer {
            privilege: Some(privilege),
            cgroup_v2,
            entrypoint: None,
            ..NodeContainer::helper("probe".into(), "img", HashMap::new())
        }
    }

    #[test]
    fn restricted_engines_get_every_capability_but_sys_resource() {
        let host = node(Privilege::Capabilities, false)
            .to_create_body()
            .host_config
            .unwrap();
        assert_eq!(host.privileged, None);
        assert_eq!(host.cap_add.unwrap(), ["ALL"]);
        assert_eq!(host.cap_drop.unwrap(), ["SYS_RESOURCE"]);
        assert_eq!(host.masked_paths.unwrap(), Vec::<String>::new());
        assert_eq!(
            host.devices.unwrap()[0].path_on_host.as_deref(),
            Some("/dev/kmsg")
        );
    }

    #[test]
    fn ports_are_published_on_the_loopback_only() {
        let mut spec = node(Privilege::Privileged, false);
        spec.api_port = Some(40000);
        spec.ports = vec![(8080, 30080)];
        let body = spec.to_create_body();
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        assert_eq!(bindings.len(), 2);
        for (inner, host) in [("6443/tcp", "40000"), ("30080/tcp", "8080")] {
            let binding = &bindings[inner].as_ref().unwrap()[0];
            assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
            assert_eq!(binding.host_port.as_deref(), Some(host));
        }
        assert_eq!(body.exposed_ports.unwrap().len(), 2);
    }

    #[test]
    fn a_remote_engine_publishes_on_the_address_berth_reached_it_at() {
        let mut spec = node(Privilege::Privileged, false);
        spec.api_port = Some(40000);
        spec.published_on = std::net::Ipv4Addr::new(10, 1, 2, 3);
        let bindings = spec.to_create_body().host_config.unwrap().port_bindings;
        let bindings = bindings.unwrap();
        let binding = &bindings["6443/tcp"].as_ref().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("10.1.2.3"));
    }

    #[test]
    fn cgroup_v1_binds_the_host_tree_and_v2_gets_a_private_namespace() {
        let v1 = node(Privilege::Privileged, false)
            .to_create_body()
            .host_config
            .unwrap();
        assert!(
            v1.binds
                .unwrap()
                .contains(&"/sys/fs/cgroup:/sys/fs/cgroup:rw".to_string())
        );
        assert_eq!(v1.cgroupns_mode, Some(HostConfigCgroupnsModeEnum::HOST));
        let v2 = node(Privilege::Privileged, true)
            .to_create_body()
            .host_config
            .unwrap();
        assert!(
            !v2.binds
                .unwrap()
                .iter()
                .any(|b| b.starts_with("/sys/fs/cgroup"))
        );
        assert_eq!(v2.cgroupns_mode, Some(HostConfigCgroupnsModeEnum::PRIVATE));
        assert_eq!(v2.privileged, Some(true));
    }
}

/// A host folder in every node of a profile, at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub host: std::path::PathBuf,
    pub node: String,
    pub read_only: bool,
}

impl std::fmt::Display for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host.display(), self.node)?;
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}
