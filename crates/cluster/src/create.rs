//! What `start` does: create a new profile's cluster, or start an existing
//! one again.

use futures_util::future::try_join_all;

use super::plan::{self, Step};
use super::{
    Ctx, StartOptions, node_states, nodes, rbac_seed, ready, remove, state_of, write_kubeconfig,
};
use berth_core::binaries::Manifest;
use berth_core::error::{Error, Result};
use berth_core::kubeconfig;
use berth_core::names::Names;
use berth_core::node_image::{self, Context};
use berth_core::profile::{Node, Profile};
use berth_engine::{EngineFacts, Kind, NetworkMade, Privilege, Resource};
use berth_node::net::Cidr;
use berth_node::now;
use berth_node::render;

/// A new profile's start: each step beside what takes it back when a later
/// one fails or the start is interrupted. What is made carries this
/// process's token, so an undo removes only this start's own.
pub(super) const CREATE: [Create; 8] = [
    Create::NodeImage,
    Create::Binaries,
    Create::Network,
    Create::State,
    Create::Nodes,
    Create::Forward,
    Create::Kubeconfig,
    Create::Ready,
];

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Create {
    /// The node image, built when missing. Undo: none, images are shared.
    NodeImage,
    /// The engine's privilege and the binaries volume. Undo: none, the
    /// volume is shared by profiles of a version; helpers go after every
    /// start.
    Binaries,
    /// The network, with the API (and registry) port. Undo: the network.
    Network,
    /// The profile's state and certificates. Undo: the state directory.
    State,
    /// Every node (and the registry) booted at once. Undo: their
    /// containers and volumes.
    Nodes,
    /// With `--ssh-forward`, the ssh that forwards the ports here, before
    /// anything asks the API server. Undo: that ssh.
    Forward,
    /// The kubeconfig entry. Undo: the entry, and the previous current
    /// context made current again.
    Kubeconfig,
    /// Waiting for the nodes to be Ready. Undo: none.
    Ready,
}

/// What a new profile's start knows, filled in as its steps run.
pub(super) struct NewCluster<'a> {
    name: String,
    opts: &'a StartOptions,
    names: Names,
    manifest: Manifest,
    facts: EngineFacts,
    /// The current context before this start, made current again by undo.
    previous_context: Option<String>,
    node_image: Option<String>,
    privilege: Option<Privilege>,
    binaries: Option<String>,
    /// Held from choosing the network and ports until the nodes hold them.
    allocating: Option<berth_core::lock::Held>,
    network: Option<Network>,
    api_port: u16,
    registry: Option<berth_core::profile::Registry>,
    pub(super) profile: Option<Profile>,
}

/// Refuses what the engine's host cannot give: a host port that is taken
/// (checked where the port is this machine's: an engine here, or a
/// forward over ssh), a host folder (which an engine elsewhere cannot
/// see), a forward over ssh of an engine not reached over ssh.
fn check_host(facts: &EngineFacts, opts: &StartOptions) -> Result<()> {
    if opts.ssh_forward && !facts.endpoint.starts_with("ssh://") {
        return Err(Error::usage(format!(
            "--ssh-forward forwards over the ssh that reaches the engine, and the engine at {} \
             is not reached over ssh",
            facts.endpoint
        ))
        .with_hint(
            "name the engine as ssh://USER@HOST (--engine or DOCKER_HOST), or leave --ssh-forward out",
        ));
    }
    let host = facts.host_address;
    if !host.is_loopback() {
        if let Some(mount) = opts.mounts.first() {
            return Err(Error::usage(format!(
                "--mount {} cannot be: the engine at {} runs on another machine ({host}), \
                 which does not have this machine's folders",
                mount.host.display(),
                facts.endpoint
            ))
            .with_hint(
                "put the files in the cluster another way (`berth kubectl -- cp`, an image with \
                 them), or start on an engine of this machine",
            ));
        }
        if !opts.ssh_forward {
            return Ok(());
        }
    }
    let host = std::net::Ipv4Addr::LOCALHOST;
    for port in &opts.ports {
        // A port below 1024 that berth may not bind, the engine may.
        let taken = std::net::TcpListener::bind((host, port.host))
            .is_err_and(|e| e.kind() != std::io::ErrorKind::PermissionDenied);
        if taken {
            return Err(Error::usage(format!(
                "port {} on {host} is taken, so NodePort {} cannot be published there",
                port.host, port.node_port
            ))
            .with_hint("pick another host port in --ports, or stop what listens there"));
        }
    }
    Ok(())
}

