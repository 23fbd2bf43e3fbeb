//! The lifecycle of a profile's cluster: start (create or start again),
//! stop, pause, unpause, delete, and what status reads. Each plan is a list
//! of steps shown with their timings.

mod addon_images;
pub mod addons;
pub mod balancer;
mod binaries;
mod claims;
pub mod containerd;
mod create;
pub mod dns;
pub mod etcd;
pub mod export;
pub mod forward;
pub mod health;
mod host;
pub mod images;
mod lifecycle;
pub mod logs;
mod nodes;
mod plan;
mod rbac_seed;
mod ready;
pub mod registry;
pub mod registry_cache;
mod remove;
pub mod service_lb;
pub mod snapshot;
pub mod ssh_forward;
pub mod status;
pub mod storage;
#[cfg(test)]
mod testing;
mod upgrade;

pub use lifecycle::{pause, stop};
pub use nodes::{add as add_node, delete as delete_node};
pub use ready::{api_ready, client};
pub use remove::{Unreached, every_profile, orphans, remove_everything, remove_helpers, unreached};
pub use upgrade::upgrade;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use berth_core::binaries::{Cache, Version};
use berth_core::error::{Error, Result};
use berth_core::kubeconfig::{self, Entry};
use berth_core::names::Names;
use berth_core::pki::Pki;
use berth_core::profile::{Node, Profile, Store};
use berth_core::settings::Port;
use berth_core::ui::Ui;
use berth_engine::{Engine, Resource};
use berth_node::render::ExtraFlag;

/// How long `start` waits for the cluster to be ready unless told.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// The version `start` uses when none is given and none is cached.
pub const DEFAULT_VERSION: &str = "v1.37.2";

pub struct Ctx {
    pub home: PathBuf,
    pub lock_timeout: Duration,
    pub docker: std::sync::Arc<dyn Engine>,
    pub store: Store,
    pub cache: Cache,
    pub ui: Ui,
    pub kubeconfig: PathBuf,
    /// This process's token: everything it makes carries it, so that its
    /// rollback removes exactly that, and its helpers are told from
    /// another berth's.
    pub token: String,
    /// The Kubernetes API the plans' unit tests answer, in place of the
    /// cluster's.
    #[cfg(test)]
    pub(crate) api: Option<std::sync::Arc<testing::FakeApi>>,
}

impl Ctx {
    /// A client for the profile's API server, as its admin.
    pub async fn client(&self, profile: &Profile) -> Result<kube::Client> {
        #[cfg(test)]
        if let Some(api) = &self.api {
            return Ok(api.client());
        }
        ready::client(&self.store, profile).await
    }

    /// A context over `engine` with a home, cache and kubeconfig of a
    /// temporary directory of the test's, for unit tests of the plans.
    #[cfg(test)]
    pub fn for_test(engine: std::sync::Arc<dyn Engine>, dir: &std::path::Path) -> Self {
        Ctx {
            home: dir.join("home"),
            lock_timeout: Duration::from_secs(1),
            docker: engine,
            store: Store::new(&dir.join("home")),
            cache: Cache::new(&dir.join("cache")),
            ui: Ui::new(true),
            kubeconfig: dir.join("kubeconfig"),
            token: "this-start".into(),
            api: None,
        }
    }

    /// A context over a new in-memory engine, in a new temporary
    /// directory: both are returned, for the test to look into.
    #[cfg(test)]
    pub fn with_fake_engine() -> (
        tempfile::TempDir,
        std::sync::Arc<berth_engine::fake::FakeEngine>,
        Self,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let engine = std::sync::Arc::new(berth_engine::fake::FakeEngine::default());
        let ctx = Self::for_test(engine.clone(), dir.path());
        (dir, engine, ctx)
    }

