//! The only place that talks to the Docker engine, through its API.

mod container;
pub mod discover;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
mod podman;
mod spread;
pub mod ssh;

pub use container::{API_PORT, BINARIES_MOUNT, BinariesVolume, Mount, NodeContainer, Privilege};
pub use spread::{Joined, Lost, Spread, join, manager_of};

use std::collections::HashMap;

use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach {engine} at {endpoint}: {reason}")]
    Unreachable {
        engine: Flavour,
        endpoint: String,
        reason: String,
    },
    #[error("the TLS handshake with the engine at {endpoint} failed: {reason}")]
    Untrusted { endpoint: String, reason: String },
    #[error("permission denied on {engine}'s socket {endpoint}")]
    PermissionDenied { engine: Flavour, endpoint: String },
    #[error("the image build failed: {message}\n--- last lines of the build log ---\n{log}")]
    Build { message: String, log: String },
    #[error("{engine} refused to {action}: {message}")]
    Api {
        engine: Flavour,
        action: String,
        message: String,
    },
    #[error("the {kind} name {name} is taken in {engine}")]
    Taken {
        engine: Flavour,
        kind: Kind,
        name: String,
    },
    #[error("the network {name} cannot be removed: containers berth did not make are attached to it ({})", containers.join(", "))]
    NetworkInUse {
        engine: Flavour,
        name: String,
        /// The containers still attached, by name.
        containers: Vec<String>,
    },
    #[error("the Docker context {name} cannot be used: {why}")]
    Context { name: String, why: String },
    #[error("berth cannot talk to the engine at {endpoint}: {why}")]
    Unsupported {
        endpoint: String,
        why: String,
        /// What the user can do instead.
        fix: String,
    },
    #[error("the engines cannot hold one cluster: {why}")]
    NotOneSwarm {
        why: String,
        /// The endpoint of the engine a Swarm would be made on.
        first: String,
    },
    #[error("the engine at {endpoint} cannot run nodes: {why}")]
    Unfit {
        endpoint: String,
        why: String,
        /// What the user can do, in the engine's own terms.
        fix: String,
    },
}

impl Error {
    /// What the user can do about it, in the engine's own terms.
    pub fn hint(&self) -> String {
        match self {
            Error::Unreachable { endpoint, .. } if endpoint.starts_with("ssh://") => {
                "berth forwards the engine's socket with ssh in batch mode: `ssh USER@HOST` \
                 must log in without a prompt (a key in ssh-agent or ~/.ssh/config, the host in \
                 known_hosts), and the engine must run there; BERTH_SSH names another ssh \
                 program"
                    .to_string()
            }
            Error::Unreachable {
                engine: Flavour::Podman,
                ..
            } => "start podman's API service (`sudo systemctl start podman.socket`; for \
                  rootless podman `systemctl --user start podman.socket`), or point --engine \
                  (or CONTAINER_HOST) at one that runs"
                .to_string(),
            Error::Unreachable { .. } => {
                "start the Docker engine (`sudo systemctl start docker`, or `sudo dockerd &`), \
                 or point --engine (or DOCKER_HOST) at one that runs"
                    .to_string()
            }
            Error::Untrusted { .. } => {
                "the CA in ca.pem (DOCKER_CERT_PATH, or the context's TLS files) must be the one \
                 that signed the engine's certificate, and cert.pem/key.pem a client certificate \
                 the engine accepts"
                    .to_string()
            }
            Error::PermissionDenied {
                engine: Flavour::Podman,
                ..
            } => "rootful podman's socket is root's: run berth as root, or use rootless \
                  podman's (`systemctl --user start podman.socket`; berth finds it)"
                .to_string(),
            Error::PermissionDenied { .. } => {
                "add your user to the docker group (`sudo usermod -aG docker $USER`, then log in \
                 again), or run berth as a user who may use the socket"
                    .to_string()
            }
            Error::Build { .. } => {
                "fix what the build log shows; where no registry is reachable, make a local base \
                 with node-image/debian-base.sh and pass --base berth/debian:bookworm"
                    .to_string()
            }
            Error::Api { engine, .. } => format!(
                "see the engine's message above; `{} info` shows the engine's state",
                engine.cli()
            ),
            Error::Taken { engine, .. } => format!(
                "something else took the name at the same moment: use another profile name; \
                 `{} inspect NAME` shows who has it",
                engine.cli()
            ),
            Error::NetworkInUse {
                engine,
                name,
                containers,
            } => format!(
                "the profile's containers and volumes are gone, its state is kept; disconnect them \
                 (`{} network disconnect {name} {}`) or remove them, then delete again",
                engine.cli(),
                containers[0]
            ),
            Error::Context { .. } => {
                "`docker context ls` lists the contexts; `docker context use default`, or \
                 --engine unix:///var/run/docker.sock, picks the local engine"
                    .to_string()
            }
            Error::NotOneSwarm { first, .. } => format!(
                "a cluster over several engines stands on a Docker Swarm's overlay network: \
                 `berth engines join` with the same --engine flags makes one of them, or \
                 `docker -H {first} swarm init --advertise-addr ADDRESS` (an address the other \
                 engines reach), then `docker -H ENGINE swarm join --token TOKEN ADDRESS:2377` \
                 on each other engine (`docker -H {first} swarm join-token -q worker` prints the \
                 token); the engines need TCP 2377 and 7946 and UDP 4789 and 7946 between them"
            ),
            Error::Unfit { fix, .. } => fix.clone(),
            Error::Unsupported { fix, .. } => fix.clone(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A container's state as the engine reports it, with the questions berth
/// asks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl ContainerState {
    fn from_engine(state: Option<&str>) -> Self {
        match state.unwrap_or_default() {
            "running" => Self::Running,
            "paused" => Self::Paused,
            "restarting" => Self::Restarting,
            "removing" => Self::Removing,
            "exited" => Self::Exited,
            "dead" => Self::Dead,
            _ => Self::Created,
        }
    }

    pub fn is_running(self) -> bool {
        self == Self::Running
    }

    pub fn is_paused(self) -> bool {
        self == Self::Paused
    }

    /// How berth shows it.
    pub fn display(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Paused => "Paused",
            Self::Restarting => "Restarting",
            Self::Removing => "Removing",
            Self::Created | Self::Exited | Self::Dead => "Stopped",
        }
    }
}

/// What berth makes in the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Container,
    Volume,
    Network,
}

impl Kind {
    /// In the order they are removed: containers hold volumes and networks.
    pub const ALL: [Kind; 3] = [Kind::Container, Kind::Volume, Kind::Network];
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Container => "container",
            Kind::Volume => "volume",
            Kind::Network => "network",
        })
    }
}

/// A container, volume or network as listed by the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub kind: Kind,
    /// The engine's id; a volume's is its name.
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
    /// A container's state; `None` for volumes and networks.
    pub state: Option<ContainerState>,
    /// When a container was created, in Unix seconds.
    pub created: Option<i64>,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// A label filter: `key=value`, or `key` for any value. Several are all
/// required at once.
pub type Filter = Vec<(String, Option<String>)>;

fn filter_values(filter: &Filter) -> Vec<String> {
    filter
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect()
}

/// The engine's facts berth acts on.
#[derive(Debug, Clone)]
pub struct EngineFacts {
    /// The host runs cgroup v2 (the unified hierarchy).
    pub cgroup_v2: bool,
    /// The disk where the engine keeps its data, when that is this
    /// machine's (a local socket); another's is read there (berth-cluster's
    /// `host::disk`).
    pub disk: Option<Disk>,
    /// Where the engine keeps its data on its host, as it says.
    pub data_root: Option<String>,
    /// Changes whenever what decides the engine's privilege answer may
    /// have: its identity, version, security options, authorization plugins.
    pub privilege_key: String,
    /// The engine's own identity (`docker info`'s ID), which tells it from
    /// another engine at the same address.
    pub id: String,
    /// Where berth reached it.
    pub endpoint: String,
    /// It runs as an unprivileged user (rootless Docker or podman).
    pub rootless: bool,
    /// The TLS files berth reached it with.
    pub tls: Option<discover::Tls>,
    /// Where the ports it publishes reach this machine: the loopback for an
    /// engine here, else the address berth reached the engine at (the
    /// engine's own loopback is another machine's).
    pub host_address: std::net::Ipv4Addr,
    /// Its part in a Docker Swarm, when it is in one.
    pub swarm: Option<SwarmMember>,
}

