//! What `start` does: create a new profile's cluster, or start an existing
//! one again.

use futures_util::future::try_join_all;

use super::{
    Ctx, DEFAULT_VERSION, StartOptions, node_states, nodes, now, ready, state_of, write_kubeconfig,
};
use crate::binaries::{Manifest, Version};
use crate::docker::{EngineFacts, Kind, NodeContainer, Privilege, Resource};
use crate::error::{Error, Result};
use crate::names::Names;
use crate::node::image::{self, Context};
use crate::node::render;
use crate::profile::{Node, Profile};

/// The version to run, downloaded into the cache when it is not there.
fn resolve_version(ctx: &Ctx, opts: &StartOptions) -> Result<Manifest> {
    let version = match &opts.version {
        Some(v) => v.clone(),
        None => match ctx.cache.list()?.into_iter().map(|m| m.version).max() {
            Some(newest) => newest,
            None => DEFAULT_VERSION.parse().expect("valid default"),
        },
    };
    if version.major != 1 || !(render::OLDEST_MINOR..=render::NEWEST_MINOR).contains(&version.minor)
    {
        return Err(Error::usage(format!(
            "Kubernetes {version} is not supported: berth runs v1.{}.x to v1.{}.x",
            render::OLDEST_MINOR,
            render::NEWEST_MINOR
        ))
        .with_hint("pass --kubernetes-version with a supported version; `berth cache list` shows the cached ones"));
    }
    let manifest = match ctx.cache.get(&version)? {
        Some(manifest) => manifest,
        None => download(ctx, &version, opts.binary_mirror.as_deref())?,
    };
    if !manifest.defects().is_empty() {
        return Err(Error::usage(format!(
            "the cached Kubernetes {version} cannot make a cluster that works: its binaries are {}",
            crate::binaries::describe(manifest.defects())
        ))
        .with_hint(crate::error::rebuild_hint(&version)));
    }
    Ok(manifest)
}

/// Fetches a version that is not cached yet into the cache.
fn download(ctx: &Ctx, version: &Version, mirror: Option<&str>) -> Result<Manifest> {
    let base = mirror.unwrap_or(crate::binaries::OFFICIAL_RELEASES);
    let step = ctx
        .ui
        .step(format!("Downloading Kubernetes {version} from {base}"));
    let detail = |line: &str| step.detail(line);
    // The download blocks on its own threads; the runtime has others.
    let runtime = crate::binaries::runtime_for_minor(version.minor);
    let manifest =
        tokio::task::block_in_place(|| ctx.cache.download(version, base, &runtime, &detail))
            .map_err(|e| download_error(ctx, version, e))?;
    step.done();
    Ok(manifest)
}

/// A failed download, said with the version and where it would be cached.
fn download_error(ctx: &Ctx, version: &Version, e: crate::binaries::Error) -> Error {
    use crate::binaries::Error as B;
    match e {
        B::Download { .. } | B::Checksum { .. } => Error::failure(format!(
            "Kubernetes {version} is not in the cache ({}) and cannot be downloaded: {e}",
            ctx.cache.dir(version).display()
        ))
        .with_hint(crate::error::DOWNLOAD_HINT.replace("VERSION", &version.to_string())),
        other => other.into(),
    }
}

