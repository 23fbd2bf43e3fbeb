//! Profiles: named clusters and their state on disk under `$BERTH_HOME`:
//! `profiles/<name>/profile.json` and `profiles/<name>/pki/`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::binaries::Version;
use crate::pki::{create_private_dir, write_atomic};
use crate::settings::Port;
use berth_engine::Privilege;
use berth_node::addons::Addon;
use berth_node::net::Cidr;
use berth_node::render::ExtraFlag;

pub const DEFAULT_PROFILE: &str = "berth";
pub const NAME_MAX: usize = 32;
pub use berth_node::render::{MAX_NODES, Role};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{0}` is not a valid profile name: use lower-case letters, digits and `-`, \
         starting and ending with a letter or digit, at most {NAME_MAX} characters"
    )]
    BadName(String),
    #[error(
        "`{0}` is not a valid profile name: names ending in -m and digits are \
         those of other profiles' nodes"
    )]
    NodeLikeName(String),
    #[error("the profile file {} cannot be read: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "the profile file {} was written by {written_by} in profile format {format}; \
         this berth ({}) reads formats 1 to {FORMAT}",
        path.display(),
        this_berth()
    )]
    Newer {
        path: PathBuf,
        format: u64,
        written_by: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Profile names become container, network and file names, so they are
/// held to what is safe in all of them.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let bytes = name.as_bytes();
    let ok_char = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let ok_end = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !(bytes.len() <= NAME_MAX
        && bytes.iter().all(ok_char)
        && ok_end(bytes.first())
        && ok_end(bytes.last()))
    {
        return Err(Error::BadName(name.to_string()));
    }
    // `dev-m02` is the name of profile dev's second node: a profile of that
    // name would share its container name.
    if let Some((_, suffix)) = name.rsplit_once("-m")
        && !suffix.is_empty()
        && suffix.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Error::NodeLikeName(name.to_string()));
    }
    Ok(())
}

/// The `index`-th node of a profile: 0 is the first control plane, named after the
/// profile; the others are `<profile>-m02`, `<profile>-m03`, ...
pub fn node_name(profile: &str, index: u32) -> String {
    if index == 0 {
        profile.to_string()
    } else {
        format!("{profile}-m{:02}", index + 1)
    }
}

/// Which of `engines` engines each of `nodes` nodes goes on, by index
/// (the first `control_planes` are control planes): control planes in
/// turn from the first engine, so that losing one engine loses as few
/// etcd members as can be; workers in turn from the second, so that the
/// first, which holds the first control plane and the load balancer, is
/// the last to get one.
pub fn spread(control_planes: u32, nodes: u32, engines: usize) -> BTreeMap<u32, usize> {
    (0..nodes)
        .map(|i| {
            let engine = match i < control_planes {
                true => i as usize % engines,
                false => (1 + (i - control_planes) as usize) % engines,
            };
            (i, engine)
        })
        .filter(|(_, engine)| *engine != 0)
        .collect()
}

/// Where the containers and volumes of profile `profile`'s nodes are, by
/// name, when they are spread as `node_engines` says; any other is on the
/// first engine.
pub fn placed(
    profile: &str,
    home_id: Option<&str>,
    node_engines: &BTreeMap<u32, usize>,
) -> std::collections::HashMap<String, usize> {
    node_engines
        .iter()
        .flat_map(|(index, engine)| {
            let container = crate::names::container(&node_name(profile, *index), home_id);
            [
                (crate::names::var_volume(&container), *engine),
                (container, *engine),
            ]
        })
        .collect()
}

/// The engine a profile was made on: where berth reached it, and its own
/// identity, which tells it from another engine later at that address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EngineRef {
    pub host: String,
    pub id: String,
    /// The TLS files of an engine reached over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<berth_engine::discover::Tls>,
    /// Where the ports the engine publishes reach this machine
    /// (`EngineFacts::host_address`).
    #[serde(default = "loopback")]
    pub host_address: Ipv4Addr,
    /// The cluster is published on the loopback of an ssh:// engine's host
    /// and its ports forwarded here by an ssh of berth's (`--ssh-forward`),
    /// for a host whose other ports this machine cannot reach.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ssh_forward: bool,
}

fn loopback() -> Ipv4Addr {
    Ipv4Addr::LOCALHOST
}

impl EngineRef {
    pub fn of(facts: &berth_engine::EngineFacts) -> Self {
        EngineRef {
            host: facts.endpoint.clone(),
            id: facts.id.clone(),
            tls: facts.tls.clone(),
            host_address: facts.host_address,
            ssh_forward: false,
        }
    }

    /// As `of`, for a cluster whose ports berth forwards over ssh: the
    /// ports are published on the engine host's loopback, which the
    /// forward makes this machine's.
    pub fn forwarded(facts: &berth_engine::EngineFacts) -> Self {
        EngineRef {
            host_address: Ipv4Addr::LOCALHOST,
            ssh_forward: true,
            ..Self::of(facts)
        }
    }
}

/// What a profile was created with; a restart reuses all of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    pub name: String,
    pub kubernetes_version: Version,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub node_image: String,
    pub privilege: Privilege,
    pub cgroup_v2: bool,
    /// The API server's port on 127.0.0.1, chosen at creation and kept.
    pub api_port: u16,
    /// The profile's Docker network, a /24.
    pub subnet: Cidr,
    /// The control plane's address on the profile's network; node i has
    /// this address plus i.
    pub node_ip: Ipv4Addr,
    pub cpus: Option<f64>,
    pub memory_mib: Option<u64>,
    pub kubeconfig: PathBuf,
    /// The kubeconfig's current context before `start` switched to this
    /// profile's, restored by `delete`.
    pub previous_context: Option<String>,
    /// Indices of the worker nodes, ascending; a node's name, address and
    /// pod CIDR follow from its index (`node_at`).
    #[serde(default)]
    pub workers: Vec<u32>,
    /// Indices of the control-plane nodes besides the first (index 0),
    /// ascending.
    #[serde(default)]
    pub control_planes: Vec<u32>,
    /// Made with several control planes: the API server is reached through
    /// the profile's load balancer, also when one control plane is left.
    #[serde(default)]
    pub load_balancer: bool,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub extra_config: Vec<ExtraFlag>,
    #[serde(default)]
    pub feature_gates: BTreeMap<String, bool>,
    /// Every addon that is on, CoreDNS and storage (on unless `--no-dns`,
    /// `--no-storage`) included, in `Addon::ALL`'s order. Stored as
    /// `addons_on`; see `migrate` for the files of an older berth.
    #[serde(rename = "addons_on")]
    pub addons: Vec<Addon>,
    /// `--registry` or `registry enable`: the profile's own registry.
    #[serde(default)]
    pub registry: Option<Registry>,
    /// The host address its LoadBalancer Services answer on (`--lb-address`,
    /// 127.0.0.1 unless given); `None` in profiles made before berth served
    /// them.
    #[serde(default)]
    pub lb_address: Option<Ipv4Addr>,
    /// The engine its containers are on; `None` in profiles made before
    /// berth remembered it.
    #[serde(default)]
    pub engine: Option<EngineRef>,
    /// The other engines of a cluster spread over several (`--engine A
    /// --engine B`), of one Docker Swarm; `engine` is the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engines: Vec<EngineRef>,
    /// Which engine each node is on, by node index: 0 is `engine`, 1 the
    /// first of `engines`, ...; a node not here is on `engine`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_engines: BTreeMap<u32, usize>,
    /// The proxy image pulls go through, when the profile was made with one.
    #[serde(default)]
    pub proxy: Option<crate::settings::Proxy>,
    /// `--ca-cert`: CA certificates (PEM) every node trusts.
    #[serde(default)]
    pub ca_certs: Vec<String>,
    /// `--mount`: host folders in every node.
    #[serde(default)]
    pub mounts: Vec<crate::settings::Mount>,
    /// The home's id in the profile's engine names (`names::home_id`);
    /// `None` for the default home and profiles made before homes had ids.
    #[serde(default)]
    pub home_id: Option<String>,
    /// The id of the profile's network, by which it is used after its
    /// creation (a name may be shared by several networks); `None` for
    /// profiles made before, whose network is found through their nodes.
    #[serde(default)]
    pub network_id: Option<String>,
    /// The etcd, containerd and runc its binaries volume brought; `None`
    /// when the node image's own run it (an imported build, or a profile
    /// made before berth paired a runtime with each minor).
    #[serde(default)]
    pub runtime: Option<crate::binaries::Runtime>,
    /// The profile whose names its nodes carry in Kubernetes (and their
    /// hostnames), when not this one's: a profile restored from another's
    /// snapshot, whose volumes' claims and pods are bound to those names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_names: Option<String>,
    /// The version an upgrade that has not ended is taking the nodes to:
    /// some may run it, the others the profile's `kubernetes_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrading: Option<Version>,
}

