//! The lifecycle of a profile's cluster: start (create or start again),
//! stop, pause, unpause, delete, and what status reads. Each plan is a list
//! of steps shown with their timings.

pub mod dns;
pub mod health;
mod nodes;
mod ready;

pub use nodes::{add as add_node, delete as delete_node};
pub use ready::{api_ready, client};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::try_join_all;

use crate::binaries::{Cache, Manifest, Version};
use crate::docker::{Docker, EngineFacts, Privilege};
use crate::error::{Error, Exit, Result};
use crate::kubeconfig::{self, Entry};
use crate::node::image::{self, Context};
use crate::node::render;
use crate::pki::Pki;
use crate::profile::{Node, Profile, Store};
use crate::settings::{ExtraFlag, Port};
use crate::ui::Ui;

/// The version `start` uses when none is given and none is cached.
pub const DEFAULT_VERSION: &str = "v1.34.1";

pub struct Ctx {
    pub home: PathBuf,
    pub lock_timeout: Duration,
    pub docker: Docker,
    pub store: Store,
    pub cache: Cache,
    pub ui: Ui,
    pub kubeconfig: PathBuf,
}

#[derive(Debug, Clone)]
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
    /// Nodes of a new cluster, the control plane included (default 1).
    pub nodes: Option<u32>,
    pub ports: Vec<Port>,
    pub extra_config: Vec<ExtraFlag>,
    pub feature_gates: BTreeMap<String, bool>,
    pub no_dns: bool,
}

/// Labels of every resource of a profile. The home label tells whose
/// berth state the profile belongs to, so `delete --all` sweeps orphans of
/// its own home only, never another user's or test's clusters.
fn labels(ctx: &Ctx, profile: &str) -> HashMap<String, String> {
    HashMap::from([
        ("io.berth".into(), "true".into()),
        ("io.berth.profile".into(), profile.into()),
        ("io.berth.home".into(), ctx.home.display().to_string()),
    ])
}

fn network(profile: &str) -> String {
    format!("berth-{profile}")
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `start`: creates the profile's cluster, or starts it again. A new
/// profile's start is all or nothing: when it fails, or `interrupted`
/// resolves (a signal, named), everything it made is removed and the
/// kubeconfig's current context is what it was, unless `keep_on_failure`;
/// `interrupted` resolving again stops that cleanup and names what is left.
/// A failed restart leaves the profile as it was.
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
    let fresh = existing.is_none();
    // A kubeconfig berth cannot parse is refused before anything is made.
    let previous = kubeconfig::current_context(&kubeconfig::read(&ctx.kubeconfig)?);
    let outcome = tokio::select! {
        result = async {
            match existing {
                Some(profile) => restart(ctx, profile, opts).await,
                None => create(ctx, name, opts).await,
            }
        } => result,
        signal = interrupted() => Err(Error::new(
            Exit::Interrupted,
            format!("the start of profile {name} was interrupted ({signal})"),
        )
        .with_hint(format!("`berth start -p {name}` starts it again"))),
    };
    let error = match outcome {
        Ok(profile) => return Ok(profile),
        Err(error) => error,
    };
    // Requests the engine got before the cut still complete there: give
    // them a moment, so that what they make is removed too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = remove_helpers(ctx).await;
    if !fresh {
        return Err(error);
    }
    if opts.keep_on_failure {
        ctx.ui.info(format!(
            "Kept what this start made (--keep-on-failure); `berth delete -p {name}` removes it"
        ));
        return Err(error);
    }
    let step = ctx
        .ui
        .step("Removing what this start made (Ctrl-C again stops at once)");
    tokio::select! {
        removed = remove_everything(ctx, name, &ctx.kubeconfig, previous.as_deref()) => {
            removed?;
            step.done();
            Err(error)
        }
        _ = interrupted() => {
            drop(step);
            let left = traces(ctx, name).await.unwrap_or_default();
            Err(Error::new(
                Exit::Interrupted,
                format!(
                    "{}; the cleanup was stopped, left: {}",
                    error.message,
                    if left.is_empty() { "nothing".to_string() } else { left.join(", ") }
                ),
            )
            .with_hint(format!("`berth delete -p {name}` removes what is left")))
        }
    }
}

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
    let manifest = tokio::task::block_in_place(|| ctx.cache.download(version, base, &detail))
        .map_err(|e| download_error(ctx, version, e))?;
    step.done();
    Ok(manifest)
}