pub(super) async fn create(ctx: &Ctx, name: &str, opts: &StartOptions) -> Result<Profile> {
    let ui = ctx.ui;
    let names = ctx.names_for(name);
    let nodes = opts.nodes.unwrap_or(1);
    for port in &opts.ports {
        if std::net::TcpListener::bind(("127.0.0.1", port.host)).is_err() {
            return Err(Error::usage(format!(
                "port {} on 127.0.0.1 is taken, so NodePort {} cannot be published there",
                port.host, port.node_port
            ))
            .with_hint("pick another host port in --ports, or stop what listens there"));
        }
    }
    let manifest = resolve_version(ctx, opts)?;
    let version = manifest.version.clone();

    let facts = ctx.docker.facts().await?;
    check_disk(&facts, nodes)?;
    let step = ui.step("Preparing the node image");
    let node_image = match &opts.image {
        Some(image) if !ctx.docker.image_exists(image).await? => {
            return Err(Error::usage(format!(
                "the node image {image} is not in the Docker engine"
            ))
            .with_hint("build it with `berth node-image build`, pull it, or leave --image out"));
        }
        Some(image) => image.clone(),
        None => {
            let context = Context::embedded();
            let base = image::default_base(&*ctx.docker).await?;
            image::ensure(&*ctx.docker, &context, &context.image(), &base, |l| {
                step.detail(l)
            })
            .await?;
            context.image()
        }
    };
    step.done();

    // Each may need a short-lived container from the node image (the first
    // time on an engine, or for a new volume); together they cost one.
    let step = ui.step(format!("Preparing the Kubernetes {version} binaries"));
    let (privilege, binaries) = tokio::try_join!(
        privilege(ctx, &facts, &node_image),
        ensure_binaries(ctx, &manifest, &node_image),
    )?;
    let cgroup_v2 = facts.cgroup_v2;
    if let Some(note) = crate::node::render::cgroup_v1_note(&version, cgroup_v2) {
        ui.info(format!("note: this host runs cgroup v1, {note}"));
    }
    step.done();

    // Held until the nodes hold their addresses and ports.
    let allocating = crate::lock::allocate(&ctx.home, ctx.lock_timeout, ui)?;
    let step = ui.step("Creating the network");
    let network = create_network(ctx, &names).await?;
    let api_port = free_port()?;
    let registry = match opts.registry {
        true => Some(crate::profile::Registry {
            port: loop {
                let port = free_port()?;
                if port != api_port {
                    break port;
                }
            },
        }),
        false => None,
    };
    step.done();

    let step = ui.step("Generating certificates");
    let profile = Profile {
        name: name.into(),
        kubernetes_version: version.clone(),
        created: now(),
        node_image,
        privilege,
        cgroup_v2,
        api_port,
        subnet: network.subnet,
        node_ip: network.first_ip,
        cpus: opts.cpus,
        memory_mib: opts.memory_mib,
        kubeconfig: ctx.kubeconfig.clone(),
        previous_context: None,
        workers: (1..nodes).collect(),
        ports: opts.ports.clone(),
        extra_config: opts.extra_config.clone(),
        feature_gates: opts.feature_gates.clone(),
        no_dns: opts.no_dns,
        no_storage: opts.no_storage,
        registry,
        mounts: opts.mounts.clone(),
        home_id: names.home_id().map(str::to_string),
        network_id: Some(network.id),
        runtime: manifest.runtime.clone(),
    };
    ctx.store.save(&profile)?;
    let all = profile.nodes();
    nodes::ensure_pki(ctx, &profile, &all)?;
    step.done();

    // Every node boots at once; workers' kubelets wait for the API server.
    let step = ui.step(match all.len() {
        1 => "Creating the node".to_string(),
        n => format!("Creating {n} nodes"),
    });
    try_join_all(
        all.iter()
            .map(|node| nodes::create(ctx, &profile, node, binaries.clone())),
    )
    .await?;
    super::registry::create(ctx, &profile).await?;
    drop(allocating);
    step.done();

    let profile = write_kubeconfig(ctx, profile, !opts.keep_context)?;
    ready::wait_ready(ctx, &profile, None, None, opts.wait).await?;
    Ok(profile)
}

/// Free space a node needs on the engine's disk at first: its /var, the
/// images it imports and its logs.
const NODE_DISK_MIB: u64 = 1024;

/// Refuses a start that would run the engine's disk full, where that disk
/// is this machine's (a remote engine's is not checked).
/// `BERTH_MIN_FREE_MIB` replaces the need per node.
fn check_disk(facts: &EngineFacts, nodes: u32) -> Result<()> {
    let Some(root) = &facts.root_dir else {
        return Ok(());
    };
    let Some(free_mib) = free_mib(std::path::Path::new(&root)) else {
        return Ok(());
    };
    let per_node = std::env::var("BERTH_MIN_FREE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(NODE_DISK_MIB);
    let need = per_node * u64::from(nodes);
    if free_mib < need {
        return Err(Error::failure(format!(
                "only {free_mib} MiB are free on {root}, where the Docker engine keeps its data; \
                 {nodes} node(s) need about {need} MiB"
            ),
        )
        .with_hint("free space there (`docker system prune` removes unused images and volumes), then start again"));
    }
    Ok(())
}

/// Whether the engine starts privileged nodes, probed once per engine
/// setup and remembered under `$BERTH_HOME/engines/`: the probe starts a
/// container, most of a second of every start otherwise.
async fn privilege(ctx: &Ctx, facts: &EngineFacts, image: &str) -> Result<Privilege> {
    let path = ctx
        .home
        .join("engines")
        .join(format!("{}.privilege", facts.privilege_key));
    let known = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    if let Some(privilege) = known {
        return Ok(privilege);
    }
    let purpose = "privilege-probe";
    let probe = NodeContainer::helper(
        crate::names::helper(purpose, &ctx.token),
        image,
        crate::names::helper_labels(&ctx.home, purpose, &ctx.token),
    );
    let privilege = ctx.docker.privilege(&probe).await?;
    // Only a speed-up: a cache that cannot be written is probed again.
    if let Some(dir) = path.parent()
        && crate::pki::create_private_dir(dir).is_ok()
    {
        let json = serde_json::to_vec(&privilege).expect("privilege serialises");
        let _ = crate::pki::write_atomic(&path, &json, 0o600);
    }
    Ok(privilege)
}

/// Free MiB on the file system of `path`, when it is on this machine.
fn free_mib(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a statvfs to fill.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64 / (1024 * 1024))
}