impl<'a> NewCluster<'a> {
    /// Checks what can be checked before anything is made: names someone
    /// else has, host ports, the version (downloaded when not cached) and
    /// the engine's free disk where it is this machine's (another's is
    /// checked once the node image is there to read it with).
    pub(super) async fn check(
        ctx: &Ctx,
        name: &str,
        opts: &'a StartOptions,
        previous_context: Option<String>,
    ) -> Result<Self> {
        check_counts(opts)?;
        let names = ctx.names_for(name);
        let nodes: Vec<(String, String)> = (0..opts.node_count())
            .map(|i| {
                let node = berth_core::profile::node_name(name, i);
                (names.container(&node), names.var_volume(&node))
            })
            .collect();
        super::claims::ensure_names_free(ctx, &names, &nodes, true).await?;
        // Before anything is fetched for an engine that cannot run nodes.
        let facts = ctx.docker.facts().await?;
        facts.fit_for_nodes()?;
        check_host(&facts, opts)?;
        let manifest = super::binaries::resolve_version(ctx, opts)?;
        super::host::check_disk(ctx.docker.flavour(), facts.disk.as_ref(), opts.node_count())?;
        Ok(NewCluster {
            name: name.into(),
            opts,
            names,
            manifest,
            facts,
            previous_context,
            node_image: None,
            privilege: None,
            binaries: None,
            allocating: None,
            network: None,
            api_port: 0,
            registry: None,
            profile: None,
        })
    }

    fn node_image(&self) -> Result<&str> {
        plan::output(&self.node_image, "the node image step").map(String::as_str)
    }

    fn profile(&self) -> Result<&Profile> {
        plan::output(&self.profile, "the state step")
    }
}