/// An engine's part in a Swarm, whose overlay networks join containers of
/// several engines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SwarmMember {
    /// Its node's id in the Swarm.
    pub node: String,
    /// Where the Swarm reaches it.
    pub address: String,
    /// The ids of every node of its Swarm, which only a manager knows.
    pub manager_of: Option<Vec<String>>,
}

impl EngineFacts {
    /// Whether nodes can run there at all: a rootless engine on a cgroup
    /// v1 host cannot give a node cgroups of its own, which kubelet needs.
    pub fn fit_for_nodes(&self) -> Result<()> {
        if self.rootless && !self.cgroup_v2 {
            return Err(Error::Unfit {
                endpoint: self.endpoint.clone(),
                why: "it runs rootless on a cgroup v1 host, where a user's containers get no \
                      cgroups of their own to hand to kubelet"
                    .into(),
                fix:
                    "use the rootful engine (for podman: as root, unix:///run/podman/podman.sock), \
                      or move the host to cgroup v2 with the cpu, memory and pids controllers \
                      delegated to your user (systemd's Delegate=yes for user@.service)"
                        .into(),
            });
        }
        Ok(())
    }
}

/// The engine's data directory and the space free there.
#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    pub dir: String,
    pub free_mib: u64,
}

/// Where ports published by the engine at `endpoint` are reached from
/// this machine: its tcp:// or ssh:// host (resolved here), or the
/// loopback for a socket.
fn host_address(endpoint: &str) -> Result<std::net::Ipv4Addr> {
    use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs as _};
    let (host, port) = if let Some(address) = endpoint.strip_prefix("tcp://") {
        let address = address.trim_end_matches('/');
        let (host, port) = address.rsplit_once(':').unwrap_or((address, "2375"));
        (host.to_string(), port.parse().unwrap_or(2375))
    } else if endpoint.starts_with("ssh://") {
        (ssh::host_name(endpoint)?, 22)
    } else {
        return Ok(Ipv4Addr::LOCALHOST);
    };
    let found = match host.parse::<Ipv4Addr>() {
        Ok(ip) => Some(ip),
        Err(_) => (host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut all| {
                all.find_map(|a| match a {
                    SocketAddr::V4(v4) => Some(*v4.ip()),
                    SocketAddr::V6(_) => None,
                })
            }),
    };
    match found {
        Some(ip) if ip.is_loopback() => Ok(Ipv4Addr::LOCALHOST),
        Some(ip) => Ok(ip),
        None => Err(Error::Unsupported {
            endpoint: endpoint.to_string(),
            why: format!("{host} has no IPv4 address to publish the cluster's ports on"),
            fix: "name the engine's host by an IPv4 address: tcp://ADDRESS:PORT, \
                  ssh://USER@ADDRESS"
                .into(),
        }),
    }
}

/// Free MiB on the file system of `path` on this machine.
fn free_mib(path: &str) -> Option<u64> {
    let c_path = std::ffi::CString::new(path).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a statvfs to fill.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64 / (1024 * 1024))
}

/// A command run in a container. berth-node spells every one berth runs
/// (`berth_node::command`): the operations above name what they want, and
/// the node image's tools, paths and flags stay in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(Vec<String>);

impl Command {
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Command(argv.into_iter().map(Into::into).collect())
    }

    pub fn argv(&self) -> &[String] {
        &self.0
    }
}

/// The words joined by spaces, as errors and the fake engine show it.
impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// What a command run in a container printed, and how it ended.
#[derive(Debug)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    /// The output of a command that succeeded; else what it said on stderr.
    pub fn success(self) -> std::result::Result<Self, String> {
        if self.code == 0 {
            Ok(self)
        } else {
            Err(self.stderr.trim().to_string())
        }
    }
}

pub struct Docker {
    api: bollard::Docker,
    endpoint: String,
    found: discover::Found,
    flavour: Flavour,
    tls: Option<discover::Tls>,
    /// The ssh that forwards an ssh:// engine's socket, while berth talks
    /// to it.
    tunnel: Option<ssh::Tunnel>,
}

/// Which engine answers: podman speaks Docker's API but not all its ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Docker,
    Podman,
}

impl Flavour {
    /// Its command-line tool, which hints name.
    pub fn cli(self) -> &'static str {
        match self {
            Flavour::Docker => "docker",
            Flavour::Podman => "podman",
        }
    }

    /// The engine behind an endpoint before it answers: podman's sockets
    /// say so in their paths.
    pub fn guess(endpoint: &str) -> Self {
        if endpoint.contains("podman") {
            Flavour::Podman
        } else {
            Flavour::Docker
        }
    }
}

impl std::fmt::Display for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flavour::Docker => "the Docker engine",
            Flavour::Podman => "podman",
        })
    }
}

/// What became of a request for a network of its own.
#[derive(Debug, PartialEq)]
pub enum NetworkMade {
    Made {
        id: String,
        subnet: String,
    },
    /// Another network has the name: one made at the same moment by another
    /// client, which engines before API 1.44 accept. This request's own
    /// was taken back.
    NameTaken(Resource),
    /// None of the subnets asked for is free.
    NoneFree,
}

