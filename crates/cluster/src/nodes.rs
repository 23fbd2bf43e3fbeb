//! A profile's nodes as containers: what each is created with and holds,
//! the routes between them, and adding or removing one.

use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use k8s_openapi::api::core::v1::{Node as NodeObject, Pod};
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams};

use super::plan::{self, Step};
use super::{Ctx, node_states, ready, state_of};
use berth_core::binaries::Version;
use berth_core::error::{Error, Result};
use berth_core::names::{LABEL_BINARIES, LABEL_NODE, LABEL_ROLE};
use berth_core::pki::{self, Leaf, Pki};
use berth_core::profile::{Node, Profile, Role};
use berth_engine::{BinariesVolume, NodeContainer, Resource};
use berth_node::command;
use berth_node::render::{self, K8S_DIR, NodeFile, NodeSpec, ROUTES_SCRIPT, Route};

/// Every certificate a node holds besides the CA's; workers also hold
/// kube-proxy's, which all nodes share.
fn leaves(profile: &Profile, node: &Node) -> Vec<Leaf> {
    let ip = node.ip.to_string();
    if node.is_control_plane() {
        let load_balancer = profile
            .load_balancer
            .then(|| profile.load_balancer_ip().to_string());
        let host = Some(profile.host_address())
            .filter(|a| !a.is_loopback())
            .map(|a| a.to_string());
        pki::control_plane_leaves(
            &node.name,
            &ip,
            load_balancer.as_deref(),
            host.as_deref(),
            node.index == 0,
        )
    } else {
        pki::node_leaves(&node.name, &ip)
    }
}

/// Issues the first control plane's certificates and those of `nodes`,
/// renewing any close to expiry; returns whether one was (re)issued.
pub fn ensure_pki(ctx: &Ctx, profile: &Profile, nodes: &[Node]) -> Result<bool> {
    let pki = Pki::new(&ctx.store.pki_dir(&profile.name));
    let mut all = leaves(profile, &profile.control_plane());
    if profile.load_balancer {
        all.push(pki::load_balancer_leaf());
    }
    if profile.lb_address.is_some() {
        all.push(pki::service_lb_leaf());
    }
    for leaf in nodes.iter().flat_map(|n| leaves(profile, n)) {
        if !all.iter().any(|l| l.file == leaf.file) {
            all.push(leaf);
        }
    }
    Ok(!pki.ensure(&all)?.is_empty())
}

fn container(
    ctx: &Ctx,
    profile: &Profile,
    node: &Node,
    binaries: String,
    network: String,
) -> NodeContainer {
    let names = ctx.names(profile);
    let mut labels = names.labels_created_by(&ctx.token);
    labels.insert(LABEL_NODE.into(), node.name.clone());
    labels.insert(LABEL_ROLE.into(), node.role().to_string());
    labels.insert(
        LABEL_BINARIES.into(),
        profile.kubernetes_version.to_string(),
    );
    NodeContainer {
        name: node.container.clone(),
        hostname: node.name.clone(),
        image: profile.node_image.clone(),
        labels,
        privilege: Some(profile.privilege),
        cgroup_v2: profile.cgroup_v2,
        var_volume: Some(node.volume.clone()),
        binaries: Some(BinariesVolume {
            name: binaries,
            writable: false,
        }),
        entrypoint: None,
        network: Some((network, node.ip.to_string())),
        host_network: false,
        // The first control plane publishes the API server, unless a load
        // balancer is in front of several, and the NodePorts asked for.
        api_port: (node.index == 0 && !profile.load_balancer).then_some(profile.api_port),
        ports: if node.index == 0 {
            profile
                .ports
                .iter()
                .map(|p| (p.host, p.node_port))
                .collect()
        } else {
            Vec::new()
        },
        published_on: profile.host_address(),
        cpus: profile.cpus,
        memory_mib: profile.memory_mib,
        mounts: profile.mounts.clone(),
    }
}

/// The Kubernetes version node container `container` was made with: its
/// label's, else (a container made before berth labelled it) the
/// profile's.
pub(super) fn version_of(profile: &Profile, container: &Resource) -> Version {
    container
        .labels
        .get(LABEL_BINARIES)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| profile.kubernetes_version.clone())
}

/// `profile` as node container `container` was made from: the version and
/// runtime of its binaries, which differ from the profile's in the middle
/// of an upgrade.
pub(super) fn as_made(ctx: &Ctx, profile: &Profile, container: &Resource) -> Result<Profile> {
    let runs = version_of(profile, container);
    if runs == profile.kubernetes_version {
        return Ok(profile.clone());
    }
    let runtime = ctx.cache.get(&runs)?.and_then(|m| m.runtime);
    Ok(Profile {
        kubernetes_version: runs,
        runtime,
        ..profile.clone()
    })
}