/// A profile's registry: published on 127.0.0.1 at `port`, chosen when it
/// was made and kept; images are named `localhost:<port>/...` on the host
/// and in pods alike.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registry {
    pub port: u16,
}

impl Registry {
    /// Its port inside its container.
    pub const INNER_PORT: u16 = berth_node::render::REGISTRY_PORT;

    /// How images in it are named.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.port)
    }
}

/// One node of a profile's cluster, as its index makes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    /// 0 for the first control plane; it fixes the node's address and pod CIDR.
    pub index: u32,
    pub ip: Ipv4Addr,
    /// The node's share of the cluster's pod CIDR, given by berth.
    pub pod_cidr: Cidr,
    /// Its container's name in the engine.
    pub container: String,
    /// The name of the engine's volume that holds its `/var`.
    pub volume: String,
    pub role: Role,
    /// The engine it is on: 0 the profile's `engine`, 1 the first of its
    /// `engines`, ...
    pub engine: usize,
}

impl Node {
    pub fn role(&self) -> Role {
        self.role
    }

    pub fn is_control_plane(&self) -> bool {
        self.role == Role::ControlPlane
    }
}

impl Profile {
    /// The names and labels of the profile's resources, in `home`.
    pub fn names(&self, home: &Path) -> crate::names::Names {
        crate::names::Names::new(&self.name, home, self.home_id.as_deref())
    }

