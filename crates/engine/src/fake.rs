//! An engine in memory, for unit tests of the plans: it keeps containers,
//! volumes and networks with their labels and states, answers listings by
//! label as the engine does, runs the commands a test scripted, fails the
//! calls a test chose (`fail`), and fails what it does not model.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;

use super::{
    Command, ContainerState, Engine, EngineFacts, Error, ExecOutput, Filter, Flavour, Kind,
    NetworkMade, NodeContainer, Privilege, Resource, Result,
};

#[derive(Default)]
pub struct FakeEngine {
    pub resources: Mutex<Vec<Resource>>,
    next_id: Mutex<u64>,
    /// Removals, in order, as `kind name`.
    pub removed: Mutex<Vec<String>>,
    /// The containers files were put into, by id: a node's files exist
    /// once it got some.
    pub uploads: Mutex<Vec<String>>,
    /// Commands run in containers, as `container: cmd args`.
    pub execs: Mutex<Vec<String>>,
    /// Scripted answers, the latest first: a command whose words start
    /// with the prefix ends with the code and prints the text (stdout, or
    /// stderr when it fails); any other command is not modelled.
    answers: Mutex<Vec<(String, i64, String)>>,
    /// Calls that fail, as `action name` (`stop dev-m02`).
    faults: Mutex<Vec<String>>,
    /// The subnets its networks are on: those it made, and any a test
    /// says are taken.
    pub subnets: Mutex<Vec<String>>,
    /// It holds no image (`lacks_images`); else every image asked for.
    no_images: Mutex<bool>,
    /// Containers attached to a network besides their own, as
    /// `(network, container)`: the network cannot be removed while any is.
    pub attached: Mutex<Vec<(String, String)>>,
}

impl FakeEngine {
    /// Adds a resource as if something (berth or not) had made it.
    pub fn add<K: AsRef<str>, V: AsRef<str>>(
        &self,
        kind: Kind,
        name: &str,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Resource {
        let resource = Resource {
            kind,
            id: self.new_id(kind, name),
            name: name.to_string(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
                .collect(),
            state: (kind == Kind::Container).then_some(ContainerState::Running),
            created: Some(0),
        };
        self.resources.lock().unwrap().push(resource.clone());
        resource
    }

    /// Every resource, as `kind name`, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .resources
            .lock()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        names.sort();
        names
    }

    /// Every resource but the binaries volumes, which profiles share, as
    /// `kind name`, sorted: what a plan made for its profile.
    pub fn made(&self) -> Vec<String> {
        self.names()
            .into_iter()
            .filter(|n| !n.starts_with("volume berth-kubernetes-"))
            .collect()
    }

    /// Whether a removal's `kind name` held `part`.
    pub fn removed_any(&self, part: &str) -> bool {
        self.removed
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains(part))
    }

    /// From now on it holds no image.
    pub fn lacks_images(&self) {
        *self.no_images.lock().unwrap() = true;
    }

    /// Commands starting with `prefix` (words joined by spaces) succeed
    /// and print `stdout`.
    pub fn answer(&self, prefix: &str, stdout: &str) {
        self.answers
            .lock()
            .unwrap()
            .push((prefix.to_string(), 0, stdout.to_string()));
    }

    /// Commands starting with `prefix` fail, saying `stderr`.
    pub fn refuse(&self, prefix: &str, stderr: &str) {
        self.answers
            .lock()
            .unwrap()
            .push((prefix.to_string(), 1, stderr.to_string()));
    }

    /// Every `action` (stop, pause, unpause, exec, upload) on the container
    /// named or with the id `name` fails from now on.
    pub fn fail(&self, action: &str, name: &str) {
        self.faults.lock().unwrap().push(format!("{action} {name}"));
    }

    /// Whether the test made `action` on `name` fail.
    fn faulted(&self, action: &str, name: &str) -> bool {
        self.faults
            .lock()
            .unwrap()
            .contains(&format!("{action} {name}"))
    }

    /// The name of the network with the id or name `network`.
    fn network_name(&self, network: &str) -> String {
        let all = self.resources.lock().unwrap();
        all.iter()
            .find(|r| r.kind == Kind::Network && r.id == network)
            .map_or(network, |r| &r.name)
            .to_string()
    }

    /// Every call succeeds again.
    pub fn heal(&self) {
        self.faults.lock().unwrap().clear();
    }

