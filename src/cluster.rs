//! The lifecycle of a profile's cluster: start (create or start again),
//! stop, pause, unpause, delete, and what status reads. Each plan is a list
//! of steps shown with their timings.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, Patch, PatchParams};

use crate::binaries::{Cache, Manifest, Version};
use crate::docker::{BinariesVolume, Docker, NodeContainer};
use crate::error::{Error, Exit, Result};
use crate::kubeconfig::{self, Entry};
use crate::node::image::{self, Context};
use crate::node::render::{self, K8S_DIR, NodeFile, NodeSpec};
use crate::pki::{self, Pki};
use crate::profile::{Profile, Store};
use crate::ui::Ui;

/// The version `start` uses when none is given and none is cached.
pub const DEFAULT_VERSION: &str = "v1.34.1";

pub struct Ctx {
    pub docker: Docker,
    pub store: Store,
    pub cache: Cache,
    pub ui: Ui,
    pub kubeconfig: PathBuf,
}

#[derive(Debug, Default, Clone)]
pub struct StartOptions {
    pub version: Option<Version>,
    /// `None` returns once the node container runs.
    pub wait: Option<Duration>,
    pub keep_context: bool,
    pub cpus: Option<f64>,
    pub memory_mib: Option<u64>,
    pub image: Option<String>,
    /// Where missing binaries are downloaded from, instead of the official
    /// release location.
    pub binary_mirror: Option<String>,
}

fn labels(profile: &str) -> HashMap<String, String> {
    HashMap::from([
        ("io.berth".into(), "true".into()),
        ("io.berth.profile".into(), profile.into()),
    ])
}