/// Declares `Engine` with each method's signature, and implements it for
/// `Docker` (by calling its method of the same name), for `Spread` (a call
/// on one container or volume, named by its first argument, to the member
/// that holds it; the rest by calling its method of the same name) and for
/// `Lost` (every call fails as reaching it did).
macro_rules! engine {
    (
        placed {
            $( $(#[$pdoc:meta])* fn $pname:ident(&self, $first:ident: &'a str $(, $parg:ident: $pty:ty)*) -> $pret:ty; )*
        }
        $( $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*
    ) => {
        /// What berth asks of a container engine. `Docker` is the real one;
        /// the plans' unit tests run against an in-memory one.
        pub trait Engine: Send + Sync {
            /// Which engine it is, known once connected: hints name its
            /// commands.
            fn flavour(&self) -> Flavour;
            /// The engines it stands for: itself, or each engine a cluster
            /// spread over several spans (`Spread`). What every engine of a
            /// cluster must hold (the binaries' volume) is made on each.
            fn members(&self) -> Vec<&dyn Engine>;
            /// The engines of those it stands for that could not be
            /// reached, by endpoint: what they hold is not in its listings.
            fn unreachable(&self) -> Vec<String>;
            $( $(#[$pdoc])* fn $pname<'a>(&'a self, $first: &'a str $(, $parg: $pty)*) -> BoxFuture<'a, Result<$pret>>; )*
            $( $(#[$doc])* fn $name<'a>(&'a self $(, $arg: $ty)*) -> BoxFuture<'a, Result<$ret>>; )*
        }

        impl Engine for Docker {
            fn flavour(&self) -> Flavour {
                self.flavour
            }
            fn members(&self) -> Vec<&dyn Engine> {
                vec![self]
            }
            fn unreachable(&self) -> Vec<String> {
                Vec::new()
            }
            $( fn $pname<'a>(&'a self, $first: &'a str $(, $parg: $pty)*) -> BoxFuture<'a, Result<$pret>> {
                Box::pin(Docker::$pname(self, $first $(, $parg)*))
            } )*
            $( fn $name<'a>(&'a self $(, $arg: $ty)*) -> BoxFuture<'a, Result<$ret>> {
                Box::pin(Docker::$name(self $(, $arg)*))
            } )*
        }

        impl Engine for spread::Spread {
            fn flavour(&self) -> Flavour {
                self.first().flavour()
            }
            fn members(&self) -> Vec<&dyn Engine> {
                self.members_dyn()
            }
            fn unreachable(&self) -> Vec<String> {
                self.members_dyn().iter().flat_map(|m| m.unreachable()).collect()
            }
            $( fn $pname<'a>(&'a self, $first: &'a str $(, $parg: $pty)*) -> BoxFuture<'a, Result<$pret>> {
                self.on($first).$pname($first $(, $parg)*)
            } )*
            $( fn $name<'a>(&'a self $(, $arg: $ty)*) -> BoxFuture<'a, Result<$ret>> {
                Box::pin(spread::Spread::$name(self $(, $arg)*))
            } )*
        }

        impl Engine for spread::Lost {
            fn flavour(&self) -> Flavour {
                self.flavour
            }
            fn members(&self) -> Vec<&dyn Engine> {
                vec![self]
            }
            fn unreachable(&self) -> Vec<String> {
                vec![self.endpoint.clone()]
            }
            $( fn $pname<'a>(&'a self, $first: &'a str $(, $parg: $pty)*) -> BoxFuture<'a, Result<$pret>> {
                let _ = ($first, $($parg,)*);
                Box::pin(futures_util::future::ready(Err(self.error())))
            } )*
            $( fn $name<'a>(&'a self $(, $arg: $ty)*) -> BoxFuture<'a, Result<$ret>> {
                let _ = ($($arg,)*);
                Box::pin(futures_util::future::ready(Err(self.error())))
            } )*
        }
    };
}

engine! {
    // Calls on one container or volume, named by the first argument.
    placed {
        fn start_container(&self, name: &'a str) -> ();
        fn remove_container(&self, name: &'a str) -> ();
        fn exec(&self, container: &'a str, cmd: &'a Command) -> ExecOutput;
        /// Runs `cmd` in `container` on this process's stdin, stdout and
        /// stderr, on a terminal of the container's when `tty` (whose size
        /// follows this one's); returns its exit code.
        fn exec_attached(&self, container: &'a str, cmd: &'a [String], tty: bool) -> i64;
        fn network_ids(&self, container: &'a str) -> Vec<String>;
        fn published_addresses(&self, name: &'a str) -> Vec<String>;
        fn stop_container(&self, name: &'a str, grace: i32) -> ();
        fn pause_container(&self, name: &'a str) -> ();
        fn unpause_container(&self, name: &'a str) -> ();
        fn upload(&self, container: &'a str, tar: Vec<u8>) -> ();
        /// Unpacks the tar file `tar` at `/` in `container`, streamed however
        /// large it is.
        fn upload_file(&self, container: &'a str, tar: &'a std::path::Path) -> ();
        /// Copies `path` of `container` (stopped, paused or running) into the
        /// file `to` as a tar, streamed; returns its SHA-256 (hex) and size.
        fn download(&self, container: &'a str, path: &'a str, to: &'a std::path::Path) -> (String, u64);
        fn file_exists(&self, container: &'a str, path: &'a str) -> bool;
        fn volume_created(&self, name: &'a str) -> Option<String>;
        fn create_volume(&self, name: &'a str, labels: &'a HashMap<String, String>) -> ();
        /// What `docker inspect` says of a container, as JSON.
        fn inspect_json(&self, container: &'a str) -> serde_json::Value;
    }
    fn facts(&self) -> EngineFacts;
    fn image_exists(&self, name: &'a str) -> bool;
    fn save_images(&self, names: &'a [String]) -> Vec<u8>;
    fn build_image(
        &self,
        context_tar: Vec<u8>,
        tag: &'a str,
        build_args: &'a HashMap<String, String>,
        labels: &'a HashMap<String, String>,
        progress: &'a mut (dyn FnMut(&str) + Send)
    ) -> ();
    fn create_container(&self, spec: &'a NodeContainer) -> String;
    fn privilege(&self, probe: &'a NodeContainer) -> Privilege;
    /// A bridge network `name` of its own on the first of `subnets` that
    /// is free, labelled `labels`, on which nodes route pod traffic to each
    /// other. `helper_image` is an image with a shell and iptables, for an
    /// engine that needs a helper to allow that (podman).
    fn make_network(&self, name: &'a str, labels: &'a HashMap<String, String>, subnets: &'a [String], helper_image: &'a str) -> NetworkMade;
    /// As `make_network`, a network that containers of every engine of
    /// its Swarm join (an attachable overlay), made on a manager.
    fn make_spanning_network(&self, name: &'a str, labels: &'a HashMap<String, String>, subnets: &'a [String]) -> NetworkMade;
    /// The subnets of its networks.
    fn used_subnets(&self) -> Vec<String>;
    /// Attaches `container` to `network` at `ip` as well; one attached
    /// already stays as it is.
    fn attach(&self, network: &'a str, container: &'a str, ip: &'a str) -> ();
    /// Detaches `container` from `network`; one not attached, or a network
    /// that is gone, is fine.
    fn detach(&self, network: &'a str, container: &'a str) -> ();
    fn resources(&self, filter: &'a Filter) -> Vec<Resource>;
    fn named(&self, kind: Kind, name: &'a str) -> Vec<Resource>;
    fn remove(&self, resource: &'a Resource) -> ();
    /// What `docker info` says of the engine, the parts that explain a
    /// cluster's behaviour, as JSON.
    fn describe(&self) -> serde_json::Value;
}

impl Docker {
    /// Connects to the engine the docker CLI would use (see `discover`)
    /// and agrees on an API version it speaks.
    pub async fn connect() -> Result<Self> {
        Self::connect_to(&discover::from_process(None)?).await
    }

    pub async fn connect_to(endpoint: &discover::Endpoint) -> Result<Self> {
        let host = endpoint.host.clone();
        let unsupported = |why: &str, fix: &str| Error::Unsupported {
            endpoint: host.clone(),
            why: why.to_string(),
            fix: fix.to_string(),
        };
        let tls_files = "put the engine's CA as ca.pem and a client certificate it accepts as \
                         cert.pem and key.pem in DOCKER_CERT_PATH (default ~/.docker)";
        let unreachable =
            |e: bollard::errors::Error| classify_connect_error(Flavour::guess(&host), &host, e);
        let mut tunnel = None;
        let api = if let Some(path) = host.strip_prefix("unix://") {
            bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
        } else if let Some(tls) = &endpoint.tls {
            if !tls.verify {
                return Err(unsupported(
                    "berth checks a TLS engine's certificate, and DOCKER_TLS_VERIFY is not set",
                    "set DOCKER_TLS_VERIFY=1, with the engine's CA as ca.pem in DOCKER_CERT_PATH",
                ));
            }
            let Some(address) = host.strip_prefix("tcp://") else {
                return Err(unsupported(
                    "TLS is for tcp:// addresses",
                    "name the engine as tcp://HOST:PORT",
                ));
            };
            for file in [&tls.ca, &tls.cert, &tls.key] {
                if !file.is_file() {
                    return Err(unsupported(
                        &format!("its TLS file {} is not there", file.display()),
                        tls_files,
                    ));
                }
            }
            bollard::Docker::connect_with_ssl(
                address,
                &tls.key,
                &tls.cert,
                &tls.ca,
                120,
                bollard::API_DEFAULT_VERSION,
            )
        } else if let Some(address) = host.strip_prefix("tcp://") {
            bollard::Docker::connect_with_http(address, 120, bollard::API_DEFAULT_VERSION)
        } else if host.starts_with("ssh://") {
            let endpoint = host.clone();
            let opened = tokio::task::spawn_blocking(move || ssh::Tunnel::open(&endpoint))
                .await
                .map_err(|e| Error::Unreachable {
                    engine: Flavour::Docker,
                    endpoint: host.clone(),
                    reason: e.to_string(),
                })??;
            let socket = opened.socket.display().to_string();
            tunnel = Some(opened);
            bollard::Docker::connect_with_unix(&socket, 120, bollard::API_DEFAULT_VERSION)
        } else {
            return Err(unsupported(
                "its scheme is none of unix://, tcp://, ssh://",
                "name the engine as unix:///PATH, tcp://HOST:PORT or ssh://USER@HOST",
            ));
        }
        .map_err(unreachable)?;
        let api = api.negotiate_version().await.map_err(unreachable)?;
        let version = api.version().await.map_err(unreachable)?;
        let podman = version
            .components
            .unwrap_or_default()
            .iter()
            .any(|c| c.name == "Podman Engine");
        Ok(Self {
            api,
            endpoint: host,
            found: endpoint.found.clone(),
            tls: endpoint.tls.clone(),
            tunnel,
            flavour: if podman {
                Flavour::Podman
            } else {
                Flavour::Docker
            },
        })
    }

    /// How the engine was found.
    pub fn found(&self) -> &discover::Found {
        &self.found
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What berth needs to know of the engine, from one request.
    pub async fn facts(&self) -> Result<EngineFacts> {
        use bollard::models::SystemInfoCgroupVersionEnum as V;
        use sha2::{Digest, Sha256};
        let info = self
            .api
            .info()
            .await
            .map_err(|e| self.api_error("describe itself".into(), e))?;
        // podman's ID is new on every request; its host and store tell it
        // from another engine as Docker's ID does.
        let id = match self.flavour {
            Flavour::Docker => info.id.clone().unwrap_or_default(),
            Flavour::Podman => {
                let mut id = Sha256::new();
                id.update(format!("{:?} {:?}", info.name, info.docker_root_dir));
                format!("podman-{}", hex::encode(&id.finalize()[..8]))
            }
        };
        // What decides whether the engine starts privileged containers.
        let mut hash = Sha256::new();
        hash.update(format!(
            "{:?} {:?} {:?} {:?}",
            id,
            info.server_version,
            info.security_options,
            info.plugins.as_ref().map(|p| &p.authorization)
        ));
        let socket = match &self.tunnel {
            Some(tunnel) => tunnel.socket.to_str(),
            None => self.endpoint.strip_prefix("unix://"),
        };
        let rootless = match (self.flavour, socket) {
            (Flavour::Podman, Some(path)) => podman::rootless(path).await,
            _ => info
                .security_options
                .iter()
                .flatten()
                .any(|o| o == "name=rootless"),
        };
        let local = self.endpoint.starts_with("unix://");
        let data_root = info.docker_root_dir;
        let disk = data_root.clone().filter(|_| local).and_then(|dir| {
            let free_mib = free_mib(&dir)?;
            Some(Disk { dir, free_mib })
        });
        Ok(EngineFacts {
            cgroup_v2: info.cgroup_version == Some(V::_2),
            disk,
            data_root,
            privilege_key: hex::encode(&hash.finalize()[..8]),
            id,
            endpoint: self.endpoint.clone(),
            rootless,
            tls: self.tls.clone(),
            host_address: host_address(&self.endpoint)?,
            swarm: self.swarm_member(info.swarm).await?,
        })
    }

    async fn swarm_member(
        &self,
        swarm: Option<bollard::models::SwarmInfo>,
    ) -> Result<Option<SwarmMember>> {
        use bollard::models::LocalNodeState;
        let Some(swarm) = swarm.filter(|s| s.local_node_state == Some(LocalNodeState::ACTIVE))
        else {
            return Ok(None);
        };
        let manager_of = match swarm.control_available {
            Some(true) => Some(
                self.api
                    .list_nodes(None)
                    .await
                    .map_err(|e| self.api_error("list the Swarm's nodes".into(), e))?
                    .into_iter()
                    .filter_map(|n| n.id)
                    .collect(),
            ),
            _ => None,
        };
        Ok(Some(SwarmMember {
            node: swarm.node_id.unwrap_or_default(),
            address: swarm.node_addr.unwrap_or_default(),
            manager_of,
        }))
    }

    /// Whether the engine's host runs cgroup v2 (the unified hierarchy).
    pub async fn cgroup_v2(&self) -> Result<bool> {
        Ok(self.facts().await?.cgroup_v2)
    }

    pub async fn image_exists(&self, name: &str) -> Result<bool> {
        match self.api.inspect_image(name).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(self.api_error(format!("inspect image {name}"), e)),
        }
    }

    /// Removes an image name; the image itself goes when no name is left.
    pub async fn remove_image(&self, name: &str) -> Result<()> {
        let options = bollard::query_parameters::RemoveImageOptionsBuilder::default().build();
        match self.api.remove_image(name, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.api_error(format!("remove image {name}"), e)),
        }
    }

    /// Makes an image from a root file system tar (what `docker import`
    /// does), named `repo:tag`, with Dockerfile `changes` such as
    /// `ENTRYPOINT ["/bin/sh"]`.
    pub async fn import_rootfs(
        &self,
        rootfs_tar: Vec<u8>,
        repo: &str,
        tag: &str,
        changes: &[&str],
    ) -> Result<()> {
        let options = bollard::query_parameters::CreateImageOptionsBuilder::default().from_src("-");
        // podman's import reads no tag parameter (its image would be
        // `latest`), but takes the tag in the name.
        let options = match self.flavour {
            Flavour::Docker => options.repo(repo).tag(tag),
            Flavour::Podman => options.repo(&format!("{repo}:{tag}")),
        };
        let options = options
            .changes(changes.iter().map(|c| c.to_string()).collect())
            .build();
        let mut stream = self.api.create_image(
            Some(options),
            Some(bollard::body_full(rootfs_tar.into())),
            None,
        );
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.api_error(format!("import {repo}:{tag}"), e))?;
            if let Some(message) = info.error_detail.and_then(|d| d.message) {
                return Err(Error::Api {
                    engine: self.flavour,
                    action: format!("import {repo}:{tag}"),
                    message,
                });
            }
        }
        Ok(())
    }

    /// An image as a `docker save` archive.
    /// `docker save` of the named images, as one archive.
    pub async fn save_images(&self, names: &[String]) -> Result<Vec<u8>> {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut stream = self.api.export_images(&refs);
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            archive.extend_from_slice(
                &chunk.map_err(|e| self.api_error(format!("save {}", names.join(", ")), e))?,
            );
        }
        Ok(archive)
    }

    /// Builds `tag` from a tar of the build context, handing each line of the
    /// build log to `progress`. On failure the error carries the log's tail.
    pub async fn build_image(
        &self,
        context_tar: Vec<u8>,
        tag: &str,
        build_args: &HashMap<String, String>,
        labels: &HashMap<String, String>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<()> {
        let options = BuildImageOptionsBuilder::default()
            .t(tag)
            .rm(true)
            .forcerm(true)
            .buildargs(build_args)
            .labels(labels)
            .build();
        let mut stream =
            self.api
                .build_image(options, None, Some(bollard::body_full(context_tar.into())));
        let mut log: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            let failure = match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                        for line in text.lines().filter(|l| !l.trim().is_empty()) {
                            progress(line);
                            log.push(line.to_string());
                        }
                    }
                    info.error_detail.and_then(|d| d.message)
                }
                Err(e) => Some(self.api_error(format!("build {tag}"), e).to_string()),
            };
            if let Some(message) = failure {
                let tail = log.len().saturating_sub(30);
                return Err(Error::Build {
                    message,
                    log: log[tail..].join("\n"),
                });
            }
        }
        Ok(())
    }

    /// Creates a container and returns its id; a name that is taken is
    /// `Error::Taken`.
    pub async fn create_container(&self, spec: &NodeContainer) -> Result<String> {
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let mut body = spec.to_create_body();
        if self.flavour == Flavour::Podman && spec.privilege == Some(Privilege::Capabilities) {
            // podman reads no MaskedPaths/ReadonlyPaths from the request,
            // so /proc/sys would stay read-only (kube-proxy writes there).
            let host = body.host_config.get_or_insert_default();
            host.security_opt
                .get_or_insert_default()
                .push("unmask=ALL".into());
        }
        match self.api.create_container(Some(options), body).await {
            Ok(created) => Ok(created.id),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Err(Error::Taken {
                engine: self.flavour,
                kind: Kind::Container,
                name: spec.name.clone(),
            }),
            Err(e) => Err(self.api_error(format!("create container {}", spec.name), e)),
        }
    }

    pub async fn start_container(&self, name: &str) -> Result<()> {
        self.api
            .start_container(name, None)
            .await
            .map_err(|e| self.api_error(format!("start container {name}"), e))
    }

    /// Removes a container with its anonymous volumes; one that is already
    /// gone is not an error.
    pub async fn remove_container(&self, name: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.api.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.api_error(format!("remove container {name}"), e)),
        }
    }

    /// Runs a command in a running container and collects its output.
    pub async fn exec(&self, container: &str, cmd: &Command) -> Result<ExecOutput> {
        use bollard::exec::StartExecResults;
        use bollard::models::ExecConfig;
        let action = || format!("run `{cmd}` in {container}");
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.argv().to_vec()),
            ..Default::default()
        };
        let exec = self
            .api
            .create_exec(container, config)
            .await
            .map_err(|e| self.api_error(action(), e))?;
        let started = self.api.start_exec(&exec.id, None).await;
        let StartExecResults::Attached { mut output, .. } =
            started.map_err(|e| self.api_error(action(), e))?
        else {
            unreachable!("exec was started attached");
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = output.next().await {
            match chunk.map_err(|e| self.api_error(action(), e))? {
                bollard::container::LogOutput::StdErr { message } => {
                    stderr.extend_from_slice(&message)
                }
                other => stdout.extend_from_slice(&other.into_bytes()),
            }
        }
        let inspect = self
            .api
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| self.api_error(action(), e))?;
        Ok(ExecOutput {
            code: inspect.exit_code.unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Whether this engine starts privileged containers that hold every
    /// capability. Some (rootless engines, sandboxes without
    /// CAP_SYS_RESOURCE) refuse them; podman there starts them without
    /// the capabilities it lacks, which kubelet finds only at its first
    /// pod. Nodes there run with an explicit capability set instead.
    /// `probe` is a helper container, privileged, made and removed here.
    pub async fn privilege(&self, probe: &NodeContainer) -> Result<Privilege> {
        // CAP_SYS_RESOURCE (bit 24) is the one such engines withhold.
        let check =
            "c=$(sed -n 's/^CapEff:\\t*//p' /proc/self/status); exit $(( (0x$c >> 24 & 1) ^ 1 ))";
        let probe = NodeContainer {
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), check.into()]),
            ..probe.clone()
        };
        let id = self.create_container(&probe).await?;
        let started = match self.api.start_container(&id, None).await {
            Ok(()) => self.exit_code(&id).await,
            Err(e) => Err(e),
        };
        self.remove_container(&id).await?;
        match started {
            Ok(0) => Ok(Privilege::Privileged),
            Ok(_) => Ok(Privilege::Capabilities),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 500, ..
            }) => Ok(Privilege::Capabilities),
            Err(e) => Err(self.api_error("start a privileged probe container".into(), e)),
        }
    }

    /// Waits for a container to end and says how it ended.
    async fn exit_code(&self, id: &str) -> std::result::Result<i64, bollard::errors::Error> {
        let mut waited = self
            .api
            .wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
        match waited.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // Docker reports a non-zero exit as an error of the wait.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(e),
            None => Ok(-1),
        }
    }

    /// The ids of the networks a container is attached to.
    pub async fn network_ids(&self, container: &str) -> Result<Vec<String>> {
        let options = bollard::query_parameters::InspectContainerOptionsBuilder::default().build();
        let info = self
            .api
            .inspect_container(container, Some(options))
            .await
            .map_err(|e| self.api_error(format!("inspect container {container}"), e))?;
        Ok(info
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default()
            .into_values()
            .filter_map(|e| e.network_id)
            .collect())
    }

    /// The host addresses a container's ports are published on.
    pub async fn published_addresses(&self, name: &str) -> Result<Vec<String>> {
        let options = bollard::query_parameters::InspectContainerOptionsBuilder::default().build();
        let info = self
            .api
            .inspect_container(name, Some(options))
            .await
            .map_err(|e| self.api_error(format!("inspect container {name}"), e))?;
        Ok(info
            .host_config
            .and_then(|h| h.port_bindings)
            .unwrap_or_default()
            .into_values()
            .flatten()
            .flatten()
            .map(|b| b.host_ip.unwrap_or_default())
            .collect())
    }

    /// Stops a container, killing it after `grace` seconds.
    pub async fn stop_container(&self, name: &str, grace: i32) -> Result<()> {
        let options = bollard::query_parameters::StopContainerOptionsBuilder::default()
            .t(grace)
            .build();
        self.api
            .stop_container(name, Some(options))
            .await
            .map_err(|e| self.api_error(format!("stop container {name}"), e))
    }

    pub async fn exec_attached(&self, container: &str, cmd: &[String], tty: bool) -> Result<i64> {
        use bollard::exec::{StartExecOptions, StartExecResults};
        use bollard::models::ExecConfig;
        use tokio::io::AsyncWriteExt;
        let action = || format!("run `{}` in {container}", cmd.join(" "));
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
        let config = ExecConfig {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(tty),
            env: tty.then(|| vec![format!("TERM={term}")]),
            cmd: Some(cmd.to_vec()),
            ..Default::default()
        };
        let exec = self
            .api
            .create_exec(container, config)
            .await
            .map_err(|e| self.api_error(action(), e))?;
        let options = StartExecOptions {
            detach: false,
            tty,
            output_capacity: None,
        };
        let started = self.api.start_exec(&exec.id, Some(options)).await;
        let StartExecResults::Attached {
            mut output,
            mut input,
        } = started.map_err(|e| self.api_error(action(), e))?
        else {
            unreachable!("exec was started attached");
        };
        // Bytes from stdin go to the command as they come; at its end the
        // command's stdin is closed, so that it sees the end too. A thread
        // of its own reads stdin: one blocked there never holds up berth's
        // exit once the command is done.
        let (chunks, mut received) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        std::thread::spawn(move || {
            use std::io::Read as _;
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = stdin.read(&mut buf) {
                if chunks.blocking_send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        let feed = tokio::spawn(async move {
            while let Some(chunk) = received.recv().await {
                if input.write_all(&chunk).await.is_err() || input.flush().await.is_err() {
                    return;
                }
            }
            let _ = input.shutdown().await;
        });
        let resizing = tty.then(|| {
            let api = self.api.clone();
            let id = exec.id.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut changes) = signal(SignalKind::window_change()) else {
                    return;
                };
                loop {
                    if let Some((width, height)) = terminal_size() {
                        let size = bollard::exec::ResizeExecOptions { width, height };
                        let _ = api.resize_exec(&id, size).await;
                    }
                    if changes.recv().await.is_none() {
                        return;
                    }
                }
            })
        });
        let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
        while let Some(chunk) = output.next().await {
            use std::io::Write as _;
            let written = match chunk.map_err(|e| self.api_error(action(), e))? {
                bollard::container::LogOutput::StdErr { message } => {
                    stderr.write_all(&message).and(stderr.flush())
                }
                other => stdout.write_all(&other.into_bytes()).and(stdout.flush()),
            };
            if written.is_err() {
                break;
            }
        }
        feed.abort();
        if let Some(resizing) = resizing {
            resizing.abort();
        }
        let inspect = self
            .api
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| self.api_error(action(), e))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    pub async fn describe(&self) -> Result<serde_json::Value> {
        let info = self
            .api
            .info()
            .await
            .map_err(|e| self.api_error("describe itself".into(), e))?;
        Ok(serde_json::json!({
            "endpoint": self.endpoint,
            "server_version": info.server_version,
            "operating_system": info.operating_system,
            "kernel_version": info.kernel_version,
            "architecture": info.architecture,
            "cpus": info.ncpu,
            "memory_bytes": info.mem_total,
            "storage_driver": info.driver,
            "cgroup_driver": info.cgroup_driver,
            "cgroup_version": info.cgroup_version,
            "security_options": info.security_options,
            "root_dir": info.docker_root_dir,
            "warnings": info.warnings,
        }))
    }

    pub async fn inspect_json(&self, container: &str) -> Result<serde_json::Value> {
        let inspect = self
            .api
            .inspect_container(container, None)
            .await
            .map_err(|e| self.api_error(format!("inspect container {container}"), e))?;
        Ok(serde_json::to_value(inspect).unwrap_or_default())
    }

    /// Freezes a container. runc on cgroup v1 gives up when a process does
    /// not reach the frozen state within its own tries (one in the middle
    /// of heavy disk I/O, seen in CI), thawing what it froze; asked again a
    /// moment later, it freezes.
    pub async fn pause_container(&self, name: &str) -> Result<()> {
        let mut tries = 0;
        loop {
            match self.api.pause_container(name).await {
                Ok(()) => return Ok(()),
                Err(e) if tries < 5 && says(&e, "unable to freeze") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 * tries)).await;
                }
                Err(e) => return Err(self.api_error(format!("pause container {name}"), e)),
            }
        }
    }

    /// Thaws a container; one that is not frozen is left as it is.
    pub async fn unpause_container(&self, name: &str) -> Result<()> {
        match self.api.unpause_container(name).await {
            Ok(()) => Ok(()),
            Err(e) if says(&e, "is not paused") => Ok(()),
            Err(e) => Err(self.api_error(format!("unpause container {name}"), e)),
        }
    }

    /// Unpacks a tar into a container, which may be created but not started.
    pub async fn upload(&self, container: &str, tar: Vec<u8>) -> Result<()> {
        if self.flavour == Flavour::Podman {
            return self.upload_per_mount(container, tar.as_slice()).await;
        }
        self.upload_to(container, "/", tar)
            .await
            .map_err(|e| self.api_error(format!("copy files into {container}"), e))
    }

    async fn upload_to(
        &self,
        container: &str,
        path: &str,
        tar: Vec<u8>,
    ) -> std::result::Result<(), bollard::errors::Error> {
        let options = bollard::query_parameters::UploadToContainerOptionsBuilder::default()
            .path(path)
            .build();
        self.api
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await
    }

    /// See `podman::split_by_mounts`.
    async fn upload_per_mount(&self, container: &str, archive: impl std::io::Read) -> Result<()> {
        let failed = |message: String| Error::Api {
            engine: self.flavour,
            action: format!("copy files into {container}"),
            message,
        };
        let mounts: Vec<String> = self
            .api
            .inspect_container(container, None)
            .await
            .map_err(|e| self.api_error(format!("inspect container {container}"), e))?
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.destination)
            .collect();
        let parts = tokio::task::block_in_place(|| podman::split_by_mounts(archive, &mounts))
            .map_err(|e| failed(e.to_string()))?;
        for (path, part) in parts {
            self.upload_to(container, &path, part)
                .await
                .map_err(|e| self.api_error(format!("copy files into {container}:{path}"), e))?;
        }
        Ok(())
    }

    /// Unpacks the tar file `tar` into a container, which may be created
    /// but not started; streamed from disk to Docker (podman's is cut per
    /// mount in memory, see `podman::split_by_mounts`).
    pub async fn upload_file(&self, container: &str, tar: &std::path::Path) -> Result<()> {
        use tokio::io::AsyncReadExt as _;
        let unreadable = |e: std::io::Error| Error::Api {
            engine: self.flavour,
            action: format!("copy {} into {container}", tar.display()),
            message: e.to_string(),
        };
        if self.flavour == Flavour::Podman {
            let file = std::fs::File::open(tar).map_err(unreadable)?;
            return self.upload_per_mount(container, file).await;
        }
        let file = tokio::fs::File::open(tar).await.map_err(unreadable)?;
        let chunks = futures_util::stream::unfold(file, |mut file| async move {
            let mut chunk = vec![0u8; 1 << 20];
            match file.read(&mut chunk).await {
                Ok(0) => None,
                Ok(n) => {
                    chunk.truncate(n);
                    Some((Ok(bytes::Bytes::from(chunk)), file))
                }
                Err(e) => Some((Err(e), file)),
            }
        });
        let options = bollard::query_parameters::UploadToContainerOptionsBuilder::default()
            .path("/")
            .build();
        self.api
            .upload_to_container(container, Some(options), bollard::body_try_stream(chunks))
            .await
            .map_err(|e| self.api_error(format!("copy {} into {container}", tar.display()), e))
    }

    pub async fn download(
        &self,
        container: &str,
        path: &str,
        to: &std::path::Path,
    ) -> Result<(String, u64)> {
        use futures_util::StreamExt as _;
        use sha2::Digest as _;
        use tokio::io::AsyncWriteExt as _;
        let action = format!("copy {path} out of {container}");
        let local = |e: std::io::Error| Error::Api {
            engine: self.flavour,
            action: format!("{action} into {}", to.display()),
            message: e.to_string(),
        };
        let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = self.api.download_from_container(container, Some(options));
        let mut file = tokio::fs::File::create(to).await.map_err(local)?;
        let mut digest = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.api_error(action.clone(), e))?;
            digest.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.sync_all().await.map_err(local)?;
        if self.flavour == Flavour::Podman {
            return tokio::task::block_in_place(|| {
                let top = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                let raw = to.with_extension("podman");
                std::fs::rename(to, &raw)?;
                let mut out = HashingWriter::new(std::fs::File::create(to)?);
                podman::as_docker_archives(std::fs::File::open(&raw)?, &mut out, top)?;
                std::fs::remove_file(&raw)?;
                out.file.sync_all()?;
                Ok((hex::encode(out.digest.finalize()), out.size))
            })
            .map_err(local);
        }
        Ok((hex::encode(digest.finalize()), size))
    }

    /// Whether `path` exists in a container, which need not be running.
    pub async fn file_exists(&self, container: &str, path: &str) -> Result<bool> {
        let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = self.api.download_from_container(container, Some(options));
        match stream.next().await {
            Some(Err(e)) if is_not_found(&e) => Ok(false),
            Some(Err(e)) => Err(self.api_error(format!("read {path} in {container}"), e)),
            _ => Ok(true),
        }
    }

    /// Subnets of every network the engine has, to choose one that is free.
    pub async fn used_subnets(&self) -> Result<Vec<String>> {
        let networks = self
            .api
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .map_err(|e| self.api_error("list networks".into(), e))?;
        Ok(networks
            .into_iter()
            .flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default())
            .filter_map(|c| c.subnet)
            .collect())
    }

    /// See `Engine::make_network`. The engine's own subnets are skipped
    /// before they are asked for; one another client took meanwhile is
    /// refused by the engine, and the next is tried.
    pub async fn make_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        subnets: &[String],
        helper_image: &str,
    ) -> Result<NetworkMade> {
        let mut labels = labels.clone();
        if self.flavour == Flavour::Podman {
            labels.insert(podman::LABEL_FORWARD_HELPER.into(), helper_image.into());
        }
        let used = self.used_subnets().await?;
        for subnet in subnets.iter().filter(|s| !used.contains(s)) {
            let Some(id) = self.create_network(name, subnet, &labels, false).await? else {
                continue;
            };
            let same_name = self.named(Kind::Network, name).await?;
            if let Some(other) = same_name.iter().find(|n| n.id != id) {
                if let Some(ours) = same_name.iter().find(|n| n.id == id) {
                    self.remove(ours).await?;
                }
                return Ok(NetworkMade::NameTaken(other.clone()));
            }
            if self.flavour == Flavour::Podman
                && let Err(e) = self.podman_forward(name, helper_image, &labels, true).await
            {
                self.remove_network(&id).await?;
                return Err(e);
            }
            return Ok(NetworkMade::Made {
                id,
                subnet: subnet.clone(),
            });
        }
        Ok(NetworkMade::NoneFree)
    }

    /// See `Engine::make_spanning_network`.
    pub async fn make_spanning_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        subnets: &[String],
    ) -> Result<NetworkMade> {
        let used = self.used_subnets().await?;
        for subnet in subnets.iter().filter(|s| !used.contains(s)) {
            if let Some(id) = self.create_network(name, subnet, labels, true).await? {
                return Ok(NetworkMade::Made {
                    id,
                    subnet: subnet.clone(),
                });
            }
        }
        Ok(NetworkMade::NoneFree)
    }

    /// Puts in or takes out the host's rule that lets pod traffic cross
    /// podman network `network`'s bridge (see `podman::forward_script`),
    /// through a short-lived helper on the host's network.
    async fn podman_forward(
        &self,
        network: &str,
        image: &str,
        labels: &HashMap<String, String>,
        add: bool,
    ) -> Result<()> {
        let script = podman::forward_script(&podman::bridge_name(network), add);
        let mut body = NodeContainer {
            privilege: None,
            host_network: true,
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), script]),
            ..NodeContainer::helper(format!("{network}-forward"), image, labels.clone())
        }
        .to_create_body();
        let host = body.host_config.get_or_insert_default();
        host.cap_add = Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]);
        host.binds = None;
        let action = "let pod traffic between nodes through the host's firewall";
        let options = CreateContainerOptionsBuilder::default()
            .name(&format!("{network}-forward"))
            .build();
        let id = self
            .api
            .create_container(Some(options), body)
            .await
            .map_err(|e| self.api_error(action.into(), e))?
            .id;
        let ended = match self.api.start_container(&id, None).await {
            Ok(()) => self.exit_code(&id).await,
            Err(e) => Err(e),
        };
        self.remove_container(&id).await?;
        match ended.map_err(|e| self.api_error(action.into(), e))? {
            0 => Ok(()),
            code => Err(Error::Api {
                engine: self.flavour,
                action: action.into(),
                message: format!("iptables in a helper of image {image} ended with {code}"),
            }),
        }
    }

    /// Creates a bridge network on `subnet` and returns its id. `Ok(None)`
    /// when the engine says the subnet overlaps another network, so the
    /// caller can try the next one (two profiles may pick the same subnet at
    /// the same moment).
    pub async fn create_network(
        &self,
        name: &str,
        subnet: &str,
        labels: &HashMap<String, String>,
        spanning: bool,
    ) -> Result<Option<String>> {
        use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
        // A bridge named after the network, so its firewall rule can be
        // found again when it goes.
        let options = (self.flavour == Flavour::Podman).then(|| {
            HashMap::from([(
                "com.docker.network.bridge.name".to_string(),
                podman::bridge_name(name),
            )])
        });
        let request = NetworkCreateRequest {
            name: name.into(),
            driver: Some(if spanning { "overlay" } else { "bridge" }.into()),
            attachable: spanning.then_some(true),
            options,
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.into()),
                    // Each engine's endpoint on an overlay takes an address
                    // the first time a container there joins it; nodes have
                    // theirs from the bottom of the subnet, so those go to
                    // a range none of berth's containers has.
                    ip_range: spanning.then(|| endpoint_range(subnet)).flatten(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        match self.api.create_network(request).await {
            Ok(created) => Ok(Some(created.id)),
            // Docker says the subnet overlaps; podman, that it is used on
            // the host (by Docker's networks, say) or by another network.
            Err(e) if says(&e, "overlap") || says(&e, "is already used on the host") => Ok(None),
            Err(e) => Err(self.api_error(format!("create network {name}"), e)),
        }
    }

    pub async fn attach(&self, network: &str, container: &str, ip: &str) -> Result<()> {
        use bollard::models::{EndpointIpamConfig, EndpointSettings, NetworkConnectRequest};
        let request = NetworkConnectRequest {
            container: container.into(),
            endpoint_config: Some(EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(ip.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        match self.api.connect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(e) if says(&e, "already exists") => Ok(()),
            Err(e) => Err(self.api_error(format!("attach {container} to network {network}"), e)),
        }
    }

    pub async fn detach(&self, network: &str, container: &str) -> Result<()> {
        let request = bollard::models::NetworkDisconnectRequest {
            container: container.into(),
            force: Some(true),
        };
        match self.api.disconnect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) if says(&e, "not connected") => Ok(()),
            Err(e) => Err(self.api_error(format!("detach {container} from network {network}"), e)),
        }
    }

    /// When the volume was created (it tells one volume of a name from
    /// another made later), or `None` when there is none.
    pub async fn volume_created(&self, name: &str) -> Result<Option<String>> {
        match self.api.inspect_volume(name).await {
            Ok(volume) => Ok(Some(volume.created_at.unwrap_or_default())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.api_error(format!("inspect volume {name}"), e)),
        }
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        // What took podman's firewall rule in takes it out, once the
        // network is gone.
        let forward = match self.flavour {
            Flavour::Docker => None,
            Flavour::Podman => self
                .api
                .inspect_network(
                    name,
                    None::<bollard::query_parameters::InspectNetworkOptions>,
                )
                .await
                .ok()
                .and_then(|n| {
                    let labels = n.labels.unwrap_or_default();
                    let image = labels.get(podman::LABEL_FORWARD_HELPER)?.clone();
                    Some((n.name?, image, labels))
                }),
        };
        match self.api.remove_network(name).await {
            Ok(()) => {
                if let Some((network, image, labels)) = forward {
                    self.podman_forward(&network, &image, &labels, false)
                        .await?;
                }
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => {
                // A container someone else attached keeps it: say which.
                let options =
                    bollard::query_parameters::InspectNetworkOptionsBuilder::default().build();
                let (network, attached) = match self.api.inspect_network(name, Some(options)).await
                {
                    Ok(n) => (
                        n.name.unwrap_or_else(|| name.to_string()),
                        n.containers
                            .unwrap_or_default()
                            .into_values()
                            .filter_map(|c| c.name)
                            .collect::<Vec<_>>(),
                    ),
                    Err(_) => (name.to_string(), Vec::new()),
                };
                if attached.is_empty() {
                    return Err(self.api_error(format!("remove network {name}"), e));
                }
                Err(Error::NetworkInUse {
                    engine: self.flavour,
                    name: network,
                    containers: attached,
                })
            }
        }
    }

    /// Creates a volume. The engine hands back a volume that exists under
    /// the name instead of refusing, so one that is not what was asked for
    /// (other labels) is `Error::Taken`.
    pub async fn create_volume(&self, name: &str, labels: &HashMap<String, String>) -> Result<()> {
        let request = bollard::models::VolumeCreateRequest {
            name: Some(name.into()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        let volume = self
            .api
            .create_volume(request)
            .await
            .map_err(|e| self.api_error(format!("create volume {name}"), e))?;
        if labels.iter().any(|(k, v)| volume.labels.get(k) != Some(v)) {
            return Err(Error::Taken {
                engine: self.flavour,
                kind: Kind::Volume,
                name: name.into(),
            });
        }
        Ok(())
    }

    /// Every container, volume and network whose labels match `filter`.
    pub async fn resources(&self, filter: &Filter) -> Result<Vec<Resource>> {
        let values = filter_values(filter);
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let filters = HashMap::from([("label", values)]);
        let (containers, volumes, networks) = tokio::try_join!(
            self.list_containers(&filters),
            self.list_volumes(&filters),
            self.list_networks(&filters),
        )?;
        Ok(containers
            .into_iter()
            .chain(volumes)
            .chain(networks)
            .collect())
    }

    /// The resources of a kind named exactly `name`: none or one, but
    /// networks may share a name on engines before API 1.44.
    pub async fn named(&self, kind: Kind, name: &str) -> Result<Vec<Resource>> {
        // The engine's name filters match parts of names.
        let filters = HashMap::from([("name", vec![name])]);
        let found = match kind {
            Kind::Container => self.list_containers(&filters).await?,
            Kind::Volume => self.list_volumes(&filters).await?,
            Kind::Network => self.list_networks(&filters).await?,
        };
        Ok(found.into_iter().filter(|r| r.name == name).collect())
    }

    /// Removes a resource by its id, with a container's anonymous volumes;
    /// one that is already gone is not an error.
    pub async fn remove(&self, resource: &Resource) -> Result<()> {
        match resource.kind {
            Kind::Container => self.remove_container(&resource.id).await,
            Kind::Volume => self.remove_volume(&resource.id).await,
            Kind::Network => self.remove_network(&resource.id).await,
        }
    }

    async fn list_containers(&self, filters: &HashMap<&str, Vec<&str>>) -> Result<Vec<Resource>> {
        let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .all(true)
            .filters(filters)
            .build();
        let list = self
            .api
            .list_containers(Some(options))
            .await
            .map_err(|e| self.api_error("list containers".into(), e))?;
        Ok(list
            .into_iter()
            .map(|c| Resource {
                kind: Kind::Container,
                name: c
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                id: c.id.unwrap_or_default(),
                labels: c.labels.unwrap_or_default(),
                state: Some(ContainerState::from_engine(
                    c.state.map(|s| s.to_string()).as_deref(),
                )),
                created: c.created,
            })
            .collect())
    }

    async fn list_volumes(&self, filters: &HashMap<&str, Vec<&str>>) -> Result<Vec<Resource>> {
        let options = bollard::query_parameters::ListVolumesOptionsBuilder::default()
            .filters(filters)
            .build();
        let list = self
            .api
            .list_volumes(Some(options))
            .await
            .map_err(|e| self.api_error("list volumes".into(), e))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| Resource {
                kind: Kind::Volume,
                id: v.name.clone(),
                name: v.name,
                labels: v.labels,
                state: None,
                created: None,
            })
            .collect())
    }

    async fn list_networks(&self, filters: &HashMap<&str, Vec<&str>>) -> Result<Vec<Resource>> {
        let options = bollard::query_parameters::ListNetworksOptionsBuilder::default()
            .filters(filters)
            .build();
        let list = self
            .api
            .list_networks(Some(options))
            .await
            .map_err(|e| self.api_error("list networks".into(), e))?;
        Ok(list
            .into_iter()
            .map(|n| Resource {
                kind: Kind::Network,
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                labels: n.labels.unwrap_or_default(),
                state: None,
                created: None,
            })
            .collect())
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let options = bollard::query_parameters::RemoveVolumeOptionsBuilder::default()
            .force(true)
            .build();
        match self.api.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.api_error(format!("remove volume {name}"), e)),
        }
    }

    fn api_error(&self, action: String, error: bollard::errors::Error) -> Error {
        match error {
            bollard::errors::Error::DockerResponseServerError { message, .. } => Error::Api {
                engine: self.flavour,
                action,
                message,
            },
            other => classify_connect_error(self.flavour, &self.endpoint, other),
        }
    }
}