impl Step<NewCluster<'_>> for Create {
    fn title(self, new: &NewCluster) -> Option<String> {
        match self {
            // It shows the build's output on its line.
            Create::NodeImage | Create::Kubeconfig | Create::Ready => None,
            Create::Binaries => Some(format!(
                "Preparing the Kubernetes {} binaries",
                new.manifest.version
            )),
            Create::Network => Some("Creating the network".into()),
            Create::Forward => new
                .opts
                .ssh_forward
                .then(|| "Forwarding the cluster's ports over ssh".into()),
            Create::State => Some("Generating certificates".into()),
            Create::Nodes => Some(
                match (new.opts.node_count(), new.opts.control_plane_count()) {
                    (1, _) => "Creating the node".to_string(),
                    (n, 1) => format!("Creating {n} nodes"),
                    (n, c) => {
                        format!("Creating {n} nodes ({c} control planes) and the load balancer")
                    }
                },
            ),
        }
    }

    async fn run(self, ctx: &Ctx, new: &mut NewCluster<'_>) -> Result<()> {
        match self {
            Create::NodeImage => {
                let step = ctx.ui.step("Preparing the node image");
                new.node_image = Some(match &new.opts.image {
                    Some(image) => {
                        // Every engine of the cluster runs nodes of it.
                        for engine in ctx.docker.members() {
                            if !engine.image_exists(image).await? {
                                return Err(Error::usage(format!(
                                    "the node image {image} is not in {}",
                                    engine.flavour()
                                ))
                                .with_hint(
                                    "build it with `berth node-image build`, pull it, or leave --image out",
                                ));
                            }
                        }
                        image.clone()
                    }
                    None => default_node_image(ctx, &step).await?,
                });
                step.done();
            }
            Create::Binaries => {
                // Each may need a short-lived container from the node image
                // (the first time on an engine, or for a new volume);
                // together they cost one.
                let image = new.node_image()?.to_string();
                if new.facts.disk.is_none() {
                    let disk = super::host::remote_disk(ctx, &new.facts, &image).await?;
                    super::host::check_disk(
                        ctx.docker.flavour(),
                        disk.as_ref(),
                        new.opts.node_count(),
                    )?;
                }
                let (privilege, binaries) = tokio::try_join!(
                    super::host::privilege(ctx, &new.facts, &image),
                    super::binaries::ensure_binaries(ctx, &new.manifest, &image),
                )?;
                // Built now, should the cache lack them, so that the nodes
                // get them as they are made.
                let version = &new.manifest.version;
                super::addon_images::ensure(ctx, version, &new.opts.addons).await?;
                new.privilege = Some(privilege);
                new.binaries = Some(binaries);
                if let Some(note) = render::cgroup_v1_note(version, new.facts.cgroup_v2) {
                    ctx.ui
                        .info(format!("note: this host runs cgroup v1, {note}"));
                }
            }
            Create::Network => {
                new.allocating = Some(berth_core::lock::allocate(
                    &ctx.home,
                    ctx.lock_timeout,
                    ctx.ui,
                )?);
                let image = new.node_image()?.to_string();
                new.network = Some(create_network(ctx, &new.names, &image).await?);
                new.api_port = super::host::free_port()?;
                if new.opts.registry {
                    new.registry = Some(berth_core::profile::Registry {
                        port: loop {
                            let port = super::host::free_port()?;
                            if port != new.api_port {
                                break port;
                            }
                        },
                    });
                }
            }
            Create::State => {
                let network = plan::output(&new.network, "the network step")?;
                let opts = new.opts;
                let engine = match opts.ssh_forward {
                    true => berth_core::profile::EngineRef::forwarded(&new.facts),
                    false => berth_core::profile::EngineRef::of(&new.facts),
                };
                let profile = Profile {
                    name: new.name.clone(),
                    kubernetes_version: new.manifest.version.clone(),
                    created: now(),
                    node_image: new.node_image()?.to_string(),
                    privilege: *plan::output(&new.privilege, "the binaries step")?,
                    cgroup_v2: new.facts.cgroup_v2,
                    api_port: new.api_port,
                    subnet: network.subnet,
                    node_ip: network.first_ip,
                    cpus: opts.cpus,
                    memory_mib: opts.memory_mib,
                    kubeconfig: ctx.kubeconfig.clone(),
                    previous_context: None,
                    control_planes: (1..opts.control_plane_count()).collect(),
                    workers: (opts.control_plane_count()..opts.node_count()).collect(),
                    load_balancer: opts.control_plane_count() > 1,
                    ports: opts.ports.clone(),
                    extra_config: opts.extra_config.clone(),
                    feature_gates: opts.feature_gates.clone(),
                    addons: opts.addons_on(),
                    registry: new.registry,
                    lb_address: Some(opts.lb_address.unwrap_or(engine.host_address)),
                    ca_certs: opts.ca_certs.clone(),
                    proxy: opts.proxy.clone(),
                    engine: Some(engine),
                    engines: opts.engines.clone(),
                    node_engines: opts.node_engines.clone(),
                    mounts: opts.mounts.clone(),
                    home_id: new.names.home_id().map(str::to_string),
                    network_id: Some(network.id.clone()),
                    runtime: new.manifest.runtime.clone(),
                    upgrading: None,
                    node_names: None,
                };
                ctx.store.save(&profile)?;
                nodes::ensure_pki(ctx, &profile, &profile.nodes())?;
                new.profile = Some(profile);
            }
            Create::Nodes => {
                // Every node boots at once; workers' kubelets wait for the
                // API server.
                let profile = new.profile()?;
                super::registry_cache::join(ctx, profile).await?;
                let binaries = plan::output(&new.binaries, "the binaries step")?.clone();
                let all = profile.nodes().into_iter().map(|node| {
                    let binaries = binaries.clone();
                    async move { nodes::create(ctx, profile, &node, binaries, false).await }
                });
                tokio::try_join!(
                    try_join_all(all),
                    super::balancer::create(ctx, profile),
                    super::service_lb::create(ctx, profile, binaries.clone()),
                )?;
                super::registry::create(ctx, profile).await?;
                new.allocating = None;
            }
            Create::Forward => super::ssh_forward::ensure(&ctx.store, new.profile()?).await?,
            Create::Kubeconfig => {
                let make_current = !new.opts.keep_context;
                write_kubeconfig(
                    ctx,
                    plan::output_mut(&mut new.profile, "the state step")?,
                    make_current,
                )?;
            }
            Create::Ready => {
                let profile = new.profile()?;
                let ready = ready::wait_ready(ctx, profile, None, None, new.opts.wait);
                match new.opts.wait.filter(|_| rbac_seed::applies(profile)) {
                    Some(wait) => {
                        let path = ctx.cache.rbac_seed(&new.manifest.version);
                        let client = ctx.client(profile).await?;
                        rbac_seed::around(client, &path, wait, ready).await?;
                    }
                    None => ready.await?,
                }
            }
        }
        Ok(())
    }

    async fn undo(self, ctx: &Ctx, new: &NewCluster<'_>) -> Result<()> {
        match self {
            Create::NodeImage | Create::Binaries | Create::Ready => Ok(()),
            Create::Network => {
                remove::sweep_created(ctx, &new.name, &[Kind::Network]).await?;
                Ok(())
            }
            Create::State => Ok(ctx.store.remove(&new.name)?),
            Create::Forward => {
                if let Some(profile) = &new.profile {
                    super::ssh_forward::end(&ctx.store, profile).await;
                }
                Ok(())
            }
            Create::Nodes => {
                remove::sweep_created(ctx, &new.name, &[Kind::Container, Kind::Volume]).await?;
                Ok(())
            }
            Create::Kubeconfig => {
                if ctx.kubeconfig.exists() {
                    let context = new.names.context();
                    let restore = new.previous_context.as_deref();
                    kubeconfig::update(&ctx.kubeconfig, |c| {
                        kubeconfig::remove(c, &context, restore)
                    })?;
                }
                Ok(())
            }
        }
    }
}