fn var_volume(profile: &str) -> String {
    format!("berth-{profile}-var")
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

/// `start`: creates the profile's cluster, or starts it again.
pub async fn start(ctx: &Ctx, name: &str, opts: &StartOptions) -> Result<Profile> {
    match ctx.store.load(name)? {
        Some(profile) => restart(ctx, profile, opts).await,
        None => {
            let created = create(ctx, name, opts).await;
            if created.is_err() {
                // A failed start leaves nothing behind.
                let _ = remove_everything(ctx, name, None).await;
            }
            created
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
    match ctx.cache.get(&version)? {
        Some(manifest) => Ok(manifest),
        None => download(ctx, &version, opts.binary_mirror.as_deref()),
    }
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
    let manifest = resolve_version(ctx, opts)?;
    let version = manifest.version.clone();

    let step = ui.step("Preparing the node image");
    let node_image = match &opts.image {
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

    // Both create a short-lived container from the node image; together
    // they cost the time of one.
    let step = ui.step(format!("Preparing the Kubernetes {version} binaries"));
    let (privilege, binaries) = tokio::try_join!(
        async { Ok::<_, Error>(ctx.docker.privilege(&node_image).await?) },
        crate::binaries::ensure_volume(&ctx.docker, &ctx.cache, &manifest, &node_image),
    )?;
    let cgroup_v2 = ctx.docker.cgroup_v2().await?;
    step.done();

    let step = ui.step("Creating the network and volumes");
    let labels = labels(name);
    let (subnet, node_ip) = create_network(&ctx.docker, &network(name), &labels).await?;
    ctx.docker.create_volume(&var_volume(name), &labels).await?;
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
    };
    ctx.store.save(&profile)?;
    let pki = Pki::new(&ctx.store.pki_dir(name));
    pki.ensure(&pki::control_plane_leaves(name, &profile.node_ip))?;
    step.done();

    let step = ui.step("Creating the node");
    let container = node_container(&profile, binaries);
    ctx.docker.create_container(&container).await?;
    ctx.docker
        .upload(&profile.container(), node_files_tar(&profile, &pki)?)
        .await?;
    ctx.docker.start_container(&profile.container()).await?;
    step.done();

    let profile = write_kubeconfig(ctx, profile, !opts.keep_context)?;
    wait_ready(ctx, &profile, opts.wait).await?;
    Ok(profile)
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
    let state = ctx.docker.container_state(&profile.container()).await?;
    match state.as_deref() {
        None => return Err(broken(&profile.name)),
        Some("running") => ctx.ui.info(format!("Profile {} is running", profile.name)),
        Some("paused") => {
            return Err(Error::usage(format!("profile {} is paused", profile.name))
                .with_hint(format!("`berth unpause -p {}`", profile.name)));
        }
        Some(_) => {
            let pki = Pki::new(&ctx.store.pki_dir(&profile.name));
            let renewed =
                pki.ensure(&pki::control_plane_leaves(&profile.name, &profile.node_ip))?;
            let step = ctx.ui.step("Starting the node");
            if !renewed.is_empty() {
                ctx.docker
                    .upload(&profile.container(), node_files_tar(&profile, &pki)?)
                    .await?;
            }
            ctx.docker.start_container(&profile.container()).await?;
            step.done();
        }
    }
    profile = write_kubeconfig(ctx, profile, !opts.keep_context)?;
    wait_ready(ctx, &profile, opts.wait).await?;
    Ok(profile)
}

fn node_container(profile: &Profile, binaries: String) -> NodeContainer {
    NodeContainer {
        name: profile.container(),
        hostname: profile.name.clone(),
        image: profile.node_image.clone(),
        labels: labels(&profile.name),
        privilege: profile.privilege,
        cgroup_v2: profile.cgroup_v2,
        var_volume: Some(var_volume(&profile.name)),
        binaries: Some(BinariesVolume {
            name: binaries,
            writable: false,
        }),
        entrypoint: None,
        network: Some((network(&profile.name), profile.node_ip.clone())),
        api_port: Some(profile.api_port),
        cpus: profile.cpus,
        memory_mib: profile.memory_mib,
    }
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

fn node_files_tar(profile: &Profile, pki: &Pki) -> Result<Vec<u8>> {
    let spec = NodeSpec {
        node: profile.name.clone(),
        node_ip: profile.node_ip.clone(),
        version: profile.kubernetes_version.clone(),
        privilege: profile.privilege,
        cgroup_root: format!("/berth-{}", profile.name),
        pod_cidr: render::FIRST_NODE_POD_CIDR.into(),
    };
    let mut files = render::control_plane_files(&spec);
    let leaves = pki::control_plane_leaves(&profile.name, &profile.node_ip);
    let read = |f: &str| pki.read(f);
    for name in ["ca.crt", "ca.key", "sa.key", "sa.pub"]
        .into_iter()
        .map(String::from)
        .chain(
            leaves
                .iter()
                .flat_map(|l| [format!("{}.crt", l.name), format!("{}.key", l.name)]),
        )
    {
        let mode = if name.ends_with(".key") { 0o600 } else { 0o644 };
        files.push(NodeFile::File {
            path: format!("{K8S_DIR}/pki/{name}"),
            content: read(&name)?,
            mode,
        });
    }
    let local = format!("https://127.0.0.1:{}", render::API_PORT);
    let ca = read("ca.crt")?;
    for (conf, user, leaf) in [
        (
            "controller-manager.conf",
            "system:kube-controller-manager",
            "controller-manager".to_string(),
        ),
        (
            "scheduler.conf",
            "system:kube-scheduler",
            "scheduler".to_string(),
        ),
        (
            "kube-proxy.conf",
            "system:kube-proxy",
            "kube-proxy".to_string(),
        ),
        (
            "kubelet.conf",
            "kubelet",
            format!("kubelet-{}", profile.name),
        ),
    ] {
        let content = render::kubeconfig(
            &local,
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
    Ok(tar_of(&files))
}

fn tar_of(files: &[NodeFile]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for f in files {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(now());
        match f {
            NodeFile::File {
                path,
                content,
                mode,
            } => {
                header.set_size(content.len() as u64);
                header.set_mode(*mode);
                header.set_entry_type(tar::EntryType::Regular);
                header.set_cksum();
                builder.append_data(
                    &mut header,
                    path.trim_start_matches('/'),
                    content.as_bytes(),
                )
            }
            NodeFile::Link { path, target } => {
                header.set_size(0);
                header.set_mode(0o777);
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, path.trim_start_matches('/'), target)
            }
        }
        .expect("writing a tar to memory cannot fail");
    }
    builder
        .into_inner()
        .expect("writing a tar to memory cannot fail")
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

/// A client for the profile's API server, as the admin.
pub async fn client(store: &Store, profile: &Profile) -> Result<kube::Client> {
    let yaml = kubeconfig::standalone(&admin_entry(store, profile)?);
    let internal = |e: String| {
        Error::new(
            Exit::Failure,
            format!("cannot build a client for {}: {e}", profile.name),
        )
    };
    let config = kube::config::Kubeconfig::from_yaml(&yaml).map_err(|e| internal(e.to_string()))?;
    let mut config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .map_err(|e| internal(e.to_string()))?;
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(5));
    kube::Client::try_from(config).map_err(|e| internal(e.to_string()))
}

pub async fn api_ready(client: &kube::Client) -> bool {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .expect("valid request");
    client
        .request_text(request)
        .await
        .is_ok_and(|body| body.trim() == "ok")
}

pub async fn node_ready(client: &kube::Client, node: &str) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    let Ok(Some(node)) = nodes.get_opt(node).await else {
        return false;
    };
    node.status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Waits for the API server, then for the node, through the Kubernetes API.
async fn wait_ready(ctx: &Ctx, profile: &Profile, wait: Option<Duration>) -> Result<()> {
    let Some(wait) = wait else { return Ok(()) };
    let deadline = Instant::now() + wait;
    let client = client(&ctx.store, profile).await?;
    let step = ctx.ui.step("Waiting for the API server");
    while !api_ready(&client).await {
        if Instant::now() > deadline {
            drop(step);
            return Err(not_ready(ctx, profile, "the API server", "kube-apiserver", wait).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    step.done();
    let step = ctx.ui.step("Waiting for the node to be Ready");
    while !node_ready(&client, &profile.name).await {
        if Instant::now() > deadline {
            drop(step);
            return Err(not_ready(ctx, profile, "the node", "kubelet", wait).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Pods cannot be created in a namespace before its default service
    // account exists (before v1.24: with its token), which may come after the
    // node is Ready. berth makes the account the controller would make, so
    // the user's first pod is not refused.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let needs_token = profile.kubernetes_version.minor < 24;
    loop {
        match accounts.get_opt("default").await {
            Ok(Some(sa)) if !needs_token || sa.secrets.as_ref().is_some_and(|s| !s.is_empty()) => {
                break;
            }
            Ok(None) => {
                let account: ServiceAccount =
                    serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}}))
                        .expect("a valid ServiceAccount");
                // Another creator winning the race is as good.
                let _ = accounts.create(&Default::default(), &account).await;
            }
            _ => {}
        }
        if Instant::now() > deadline {
            drop(step);
            return Err(not_ready(
                ctx,
                profile,
                "the default service account",
                "kube-controller-manager",
                wait,
            )
            .await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Roles are labels kubelet may not set on itself (NodeRestriction).
    let nodes: Api<Node> = Api::all(client);
    let patch =
        serde_json::json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}});
    nodes
        .patch(
            &profile.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| {
            Error::new(
                Exit::Failure,
                format!("cannot label node {}: {e}", profile.name),
            )
        })?;
    step.done();
    Ok(())
}

async fn not_ready(ctx: &Ctx, profile: &Profile, what: &str, unit: &str, wait: Duration) -> Error {
    let logs = ctx
        .docker
        .exec(
            &profile.container(),
            &[
                "journalctl",
                "-u",
                unit,
                "-n",
                "15",
                "--no-pager",
                "-o",
                "cat",
            ],
        )
        .await
        .map(|o| o.stdout)
        .unwrap_or_else(|e| format!("(no log: {e})"));
    Error::new(
        Exit::NotReady,
        format!(
            "{what} of profile {} was not ready within {} s; last lines of {unit}'s log:\n{logs}",
            profile.name,
            wait.as_secs()
        ),
    )
    .with_hint(format!(
        "`berth status -p {}` shows each component; start again with a longer --wait",
        profile.name
    ))
}

/// Removes every trace of a profile: node container, volume, network,
/// kubeconfig entries (restoring the previous context) and state.
/// Returns whether there was anything to remove.
pub async fn remove_everything(ctx: &Ctx, name: &str, profile: Option<&Profile>) -> Result<bool> {
    let container = crate::profile::container_name(name);
    let existed = ctx.store.exists(name) || ctx.docker.container_state(&container).await?.is_some();
    ctx.docker.remove_container(&container).await?;
    ctx.docker.remove_volume(&var_volume(name)).await?;
    ctx.docker.remove_network(&network(name)).await?;
    let context = format!("berth-{name}");
    let (path, restore) = match profile {
        Some(p) => (p.kubeconfig.clone(), p.previous_context.clone()),
        None => (ctx.kubeconfig.clone(), None),
    };
    if path.exists() {
        kubeconfig::update(&path, |c| {
            kubeconfig::remove(c, &context, restore.as_deref())
        })?;
    }
    ctx.store.remove(name)?;
    Ok(existed)
}

/// Stops the node quickly and cleanly: the control plane and etcd are
/// stopped in the node first (seconds), then the container goes without
/// waiting for systemd's full shutdown.
pub async fn stop(ctx: &Ctx, profile: &Profile) -> Result<()> {
    let container = profile.container();
    match ctx.docker.container_state(&container).await?.as_deref() {
        Some("running") => {
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
            ctx.docker.stop_container(&container, 1).await?;
        }
        Some("paused") => {
            ctx.docker.unpause_container(&container).await?;
            ctx.docker.stop_container(&container, 1).await?;
        }
        Some(_) => {}
        None => return Err(broken(&profile.name)),
    }
    Ok(())
}

pub fn broken(name: &str) -> Error {
    Error::new(
        Exit::Profile,
        format!("profile {name} is broken: its node container is gone"),
    )
    .with_hint(format!("`berth delete -p {name}` removes what is left"))
}