    /// The state of the container of that name or id.
    pub fn state(&self, name: &str) -> Option<ContainerState> {
        let all = self.resources.lock().unwrap();
        all.iter()
            .find(|r| r.kind == Kind::Container && (r.id == name || r.name == name))
            .and_then(|r| r.state)
    }

    /// Moves a container from one of `from` to `to`, as the engine's
    /// `action` does, unless the test made it fail.
    fn transition(
        &self,
        action: &str,
        name: &str,
        from: &[ContainerState],
        to: ContainerState,
    ) -> Result<()> {
        let refuse = |message: String| Error::Api {
            engine: Flavour::Docker,
            action: format!("{action} {name}"),
            message,
        };
        let mut all = self.resources.lock().unwrap();
        let found = all
            .iter_mut()
            .find(|r| r.kind == Kind::Container && (r.id == name || r.name == name))
            .ok_or_else(|| refuse("no such container".into()))?;
        if self.faulted(action, &found.name) || self.faulted(action, &found.id) {
            return Err(refuse("failed as the test asked".into()));
        }
        match found.state {
            Some(state) if from.contains(&state) => {
                found.state = Some(to);
                Ok(())
            }
            state => Err(refuse(format!("the container is {state:?}"))),
        }
    }

    fn new_id(&self, kind: Kind, name: &str) -> String {
        if kind == Kind::Volume {
            return name.to_string();
        }
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        format!("{kind}-{}", *next)
    }

    fn unmodelled<T>(what: &str) -> BoxFuture<'static, Result<T>> {
        let error = Error::Api {
            engine: Flavour::Docker,
            action: what.to_string(),
            message: "not modelled by the fake engine".into(),
        };
        Box::pin(async move { Err(error) })
    }

    fn create(&self, kind: Kind, name: &str, labels: &HashMap<String, String>) -> Result<String> {
        let mut all = self.resources.lock().unwrap();
        if all.iter().any(|r| r.kind == kind && r.name == name) {
            return Err(Error::Taken {
                engine: Flavour::Docker,
                kind,
                name: name.to_string(),
            });
        }
        let resource = Resource {
            kind,
            id: self.new_id(kind, name),
            name: name.to_string(),
            labels: labels.clone(),
            state: (kind == Kind::Container).then_some(ContainerState::Created),
            created: Some(0),
        };
        let id = resource.id.clone();
        all.push(resource);
        Ok(id)
    }
}

fn matches(resource: &Resource, filter: &Filter) -> bool {
    filter.iter().all(|(key, value)| match value {
        Some(v) => resource.labels.get(key) == Some(v),
        None => resource.labels.contains_key(key),
    })
}

fn ready<'a, T: Send + 'a>(value: Result<T>) -> BoxFuture<'a, Result<T>> {
    Box::pin(async move { value })
}

impl Engine for FakeEngine {
    fn flavour(&self) -> Flavour {
        Flavour::Docker
    }

    fn members(&self) -> Vec<&dyn Engine> {
        vec![self]
    }

    fn unreachable(&self) -> Vec<String> {
        Vec::new()
    }