/// A failed download, said with the version and where it would be cached.
fn download_error(ctx: &Ctx, version: &Version, e: crate::binaries::Error) -> Error {
    use crate::binaries::Error as B;
    match e {
        B::Download { .. } | B::Checksum { .. } => Error::new(
            Exit::Failure,
            format!(
                "Kubernetes {version} is not in the cache ({}) and cannot be downloaded: {e}",
                ctx.cache.dir(version).display()
            ),
        )
        .with_hint(crate::error::DOWNLOAD_HINT.replace("VERSION", &version.to_string())),
        other => other.into(),
    }
}

async fn create(ctx: &Ctx, name: &str, opts: &StartOptions) -> Result<Profile> {
    let ui = ctx.ui;
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
    check_disk(&facts, opts.nodes.unwrap_or(1))?;
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
            let base = image::default_base(&ctx.docker).await?;
            image::ensure(&ctx.docker, &context, &context.image(), &base, |l| {
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
        crate::binaries::ensure_volume(&ctx.docker, &ctx.cache, &manifest, &node_image),
    )?;
    let cgroup_v2 = facts.cgroup_v2;
    step.done();

    // Held until the nodes hold their addresses and ports.
    let allocating = crate::lock::allocate(&ctx.home, ctx.lock_timeout, ui)?;
    let step = ui.step("Creating the network");
    let (subnet, node_ip) = create_network(&ctx.docker, &network(name), &labels(ctx, name)).await?;
    let api_port = free_port()?;
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
        subnet,
        node_ip,
        cpus: opts.cpus,
        memory_mib: opts.memory_mib,
        kubeconfig: ctx.kubeconfig.clone(),
        previous_context: None,
        workers: (1..opts.nodes.unwrap_or(1)).collect(),
        ports: opts.ports.clone(),
        extra_config: opts.extra_config.clone(),
        feature_gates: opts.feature_gates.clone(),
        no_dns: opts.no_dns,
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
        return Err(Error::new(
            Exit::Failure,
            format!(
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
    let privilege = ctx.docker.privilege(image).await?;
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
async fn binaries_volume(ctx: &Ctx, profile: &Profile) -> Result<String> {
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
    crate::binaries::ensure_volume(&ctx.docker, &ctx.cache, &manifest, &profile.node_image).await
}

async fn restart(ctx: &Ctx, mut profile: Profile, opts: &StartOptions) -> Result<Profile> {
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
    match states[0].1.as_str() {
        "running" => ctx.ui.info(format!("Profile {} is running", profile.name)),
        "paused" => {
            return Err(Error::usage(format!("profile {} is paused", profile.name))
                .with_hint(format!("`berth unpause -p {}`", profile.name)));
        }
        _ => {}
    }
    let stopped: Vec<&Node> = states
        .iter()
        .filter(|(_, state)| state != "running")
        .map(|(node, _)| node)
        .collect();
    let mut since = None;
    if !stopped.is_empty() {
        since = Some(now() as i64);
        let step = ctx.ui.step(match stopped.len() {
            1 => format!("Starting node {}", stopped[0].name),
            n => format!("Starting {n} nodes"),
        });
        let all = profile.nodes();
        // Leaf certificates close to expiry are renewed on start.
        let renewed = nodes::ensure_pki(ctx, &profile, &all)?;
        try_join_all(stopped.iter().map(|node| async {
            // A start killed between creating a node and filling it left
            // the node without its files: they are put in now.
            let config = format!("{}/kubelet.yaml", render::K8S_DIR);
            if renewed || !ctx.docker.file_exists(&node.container(), &config).await? {
                nodes::upload_files(ctx, &profile, node).await?;
            }
            Ok::<_, Error>(ctx.docker.start_container(&node.container()).await?)
        }))
        .await?;
        step.done();
    }
    profile = write_kubeconfig(ctx, profile, !opts.keep_context)?;
    ready::wait_ready(ctx, &profile, None, since, opts.wait).await?;
    Ok(profile)
}

/// Each node with its container's state; an error naming the first node
/// whose container is gone.
pub async fn node_states(ctx: &Ctx, profile: &Profile) -> Result<Vec<(Node, String)>> {
    let states = ctx
        .docker
        .containers_by_label(&format!("io.berth.profile={}", profile.name))
        .await?;
    profile
        .nodes()
        .into_iter()
        .map(|node| match states.get(&node.container()) {
            Some(state) => Ok((node, state.clone())),
            None => Err(broken(&profile.name, &node.container())),
        })
        .collect()
}

/// The first free /24 in 172.30.0.0/16 that the engine accepts.
async fn create_network(
    docker: &Docker,
    name: &str,
    labels: &HashMap<String, String>,
) -> Result<(String, String)> {
    let used = docker.used_subnets().await?;
    for third in 0..=255u8 {
        let subnet = format!("172.30.{third}.0/24");
        if used.contains(&subnet) {
            continue;
        }
        if docker.create_network(name, &subnet, labels).await? {
            return Ok((subnet, format!("172.30.{third}.2")));
        }
    }
    Err(Error::new(
        Exit::Docker,
        "no free /24 subnet in 172.30.0.0/16 for the profile's network",
    )
    .with_hint("delete profiles or Docker networks you no longer need (`docker network ls`)"))
}

/// A port on 127.0.0.1 that nothing listens on now, kept by the profile.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| {
        Error::new(
            Exit::Failure,
            format!("cannot find a free port on 127.0.0.1: {e}"),
        )
    })?;
    Ok(listener.local_addr().expect("bound").port())
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

fn write_kubeconfig(ctx: &Ctx, mut profile: Profile, make_current: bool) -> Result<Profile> {
    let entry = admin_entry(&ctx.store, &profile)?;
    let previous = kubeconfig::update(&profile.kubeconfig, |c| {
        kubeconfig::upsert(c, &entry, make_current)
    })?;
    if make_current && previous.as_deref() != Some(profile.context().as_str()) {
        profile.previous_context = previous;
        ctx.store.save(&profile)?;
    }
    Ok(profile)
}

/// Removes every trace of a profile: every container and volume with its
/// label (also those a cut-off start left), its network, its entries in the
/// `kubeconfig` (making `restore` current again if the profile's context
/// was) and its state. Returns whether there was anything to remove.
pub async fn remove_everything(
    ctx: &Ctx,
    name: &str,
    kubeconfig: &std::path::Path,
    restore: Option<&str>,
) -> Result<bool> {
    let label = format!("io.berth.profile={name}");
    let mut existed = ctx.store.exists(name);
    // A berth killed halfway may have had a request in the engine that
    // completes only now (a container made after the listing holds the
    // volume and network): list and remove again, a few times.
    let mut pass = 0;
    loop {
        let removed = async {
            let containers = ctx.docker.containers_by_label(&label).await?;
            existed |= !containers.is_empty();
            try_join_all(containers.keys().map(|c| ctx.docker.remove_container(c))).await?;
            let volumes = ctx.docker.volumes_by_label(&label).await?;
            try_join_all(volumes.iter().map(|v| ctx.docker.remove_volume(v))).await?;
            ctx.docker.remove_network(&network(name)).await?;
            // Done only when nothing new appeared meanwhile.
            Ok::<_, crate::docker::Error>(ctx.docker.containers_by_label(&label).await?.is_empty())
        }
        .await;
        match removed {
            Ok(true) => break,
            Ok(false) | Err(_) if pass < 5 => {
                pass += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(false) => {
                return Err(Error::new(
                    Exit::Docker,
                    format!("containers of profile {name} keep appearing while it is removed"),
                )
                .with_hint("another berth may be starting it; wait for it, then delete again"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let context = format!("berth-{name}");
    if kubeconfig.exists() {
        kubeconfig::update(kubeconfig, |c| kubeconfig::remove(c, &context, restore))?;
    }
    ctx.store.remove(name)?;
    Ok(existed)
}

/// Profiles of this home that have Docker resources but no state.
pub async fn orphans(ctx: &Ctx) -> Result<Vec<String>> {
    let home = ctx.home.display().to_string();
    let mut names: Vec<String> = ctx
        .docker
        .labels_with("io.berth.profile")
        .await?
        .into_iter()
        .filter(|l| l.get("io.berth.home") == Some(&home))
        .filter_map(|mut l| l.remove("io.berth.profile"))
        .filter(|n| crate::profile::validate_name(n).is_ok() && !ctx.store.exists(n))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Removes short-lived helper containers (the privilege probe, the
/// binaries volume's filler) with their anonymous volumes: this process's
/// own, and those of berth processes that are gone (killed halfway). Their
/// names end with the process id that made them.
pub async fn remove_helpers(ctx: &Ctx) -> Result<()> {
    let own = std::process::id();
    for label in ["io.berth.probe", "io.berth.helper"] {
        let gone: Vec<String> = ctx
            .docker
            .containers_by_label(label)
            .await?
            .into_keys()
            .filter(|c| {
                c.rsplit_once('-')
                    .and_then(|(_, pid)| pid.parse::<u32>().ok())
                    .is_some_and(|pid| {
                        pid == own || !std::path::Path::new(&format!("/proc/{pid}")).exists()
                    })
            })
            .collect();
        try_join_all(gone.iter().map(|c| ctx.docker.remove_container(c))).await?;
    }
    Ok(())
}

/// What exists of a profile, each as a short description: state, node
/// containers, volumes, network and kubeconfig entry.
pub async fn traces(ctx: &Ctx, name: &str) -> Result<Vec<String>> {
    let label = format!("io.berth.profile={name}");
    let mut found = Vec::new();
    if ctx.store.exists(name) {
        found.push(format!("state {}", ctx.store.dir(name).display()));
    }
    let mut containers: Vec<String> = ctx
        .docker
        .containers_by_label(&label)
        .await?
        .into_keys()
        .collect();
    containers.sort();
    found.extend(containers.into_iter().map(|c| format!("container {c}")));
    let mut volumes = ctx.docker.volumes_by_label(&label).await?;
    volumes.sort();
    found.extend(volumes.into_iter().map(|v| format!("volume {v}")));
    if ctx.docker.network_exists(&network(name)).await? {
        found.push(format!("network {}", network(name)));
    }
    let context = format!("berth-{name}");
    if kubeconfig::read(&ctx.kubeconfig)
        .ok()
        .and_then(|c| kubeconfig::server(&c, &context))
        .is_some()
    {
        found.push(format!("kubeconfig context {context}"));
    }
    Ok(found)
}

/// Stops every node quickly and cleanly: the control plane and etcd are
/// stopped in their node first (seconds), then the containers go without
/// waiting for systemd's full shutdown.
pub async fn stop(ctx: &Ctx, profile: &Profile) -> Result<()> {
    let states = node_states(ctx, profile).await?;
    try_join_all(states.iter().map(|(node, state)| async move {
        let container = node.container();
        match state.as_str() {
            "running" => {
                if node.is_control_plane() {
                    let units = [
                        "kubelet",
                        "kube-proxy",
                        "kube-scheduler",
                        "kube-controller-manager",
                        "kube-apiserver",
                        "etcd",
                    ];
                    let mut cmd = vec!["systemctl", "stop"];
                    cmd.extend(units);
                    ctx.docker.exec(&container, &cmd).await?;
                }
                ctx.docker.stop_container(&container, 1).await
            }
            "paused" => {
                ctx.docker.unpause_container(&container).await?;
                ctx.docker.stop_container(&container, 1).await
            }
            _ => Ok(()),
        }
    }))
    .await?;
    Ok(())
}

/// Freezes (or thaws) every process of every node at once through the
/// engine's freezer: the cluster resumes exactly where it was. Returns
/// whether anything changed.
pub async fn pause(ctx: &Ctx, profile: &Profile, freeze: bool) -> Result<bool> {
    let states = node_states(ctx, profile).await?;
    let (from, to) = if freeze {
        ("running", "paused")
    } else {
        ("paused", "running")
    };
    match states[0].1.as_str() {
        s if s == to => return Ok(false),
        s if s == from => {}
        s => {
            return Err(
                Error::usage(format!("profile {} is {s}, not {from}", profile.name))
                    .with_hint(format!("`berth start -p {}` starts it", profile.name)),
            );
        }
    }
    try_join_all(
        states
            .iter()
            .filter(|(_, state)| state == from)
            .map(|(node, _)| async move {
                let container = node.container();
                if freeze {
                    ctx.docker.pause_container(&container).await
                } else {
                    ctx.docker.unpause_container(&container).await
                }
            }),
    )
    .await?;
    Ok(true)
}

pub fn broken(name: &str, container: &str) -> Error {
    Error::new(
        Exit::Profile,
        format!("profile {name} is broken: its node container {container} is gone"),
    )
    .with_hint(format!("`berth delete -p {name}` removes what is left"))
}