    /// Fake Kubernetes binaries of `version` in the context's cache, made
    /// in `dir`, so that nothing is downloaded.
    #[cfg(test)]
    pub fn cache_fake_binaries(&self, version: &Version, dir: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        for name in berth_core::binaries::COMPONENTS {
            let body = if name == "kubectl" {
                format!(
                    "#!/bin/sh\necho '{{\"clientVersion\": {{\"gitVersion\": \"{version}\"}}}}'\n"
                )
            } else {
                format!("#!/bin/sh\necho 'Kubernetes {version}'\n")
            };
            let path = dir.join(name);
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        self.cache.import(version, dir).unwrap();
    }

    /// The names of a profile of this home that has no state (yet):
    /// those a new profile of that name gets.
    pub fn names_for(&self, profile: &str) -> Names {
        Names::new(
            profile,
            &self.home,
            berth_core::names::home_id(&self.home).as_deref(),
        )
    }

    pub fn names(&self, profile: &Profile) -> Names {
        profile.names(&self.home)
    }
}

#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    pub version: Option<Version>,
    /// `None` returns once the node container runs.
    pub wait: Option<Duration>,
    pub keep_context: bool,
    /// A new cluster's failed or interrupted start keeps what it made.
    pub keep_on_failure: bool,
    pub cpus: Option<f64>,
    pub memory_mib: Option<u64>,
    pub image: Option<String>,
    /// Where missing binaries are downloaded from, instead of the official
    /// release location.
    pub binary_mirror: Option<String>,
    /// Nodes of a new cluster, the control planes included (default: as
    /// many as the control planes).
    pub nodes: Option<u32>,
    /// Control-plane nodes of a new cluster, among `nodes` (default 1);
    /// several have a load balancer in front.
    pub control_planes: Option<u32>,
    pub ports: Vec<Port>,
    pub extra_config: Vec<ExtraFlag>,
    pub feature_gates: BTreeMap<String, bool>,
    pub mounts: Vec<berth_core::settings::Mount>,
    /// A registry of the profile's own (`--registry`).
    pub registry: bool,
    /// Addons enabled besides those on by default.
    pub addons: Vec<berth_node::addons::Addon>,
    /// Addons on by default turned off (`--no-dns`, `--no-storage`).
    pub addons_off: Vec<berth_node::addons::Addon>,
    /// The host address LoadBalancer Services answer on (`--lb-address`).
    pub lb_address: Option<std::net::Ipv4Addr>,
    /// CA certificates (PEM) every node trusts (`--ca-cert`).
    pub ca_certs: Vec<String>,
    /// The proxy of a new profile's image pulls: `--proxy`, else the
    /// user's environment.
    pub proxy: Option<berth_core::settings::Proxy>,
    /// `proxy` was asked for with `--proxy`: a restart with another is
    /// refused (one from the environment is the profile's own).
    pub proxy_flag: bool,
    /// Publish on an ssh:// engine host's loopback and forward the ports
    /// here over ssh (`--ssh-forward`, see `ssh_forward`).
    pub ssh_forward: bool,
    /// The engines besides the context's that a new cluster spreads over
    /// (`--engine A --engine B`), and which engine each node goes on
    /// (`berth_core::profile::spread`), as the context's `Spread` places
    /// them.
    pub engines: Vec<berth_core::profile::EngineRef>,
    pub node_engines: BTreeMap<u32, usize>,
}

impl StartOptions {
    /// The control planes a new cluster gets.
    pub fn control_plane_count(&self) -> u32 {
        self.control_planes.unwrap_or(1)
    }

    /// The nodes a new cluster gets, the control planes included.
    pub fn node_count(&self) -> u32 {
        self.nodes.unwrap_or(self.control_plane_count())
    }

    /// The addons a new cluster starts with, in their order.
    pub fn addons_on(&self) -> Vec<berth_node::addons::Addon> {
        berth_node::addons::Addon::ALL
            .into_iter()
            .filter(|a| match a.by_default() {
                true => !self.addons_off.contains(a),
                false => self.addons.contains(a),
            })
            .collect()
    }
}