    fn make_spanning_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a HashMap<String, String>,
        subnets: &'a [String],
    ) -> BoxFuture<'a, Result<NetworkMade>> {
        self.make_network(name, labels, subnets, "")
    }

    fn used_subnets(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        ready(Ok(self.subnets.lock().unwrap().clone()))
    }

    fn facts(&self) -> BoxFuture<'_, Result<EngineFacts>> {
        ready(Ok(EngineFacts {
            cgroup_v2: true,
            disk: None,
            data_root: None,
            privilege_key: "fake".into(),
            id: "fake-engine".into(),
            endpoint: "fake://".into(),
            rootless: false,
            tls: None,
            host_address: std::net::Ipv4Addr::LOCALHOST,
            swarm: None,
        }))
    }

    fn image_exists<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<bool>> {
        ready(Ok(!*self.no_images.lock().unwrap()))
    }

    fn save_images<'a>(&'a self, _names: &'a [String]) -> BoxFuture<'a, Result<Vec<u8>>> {
        Self::unmodelled("save images")
    }

    fn build_image<'a>(
        &'a self,
        _context_tar: Vec<u8>,
        _tag: &'a str,
        _build_args: &'a HashMap<String, String>,
        _labels: &'a HashMap<String, String>,
        _progress: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<()>> {
        Self::unmodelled("build an image")
    }

    fn create_container<'a>(&'a self, spec: &'a NodeContainer) -> BoxFuture<'a, Result<String>> {
        ready(self.create(Kind::Container, &spec.name, &spec.labels))
    }

    fn start_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        let mut all = self.resources.lock().unwrap();
        let found = all
            .iter_mut()
            .find(|r| r.kind == Kind::Container && (r.id == name || r.name == name));
        ready(match found {
            Some(r) => {
                r.state = Some(ContainerState::Running);
                Ok(())
            }
            None => Err(Error::Api {
                engine: Flavour::Docker,
                action: format!("start {name}"),
                message: "no such container".into(),
            }),
        })
    }

    fn remove_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        let mut all = self.resources.lock().unwrap();
        all.retain(|r| !(r.kind == Kind::Container && (r.id == name || r.name == name)));
        ready(Ok(()))
    }

    fn exec<'a>(
        &'a self,
        container: &'a str,
        cmd: &'a Command,
    ) -> BoxFuture<'a, Result<ExecOutput>> {
        let line = cmd.to_string();
        self.execs
            .lock()
            .unwrap()
            .push(format!("{container}: {line}"));
        if self.faulted("exec", container) {
            return Self::unmodelled("exec");
        }
        let answers = self.answers.lock().unwrap();
        let answer = answers
            .iter()
            .rev()
            .find(|(prefix, _, _)| line.starts_with(prefix.as_str()));
        match answer {
            Some((_, 0, stdout)) => ready(Ok(ExecOutput {
                code: 0,
                stdout: stdout.clone(),
                stderr: String::new(),
            })),
            Some((_, code, stderr)) => ready(Ok(ExecOutput {
                code: *code,
                stdout: String::new(),
                stderr: stderr.clone(),
            })),
            None => Self::unmodelled("exec"),
        }
    }

    fn privilege<'a>(&'a self, _probe: &'a NodeContainer) -> BoxFuture<'a, Result<Privilege>> {
        ready(Ok(Privilege::Privileged))
    }

    fn network_ids<'a>(&'a self, _container: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Self::unmodelled("inspect networks")
    }

    fn published_addresses<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Self::unmodelled("inspect ports")
    }

    fn stop_container<'a>(&'a self, name: &'a str, _grace: i32) -> BoxFuture<'a, Result<()>> {
        use ContainerState::*;
        // The engine stops a running container; a stopped one stays so.
        ready(self.transition("stop", name, &[Running, Exited, Created], Exited))
    }

    fn pause_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        use ContainerState::*;
        ready(self.transition("pause", name, &[Running], Paused))
    }

    fn unpause_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        use ContainerState::*;
        ready(self.transition("unpause", name, &[Paused], Running))
    }

    fn upload<'a>(&'a self, container: &'a str, _tar: Vec<u8>) -> BoxFuture<'a, Result<()>> {
        if self.faulted("upload", container) {
            return Self::unmodelled("upload");
        }
        self.uploads.lock().unwrap().push(container.to_string());
        ready(Ok(()))
    }

    fn upload_file<'a>(
        &'a self,
        container: &'a str,
        _tar: &'a std::path::Path,
    ) -> BoxFuture<'a, Result<()>> {
        self.upload(container, Vec::new())
    }

    /// Writes a stand-in archive naming the container and path.
    fn download<'a>(
        &'a self,
        container: &'a str,
        path: &'a str,
        to: &'a std::path::Path,
    ) -> BoxFuture<'a, Result<(String, u64)>> {
        use sha2::Digest as _;
        if self.faulted("download", container) {
            return Self::unmodelled("download");
        }
        let content = format!("{container}:{path}");
        let written = std::fs::write(to, &content).map_err(|e| Error::Api {
            engine: Flavour::Docker,
            action: format!("write {}", to.display()),
            message: e.to_string(),
        });
        let digest = hex::encode(sha2::Sha256::digest(content.as_bytes()));
        ready(written.map(|()| (digest, content.len() as u64)))
    }

    fn file_exists<'a>(
        &'a self,
        container: &'a str,
        _path: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        ready(Ok(self
            .uploads
            .lock()
            .unwrap()
            .iter()
            .any(|c| c == container)))
    }

    /// On the first subnet asked for; a name taken is another's network.
    fn make_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a HashMap<String, String>,
        subnets: &'a [String],
        _helper_image: &'a str,
    ) -> BoxFuture<'a, Result<NetworkMade>> {
        let used = self.subnets.lock().unwrap().clone();
        let Some(subnet) = subnets.iter().find(|s| !used.contains(s)) else {
            return ready(Ok(NetworkMade::NoneFree));
        };
        let taken = self
            .resources
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.kind == Kind::Network && r.name == name)
            .cloned();
        ready(match taken {
            Some(other) => Ok(NetworkMade::NameTaken(other)),
            None => self.create(Kind::Network, name, labels).map(|id| {
                self.subnets.lock().unwrap().push(subnet.clone());
                NetworkMade::Made {
                    id,
                    subnet: subnet.clone(),
                }
            }),
        })
    }

    fn attach<'a>(
        &'a self,
        network: &'a str,
        container: &'a str,
        _ip: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let name = self.network_name(network);
        let exists = (self.resources.lock().unwrap())
            .iter()
            .any(|r| r.kind == Kind::Network && r.name == name);
        if !exists {
            return Self::unmodelled("attach to a network that is not there");
        }
        let pair = (name, container.to_string());
        let mut attached = self.attached.lock().unwrap();
        if !attached.contains(&pair) {
            attached.push(pair);
        }
        ready(Ok(()))
    }

    fn detach<'a>(&'a self, network: &'a str, container: &'a str) -> BoxFuture<'a, Result<()>> {
        let network = self.network_name(network);
        self.attached
            .lock()
            .unwrap()
            .retain(|(n, c)| !(*n == network && c == container));
        ready(Ok(()))
    }

    fn volume_created<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        let all = self.resources.lock().unwrap();
        let found = all.iter().any(|r| r.kind == Kind::Volume && r.name == name);
        ready(Ok(found.then(|| "0".to_string())))
    }

    fn create_volume<'a>(
        &'a self,
        name: &'a str,
        labels: &'a HashMap<String, String>,
    ) -> BoxFuture<'a, Result<()>> {
        // The engine hands back an existing volume of the name.
        let exists = self
            .resources
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.kind == Kind::Volume && r.name == name);
        ready(if exists {
            Ok(())
        } else {
            self.create(Kind::Volume, name, labels).map(|_| ())
        })
    }

    fn resources<'a>(&'a self, filter: &'a Filter) -> BoxFuture<'a, Result<Vec<Resource>>> {
        let all = self.resources.lock().unwrap();
        ready(Ok(all
            .iter()
            .filter(|r| matches(r, filter))
            .cloned()
            .collect()))
    }

    fn named<'a>(&'a self, kind: Kind, name: &'a str) -> BoxFuture<'a, Result<Vec<Resource>>> {
        let all = self.resources.lock().unwrap();
        ready(Ok(all
            .iter()
            .filter(|r| r.kind == kind && r.name == name)
            .cloned()
            .collect()))
    }

    fn remove<'a>(&'a self, resource: &'a Resource) -> BoxFuture<'a, Result<()>> {
        let in_use = resource.kind == Kind::Network
            && (self.attached.lock().unwrap().iter()).any(|(n, _)| *n == resource.name);
        if in_use {
            return Box::pin(async move {
                Err(Error::Api {
                    engine: Flavour::Docker,
                    action: format!("remove {resource}"),
                    message: "the network has active endpoints".into(),
                })
            });
        }
        if resource.kind == Kind::Container {
            (self.attached.lock().unwrap()).retain(|(_, c)| *c != resource.name);
        }
        let mut all = self.resources.lock().unwrap();
        let before = all.len();
        all.retain(|r| !(r.kind == resource.kind && r.id == resource.id));
        if all.len() < before {
            self.removed.lock().unwrap().push(resource.to_string());
        }
        ready(Ok(()))
    }

    fn describe(&self) -> BoxFuture<'_, Result<serde_json::Value>> {
        Self::unmodelled("describe the engine")
    }

    fn inspect_json<'a>(&'a self, _container: &'a str) -> BoxFuture<'a, Result<serde_json::Value>> {
        Self::unmodelled("inspect a container")
    }

    fn exec_attached<'a>(
        &'a self,
        _container: &'a str,
        _cmd: &'a [String],
        _tty: bool,
    ) -> BoxFuture<'a, Result<i64>> {
        Self::unmodelled("run an attached command")
    }
}