/// Refuses numbers of nodes and control planes berth does not make.
fn check_counts(opts: &StartOptions) -> Result<()> {
    let (nodes, control_planes) = (opts.node_count(), opts.control_plane_count());
    if ![1, 3, 5].contains(&control_planes) {
        return Err(Error::usage(format!(
            "--control-planes {control_planes}: berth makes 1, 3 or 5 control planes"
        ))
        .with_hint(
            "etcd needs a majority of its members: 2 survive the loss of none and 4 of one, as 1 and 3 do; pass 3 (or 5)",
        ));
    }
    if nodes < control_planes {
        return Err(Error::usage(format!(
            "--nodes {nodes} is fewer than the {control_planes} control planes"
        ))
        .with_hint(format!(
            "--nodes counts every node, control planes included: --nodes {} gives {control_planes} control planes and 1 worker",
            control_planes + 1
        )));
    }
    Ok(())
}

/// Starting an existing profile again. A failed restart leaves the
/// profile as it was: no step takes anything back.
pub(super) const RESTART: [Restart; 5] = [
    Restart::Check,
    Restart::Nodes,
    Restart::Beside,
    Restart::Kubeconfig,
    Restart::Ready,
];

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Restart {
    /// Refuses settings other than the profile's, and a paused profile.
    Check,
    /// Starts the nodes that do not run, their files renewed or restored.
    Nodes,
    /// The registry and the load balancer follow the nodes.
    Beside,
    Kubeconfig,
    Ready,
}

/// What a restart knows, filled in as its steps run.
pub(super) struct Restarted<'a> {
    pub(super) profile: Profile,
    opts: &'a StartOptions,
    /// The nodes whose containers do not run.
    stopped: Vec<(Node, Resource)>,
    /// When the first node was started again: older Ready reports do not count.
    since: Option<i64>,
}