/// Creates a node's volume and container on the profile's network, puts
/// its files in and starts it; all of it labelled as made by this process.
/// `joining`: a control plane whose etcd member joins a running cluster.
pub async fn create(
    ctx: &Ctx,
    profile: &Profile,
    node: &Node,
    binaries: String,
    joining: bool,
) -> Result<()> {
    let id = make(ctx, profile, node, binaries, joining, None).await?;
    Ok(ctx.docker.start_container(&id).await?)
}

/// `create` without the start: returns the container's id. `var`, a tar of
/// a node's `/var` (a snapshot's), is unpacked into it before its files.
pub(crate) async fn make(
    ctx: &Ctx,
    profile: &Profile,
    node: &Node,
    binaries: String,
    joining: bool,
    var: Option<&std::path::Path>,
) -> Result<String> {
    let names = ctx.names(profile);
    ctx.docker
        .create_volume(&node.volume, &names.labels_created_by(&ctx.token))
        .await?;
    make_container(ctx, profile, node, binaries, joining, var).await
}

/// `make` over the node's `/var` volume as it is (an upgrade's).
pub(crate) async fn make_container(
    ctx: &Ctx,
    profile: &Profile,
    node: &Node,
    binaries: String,
    joining: bool,
    var: Option<&std::path::Path>,
) -> Result<String> {
    let network = super::network_id(ctx, profile).await?;
    let id = ctx
        .docker
        .create_container(&container(ctx, profile, node, binaries, network))
        .await?;
    if let Some(var) = var {
        ctx.docker.upload_file(&id, var).await?;
    }
    let pki = Pki::new(&ctx.store.pki_dir(&profile.name));
    ctx.docker
        .upload(&id, files_tar(profile, node, &pki, joining)?)
        .await?;
    let cached = super::registry_cache::node_files(ctx, profile)?;
    if !cached.is_empty() {
        ctx.docker.upload(&id, render::tar_of(&cached)).await?;
    }
    // Built before the nodes are made (start's and node add's binaries
    // steps), never once per node.
    let built =
        super::addon_images::cached(ctx, &profile.kubernetes_version, &profile.addons_on())?;
    if let Some(images) = super::addon_images::for_first_boot(&built, node.is_control_plane())? {
        ctx.docker.upload(&id, images).await?;
    }
    Ok(id)
}

/// The node's container and volume, among what the profile owns.
async fn node_resources(ctx: &Ctx, profile: &Profile, node: &Node) -> Result<Vec<Resource>> {
    Ok(ctx
        .docker
        .resources(&ctx.names(profile).filter())
        .await?
        .into_iter()
        .filter(|r| r.name == node.container || r.name == node.volume)
        .collect())
}

/// The routes from `node` to every other node's pods.
fn routes(profile: &Profile, node: &Node) -> Vec<Route> {
    profile
        .nodes()
        .into_iter()
        .filter(|other| other.name != node.name)
        .map(|other| Route {
            pod_cidr: other.pod_cidr,
            via: other.ip,
        })
        .collect()
}

/// Brings every node's routes in line with the profile's nodes, after one
/// was added or removed: applied at once in running nodes, at next boot in
/// the others.
pub async fn sync_routes(ctx: &Ctx, profile: &Profile) -> Result<()> {
    let states = node_states(ctx, profile).await?;
    try_join_all(states.iter().map(|(node, container)| async move {
        let script = render::routes_script(&routes(profile, node));
        let files = [NodeFile::File {
            path: ROUTES_SCRIPT.into(),
            content: script,
            mode: 0o755,
        }];
        ctx.docker
            .upload(&container.id, render::tar_of(&files))
            .await?;
        if !state_of(container).is_running() {
            return Ok(());
        }
        ctx.docker
            .exec(&container.id, &command::apply_routes())
            .await?
            .success()
            .map_err(|stderr| {
                Error::failure(format!(
                    "cannot set the pod routes of node {}: {stderr}",
                    node.name
                ))
                .with_hint(format!(
                    "`berth stop -p {0}` and `berth start -p {0}` set them again at boot",
                    profile.name
                ))
            })?;
        Ok::<_, Error>(())
    }))
    .await?;
    Ok(())
}

/// What node `node`'s files depend on; refused for a minor berth has no
/// row for (a profile of a newer berth).
pub(super) fn spec(profile: &Profile, node: &Node) -> Result<NodeSpec> {
    Ok(NodeSpec {
        node: node.name.clone(),
        role: node.role(),
        node_ip: node.ip,
        version: profile.kubernetes_version.clone(),
        row: berth_node::supported(&profile.kubernetes_version)?,
        privilege: profile.privilege,
        cgroup_root: format!("/berth-{}", node.name),
        cgroup_v2: profile.cgroup_v2,
        pod_cidr: node.pod_cidr,
        api_ip: profile.api_ip(),
        etcd: etcd_cluster(profile, node, false),
        load_balanced: profile.load_balancer,
        extra_config: profile.extra_config.clone(),
        feature_gates: profile.feature_gates.clone(),
        addons: profile.addons_on(),
        first: node.index == 0,
        service_lb: profile.lb_address.is_some(),
        ca_certs: profile.ca_certs.clone(),
        proxy: profile.proxy.as_ref().map(|p| {
            render::NodeProxy::new(p.http.clone(), p.https.clone(), &p.no_proxy, profile.subnet)
        }),
        registry: profile.registry.map(|r| (r.host(), profile.registry_ip())),
        runtime: profile.runtime.clone(),
        mtu: (!profile.engines.is_empty()).then_some(render::OVERLAY_MTU),
    })
}