/// The name of the volume of the profile's binaries, made again from the
/// cache (or a download) should it be gone.
pub(super) async fn binaries_volume(ctx: &Ctx, profile: &Profile) -> Result<String> {
    let version = &profile.kubernetes_version;
    let manifest = match ctx.cache.get(version)? {
        Some(manifest) => manifest,
        None => download(ctx, version, None)?,
    };
    // A cluster that exists is started anyway, so its data can be reached.
    if !manifest.defects().is_empty() {
        ctx.ui.info(format!(
            "warning: the cached Kubernetes {version} binaries are {}; {}",
            crate::binaries::describe(manifest.defects()),
            crate::error::rebuild_hint(version)
        ));
    }
    ensure_binaries(ctx, &manifest, &profile.node_image).await
}

/// The volume of `manifest`'s binaries, filled by a helper of this
/// process's.
async fn ensure_binaries(ctx: &Ctx, manifest: &Manifest, image: &str) -> Result<String> {
    let filler = crate::binaries::Filler {
        image: image.to_string(),
        home: ctx.home.clone(),
        token: ctx.token.clone(),
    };
    crate::binaries::ensure_volume(&*ctx.docker, &ctx.cache, manifest, &filler).await
}

pub(super) async fn restart(
    ctx: &Ctx,
    mut profile: Profile,
    opts: &StartOptions,
) -> Result<Profile> {
    let conflicts: Vec<String> = [
        opts.version
            .as_ref()
            .filter(|v| **v != profile.kubernetes_version)
            .map(|v| {
                format!(
                    "--kubernetes-version {v} (it runs {})",
                    profile.kubernetes_version
                )
            }),
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
        (opts.no_dns && !profile.no_dns).then(|| "--no-dns".to_string()),
        (opts.no_storage && !profile.no_storage).then(|| "--no-storage".to_string()),
        (opts.registry && profile.registry.is_none()).then(|| {
            "--registry (`berth registry enable` adds one to a running profile)".to_string()
        }),
        (!opts.mounts.is_empty() && opts.mounts != profile.mounts).then(|| "--mount".to_string()),
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
    let states = node_states(ctx, &profile).await?;
    let control_plane = state_of(&states[0].1);
    if control_plane.is_running() {
        ctx.ui.info(format!("Profile {} is running", profile.name));
    } else if control_plane.is_paused() {
        return Err(Error::usage(format!("profile {} is paused", profile.name))
            .with_hint(format!("`berth unpause -p {}`", profile.name)));
    }
    let stopped: Vec<&(Node, Resource)> = states
        .iter()
        .filter(|(_, container)| !state_of(container).is_running())
        .collect();
    let mut since = None;
    if !stopped.is_empty() {
        since = Some(now() as i64);
        let step = ctx.ui.step(match stopped.as_slice() {
            [(node, _)] => format!("Starting node {}", node.name),
            all => format!("Starting {} nodes", all.len()),
        });
        let all = profile.nodes();
        // Leaf certificates close to expiry are renewed on start.
        let renewed = nodes::ensure_pki(ctx, &profile, &all)?;
        try_join_all(stopped.iter().map(|(node, container)| async {
            // A start killed between creating a node and filling it left
            // the node without its files: they are put in now.
            let config = format!("{}/kubelet.yaml", render::K8S_DIR);
            if renewed || !ctx.docker.file_exists(&container.id, &config).await? {
                nodes::upload_files(ctx, &profile, node, &container.id).await?;
            }
            Ok::<_, Error>(ctx.docker.start_container(&container.id).await?)
        }))
        .await?;
        step.done();
    }
    super::registry::follow_nodes(ctx, &profile, true).await?;
    profile = write_kubeconfig(ctx, profile, !opts.keep_context)?;
    ready::wait_ready(ctx, &profile, None, since, opts.wait).await?;
    Ok(profile)
}

/// The profile's network as created.
struct Network {
    id: String,
    subnet: String,
    /// The control plane's address: the first after the gateway.
    first_ip: std::net::Ipv4Addr,
}

/// The first free /24 in 172.30.0.0/16 that the engine accepts, labelled
/// as made by this start. Engines before API 1.44 accept a second network
/// of a name: one made at the same moment by another berth is found
/// afterwards, and this start's own is taken back.
async fn create_network(ctx: &Ctx, names: &Names) -> Result<Network> {
    let name = names.network();
    let labels = names.labels_created_by(&ctx.token);
    let used = ctx.docker.used_subnets().await?;
    for third in 0..=255u8 {
        let subnet = format!("172.30.{third}.0/24");
        if used.contains(&subnet) {
            continue;
        }
        let Some(id) = ctx.docker.create_network(&name, &subnet, &labels).await? else {
            continue;
        };
        let same_name = ctx.docker.named(Kind::Network, &name).await?;
        if let Some(other) = same_name.iter().find(|n| n.id != id) {
            let ours = same_name.iter().find(|n| n.id == id).cloned();
            if let Some(ours) = ours {
                ctx.docker.remove(&ours).await?;
            }
            return Err(taken(names, other));
        }
        return Ok(Network {
            id,
            subnet,
            first_ip: std::net::Ipv4Addr::new(172, 30, third, 2),
        });
    }
    Err(
        Error::engine("no free /24 subnet in 172.30.0.0/16 for the profile's network").with_hint(
            "delete profiles or Docker networks you no longer need (`docker network ls`)",
        ),
    )
}

/// Refuses, before anything is made, a start or node add whose engine
/// names (the nodes' containers and volumes, and the network when
/// `network`) are taken, naming who has each. Names this very profile's
/// resources hold are taken too: they are what a cut-off start left.
pub(super) async fn ensure_names_free(
    ctx: &Ctx,
    names: &Names,
    nodes: &[String],
    network: bool,
) -> Result<()> {
    let mut wanted: Vec<(Kind, String)> = Vec::new();
    for node in nodes {
        wanted.push((Kind::Container, names.container(node)));
        wanted.push((Kind::Volume, names.var_volume(node)));
    }
    if network {
        wanted.push((Kind::Network, names.network()));
    }
    let found = try_join_all(
        wanted
            .iter()
            .map(|(kind, name)| ctx.docker.named(*kind, name)),
    )
    .await?;
    match found.into_iter().flatten().next() {
        Some(resource) => Err(taken(names, &resource)),
        None => Ok(()),
    }
}

/// A name berth wanted is held by `resource`: who holds it, and what to do.
fn taken(names: &Names, resource: &Resource) -> Error {
    let profile = names.profile();
    let owner = crate::names::owner(&resource.labels);
    let hint = if names.owns(&resource.labels) {
        format!(
            "it was left by a start of profile {profile} that was cut off; `berth delete -p {profile}` removes it"
        )
    } else {
        match (
            resource.labels.get(crate::names::LABEL_HOME),
            resource.labels.get(crate::names::LABEL_PROFILE),
        ) {
            (Some(home), Some(other)) => format!(
                "use another profile name, or delete that cluster where it was made: \
                 `BERTH_HOME={home} berth delete -p {other}`"
            ),
            _ => format!(
                "use another profile name, or remove the {kind} if nothing needs it \
                 (`docker {kind} rm {name}`)",
                kind = resource.kind,
                name = resource.name
            ),
        }
    };
    Error::usage(format!(
        "cannot make profile {profile}: the {resource} exists already and belongs to {owner}"
    ))
    .with_hint(hint)
}

/// A port on 127.0.0.1 that nothing listens on now, kept by the profile.
pub(super) fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::failure(format!("cannot find a free port on 127.0.0.1: {e}")))?;
    Ok(listener.local_addr().expect("bound").port())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why a new two-node profile `dev` cannot be made, if it cannot.
    fn refusal(ctx: &Ctx) -> Option<Error> {
        let names = ctx.names_for("dev");
        let nodes = ["dev".to_string(), "dev-m02".to_string()];
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(ensure_names_free(ctx, &names, &nodes, true))
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
                (crate::names::LABEL_HOME, "/other/home"),
                (crate::names::LABEL_PROFILE, "web"),
            ],
        );
        let error = refusal(&ctx).expect("refused");
        assert_eq!(error.exit, crate::error::Exit::Usage);
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
        let error = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(restart(&ctx, profile, &StartOptions::default()))
            .unwrap_err();
        assert_eq!(error.exit, crate::error::Exit::Profile);
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