impl<'a> Restarted<'a> {
    pub(super) fn new(profile: Profile, opts: &'a StartOptions) -> Self {
        Restarted {
            profile,
            opts,
            stopped: Vec::new(),
            since: None,
        }
    }
}

impl Step<Restarted<'_>> for Restart {
    fn title(self, restart: &Restarted) -> Option<String> {
        match (self, restart.stopped.as_slice()) {
            (Restart::Nodes, []) => None,
            (Restart::Nodes, [(node, _)]) => Some(format!("Starting node {}", node.name)),
            (Restart::Nodes, all) => Some(format!("Starting {} nodes", all.len())),
            _ => None,
        }
    }

    async fn run(self, ctx: &Ctx, restart: &mut Restarted<'_>) -> Result<()> {
        let profile = &restart.profile;
        match self {
            Restart::Check => {
                check_settings(profile, restart.opts)?;
                let states = node_states(ctx, profile).await?;
                let control_plane = state_of(&states[0].1);
                if control_plane.is_running() {
                    ctx.ui.info(format!("Profile {} is running", profile.name));
                } else if control_plane.is_paused() {
                    return Err(Error::usage(format!("profile {} is paused", profile.name))
                        .with_hint(format!("`berth unpause -p {}`", profile.name)));
                }
                if let Some(to) = &profile.upgrading {
                    ctx.ui.info(format!(
                        "note: the upgrade of profile {0} to {to} has not ended; \
                         `berth upgrade -p {0} --kubernetes-version {to}` carries it on",
                        profile.name
                    ));
                }
                restart.stopped = states
                    .into_iter()
                    .filter(|(_, container)| !state_of(container).is_running())
                    .collect();
            }
            Restart::Nodes => {
                if restart.stopped.is_empty() {
                    return Ok(());
                }
                restart.since = Some(now() as i64);
                // Leaf certificates close to expiry are renewed on start.
                let renewed = nodes::ensure_pki(ctx, profile, &profile.nodes())?;
                try_join_all(restart.stopped.iter().map(|(node, container)| async {
                    // A start killed between creating a node and filling it
                    // left the node without its files: they are put in now.
                    let config = format!("{}/kubelet.yaml", render::K8S_DIR);
                    if renewed || !ctx.docker.file_exists(&container.id, &config).await? {
                        let as_made = nodes::as_made(ctx, profile, container)?;
                        nodes::upload_files(ctx, &as_made, node, &container.id).await?;
                    }
                    Ok::<_, Error>(ctx.docker.start_container(&container.id).await?)
                }))
                .await?;
            }
            Restart::Beside => super::follow_nodes(ctx, profile, true).await?,
            Restart::Kubeconfig => {
                let make_current = !restart.opts.keep_context;
                write_kubeconfig(ctx, &mut restart.profile, make_current)?;
            }
            Restart::Ready => {
                // Nodes that kept running are Ready already; their next
                // report may be a minute away.
                let started: Vec<Node> = restart.stopped.iter().map(|(n, _)| n.clone()).collect();
                let nodes = (!started.is_empty()).then_some(&started[..]);
                ready::wait_ready(ctx, profile, nodes, restart.since, restart.opts.wait).await?
            }
        }
        Ok(())
    }
}