/// `start`: creates the profile's cluster, or starts it again. A new
/// profile's start is all or nothing: when it fails, or `interrupted`
/// resolves (a signal, named), everything it made is removed and the
/// kubeconfig's current context is what it was, unless `keep_on_failure`;
/// `interrupted` resolving again stops that cleanup and names what is left.
/// What the rollback removes is what this start made (it carries the
/// process's token), never a resource another start or home made. A failed
/// restart leaves the profile as it was.
pub async fn start<F, Fut>(
    ctx: &Ctx,
    name: &str,
    opts: &StartOptions,
    interrupted: F,
) -> Result<Profile>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
    let existing = ctx.store.load(name)?;
    // A kubeconfig berth cannot parse is refused before anything is made.
    let previous = kubeconfig::current_context(&kubeconfig::read(&ctx.kubeconfig)?);
    let verb = |undo| plan::Verb {
        what: format!("the start of profile {name}"),
        again: format!("`berth start -p {name}` starts it again"),
        undo,
    };
    let outcome = match existing {
        // A failed restart leaves the profile as it was: nothing to undo.
        Some(profile) => {
            let mut restart = create::Restarted::new(profile, opts);
            plan::execute(
                ctx,
                verb(None),
                &create::RESTART,
                &mut restart,
                &interrupted,
            )
            .await
            .map(|()| restart.profile)
        }
        None => {
            let mut new = create::NewCluster::check(ctx, name, opts, previous).await?;
            let verb = verb(Some(plan::Undo {
                maker: "this start",
                kept: opts.keep_on_failure.then(|| {
                    format!(
                        "Kept what this start made (--keep-on-failure); `berth delete -p {name}` removes it"
                    )
                }),
                left_hint: format!("`berth delete -p {name}` removes what is left"),
                left: plan::left(|| async { remove::traces(ctx, name).await.unwrap_or_default() }),
            }));
            plan::execute(ctx, verb, &create::CREATE, &mut new, &interrupted)
                .await
                .and_then(|()| plan::output(&new.profile, "the state step").cloned())
        }
    };
    let _ = remove_helpers(ctx).await;
    outcome
}

/// Each node with its container; an error naming the first node whose
/// container is gone. Only containers with the profile's own labels count,
/// whatever else carries their names.
pub async fn node_states(ctx: &Ctx, profile: &Profile) -> Result<Vec<(Node, Resource)>> {
    let names = ctx.names(profile);
    let mine = ctx.docker.resources(&names.filter()).await?;
    let lost = ctx.docker.unreachable();
    profile
        .nodes()
        .into_iter()
        .map(|node| {
            let container = mine
                .iter()
                .find(|r| r.kind == berth_engine::Kind::Container && r.name == node.container);
            match (container, profile.engine_of(&node)) {
                (Some(c), _) => Ok((node, c.clone())),
                (None, Some(engine)) if lost.contains(&engine.host) => {
                    Err(unreachable(&profile.name, &node.name, &engine.host))
                }
                (None, _) => Err(broken(&profile.name, &node.container)),
            }
        })
        .collect()
}

/// A node of a cluster over several engines is on one that does not answer.
fn unreachable(name: &str, node: &str, engine: &str) -> Error {
    Error::engine(format!(
        "node {node} of profile {name} is on the engine at {engine}, which does not answer"
    ))
    .with_hint(format!(
        "start that engine again; `berth status -p {name}` shows the rest of the cluster, and \
         `berth delete -p {name}` removes what the other engines hold"
    ))
}

/// The profile's network, by id: the one it was made with, or for a
/// profile made before berth kept it, the one its control plane is on.
pub(crate) async fn network_id(ctx: &Ctx, profile: &Profile) -> Result<String> {
    if let Some(id) = &profile.network_id {
        return Ok(id.clone());
    }
    let states = node_states(ctx, profile).await?;
    let networks = ctx.docker.network_ids(&states[0].1.id).await?;
    networks.into_iter().next().ok_or_else(|| {
        Error::profile(format!(
            "the control plane of profile {} is on no network",
            profile.name
        ))
        .with_hint(format!(
            "`berth delete -p {}` removes the cluster; start it anew",
            profile.name
        ))
    })
}