/// The etcd members of a profile with several control planes, when `node`
/// is one of them; `joining` when it joins a cluster that runs.
fn etcd_cluster(profile: &Profile, node: &Node, joining: bool) -> Option<render::EtcdCluster> {
    (profile.load_balancer && node.is_control_plane()).then(|| render::EtcdCluster {
        members: profile
            .control_plane_nodes()
            .into_iter()
            .map(|n| (n.name, n.ip))
            .collect(),
        joining,
    })
}

/// The node's rendered files, certificates aside.
pub(super) fn rendered(profile: &Profile, node: &Node) -> Result<Vec<NodeFile>> {
    Ok(render::node_files(
        &spec(profile, node)?,
        &routes(profile, node),
    ))
}

fn files_tar(profile: &Profile, node: &Node, pki: &Pki, joining: bool) -> Result<Vec<u8>> {
    let mut files = render::node_files(
        &NodeSpec {
            etcd: etcd_cluster(profile, node, joining),
            ..spec(profile, node)?
        },
        &routes(profile, node),
    );
    let read = |f: &str| pki.read(f);
    let own = leaves(profile, node);
    let mut pki_files = vec!["ca.crt".to_string()];
    if node.is_control_plane() {
        pki_files.extend(
            [
                "ca.key",
                "sa.key",
                "sa.pub",
                berth_core::pki::FRONT_PROXY_CA_CRT,
            ]
            .map(String::from),
        );
    } else {
        pki_files.extend(["kube-proxy.crt", "kube-proxy.key"].map(String::from));
        if profile.has(berth_node::addons::Addon::Storage) {
            pki_files
                .extend(["storage-provisioner.crt", "storage-provisioner.key"].map(String::from));
        }
    }
    let mut pki_files: Vec<(String, String)> =
        pki_files.into_iter().map(|f| (f.clone(), f)).collect();
    for leaf in &own {
        for ext in ["crt", "key"] {
            pki_files.push((
                format!("{}.{ext}", leaf.file),
                format!("{}.{ext}", leaf.name),
            ));
        }
    }
    for (stored, name) in pki_files {
        let mode = if name.ends_with(".key") { 0o600 } else { 0o644 };
        files.push(NodeFile::File {
            path: format!("{K8S_DIR}/pki/{name}"),
            content: read(&stored)?,
            mode,
        });
    }
    // The control plane's components reach their own API server on the
    // node's loopback; kubelet and kube-proxy of the other nodes, and of
    // every node behind a load balancer, reach the API through the
    // profile's network: there, a kubelet registers through the first API
    // server that is ready instead of waiting for its own.
    let local = format!("https://127.0.0.1:{}", render::API_PORT);
    let network = format!("https://{}:{}", profile.api_ip(), render::API_PORT);
    let node_server = if node.is_control_plane() && !profile.load_balancer {
        &local
    } else {
        &network
    };
    let mut kubeconfigs = vec![
        (
            "kube-proxy.conf",
            "system:kube-proxy",
            "kube-proxy".to_string(),
            node_server,
        ),
        (
            "kubelet.conf",
            "kubelet",
            format!("kubelet-{}", node.name),
            node_server,
        ),
    ];
    if profile.has(berth_node::addons::Addon::Storage) {
        kubeconfigs.push((
            "storage.conf",
            berth_node::addons::STORAGE_USER,
            "storage-provisioner".to_string(),
            node_server,
        ));
    }
    if node.is_control_plane() {
        kubeconfigs.extend([
            (
                "admin.conf",
                "kubernetes-admin",
                "admin".to_string(),
                &local,
            ),
            (
                "controller-manager.conf",
                "system:kube-controller-manager",
                "controller-manager".to_string(),
                &local,
            ),
            (
                "scheduler.conf",
                "system:kube-scheduler",
                "scheduler".to_string(),
                &local,
            ),
        ]);
    }
    let ca = read("ca.crt")?;
    for (conf, user, leaf, server) in kubeconfigs {
        let content = render::kubeconfig(
            server,
            user,
            &ca,
            &read(&format!("{leaf}.crt"))?,
            &read(&format!("{leaf}.key"))?,
        );
        files.push(NodeFile::File {
            path: format!("{K8S_DIR}/{conf}"),
            content,
            mode: 0o600,
        });
    }
    Ok(render::tar_of(&files))
}