    /// The node of the given index: its address on the profile's /24
    /// network (the first control plane has .2) and its /24 of the pod
    /// CIDR; its role is the profile's for that index, else worker.
    pub fn node_at(&self, index: u32) -> Node {
        let name = node_name(self.node_names.as_deref().unwrap_or(&self.name), index);
        // Engine names are the profile's own, whatever its nodes are called.
        let container =
            crate::names::container(&node_name(&self.name, index), self.home_id.as_deref());
        let role = if index == 0 || self.control_planes.contains(&index) {
            Role::ControlPlane
        } else {
            Role::Worker
        };
        Node {
            volume: crate::names::var_volume(&container),
            container,
            engine: self.node_engines.get(&index).copied().unwrap_or(0),
            name,
            index,
            ip: Ipv4Addr::from(u32::from(self.node_ip) + index),
            pod_cidr: berth_node::render::POD_CIDR.nth_slash24(index as u8),
            role,
        }
    }

    /// The first control plane: it holds the addons and serves berth's
    /// own requests to the cluster.
    pub fn control_plane(&self) -> Node {
        self.node_at(0)
    }

    /// Every node by index: the first control plane first.
    pub fn nodes(&self) -> Vec<Node> {
        let mut indices: Vec<u32> = std::iter::once(0)
            .chain(self.control_planes.iter().copied())
            .chain(self.workers.iter().copied())
            .collect();
        indices.sort();
        indices.into_iter().map(|i| self.node_at(i)).collect()
    }