/// The states of the containers `filter` selects, by name.
pub async fn containers(
    ctx: &Ctx,
    filter: &berth_engine::Filter,
) -> Result<std::collections::HashMap<String, berth_engine::ContainerState>> {
    Ok(ctx
        .docker
        .resources(filter)
        .await?
        .into_iter()
        .filter(|r| r.kind == berth_engine::Kind::Container)
        .map(|r| (r.name.clone(), state_of(&r)))
        .collect())
}

/// Starts (`run`) or stops the containers beside the nodes, the registry,
/// the load balancer and the LoadBalancer controller, when the profile has
/// them; a paused one is thawed first.
pub async fn follow_nodes(ctx: &Ctx, profile: &Profile, run: bool) -> Result<()> {
    use berth_engine::ContainerState::{Paused, Running};
    let names = ctx.names(profile);
    let states = containers(ctx, &names.filter()).await?;
    let beside = [
        profile.registry.map(|_| names.registry()),
        profile.load_balancer.then(|| names.load_balancer()),
        profile.lb_address.map(|_| names.service_lb()),
    ];
    for name in beside.into_iter().flatten() {
        let Some(state) = states.get(&name).copied() else {
            continue;
        };
        if state == Paused {
            ctx.docker.unpause_container(&name).await?;
        }
        match (run, matches!(state, Running | Paused)) {
            (true, false) => ctx.docker.start_container(&name).await?,
            (false, true) => ctx.docker.stop_container(&name, 1).await?,
            _ => {}
        }
    }
    if run {
        registry_cache::join(ctx, profile).await?;
        ssh_forward::ensure(&ctx.store, profile).await?;
    } else {
        ssh_forward::end(&ctx.store, profile).await;
    }
    Ok(())
}

/// A container beside the nodes (the registry, the load balancer): the
/// node image running `entrypoint` as `name` at `ip` on the profile's
/// network, labelled as made by this process, unprivileged and in a cgroup
/// namespace of its own (it needs none of the host's cgroups).
pub(crate) fn beside_container(
    ctx: &Ctx,
    profile: &Profile,
    name: String,
    entrypoint: &[&str],
    network: String,
    ip: std::net::Ipv4Addr,
) -> berth_engine::NodeContainer {
    let labels = ctx.names(profile).labels_created_by(&ctx.token);
    let hostname = name.rsplit('.').next().unwrap_or_default().to_string();
    berth_engine::NodeContainer {
        hostname,
        privilege: None,
        cgroup_v2: true,
        entrypoint: Some(entrypoint.iter().map(|a| a.to_string()).collect()),
        network: Some((network, ip.to_string())),
        published_on: profile.host_address(),
        ..berth_engine::NodeContainer::helper(name, &profile.node_image, labels)
    }
}

/// A node's container state, from what `node_states` found.
pub fn state_of(container: &Resource) -> berth_engine::ContainerState {
    container
        .state
        .unwrap_or(berth_engine::ContainerState::Created)
}

pub fn admin_entry(store: &Store, profile: &Profile) -> Result<Entry> {
    let pki = Pki::new(&store.pki_dir(&profile.name));
    Ok(Entry {
        name: profile.context(),
        server: profile.server(),
        ca_pem: pki.read("ca.crt")?,
        cert_pem: pki.read("admin.crt")?,
        key_pem: pki.read("admin.key")?,
    })
}

fn write_kubeconfig(ctx: &Ctx, profile: &mut Profile, make_current: bool) -> Result<()> {
    let entry = admin_entry(&ctx.store, profile)?;
    let previous = kubeconfig::update(&profile.kubeconfig, |c| {
        kubeconfig::upsert(c, &entry, make_current)
    })?;
    if make_current && previous.as_deref() != Some(profile.context().as_str()) {
        profile.previous_context = previous;
        ctx.store.save(profile)?;
    }
    Ok(())
}