/// A file written through, with the SHA-256 and size of what was written.
struct HashingWriter {
    file: std::fs::File,
    digest: sha2::Sha256,
    size: u64,
}

impl HashingWriter {
    fn new(file: std::fs::File) -> Self {
        use sha2::Digest as _;
        Self {
            file,
            digest: sha2::Sha256::new(),
            size: 0,
        }
    }
}

impl std::io::Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        let n = self.file.write(buf)?;
        self.digest.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Whether the engine refused with a message that holds `text`.
fn says(error: &bollard::errors::Error, text: &str) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError { message, .. } if message.contains(text)
    )
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Tells a socket the user may not open from an engine that is not there,
/// since the two want different advice.
fn classify_connect_error(engine: Flavour, endpoint: &str, error: bollard::errors::Error) -> Error {
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::PermissionDenied
        {
            return Error::PermissionDenied {
                engine,
                endpoint: endpoint.to_string(),
            };
        }
        source = e.source();
    }
    // The innermost cause says why (a refused connection, a certificate).
    let mut innermost = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        innermost = e.to_string();
        source = e.source();
    }
    let reason = match &error {
        bollard::errors::Error::SocketNotFoundError(path) => format!("no socket at {path}"),
        other if other.to_string() == innermost => innermost.clone(),
        other => format!("{other}: {innermost}"),
    };
    if innermost.contains("certificate") || innermost.contains("TLS") {
        return Error::Untrusted {
            endpoint: endpoint.to_string(),
            reason,
        };
    }
    Error::Unreachable {
        engine,
        endpoint: endpoint.to_string(),
        reason,
    }
}