    /// Every control-plane node, the first first.
    pub fn control_plane_nodes(&self) -> Vec<Node> {
        self.nodes()
            .into_iter()
            .filter(Node::is_control_plane)
            .collect()
    }

    /// The node `node add` would create with `role`: the lowest free index.
    pub fn next_node(&self, role: Role) -> Option<Node> {
        (1..=MAX_NODES - 1)
            .find(|i| !self.workers.contains(i) && !self.control_planes.contains(i))
            .map(|i| Node {
                role,
                ..self.node_at(i)
            })
    }

    /// Makes `node` one of the profile's, as its role says.
    pub fn insert(&mut self, node: &Node) {
        let list = match node.role {
            Role::ControlPlane => &mut self.control_planes,
            Role::Worker => &mut self.workers,
        };
        list.push(node.index);
        list.sort();
    }

    /// Takes the node of `index` out of the profile.
    pub fn take_out(&mut self, index: u32) {
        self.workers.retain(|i| *i != index);
        self.control_planes.retain(|i| *i != index);
        self.node_engines.remove(&index);
    }

    /// Which of its engines `host` names (as `--engine` gave it), for a node
    /// to go on; refused naming them when it is none of them.
    pub fn engine_named(&self, host: &str) -> Result<usize, String> {
        let all = self.all_engines();
        all.iter().position(|e| e.host == host).ok_or_else(|| {
            let hosts: Vec<&str> = all.iter().map(|e| e.host.as_str()).collect();
            format!(
                "{host} is not one of the engines of profile {} ({})",
                self.name,
                hosts.join(", ")
            )
        })
    }

    pub fn node(&self, name: &str) -> Option<Node> {
        self.nodes().into_iter().find(|n| n.name == name)
    }

    pub fn context(&self) -> String {
        crate::names::context(&self.name, self.home_id.as_deref())
    }

    /// Where the ports the profile's containers publish are reached: the
    /// loopback unless its engine is another machine's.
    pub fn host_address(&self) -> Ipv4Addr {
        self.engine
            .as_ref()
            .map_or(Ipv4Addr::LOCALHOST, |e| e.host_address)
    }

    /// Every engine its nodes are on, the first first.
    pub fn all_engines(&self) -> Vec<&EngineRef> {
        self.engine.iter().chain(&self.engines).collect()
    }

    /// The engine `node` is on, of a cluster spread over several.
    pub fn engine_of(&self, node: &Node) -> Option<&EngineRef> {
        match self.engines.is_empty() {
            true => None,
            false => self.all_engines().get(node.engine).copied(),
        }
    }

    /// Where each node's container and volume are, by name, when the
    /// cluster is spread over several engines (`berth_engine::Spread`).
    pub fn placed(&self) -> std::collections::HashMap<String, usize> {
        placed(&self.name, self.home_id.as_deref(), &self.node_engines)
    }

    pub fn server(&self) -> String {
        format!("https://{}:{}", self.host_address(), self.api_port)
    }

    /// Whether `addon` is enabled.
    pub fn has(&self, addon: Addon) -> bool {
        self.addons.contains(&addon)
    }

    /// The addons enabled, CoreDNS and storage included, in their order.
    pub fn addons_on(&self) -> Vec<Addon> {
        self.addons.clone()
    }

    /// Enables or disables `addon` in the profile's state.
    pub fn set(&mut self, addon: Addon, on: bool) {
        self.addons.retain(|a| *a != addon);
        if on {
            self.addons.push(addon);
            self.addons.sort();
        }
    }

    /// The registry's address on the profile's network: the subnet's last
    /// host, far above every node's.
    pub fn registry_ip(&self) -> Ipv4Addr {
        self.subnet.last_host()
    }

    /// The load balancer's address on the profile's network, below the
    /// registry's.
    pub fn load_balancer_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet.last_host()) - 1)
    }

    /// Where nodes reach the API server on the profile's network: the load
    /// balancer, else the one control plane.
    pub fn api_ip(&self) -> Ipv4Addr {
        if self.load_balancer {
            self.load_balancer_ip()
        } else {
            self.control_plane().ip
        }
    }
}