pub fn broken(name: &str, container: &str) -> Error {
    Error::profile(format!(
        "profile {name} is broken: its node container {container} is gone"
    ))
    .with_hint(format!("`berth delete -p {name}` removes what is left"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::block_on;
    use berth_core::names::{LABEL_CREATED_BY, LABEL_HOME, LABEL_PROFILE, LABEL_ROLE};
    use berth_engine::Kind;

    /// A start of profile `dev` over the fake engine, never interrupted.
    fn start_dev(ctx: &Ctx, opts: StartOptions) -> Result<Profile> {
        block_on(start(ctx, "dev", &opts, std::future::pending))
    }

    /// Profile `dev` as saved by an earlier start, with its certificates,
    /// and its node's container in `state`, made by that start.
    fn existing_dev(
        ctx: &Ctx,
        engine: &berth_engine::fake::FakeEngine,
        state: Option<berth_engine::ContainerState>,
    ) -> Profile {
        let profile = Profile {
            kubeconfig: ctx.kubeconfig.clone(),
            network_id: Some("network-1".into()),
            ..Profile::example("dev")
        };
        ctx.store.save(&profile).unwrap();
        nodes::ensure_pki(ctx, &profile, &profile.nodes()).unwrap();
        let names = ctx.names(&profile);
        let labels = names.labels_created_by("earlier-start");
        if let Some(state) = state {
            let container = &profile.control_plane().container;
            engine.add(Kind::Container, container, &labels);
            engine.resources.lock().unwrap()[0].state = Some(state);
        }
        engine.add(Kind::Volume, &names.var_volume("dev"), &labels);
        profile
    }

    fn options(nodes: u32, wait: Option<Duration>) -> StartOptions {
        StartOptions {
            version: Some("v1.20.2".parse().unwrap()),
            image: Some("berth/node-base:test".into()),
            nodes: Some(nodes),
            wait,
            ..StartOptions::default()
        }
    }

    #[test]
    fn a_new_start_makes_each_node_on_its_network_all_labelled_as_its_own() {
        let (dir, engine, ctx) = Ctx::with_fake_engine();
        ctx.cache_fake_binaries(&"v1.20.2".parse().unwrap(), &dir.path().join("build"));
        let profile = start_dev(&ctx, options(2, None)).unwrap();

        let names = ctx.names(&profile);
        assert_eq!(
            engine.made(),
            [
                format!("container {}", names.container("dev")),
                format!("container {}", names.service_lb()),
                format!("container {}", names.container("dev-m02")),
                format!("network {}", names.network()),
                format!("volume {}", names.var_volume("dev")),
                format!("volume {}", names.var_volume("dev-m02")),
            ]
        );
        let home = ctx.home.display().to_string();
        for resource in engine.resources.lock().unwrap().iter() {
            if resource.name.starts_with("berth-kubernetes-") {
                continue;
            }
            let label = |key: &str| resource.labels.get(key).map(String::as_str);
            assert_eq!(label(LABEL_PROFILE), Some("dev"), "{resource}");
            assert_eq!(label(LABEL_HOME), Some(home.as_str()), "{resource}");
            assert_eq!(label(LABEL_CREATED_BY), Some("this-start"), "{resource}");
            if resource.kind == Kind::Container {
                assert_eq!(resource.state, Some(berth_engine::ContainerState::Running));
                let role = match resource.name.as_str() {
                    n if n == names.service_lb() => None,
                    n if n.contains("-m02") => Some("worker"),
                    _ => Some("control-plane"),
                };
                assert_eq!(label(LABEL_ROLE), role, "{resource}");
            }
        }
        // Its state and its kubeconfig context, current.
        let saved = ctx.store.load("dev").unwrap().expect("saved");
        assert_eq!(saved.workers, [1]);
        let config = kubeconfig::read(&ctx.kubeconfig).unwrap();
        assert_eq!(
            kubeconfig::current_context(&config).as_deref(),
            Some(profile.context().as_str())
        );
    }

    #[test]
    fn a_new_start_of_three_control_planes_puts_a_load_balancer_in_front() {
        let (dir, engine, ctx) = Ctx::with_fake_engine();
        ctx.cache_fake_binaries(&"v1.20.2".parse().unwrap(), &dir.path().join("build"));
        let opts = StartOptions {
            control_planes: Some(3),
            ..options(4, None)
        };
        let profile = start_dev(&ctx, opts).unwrap();
        let names = ctx.names(&profile);
        assert!(profile.load_balancer);
        assert_eq!(
            (
                profile.control_planes.as_slice(),
                profile.workers.as_slice()
            ),
            (&[1, 2][..], &[3][..])
        );
        let made = engine.made();
        assert!(
            made.contains(&format!("container {}", names.load_balancer())),
            "{made:?}"
        );
        assert_eq!(
            made.iter().filter(|m| m.starts_with("container")).count(),
            6
        );
        for resource in engine.resources.lock().unwrap().iter() {
            if resource.kind != Kind::Container {
                continue;
            }
            let label = |key: &str| resource.labels.get(key).map(String::as_str);
            assert_eq!(label(LABEL_CREATED_BY), Some("this-start"), "{resource}");
            let role = match resource.name.as_str() {
                n if n == names.load_balancer() || n == names.service_lb() => None,
                n if n.contains("-m04") => Some("worker"),
                _ => Some("control-plane"),
            };
            assert_eq!(label(LABEL_ROLE), role, "{resource}");
        }
        // Every control plane got its own API server certificate, naming
        // the load balancer's address.
        let pki = ctx.store.pki_dir("dev");
        for file in [
            "apiserver.crt",
            "apiserver-dev-m02.crt",
            "apiserver-dev-m03.crt",
            "load-balancer.crt",
        ] {
            assert!(pki.join(file).exists(), "{file}");
        }
        assert!(!pki.join("apiserver-dev-m04.crt").exists());
    }

    #[test]
    fn a_failed_new_start_removes_what_it_made_and_nothing_else() {
        let (dir, engine, ctx) = Ctx::with_fake_engine();
        ctx.cache_fake_binaries(&"v1.20.2".parse().unwrap(), &dir.path().join("build"));
        // Another profile of this home, another home's, and something not
        // berth's at all.
        let other = Profile::example("web");
        engine.add(
            Kind::Container,
            &other.control_plane().container,
            ctx.names(&other).labels(),
        );
        engine.add(
            Kind::Volume,
            "berth-dev-var-of-another-home",
            [(LABEL_PROFILE, "dev"), (LABEL_HOME, "/other")],
        );
        engine.add(Kind::Container, "postgres", [("", ""); 0]);
        let before = engine.names();

        // No API server answers in the fake: the start fails waiting for it.
        let error = start_dev(&ctx, options(2, Some(Duration::from_millis(300)))).unwrap_err();
        assert_eq!(
            error.exit,
            berth_core::error::Exit::NotReady,
            "{}",
            error.message
        );
        assert_eq!(engine.made(), before, "the rollback left or took too much");
        assert!(
            ctx.store.load("dev").unwrap().is_none(),
            "its state is left"
        );
        let config = kubeconfig::read(&ctx.kubeconfig).unwrap();
        assert_eq!(kubeconfig::current_context(&config), None);
    }

    #[test]
    fn a_forward_over_ssh_of_an_engine_not_reached_over_ssh_is_refused_before_anything_is_made() {
        let (dir, engine, ctx) = Ctx::with_fake_engine();
        ctx.cache_fake_binaries(&"v1.20.2".parse().unwrap(), &dir.path().join("build"));
        let before = engine.made();
        let opts = StartOptions {
            ssh_forward: true,
            ..options(1, None)
        };
        let error = start_dev(&ctx, opts).unwrap_err();
        assert_eq!(error.exit, berth_core::error::Exit::Usage);
        assert!(
            error.message.contains("is not reached over ssh"),
            "{}",
            error.message
        );
        assert_eq!(engine.made(), before);
        assert!(ctx.store.load("dev").unwrap().is_none());
    }

    #[test]
    fn a_plan_out_of_order_fails_and_is_undone_instead_of_panicking() {
        let (dir, engine, ctx) = Ctx::with_fake_engine();
        ctx.cache_fake_binaries(&"v1.20.2".parse().unwrap(), &dir.path().join("build"));
        let before = engine.made();
        let opts = options(1, Some(Duration::from_millis(300)));
        let verb = plan::Verb {
            what: "the start of profile dev".into(),
            again: String::new(),
            undo: Some(plan::Undo {
                maker: "this start",
                kept: None,
                left_hint: String::new(),
                left: plan::left(|| async { Vec::new() }),
            }),
        };
        // The nodes before the state they are made from.
        use create::Create::*;
        let steps = [NodeImage, Binaries, Network, Nodes, State];
        let error = block_on(async {
            let mut new = create::NewCluster::check(&ctx, "dev", &opts, None)
                .await
                .unwrap();
            plan::execute(&ctx, verb, &steps, &mut new, std::future::pending).await
        })
        .unwrap_err();
        assert!(
            error.message.contains("before the state step"),
            "{}",
            error.message
        );
        assert_eq!(engine.made(), before, "the network was not taken back");
        assert!(engine.removed_any("network"), "no network was made");
    }

    #[test]
    fn an_interrupted_new_start_removes_what_it_made() {
        let (dir, engine, ctx) = Ctx::with_fake_engine();
        ctx.cache_fake_binaries(&"v1.20.2".parse().unwrap(), &dir.path().join("build"));
        engine.add(Kind::Container, "postgres", [("", ""); 0]);
        // The signal comes once the nodes run, while the start waits for
        // its API server; none comes during the undo.
        let worker = ctx.names_for("dev").container("dev-m02");
        let calls = std::sync::atomic::AtomicU32::new(0);
        let signal = || {
            let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            let (engine, worker) = (engine.clone(), worker.clone());
            async move {
                while !first || engine.state(&worker) != Some(berth_engine::ContainerState::Running)
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                "SIGINT"
            }
        };
        let opts = options(2, Some(Duration::from_secs(60)));
        let error = block_on(start(&ctx, "dev", &opts, signal)).unwrap_err();
        assert_eq!(
            error.exit,
            berth_core::error::Exit::Interrupted,
            "{}",
            error.message
        );
        assert!(error.message.contains("(SIGINT)"), "{}", error.message);
        assert!(
            engine.removed_any("dev-m02"),
            "the start was interrupted before it made its nodes"
        );
        assert_eq!(engine.made(), ["container postgres"]);
        assert!(
            ctx.store.load("dev").unwrap().is_none(),
            "its state is left"
        );
    }

    #[test]
    fn a_restart_puts_files_into_a_node_left_empty_and_starts_it() {
        let (dir, engine, ctx) = Ctx::with_fake_engine();
        ctx.cache_fake_binaries(&"v1.20.2".parse().unwrap(), &dir.path().join("build"));
        // A start killed between creating the node and filling it.
        let profile = existing_dev(&ctx, &engine, Some(berth_engine::ContainerState::Created));
        let before = engine.made();
        let restarted = start_dev(&ctx, StartOptions::default()).unwrap();
        assert_eq!(restarted.name, "dev");
        assert_eq!(engine.made(), before, "a restart made or removed something");
        let node = engine.resources.lock().unwrap()[0].clone();
        assert_eq!(node.name, profile.control_plane().container);
        assert_eq!(node.state, Some(berth_engine::ContainerState::Running));
        assert_eq!(
            *engine.uploads.lock().unwrap(),
            std::slice::from_ref(&node.id)
        );
        // Started again with its files in place, it gets none.
        engine.resources.lock().unwrap()[0].state = Some(berth_engine::ContainerState::Exited);
        start_dev(&ctx, StartOptions::default()).unwrap();
        assert_eq!(
            engine.uploads.lock().unwrap().len(),
            1,
            "files put in again"
        );
    }
}