/// Writes a node's files, certificates included, into its container
/// `container` again.
pub async fn upload_files(
    ctx: &Ctx,
    profile: &Profile,
    node: &Node,
    container: &str,
) -> Result<()> {
    let pki = Pki::new(&ctx.store.pki_dir(&profile.name));
    ctx.docker
        .upload(container, files_tar(profile, node, &pki, false)?)
        .await?;
    Ok(())
}

/// The profile must be running to change its nodes: the routes and the
/// Node objects are changed live. With several control planes it runs
/// while any of them does, unless `first`: the first one must (it holds
/// the addons).
pub(super) async fn require_running(ctx: &Ctx, profile: &Profile, first: bool) -> Result<()> {
    let states = node_states(ctx, profile).await?;
    let state = state_of(&states[0].1);
    let another = || {
        profile.load_balancer
            && states
                .iter()
                .any(|(n, c)| n.is_control_plane() && state_of(c).is_running())
    };
    if state.is_running() || (!first && another()) {
        return Ok(());
    }
    Err(Error::usage(format!(
        "profile {} is not running (its first control plane is {})",
        profile.name,
        state.display().to_lowercase()
    ))
    .with_hint(format!(
        "`berth start -p {0}` (or `berth unpause -p {0}`) first",
        profile.name
    )))
}

/// `node add`: one more worker or control plane, each step beside what
/// takes it back, so that a node add that fails leaves the cluster as it
/// was. Once saved, the node is the profile's: waiting for it to be Ready
/// is not part of the plan, and a node that is late stays.
const ADD: [Add; 6] = [
    Add::Binaries,
    Add::Member,
    Add::Node,
    Add::Routes,
    Add::Balancer,
    Add::Save,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Add {
    /// The binaries volume of the profile's version. Undo: none, shared.
    Binaries,
    /// A control plane's etcd member, added before it starts. Undo: the
    /// member removed.
    Member,
    /// The node's certificates, container and volume. Undo: the container
    /// and volume.
    Node,
    /// Every node routes to the new node's pods, and it to theirs. Undo:
    /// the routes without it.
    Routes,
    /// A control plane's API server behind the load balancer. Undo: the
    /// load balancer without it.
    Balancer,
    /// The profile's state names the node. Undo: none, the last step.
    Save,
}

struct Adding {
    profile: Profile,
    node: Node,
    binaries: Option<String>,
    /// The running control plane etcd is changed through.
    etcd_through: Option<String>,
}

impl Adding {
    /// The profile as it was before the node.
    fn without(&self) -> Profile {
        let mut without = self.profile.clone();
        without.take_out(self.node.index);
        without
    }
}

impl Step<Adding> for Add {
    fn title(self, adding: &Adding) -> Option<String> {
        let node = &adding.node.name;
        match self {
            Add::Binaries => Some(format!(
                "Preparing the Kubernetes {} binaries",
                adding.profile.kubernetes_version
            )),
            Add::Member if adding.node.is_control_plane() => Some(format!("Adding {node} to etcd")),
            Add::Node if adding.node.is_control_plane() => {
                Some(format!("Creating control plane {node}"))
            }
            Add::Node => Some(format!("Creating node {node}")),
            _ => None,
        }
    }

    async fn run(self, ctx: &Ctx, adding: &mut Adding) -> Result<()> {
        let control_plane = adding.node.is_control_plane();
        match self {
            Add::Binaries => {
                let profile = &adding.profile;
                let volume = super::binaries::binaries_volume(ctx, profile).await?;
                let version = &profile.kubernetes_version;
                super::addon_images::ensure(ctx, version, &profile.addons_on()).await?;
                adding.binaries = Some(volume);
            }
            Add::Member if control_plane => {
                let through = super::etcd::running_control_plane(ctx, &adding.profile, None)
                    .await?
                    .id;
                super::etcd::add_member(ctx, &through, &adding.node).await?;
                adding.etcd_through = Some(through);
            }
            Add::Node => {
                let Adding {
                    profile,
                    node,
                    binaries,
                    ..
                } = adding;
                profile.insert(node);
                ensure_pki(ctx, profile, std::slice::from_ref(node))?;
                let binaries = plan::output(binaries, "the binaries step")?.clone();
                create(ctx, profile, node, binaries, control_plane).await?;
            }
            Add::Routes => sync_routes(ctx, &adding.profile).await?,
            Add::Balancer if control_plane => super::balancer::update(ctx, &adding.profile).await?,
            Add::Save => ctx.store.save(&adding.profile)?,
            Add::Member | Add::Balancer => {}
        }
        Ok(())
    }

    async fn undo(self, ctx: &Ctx, adding: &Adding) -> Result<()> {
        match self {
            Add::Binaries | Add::Save => {}
            Add::Member => {
                if let Some(through) = &adding.etcd_through {
                    super::etcd::remove_member(ctx, through, &adding.node).await?;
                }
            }
            Add::Node => {
                let all = berth_engine::Kind::ALL;
                super::remove::sweep_created(ctx, &adding.profile.name, &all).await?;
            }
            Add::Routes => sync_routes(ctx, &adding.without()).await?,
            Add::Balancer => {
                if adding.node.is_control_plane() {
                    super::balancer::update(ctx, &adding.without()).await?;
                }
            }
        }
        Ok(())
    }
}

/// Adds a node of `role` (see `ADD`) and waits for it to be Ready. A
/// failed or interrupted (`interrupted` resolves) add is undone: the node's
/// etcd member, container, routes and balancer entry are taken back.
pub async fn add<F, Fut>(
    ctx: &Ctx,
    profile: Profile,
    role: Role,
    wait: Option<Duration>,
    interrupted: F,
) -> Result<Node>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
    if role == Role::ControlPlane && !profile.load_balancer {
        return Err(Error::usage(format!(
            "profile {} has one control plane and no load balancer to put another behind",
            profile.name
        ))
        .with_hint(format!(
            "control planes are added to a profile started with --control-planes 3 or 5: \
             `berth delete -p {0}` and `berth start -p {0} --control-planes 3`",
            profile.name
        )));
    }
    if let Some(to) = &profile.upgrading {
        return Err(Error::usage(format!(
            "profile {} is being upgraded to {to}; a node is added once every node runs it",
            profile.name
        ))
        .with_hint(format!(
            "`berth upgrade -p {} --kubernetes-version {to}` finishes the upgrade",
            profile.name
        )));
    }
    require_running(ctx, &profile, false).await?;
    let node = profile.next_node(role).ok_or_else(|| {
        Error::usage(format!(
            "profile {} has the most nodes berth gives a profile ({})",
            profile.name,
            berth_core::profile::MAX_NODES
        ))
        .with_hint("delete nodes it no longer needs with `berth node delete`")
    })?;
    super::claims::ensure_names_free(
        ctx,
        &ctx.names(&profile),
        &[(node.container.clone(), node.volume.clone())],
        false,
    )
    .await?;
    let mut adding = Adding {
        profile,
        node,
        binaries: None,
        etcd_through: None,
    };
    let name = adding.profile.name.clone();
    let verb = plan::Verb {
        what: format!("adding node {} to profile {name}", adding.node.name),
        again: format!("`berth node add -p {name}` adds a node again"),
        undo: Some(plan::Undo {
            maker: "this node add",
            kept: None,
            left_hint: format!(
                "`berth node delete -p {name} {}` removes what is left",
                adding.node.name
            ),
            left: plan::left(|| super::remove::created(ctx, &name)),
        }),
    };
    plan::execute(ctx, verb, &ADD, &mut adding, &interrupted).await?;
    let Adding { profile, node, .. } = adding;
    tokio::select! {
        ready = ready::wait_ready(ctx, &profile, Some(std::slice::from_ref(&node)), None, wait) => ready?,
        signal = interrupted() => return Err(Error::interrupted(format!(
            "the wait for node {} was interrupted ({signal}); it is part of profile {name}",
            node.name
        ))
        .with_hint(format!("`berth status -p {name}` shows whether it became Ready"))),
    }
    Ok(node)
}