pub struct Store {
    root: PathBuf,
}

/// The format of the profile files this berth writes. A berth refuses a
/// file of a higher format, which it could misread, and never rewrites it.
/// 1: files of berths before formats had numbers (no `format` key), whose
/// addons are `no_dns`, `no_storage` and `addons`; 2: `addons_on`.
pub const FORMAT: u64 = 2;

/// This berth, as a profile file names the berth that wrote it.
pub fn this_berth() -> String {
    format!("berth {}", env!("CARGO_PKG_VERSION"))
}

/// A profile file of an older berth, in today's form: it stored the addons
/// besides CoreDNS and storage as `addons`, and `no_dns`/`no_storage` for
/// those two turned off (a file older still has neither: both on).
fn migrate(json: &mut serde_json::Value) {
    let Some(fields) = json.as_object_mut() else {
        return;
    };
    if fields.contains_key("addons_on") {
        return;
    }
    let mut on = Vec::new();
    for (addon, off) in [(Addon::Coredns, "no_dns"), (Addon::Storage, "no_storage")] {
        if !fields
            .remove(off)
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
        {
            on.push(serde_json::to_value(addon).expect("an addon serialises"));
        }
    }
    if let Some(serde_json::Value::Array(besides)) = fields.remove("addons") {
        on.extend(besides);
    }
    fields.insert("addons_on".into(), serde_json::Value::Array(on));
}

impl Store {
    pub fn new(home: &Path) -> Self {
        Self {
            root: home.to_path_buf(),
        }
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join("profiles").join(name)
    }

    pub fn pki_dir(&self, name: &str) -> PathBuf {
        self.dir(name).join("pki")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir(name).join("profile.json")
    }

    pub fn exists(&self, name: &str) -> bool {
        self.dir(name).exists()
    }