/// This process's terminal size as (columns, rows), when stdout is one: an
/// attached command's terminal follows it.
fn terminal_size() -> Option<(u16, u16)> {
    console::Term::stdout()
        .size_checked()
        .map(|(rows, cols)| (cols, rows))
}

/// The range of a /24 `subnet` that an overlay hands out itself:
/// .224-.239, above every node's address and below the registry cache's,
/// the load balancer's and the registry's.
fn endpoint_range(subnet: &str) -> Option<String> {
    let (base, bits) = subnet.split_once('/')?;
    let base: std::net::Ipv4Addr = base.parse().ok()?;
    let [a, b, c, _] = base.octets();
    (bits == "24").then(|| format!("{a}.{b}.{c}.224/28"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(rootless: bool, cgroup_v2: bool) -> EngineFacts {
        EngineFacts {
            cgroup_v2,
            disk: None,
            data_root: None,
            privilege_key: String::new(),
            id: String::new(),
            endpoint: "unix:///run/user/1000/podman/podman.sock".into(),
            rootless,
            tls: None,
            host_address: std::net::Ipv4Addr::LOCALHOST,
            swarm: None,
        }
    }

    #[test]
    fn an_overlay_hands_out_addresses_above_the_nodes_only() {
        assert_eq!(
            endpoint_range("172.30.7.0/24").as_deref(),
            Some("172.30.7.224/28")
        );
        assert_eq!(endpoint_range("172.30.0.0/16"), None);
    }

    #[test]
    fn ports_of_an_engine_elsewhere_are_reached_at_its_address() {
        use std::net::Ipv4Addr;
        for (endpoint, want) in [
            ("unix:///var/run/docker.sock", Ipv4Addr::LOCALHOST),
            ("tcp://127.0.0.1:2376", Ipv4Addr::LOCALHOST),
            ("tcp://localhost:2376", Ipv4Addr::LOCALHOST),
            ("tcp://10.20.30.40:2376", Ipv4Addr::new(10, 20, 30, 40)),
            ("tcp://10.20.30.40", Ipv4Addr::new(10, 20, 30, 40)),
        ] {
            assert_eq!(host_address(endpoint).unwrap(), want, "{endpoint}");
        }
        match host_address("tcp://no-such-host.invalid:2376") {
            Err(Error::Unsupported { fix, .. }) => assert!(fix.contains("tcp://ADDRESS")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_a_rootless_engine_on_cgroup_v1_is_unfit_for_nodes() {
        assert!(facts(false, false).fit_for_nodes().is_ok());
        assert!(facts(true, true).fit_for_nodes().is_ok());
        match facts(true, false).fit_for_nodes() {
            Err(Error::Unfit { why, fix, .. }) => {
                assert!(why.contains("rootless on a cgroup v1 host"), "{why}");
                assert!(fix.contains("Delegate=yes"), "{fix}");
            }
            other => panic!("{other:?}"),
        }
    }
}