/// `node delete`, each step beside what takes it back while the node can
/// still come back. Once a control plane's etcd member is gone it cannot:
/// a delete that fails past that point is finished by running it again.
const DELETE: [Delete; 5] = [
    Delete::Drain,
    Delete::Member,
    Delete::Object,
    Delete::Container,
    Delete::Save,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Delete {
    /// Cordoned and its pods evicted (a lost, stopped node's without
    /// waiting for them). Undo: uncordoned, unless its member is gone.
    Drain,
    /// A control plane off the load balancer, its API server stopped
    /// first (once its etcd member is gone, that API server fails what it
    /// is asked), then its member removed. Undo: back on the load balancer
    /// with its API server, unless its member is gone.
    Member,
    /// Its Node object deleted.
    Object,
    /// Its container and volume removed.
    Container,
    /// The profile's state without it, and its routes off the others.
    Save,
}

struct Deleting {
    profile: Profile,
    without: Profile,
    node: Node,
    /// Its container runs (else it was lost).
    running: bool,
    member_gone: bool,
}

impl Step<Deleting> for Delete {
    fn title(self, deleting: &Deleting) -> Option<String> {
        let name = &deleting.node.name;
        match self {
            Delete::Drain => Some(format!("Draining node {name}")),
            Delete::Member if deleting.node.is_control_plane() => {
                Some(format!("Removing {name} from etcd"))
            }
            Delete::Object => Some(format!("Removing node {name}")),
            _ => None,
        }
    }

    async fn run(self, ctx: &Ctx, deleting: &mut Deleting) -> Result<()> {
        let Deleting {
            profile,
            without,
            node,
            running,
            ..
        } = &*deleting;
        let name = &node.name;
        match self {
            Delete::Drain => {
                let client = ctx.client(profile).await?;
                drain(&client, name, *running, true).await?;
            }
            Delete::Member if node.is_control_plane() => {
                super::balancer::update(ctx, without).await?;
                if *running {
                    let stop = command::stop("kube-apiserver");
                    ctx.docker.exec(&node.container, &stop).await?;
                }
                let through = super::etcd::running_control_plane(ctx, profile, Some(node)).await?;
                super::etcd::remove_member(ctx, &through.id, node).await?;
                deleting.member_gone = true;
            }
            Delete::Member => {}
            Delete::Object => {
                // A new connection: the one drained through may end at
                // that API server.
                let nodes: Api<NodeObject> = Api::all(ctx.client(profile).await?);
                delete_object(&nodes, name, node.is_control_plane()).await?;
            }
            Delete::Container => {
                let resources = node_resources(ctx, profile, node).await?;
                super::remove::remove_in_order(ctx, resources).await?;
            }
            Delete::Save => {
                ctx.store.save(without)?;
                sync_routes(ctx, without).await?;
            }
        }
        Ok(())
    }

    async fn undo(self, ctx: &Ctx, deleting: &Deleting) -> Result<()> {
        if deleting.member_gone {
            return Ok(());
        }
        let node = &deleting.node;
        match self {
            Delete::Drain => {
                let client = ctx.client(&deleting.profile).await?;
                uncordon(&client, &node.name).await?;
            }
            Delete::Member if node.is_control_plane() => {
                if deleting.running {
                    let start = command::start("kube-apiserver");
                    ctx.docker.exec(&node.container, &start).await?;
                }
                super::balancer::update(ctx, &deleting.profile).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// `node delete` (see `DELETE`): a failed or interrupted one before the
/// node's etcd member is gone gives the node back to the cluster.
pub async fn delete<F, Fut>(ctx: &Ctx, profile: Profile, name: &str, interrupted: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
    let node = profile.node(name).ok_or_else(|| {
        Error::profile(format!("profile {} has no node {name}", profile.name)).with_hint(format!(
            "`berth node list -p {}` shows its nodes",
            profile.name
        ))
    })?;
    if node.index == 0 {
        return Err(Error::usage(format!(
            "{name} is the first control plane of profile {}; the cluster cannot lose it",
            profile.name
        ))
        .with_hint(format!(
            "it holds the cluster's addons and the profile's name; `berth delete -p {}` removes the whole cluster",
            profile.name
        )));
    }
    require_running(ctx, &profile, false).await?;
    if node.is_control_plane() {
        super::etcd::check_quorum_without(ctx, &profile, &node, "deleting").await?;
    }
    let running = node_states(ctx, &profile)
        .await?
        .iter()
        .any(|(n, c)| n.name == node.name && state_of(c).is_running());
    let mut without = profile.clone();
    without.take_out(node.index);
    let verb = plan::Verb {
        what: format!("the delete of node {name} of profile {}", profile.name),
        again: format!("`berth node delete -p {} {name}` carries on", profile.name),
        undo: Some(plan::Undo {
            maker: "this node delete",
            kept: None,
            left_hint: format!(
                "`berth node delete -p {} {name}` deletes it again",
                profile.name
            ),
            // Its undo only puts the node back to work: nothing is made.
            left: plan::left(|| async { Vec::new() }),
        }),
    };
    let mut deleting = Deleting {
        profile,
        without,
        node,
        running,
        member_gone: false,
    };
    plan::execute(ctx, verb, &DELETE, &mut deleting, interrupted).await
}

/// Deletes the Node object `name`; etcd may be electing a leader after a
/// control plane's member left, so that is asked again for a while.
async fn delete_object(nodes: &Api<NodeObject>, name: &str, control_plane: bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match nodes.delete(name, &DeleteParams::default()).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(_) if control_plane && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(Error::failure(format!(
                    "cannot delete the Node object {name}: {e}"
                ))
                .with_hint(
                    "`berth status` shows whether the API server is ready; then delete the node again",
                ));
            }
        }
    }
}

/// Lets node `name` take pods again.
pub(super) async fn uncordon(client: &kube::Client, name: &str) -> Result<()> {
    let nodes: Api<NodeObject> = Api::all(client.clone());
    let uncordon = serde_json::json!({"spec": {"unschedulable": null}});
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&uncordon))
        .await
        .map_err(|e| {
            Error::failure(format!("cannot uncordon node {name}: {e}"))
                .with_hint(format!("`berth kubectl -- uncordon {name}` does it"))
        })?;
    Ok(())
}