    /// The profile, `None` when it has no state, an error when its file
    /// cannot be parsed (the file is then left exactly as it is).
    pub fn load(&self, name: &str) -> Result<Option<Profile>, Error> {
        let path = self.file(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Corrupt {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let corrupt = |e: serde_json::Error| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut json: serde_json::Value = serde_json::from_slice(&bytes).map_err(corrupt)?;
        let format = json.get("format").and_then(|f| f.as_u64()).unwrap_or(1);
        if format > FORMAT {
            let written_by = json.get("written_by").and_then(|w| w.as_str());
            return Err(Error::Newer {
                path,
                format,
                written_by: written_by.unwrap_or("a newer berth").to_string(),
            });
        }
        migrate(&mut json);
        let mut profile: Profile = serde_json::from_value(json).map_err(corrupt)?;
        profile.addons.sort();
        profile.addons.dedup();
        Ok(Some(profile))
    }

    pub fn save(&self, profile: &Profile) -> Result<(), Error> {
        let dir = self.dir(&profile.name);
        create_private_dir(&self.root).map_err(|e| io_error(&self.root, e))?;
        create_private_dir(&dir).map_err(|e| io_error(&dir, e))?;
        let mut json = serde_json::to_value(profile).expect("profile serialises");
        if let Some(fields) = json.as_object_mut() {
            fields.insert("format".into(), FORMAT.into());
            fields.insert("written_by".into(), this_berth().into());
        }
        let json = serde_json::to_vec_pretty(&json).expect("profile serialises");
        let path = self.file(&profile.name);
        write_atomic(&path, &json, 0o600).map_err(|source| Error::Io { path, source })
    }

    pub fn remove(&self, name: &str) -> Result<(), Error> {
        match fs::remove_dir_all(self.dir(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
                path: self.dir(name),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Names of every profile with a state directory, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.root.join("profiles"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| validate_name(n).is_ok())
            .collect();
        names.sort();
        names
    }

    /// The profile set with `berth profile NAME`, else `berth`.
    pub fn default_name(&self) -> String {
        fs::read_to_string(self.root.join("default-profile"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|n| validate_name(n).is_ok())
            .unwrap_or_else(|| DEFAULT_PROFILE.to_string())
    }

    pub fn set_default(&self, name: &str) -> Result<(), Error> {
        create_private_dir(&self.root).map_err(|e| io_error(&self.root, e))?;
        let path = self.root.join("default-profile");
        write_atomic(&path, name.as_bytes(), 0o600).map_err(|source| Error::Io { path, source })
    }
}

fn io_error(path: &Path, e: crate::pki::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: io::Error::other(e.to_string()),
    }
}

#[cfg(any(test, feature = "fake"))]
impl Profile {
    /// A single-node v1.20.2 profile of the default home, for unit tests.
    pub fn example(name: &str) -> Profile {
        Profile {
            name: name.into(),
            kubernetes_version: "v1.20.2".parse().unwrap(),
            created: 0,
            node_image: "img".into(),
            privilege: Privilege::Capabilities,
            cgroup_v2: false,
            api_port: 1,
            subnet: Cidr::slash24(172, 30, 7),
            node_ip: Ipv4Addr::new(172, 30, 7, 2),
            cpus: None,
            memory_mib: None,
            kubeconfig: "/k".into(),
            previous_context: None,
            workers: Vec::new(),
            control_planes: Vec::new(),
            load_balancer: false,
            ports: Vec::new(),
            extra_config: Vec::new(),
            feature_gates: BTreeMap::new(),
            addons: Addon::ALL.into_iter().filter(|a| a.by_default()).collect(),
            registry: None,
            lb_address: Some(Ipv4Addr::LOCALHOST),
            proxy: None,
            engine: None,
            engines: Vec::new(),
            node_engines: BTreeMap::new(),
            ca_certs: Vec::new(),
            mounts: Vec::new(),
            home_id: None,
            network_id: None,
            runtime: None,
            upgrading: None,
            node_names: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_of_at_most_32_characters() {
        for good in ["dev", "a", "e2e-a", "0", "a-b-c", &"x".repeat(32)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Dev",
            "a_b",
            "a.b",
            "../x",
            "a b",
            "--help",
            &"x".repeat(33),
            "é",
            "dev-m02",
            "a-m3",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        for good in ["dev-m", "dev-mx2", "m02", "dev-m02x"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
    }

    fn profile() -> Profile {
        Profile::example("dev")
    }

    #[test]
    fn addons_are_on_or_off_whatever_kind_they_are() {
        let mut p = Profile::example("dev");
        assert!(p.has(Addon::Coredns) && p.has(Addon::Storage));
        assert!(!p.has(Addon::Dashboard));
        p.set(Addon::Dashboard, true);
        p.set(Addon::MetricsServer, true);
        p.set(Addon::Dashboard, true);
        use Addon::*;
        assert_eq!(p.addons, [Coredns, Storage, MetricsServer, Dashboard]);
        p.set(Storage, false);
        p.set(Dashboard, false);
        assert_eq!(p.addons_on(), [Coredns, MetricsServer]);
    }

    #[test]
    fn profile_files_of_an_older_berth_read_with_the_same_addons() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::new(home.path());
        fs::create_dir_all(store.dir("dev")).unwrap();
        let old = |fields: &[(&str, serde_json::Value)]| {
            let mut json = serde_json::to_value(profile()).unwrap();
            let object = json.as_object_mut().unwrap();
            object.remove("addons_on");
            for (key, value) in fields {
                object.insert(key.to_string(), value.clone());
            }
            fs::write(store.file("dev"), json.to_string()).unwrap();
            store.load("dev").unwrap().unwrap().addons
        };
        use Addon::*;
        use serde_json::json;
        // Before addons: CoreDNS and storage on.
        assert_eq!(old(&[]), [Coredns, Storage]);
        assert_eq!(
            old(&[
                ("no_dns", json!(true)),
                ("no_storage", json!(false)),
                ("addons", json!(["dashboard", "metrics-server"])),
            ]),
            [Storage, MetricsServer, Dashboard]
        );
        // Saved again, it is in today's form and reads the same.
        let mut again = store.load("dev").unwrap().unwrap();
        store.save(&again).unwrap();
        let text = fs::read_to_string(store.file("dev")).unwrap();
        assert!(
            !text.contains("no_dns") && text.contains("addons_on"),
            "{text}"
        );
        again.addons.sort();
        assert_eq!(store.load("dev").unwrap().unwrap(), again);
    }

    fn engine(host: &str) -> EngineRef {
        EngineRef {
            host: host.into(),
            id: host.into(),
            tls: None,
            host_address: Ipv4Addr::LOCALHOST,
            ssh_forward: false,
        }
    }

    #[test]
    fn nodes_spread_control_planes_first_and_workers_from_the_second_engine() {
        let on = |cp, nodes, engines| {
            let placed = spread(cp, nodes, engines);
            (0..nodes)
                .map(|i| placed.get(&i).copied().unwrap_or(0))
                .collect::<Vec<_>>()
        };
        assert_eq!(on(1, 3, 2), [0, 1, 0]);
        assert_eq!(on(1, 3, 3), [0, 1, 2]);
        // Three etcd members on three engines: one engine lost, two left.
        assert_eq!(on(3, 5, 3), [0, 1, 2, 1, 2]);
        assert_eq!(on(1, 4, 1), [0, 0, 0, 0]);
        let p = Profile {
            workers: vec![1, 2],
            node_engines: spread(1, 3, 2),
            ..profile()
        };
        let engines: Vec<usize> = p.nodes().iter().map(|n| n.engine).collect();
        assert_eq!(engines, [0, 1, 0]);
        let placed = p.placed();
        assert_eq!(placed["berth-dev-m02"], 1);
        assert_eq!(placed["berth-dev-m02-var"], 1);
        assert!(
            !placed.contains_key("berth-dev"),
            "the first engine's need not be said"
        );
        // A node that goes takes its place with it: the next at its index
        // goes where `node add` says.
        let mut without = p.clone();
        without.take_out(1);
        assert!(without.node_engines.is_empty());
        let spread = Profile {
            engine: Some(engine("tcp://a:2376")),
            engines: vec![engine("tcp://b:2376")],
            ..p
        };
        assert_eq!(spread.engine_named("tcp://b:2376"), Ok(1));
        let refused = spread.engine_named("tcp://c:2376").unwrap_err();
        assert!(refused.contains("tcp://a:2376, tcp://b:2376"), "{refused}");
    }

    #[test]
    fn nodes_get_names_addresses_and_pod_cidrs_by_index() {
        let mut p = profile();
        assert_eq!(
            p.control_plane(),
            Node {
                name: "dev".into(),
                index: 0,
                ip: "172.30.7.2".parse().unwrap(),
                pod_cidr: "10.244.0.0/24".parse().unwrap(),
                container: "berth-dev".into(),
                volume: "berth-dev-var".into(),
                role: Role::ControlPlane,
                engine: 0,
            }
        );
        // A profile restored from another's snapshot keeps its nodes'
        // names in the cluster; its engine names are its own.
        let restored = Profile {
            name: "copy".into(),
            node_names: Some("dev".into()),
            workers: vec![1],
            ..profile()
        };
        let worker = &restored.nodes()[1];
        assert_eq!(
            (
                worker.name.as_str(),
                worker.container.as_str(),
                worker.volume.as_str()
            ),
            ("dev-m02", "berth-copy-m02", "berth-copy-m02-var")
        );
        assert_eq!(restored.node("dev-m02").unwrap().index, 1);
        let second = p.next_node(Role::Worker).unwrap();
        assert_eq!(
            (
                second.name.as_str(),
                second.ip.to_string().as_str(),
                second.pod_cidr.to_string().as_str()
            ),
            ("dev-m02", "172.30.7.3", "10.244.1.0/24")
        );
        p.workers = vec![2];
        // The last address of the /24 is the last node's.
        assert_eq!(
            p.node_at(MAX_NODES - 1).ip.octets()[3],
            2 + MAX_NODES as u8 - 1
        );
        // A deleted node's index is used again.
        assert_eq!(p.next_node(Role::Worker).unwrap().name, "dev-m02");
        assert_eq!(p.node_at(9).name, "dev-m10");
        assert_eq!(p.nodes().len(), 2);
        assert!(p.node("dev-m03").is_some() && p.node("dev-m02").is_none());
    }

    #[test]
    fn profile_files_from_before_workers_still_load() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::new(home.path());
        let mut json = serde_json::to_value(profile()).unwrap();
        for newer in [
            "workers",
            "ports",
            "extra_config",
            "feature_gates",
            "home_id",
            "network_id",
        ] {
            json.as_object_mut().unwrap().remove(newer);
        }
        fs::create_dir_all(store.dir("dev")).unwrap();
        fs::write(store.file("dev"), json.to_string()).unwrap();
        assert_eq!(store.load("dev").unwrap().unwrap(), profile());
    }

    /// A file as the berth of the previous landed stop (3decec1) wrote it,
    /// the last of format 1.
    const FORMAT_1: &str = include_str!("../fixtures/profile-format-1.json");

    #[test]
    fn a_file_of_format_1_loads_with_its_addons_and_is_written_back_as_today_s() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::new(home.path());
        fs::create_dir_all(store.dir("dev")).unwrap();
        fs::write(store.file("dev"), FORMAT_1).unwrap();
        let loaded = store.load("dev").unwrap().unwrap();
        assert_eq!(loaded.addons, [Addon::Coredns, Addon::MetricsServer]);
        assert_eq!(loaded.lb_address, None, "no controller for an old profile");
        assert_eq!(loaded.home_id.as_deref(), Some("237834"));
        assert_eq!(loaded.node_ip, Ipv4Addr::new(172, 30, 0, 2));
        assert_eq!(fs::read_to_string(store.file("dev")).unwrap(), FORMAT_1);
        store.save(&loaded).unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&fs::read(store.file("dev")).unwrap()).unwrap();
        assert_eq!(written["format"], FORMAT);
        assert!(written.get("no_storage").is_none(), "{written}");
        assert_eq!(store.load("dev").unwrap().unwrap(), loaded);
    }

    #[test]
    fn files_carry_their_format_and_a_newer_one_is_refused_and_left_alone() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::new(home.path());
        store.save(&profile()).unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&fs::read(store.file("dev")).unwrap()).unwrap();
        assert_eq!(written["format"], FORMAT);
        assert_eq!(written["written_by"], this_berth());
        assert_eq!(store.load("dev").unwrap().unwrap(), profile());

        let mut newer = written.clone();
        newer["format"] = (FORMAT + 1).into();
        newer["written_by"] = "berth 9.9.0".into();
        let bytes = serde_json::to_vec(&newer).unwrap();
        fs::write(store.file("dev"), &bytes).unwrap();
        let error = store.load("dev").unwrap_err();
        assert!(matches!(error, Error::Newer { .. }), "{error}");
        let shown = crate::error::Error::from(error);
        assert_eq!(shown.exit, crate::error::Exit::Profile);
        assert!(shown.message.contains("berth 9.9.0"), "{}", shown.message);
        assert!(shown.message.contains(&format!("format {}", FORMAT + 1)));
        assert!(shown.hint.unwrap().contains("berth 9.9.0 or a newer berth"));
        assert_eq!(fs::read(store.file("dev")).unwrap(), bytes);
    }

    #[test]
    fn a_corrupt_profile_file_is_reported_and_left_alone() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::new(home.path());
        fs::create_dir_all(store.dir("x")).unwrap();
        fs::write(store.file("x"), "{\"name\": \"x\", \"kube").unwrap();
        assert!(matches!(store.load("x"), Err(Error::Corrupt { .. })));
        assert_eq!(
            fs::read_to_string(store.file("x")).unwrap(),
            "{\"name\": \"x\", \"kube"
        );
    }
}