/// Refuses start options that differ from the profile's settings, naming
/// each.
fn check_settings(profile: &Profile, opts: &StartOptions) -> Result<()> {
    let conflicts: Vec<String> = [
        opts.version
            .as_ref()
            .filter(|v| **v != profile.kubernetes_version)
            .map(|v| {
                format!(
                    "--kubernetes-version {v} (it runs {}; `berth upgrade -p {} --kubernetes-version {v}` upgrades it in place)",
                    profile.kubernetes_version, profile.name
                )
            }),
        opts.lb_address
            .filter(|a| Some(*a) != profile.lb_address)
            .map(|a| format!("--lb-address {a}")),
        opts.cpus
            .filter(|c| Some(*c) != profile.cpus)
            .map(|c| format!("--cpus {c}")),
        opts.memory_mib
            .filter(|m| Some(*m) != profile.memory_mib)
            .map(|m| format!("--memory {m}m")),
        opts.image
            .as_ref()
            .filter(|i| **i != profile.node_image)
            .map(|i| format!("--image {i}")),
        (!opts.ports.is_empty() && opts.ports != profile.ports).then(|| "--ports".to_string()),
        (!opts.extra_config.is_empty() && opts.extra_config != profile.extra_config)
            .then(|| "--extra-config".to_string()),
        (!opts.feature_gates.is_empty() && opts.feature_gates != profile.feature_gates)
            .then(|| "--feature-gates".to_string()),
        opts.addons_off.iter().find(|a| profile.has(**a)).map(|a| {
            format!("{a} off (`berth addons disable {a}` turns it off in a running profile)")
        }),
        (opts.registry && profile.registry.is_none()).then(|| {
            "--registry (`berth registry enable` adds one to a running profile)".to_string()
        }),
        (!opts.mounts.is_empty() && opts.mounts != profile.mounts).then(|| "--mount".to_string()),
        (!opts.ca_certs.is_empty() && opts.ca_certs != profile.ca_certs)
            .then(|| "--ca-cert".to_string()),
        (opts.proxy_flag && opts.proxy != profile.proxy).then(|| "--proxy".to_string()),
        (opts.ssh_forward && !profile.engine.as_ref().is_some_and(|e| e.ssh_forward))
            .then(|| "--ssh-forward".to_string()),
        opts.addons.iter().find(|a| !profile.has(**a)).map(|a| {
            format!("--addons {a} (`berth addons enable {a}` adds it to a running profile)")
        }),
        opts.control_planes
            .filter(|n| *n as usize != profile.control_plane_nodes().len())
            .map(|n| {
                format!(
                    "--control-planes {n} (`berth node add --control-plane` and `node delete` change them)"
                )
            }),
        opts.nodes
            .filter(|n| *n as usize != profile.nodes().len())
            .map(|n| {
                format!("--nodes {n} (`berth node add` and `node delete` change a cluster's nodes)")
            }),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !conflicts.is_empty() {
        return Err(Error::usage(format!(
            "profile {} exists with other settings than {}",
            profile.name,
            conflicts.join(", ")
        ))
        .with_hint(format!(
            "start it without them, or `berth delete -p {}` first",
            profile.name
        )));
    }
    Ok(())
}

/// The profile's network as created.
struct Network {
    id: String,
    subnet: Cidr,
    /// The control plane's address: the first after the gateway.
    first_ip: std::net::Ipv4Addr,
}

/// The node image berth builds from its own context, built when the
/// engine lacks it, its progress shown under `step`.
pub(crate) async fn default_node_image(ctx: &Ctx, step: &berth_core::ui::Step) -> Result<String> {
    let context = Context::embedded();
    // On every engine of the cluster: each runs nodes of it.
    for engine in ctx.docker.members() {
        let base = node_image::default_base(engine).await?;
        node_image::ensure(engine, &context, &context.image(), &base, |l| {
            step.detail(l)
        })
        .await?;
    }
    Ok(context.image())
}

/// A network `name` of berth's on the first free /24 in 172.30.0.0/16:
/// its id and subnet, or another's network that has the name.
pub(crate) async fn network_on_free_subnet(
    ctx: &Ctx,
    name: &str,
    labels: &std::collections::HashMap<String, String>,
    image: &str,
) -> Result<std::result::Result<(String, Cidr), Resource>> {
    let asked: Vec<String> = (0..=255u8)
        .map(|third| Cidr::slash24(172, 30, third).to_string())
        .collect();
    match ctx.docker.make_network(name, labels, &asked, image).await? {
        NetworkMade::Made { id, subnet } => {
            let subnet: Cidr = subnet.parse().map_err(|e| {
                Error::engine(format!("the engine made the network on {subnet}: {e}"))
            })?;
            Ok(Ok((id, subnet)))
        }
        NetworkMade::NameTaken(other) => Ok(Err(other)),
        NetworkMade::NoneFree => Err(Error::engine(format!(
            "no free /24 subnet in 172.30.0.0/16 for the network {name}"
        ))
        .with_hint(format!(
            "delete profiles or networks you no longer need (`{} network ls`)",
            ctx.docker.flavour().cli()
        ))),
    }
}

/// The profile's network, labelled as made by this start.
async fn create_network(ctx: &Ctx, names: &Names, image: &str) -> Result<Network> {
    let labels = names.labels_created_by(&ctx.token);
    match network_on_free_subnet(ctx, &names.network(), &labels, image).await? {
        Ok((id, subnet)) => Ok(Network {
            id,
            subnet,
            first_ip: subnet.host(2),
        }),
        Err(other) => Err(super::claims::taken(ctx, names, &other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why a new two-node profile `dev` cannot be made, if it cannot.
    fn refusal(ctx: &Ctx) -> Option<Error> {
        let names = ctx.names_for("dev");
        let nodes = ["dev", "dev-m02"].map(|n| (names.container(n), names.var_volume(n)));
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(crate::claims::ensure_names_free(ctx, &names, &nodes, true))
            .err()
    }

    #[test]
    fn a_start_whose_names_are_taken_is_refused_naming_the_owner() {
        let (_dir, engine, ctx) = Ctx::with_fake_engine();
        let names = ctx.names_for("dev");
        assert!(refusal(&ctx).is_none(), "free names refused");

        // Another home's profile holds the worker's volume name.
        engine.add(
            Kind::Volume,
            &names.var_volume("dev-m02"),
            [
                (berth_core::names::LABEL_HOME, "/other/home"),
                (berth_core::names::LABEL_PROFILE, "web"),
            ],
        );
        let error = refusal(&ctx).expect("refused");
        assert_eq!(error.exit, berth_core::error::Exit::Usage);
        assert!(
            error
                .message
                .contains("profile web of the berth home /other/home")
        );
        assert!(
            error
                .hint
                .unwrap()
                .contains("BERTH_HOME=/other/home berth delete -p web")
        );

        // Something not berth's holds the network's name.
        let (_dir, engine, ctx) = Ctx::with_fake_engine();
        let names = ctx.names_for("dev");
        engine.add(Kind::Network, &names.network(), [("", ""); 0]);
        let error = refusal(&ctx).expect("refused");
        assert!(error.message.contains("something not made by berth"));
        assert!(
            error
                .hint
                .unwrap()
                .contains(&format!("docker network rm {}", names.network()))
        );

        // A cut-off start of this very profile left its container.
        let (_dir, engine, ctx) = Ctx::with_fake_engine();
        let names = ctx.names_for("dev");
        engine.add(
            Kind::Container,
            &names.container("dev"),
            names.labels_created_by("killed-start"),
        );
        let error = refusal(&ctx).expect("refused");
        assert!(
            error
                .hint
                .unwrap()
                .contains("`berth delete -p dev` removes it")
        );
    }

    #[test]
    fn a_profile_whose_node_is_gone_is_not_started_but_named_broken() {
        let (_dir, engine, ctx) = Ctx::with_fake_engine();
        let profile = Profile {
            workers: vec![1],
            ..Profile::example("dev")
        };
        // The control plane is there; the worker's container is gone.
        engine.add(
            Kind::Container,
            &profile.control_plane().container,
            ctx.names(&profile).labels(),
        );
        let before = engine.names();
        let opts = StartOptions::default();
        let mut restart = Restarted::new(profile, &opts);
        let error = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(super::super::plan::run(
                &ctx,
                &RESTART,
                &mut restart,
                &mut Vec::new(),
            ))
            .unwrap_err();
        assert_eq!(error.exit, berth_core::error::Exit::Profile);
        assert!(
            error
                .message
                .contains("its node container berth-dev-m02 is gone"),
            "{}",
            error.message
        );
        assert!(error.hint.unwrap().contains("berth delete -p dev"));
        assert_eq!(engine.names(), before, "a broken profile was changed");
    }
}