/// Cordons the node and evicts its pods as `kubectl drain` does, leaving
/// DaemonSet pods and static pods, and pods no controller makes again
/// unless `bare` (a node that goes for good), waiting up to a minute for
/// them to go when `wait` (a node that does not run never lets them go).
pub(super) async fn drain(client: &kube::Client, name: &str, wait: bool, bare: bool) -> Result<()> {
    let failed = |what: &str, e: kube::Error| {
        Error::failure(format!("cannot {what} node {name}: {e}")).with_hint(
            "`berth status` shows whether the API server is ready; then run the command again",
        )
    };
    let nodes: Api<NodeObject> = Api::all(client.clone());
    let cordon = serde_json::json!({"spec": {"unschedulable": true}});
    // A control plane that was just lost may still get connections from
    // the load balancer for the two seconds its checks take to notice:
    // those fail to connect, and the next try goes to another.
    let connect_deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match nodes
            .patch(name, &PatchParams::default(), &Patch::Merge(&cordon))
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(status)) => {
                return Err(failed("cordon", kube::Error::Api(status)));
            }
            Err(_) if Instant::now() < connect_deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(failed("cordon", e)),
        }
    }
    let all: Api<Pod> = Api::all(client.clone());
    let on_node = ListParams::default().fields(&format!("spec.nodeName={name}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods: Vec<Pod> = all
            .list(&on_node)
            .await
            .map_err(|e| failed("list the pods of", e))?
            .items
            .into_iter()
            .filter(|p| !stays(p) && (bare || controlled(p)))
            .collect();
        if pods.is_empty() || Instant::now() > deadline {
            return Ok(());
        }
        for pod in &pods {
            let (Some(ns), Some(pod_name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
                continue;
            };
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            if pod.metadata.deletion_timestamp.is_some() {
                // An evicted pod is given a final phase once its containers
                // are gone (kubelet does so since v1.26); only the object is
                // left then, which would stay until the pod garbage
                // collector finds the node gone.
                if finished(pod) {
                    let _ = api
                        .delete(pod_name, &DeleteParams::default().grace_period(0))
                        .await;
                }
                continue;
            }
            // A disruption budget refusing now (429) is asked again on the
            // next round; the node goes after the deadline regardless.
            let _ = api.evict(pod_name, &EvictParams::default()).await;
        }
        if !wait {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Pods a drain leaves: those of DaemonSets and static (mirror) pods.
fn stays(pod: &Pod) -> bool {
    let by_daemonset = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet");
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    by_daemonset || mirror
}

/// A controller makes the pod again when it is evicted.
pub(super) fn controlled(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true))
}

/// The pod's containers have ended for good.
fn finished(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::Kind;

    #[test]
    fn a_node_made_during_an_upgrade_is_rendered_for_its_own_version() {
        let (_dir, _engine, ctx, profile) = crate::testing::running(vec![1]);
        let resource = |labels: &[(&str, &str)]| Resource {
            kind: Kind::Container,
            id: "id".into(),
            name: profile.nodes()[1].container.clone(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            state: None,
            created: None,
        };
        // Made before berth labelled its containers: the profile's version.
        assert_eq!(as_made(&ctx, &profile, &resource(&[])).unwrap(), profile);
        let same = profile.kubernetes_version.to_string();
        assert_eq!(
            as_made(&ctx, &profile, &resource(&[(LABEL_BINARIES, &same)])).unwrap(),
            profile
        );
        // Already on the version an upgrade takes it to.
        let newer = resource(&[(LABEL_BINARIES, "v1.37.2")]);
        let made = as_made(&ctx, &profile, &newer).unwrap();
        assert_eq!(made.kubernetes_version.to_string(), "v1.37.2");
        assert_eq!(made.nodes(), profile.nodes());
        assert_eq!(version_of(&profile, &newer).to_string(), "v1.37.2");
    }

    #[test]
    fn a_node_add_that_fails_takes_back_its_node_and_leaves_the_cluster() {
        let (dir, engine, ctx) = Ctx::with_fake_engine();
        let profile = Profile {
            network_id: Some("network-1".into()),
            ..Profile::example("dev")
        };
        ctx.store.save(&profile).unwrap();
        ensure_pki(&ctx, &profile, &[]).unwrap();
        ctx.cache_fake_binaries(&profile.kubernetes_version, &dir.path().join("build"));
        // The running cluster, made by an earlier start.
        let names = ctx.names(&profile);
        let labels = names.labels_created_by("earlier-start");
        engine.add(Kind::Container, &profile.control_plane().container, &labels);
        engine.add(Kind::Volume, &names.var_volume("dev"), &labels);
        engine.add(Kind::Network, &names.network(), &labels);
        let before = engine.names();

        // The fake runs no commands in nodes: setting the pod routes fails
        // once the new node runs, as it would on a node that cannot be
        // routed.
        let result = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(add(
                &ctx,
                profile.clone(),
                Role::Worker,
                None,
                crate::testing::never,
            ));
        assert!(result.is_err());
        let after = engine.made();
        assert_eq!(
            after, before,
            "the new node was not taken back, or more was"
        );
        assert!(engine.removed_any("dev-m02"), "the new node was never made");
        let saved = ctx.store.load("dev").unwrap().unwrap();
        assert!(saved.workers.is_empty(), "the failed node was saved");
    }

    /// A running `dev` with one worker, its Node objects in a fake API,
    /// and on the worker: a ReplicaSet's pod, a DaemonSet's, a bare one;
    /// on the control plane a ReplicaSet's.
    fn cluster_with_a_worker() -> (
        tempfile::TempDir,
        std::sync::Arc<berth_engine::fake::FakeEngine>,
        std::sync::Arc<crate::testing::FakeApi>,
        Ctx,
        Profile,
    ) {
        let (dir, engine, mut ctx, profile) = crate::testing::running(vec![1]);
        let api = std::sync::Arc::new(crate::testing::FakeApi::default());
        ctx.api = Some(api.clone());
        for node in profile.nodes() {
            api.add(
                "nodes",
                serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node.name}}),
            );
        }
        let worker = &profile.nodes()[1].name;
        for (name, node, owner) in [
            ("web-1", worker.as_str(), Some("ReplicaSet")),
            ("proxy-1", worker, Some("DaemonSet")),
            ("bare", worker, None),
            ("web-2", "dev", Some("ReplicaSet")),
        ] {
            let owners: Vec<_> = owner
                .map(|kind| serde_json::json!({"apiVersion": "apps/v1", "kind": kind, "name": "o", "uid": "u", "controller": true}))
                .into_iter()
                .collect();
            api.add(
                "pods",
                serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "default", "ownerReferences": owners},
                    "spec": {"nodeName": node, "containers": []}}),
            );
        }
        // Its routes go off the control plane.
        engine.answer(&command::apply_routes().to_string(), "");
        (dir, engine, api, ctx, profile)
    }

    #[test]
    fn a_node_delete_drains_the_worker_and_removes_its_object_container_and_state() {
        let (_dir, engine, api, ctx, profile) = cluster_with_a_worker();
        let worker = profile.nodes()[1].clone();
        let control_plane = profile.control_plane().container;
        crate::testing::block_on(delete(&ctx, profile, &worker.name, crate::testing::never))
            .unwrap();
        // Cordoned first, then its pods evicted: the DaemonSet's stays
        // (kubectl drain's rule), the bare one goes as the node goes.
        let requests = api.requests();
        let cordon = requests
            .iter()
            .position(|r| r == &format!("PATCH /api/v1/nodes/{}", worker.name));
        let evicted = requests
            .iter()
            .position(|r| r.ends_with("/pods/web-1/eviction"));
        assert!(cordon.is_some() && cordon < evicted, "{requests:?}");
        assert!(api.get("pods", "web-1").is_none() && api.get("pods", "bare").is_none());
        assert!(
            api.get("pods", "proxy-1").is_some(),
            "the DaemonSet's pod was evicted"
        );
        assert!(
            api.get("pods", "web-2").is_some(),
            "a pod of another node was evicted"
        );
        assert!(api.get("nodes", &worker.name).is_none());
        assert!(api.get("nodes", "dev").is_some());
        let left = engine.names();
        assert!(
            !left
                .iter()
                .any(|r| r.ends_with(&format!(" {}", worker.container))),
            "{left:?}"
        );
        assert!(
            left.contains(&format!("container {control_plane}")),
            "{left:?}"
        );
        assert!(ctx.store.load("dev").unwrap().unwrap().workers.is_empty());
    }

    #[test]
    fn a_node_delete_whose_object_is_refused_gives_the_node_back() {
        let (_dir, engine, api, ctx, profile) = cluster_with_a_worker();
        let worker = profile.nodes()[1].clone();
        api.fail("DELETE", &format!("/api/v1/nodes/{}", worker.name), 500);
        let before = engine.names();
        let error = crate::testing::block_on(delete(
            &ctx,
            profile.clone(),
            &worker.name,
            crate::testing::never,
        ))
        .unwrap_err();
        assert!(
            error.to_string().contains("cannot delete the Node object"),
            "{error}"
        );
        // Drained, then uncordoned by the undo: it takes pods again.
        let node = api.get("nodes", &worker.name).unwrap();
        assert!(node["spec"]["unschedulable"].is_null(), "{node}");
        assert_eq!(
            api.requests()
                .iter()
                .filter(|r| *r == &format!("PATCH /api/v1/nodes/{}", worker.name))
                .count(),
            2
        );
        assert_eq!(
            engine.names(),
            before,
            "the worker's container or volume went"
        );
        assert_eq!(ctx.store.load("dev").unwrap().unwrap(), profile);
    }

    #[test]
    fn a_drain_waits_for_the_pods_a_controller_makes_again_and_leaves_bare_ones_of_a_node_that_comes_back()
     {
        let (_dir, _engine, api, ctx, profile) = cluster_with_a_worker();
        let worker = profile.nodes()[1].name.clone();
        crate::testing::block_on(async {
            let client = ctx.client(&profile).await.unwrap();
            drain(&client, &worker, true, false).await.unwrap();
        });
        assert!(api.get("pods", "web-1").is_none());
        assert!(
            api.get("pods", "bare").is_some(),
            "a pod nothing makes again was evicted"
        );
        assert!(api.get("pods", "proxy-1").is_some());
        assert_eq!(
            api.get("nodes", &worker).unwrap()["spec"]["unschedulable"],
            true
        );
    }
}
