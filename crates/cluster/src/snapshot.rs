//! `snapshot save` and `snapshot restore`: a whole cluster at one point,
//! and back to it. Every node's `/var` (etcd's data, containerd's images,
//! the kubelet's state, the persistent volumes) is copied while the nodes
//! are frozen (the cgroup freezer, as `pause`), so that the nodes' disks
//! are of one instant, as after a power cut that hit them all at once, which
//! etcd and containerd are made to survive; with the profile's state and
//! certificates beside them. A restore makes the nodes anew from those
//! copies and starts them as `start` starts a stopped profile.

use std::path::{Path, PathBuf};

use futures_util::future::try_join_all;

use super::plan::{self, Step};
use super::{Ctx, StartOptions, nodes, state_of};
use berth_core::error::{Error, Result};
use berth_core::profile::{Profile, Store};
use berth_core::snapshot::{self, Manifest, NodeArchive};
use berth_engine::{ContainerState, Kind, NetworkMade};

/// `snapshot save`, each step beside what takes it back: a save that fails
/// or is cut leaves no snapshot and no frozen node.
const SAVE: [Save; 5] = [
    Save::Prepare,
    Save::Freeze,
    Save::Copy,
    Save::Thaw,
    Save::Publish,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Save {
    /// A hidden directory beside the snapshot's, with the profile's state.
    /// Undo: removed.
    Prepare,
    /// Every running node frozen at once. Undo: thawed.
    Freeze,
    /// Each node's `/var` into the directory.
    Copy,
    /// The frozen nodes run on.
    Thaw,
    /// The manifest written last, and the directory renamed to the
    /// snapshot's, so a snapshot is there whole or not at all.
    Publish,
}

struct Saving<'a> {
    profile: &'a Profile,
    dir: PathBuf,
    partial: PathBuf,
    frozen: Vec<String>,
    archives: Vec<NodeArchive>,
    running: bool,
}

impl Step<Saving<'_>> for Save {
    fn title(self, saving: &Saving) -> Option<String> {
        match self {
            Save::Copy => Some(format!(
                "Copying {}{}",
                berth_core::ui::count(saving.profile.nodes().len(), "node"),
                if saving.running { " (frozen)" } else { "" }
            )),
            _ => None,
        }
    }

    async fn run(self, ctx: &Ctx, saving: &mut Saving<'_>) -> Result<()> {
        let profile = saving.profile;
        match self {
            Save::Prepare => {
                let state = saving.partial.join("profiles").join(&profile.name);
                // It holds the cluster's keys and its etcd: its owner's alone.
                berth_core::pki::create_private_dir(&saving.partial)
                    .map_err(std::io::Error::other)
                    .and_then(|()| copy_dir(&ctx.store.dir(&profile.name), &state))
                    .and_then(|()| std::fs::create_dir_all(saving.partial.join("nodes")))
                    .map_err(|e| {
                        Error::failure(format!("cannot write {}: {e}", saving.partial.display()))
                    })?;
            }
            Save::Freeze => {
                let states = super::node_states(ctx, profile).await?;
                let running: Vec<String> = states
                    .iter()
                    .filter(|(_, c)| state_of(c) == ContainerState::Running)
                    .map(|(n, _)| n.container.clone())
                    .collect();
                saving.running = !running.is_empty();
                // Recorded before each is asked, so that the undo thaws
                // one frozen by a cut request too.
                saving.frozen = running.clone();
                try_join_all(running.iter().map(|c| ctx.docker.pause_container(c))).await?;
            }
            Save::Copy => {
                let dir = &saving.partial;
                saving.archives =
                    try_join_all(profile.nodes().into_iter().map(|node| async move {
                        let to = NodeArchive::path(dir, &node.name);
                        let (sha256, bytes) =
                            ctx.docker.download(&node.container, "/var", &to).await?;
                        Ok::<_, Error>(NodeArchive {
                            node: node.name,
                            sha256,
                            bytes,
                        })
                    }))
                    .await?;
            }
            Save::Thaw => thaw(ctx, &mut saving.frozen).await?,
            Save::Publish => {
                let manifest = Manifest {
                    format: snapshot::FORMAT,
                    written_by: berth_core::profile::this_berth(),
                    created: berth_node::now(),
                    profile: profile.name.clone(),
                    kubernetes_version: profile.kubernetes_version.clone(),
                    running: saving.running,
                    nodes: saving.archives.clone(),
                };
                let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
                let written = std::fs::write(saving.partial.join(snapshot::MANIFEST), json)
                    .and_then(|()| std::fs::rename(&saving.partial, &saving.dir));
                written.map_err(|e| {
                    Error::failure(format!("cannot write {}: {e}", saving.dir.display()))
                })?;
            }
        }
        Ok(())
    }

    async fn undo(self, ctx: &Ctx, saving: &Saving<'_>) -> Result<()> {
        match self {
            Save::Prepare => {
                let _ = std::fs::remove_dir_all(&saving.partial);
            }
            Save::Freeze => thaw(ctx, &mut saving.frozen.clone()).await?,
            _ => {}
        }
        Ok(())
    }
}

/// Thaws the nodes `frozen` names, which it empties.
async fn thaw(ctx: &Ctx, frozen: &mut Vec<String>) -> Result<()> {
    try_join_all(frozen.iter().map(|c| ctx.docker.unpause_container(c))).await?;
    frozen.clear();
    Ok(())
}

/// Copies the directory `from` into `to`, which it makes, with each file's
/// permissions (the PKI's keys stay private).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    berth_core::pki::create_private_dir(to).map_err(std::io::Error::other)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// `snapshot save`: the profile's cluster, running (frozen for the copy,
/// seconds) or stopped, into the new directory or `.tar` file `path`; a
/// file is the directory packed, made beside it first.
pub async fn save<F, Fut>(
    ctx: &Ctx,
    profile: &Profile,
    path: &Path,
    interrupted: F,
) -> Result<Manifest>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
    if !snapshot::is_file(path) {
        return save_dir(ctx, profile, path, interrupted).await;
    }
    if path.exists() {
        return Err(Error::usage(format!("{} exists already", path.display()))
            .with_hint("name another file, or remove that one first"));
    }
    let staging = snapshot::aside(path, "dir");
    let saved = save_dir(ctx, profile, &staging, interrupted).await;
    let packed = saved.and_then(|manifest| {
        let step = ctx.ui.step(format!("Packing it into {}", path.display()));
        tokio::task::block_in_place(|| snapshot::pack(&staging, path))?;
        step.done();
        Ok(manifest)
    });
    let _ = std::fs::remove_dir_all(&staging);
    packed.map_err(|e| shown_as(e, &staging, path))
}

/// `error` with the staging directory `staging` named as the file `path`
/// the user gave.
fn shown_as(mut error: Error, staging: &Path, path: &Path) -> Error {
    let (staging, path) = (staging.display().to_string(), path.display().to_string());
    error.message = error.message.replace(&staging, &path);
    error.hint = error.hint.map(|h| h.replace(&staging, &path));
    error
}

async fn save_dir<F, Fut>(
    ctx: &Ctx,
    profile: &Profile,
    dir: &Path,
    interrupted: F,
) -> Result<Manifest>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
    if dir.exists() {
        return Err(Error::usage(format!("{} exists already", dir.display()))
            .with_hint("name another snapshot, or `berth snapshot delete` that one first"));
    }
    let states = super::node_states(ctx, profile).await?;
    if let Some((node, _)) = states
        .iter()
        .find(|(_, c)| state_of(c) == ContainerState::Created)
    {
        return Err(Error::usage(format!(
            "node {} of profile {} was never started",
            node.name, profile.name
        ))
        .with_hint(format!("`berth start -p {}` first", profile.name)));
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    // The user's directory (`/tmp`, their home) keeps its permissions;
    // what berth writes into it is private by itself.
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::failure(format!("cannot make {}: {e}", parent.display())))?;
    let file_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let partial = parent.join(format!(
        ".{}.partial-{}",
        file_name.unwrap_or_else(|| "snapshot".into()),
        ctx.token
    ));
    let name = profile.name.clone();
    let verb = plan::Verb {
        what: format!("the snapshot of profile {name}"),
        again: format!("`berth snapshot save -p {name} ...` saves it again"),
        undo: Some(plan::Undo {
            maker: "this save",
            kept: None,
            left_hint: format!(
                "remove {} by hand; `berth unpause -p {name}` thaws a node left frozen",
                partial.display()
            ),
            left: plan::left(|| async { vec![partial.display().to_string()] }),
        }),
    };
    let mut saving = Saving {
        profile,
        dir: dir.to_path_buf(),
        partial: partial.clone(),
        frozen: Vec::new(),
        archives: Vec::new(),
        running: false,
    };
    plan::execute(ctx, verb, &SAVE, &mut saving, interrupted).await?;
    snapshot::read(dir)
}

/// `snapshot restore`: the profile `name` as it was when the snapshot at
/// `path` (a directory or a `.tar` file, unpacked first into the home) was
/// saved, whether it runs, is stopped, or was deleted since. The snapshot
/// is checked whole first; nothing changes when it is not one berth can
/// restore.
pub async fn restore<F, Fut>(ctx: &Ctx, path: &Path, name: &str, interrupted: F) -> Result<Profile>
where
    F: Fn() -> Fut + Copy,
    Fut: std::future::Future<Output = &'static str>,
{
    if !snapshot::is_file(path) {
        return restore_dir(ctx, path, name, interrupted).await;
    }
    let staging = snapshot::dir(&ctx.home).join(format!(".unpacked-{}", ctx.token));
    let step = ctx.ui.step(format!("Unpacking {}", path.display()));
    let unpacked = tokio::task::block_in_place(|| snapshot::unpack(path, &staging));
    let restored = match unpacked {
        Ok(()) => {
            step.done();
            restore_dir(ctx, &staging, name, interrupted).await
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&staging);
    restored.map_err(|e| shown_as(e, &staging, path))
}

async fn restore_dir<F, Fut>(ctx: &Ctx, dir: &Path, name: &str, interrupted: F) -> Result<Profile>
where
    F: Fn() -> Fut + Copy,
    Fut: std::future::Future<Output = &'static str>,
{
    let manifest = snapshot::read(dir)?;
    let from = manifest.profile.clone();
    let mut saved = Store::new(dir).load(&from)?.ok_or_else(|| {
        Error::usage(format!(
            "{} holds no state of profile {from}",
            dir.display()
        ))
    })?;
    let current = ctx.store.load(name)?;
    // Named as this home names its profiles, whichever home saved it.
    saved.home_id = match &current {
        Some(current) => current.home_id.clone(),
        None => berth_core::names::home_id(&ctx.home),
    };
    let renamed = from != name;
    if renamed {
        into_another(ctx, &mut saved, name, current.as_ref())?;
    }
    let nodes: Vec<String> = saved.nodes().into_iter().map(|n| n.name).collect();
    let archived: Vec<String> = manifest.nodes.iter().map(|n| n.node.clone()).collect();
    if nodes != archived {
        return Err(Error::usage(format!(
            "{} is damaged: its profile has nodes {nodes:?}, its archives {archived:?}",
            dir.display()
        )));
    }
    let step = ctx.ui.step("Checking the snapshot");
    snapshot::verify(dir, &manifest)?;
    step.done();

    let verb = plan::Verb {
        what: format!("the restore of profile {name}"),
        again: format!(
            "`berth snapshot restore {} -p {name}` restores it again",
            dir.display()
        ),
        undo: None,
    };
    // A new profile's port and subnet are chosen, and taken by its
    // containers, under the lock starts take for theirs.
    let allocating = (renamed && current.is_none())
        .then(|| berth_core::lock::allocate(&ctx.home, ctx.lock_timeout, ctx.ui))
        .transpose()?;
    let mut restoring = Restoring {
        dir: dir.to_path_buf(),
        from,
        renamed,
        current,
        saved,
    };
    plan::execute(ctx, verb, &RESTORE, &mut restoring, interrupted).await?;
    drop(allocating);
    let opts = StartOptions {
        wait: Some(super::DEFAULT_WAIT),
        ..StartOptions::default()
    };
    super::start(ctx, name, &opts, interrupted).await
}

/// The snapshot of profile `saved` made the state of profile `name`
/// (`current`, if it exists): the same cluster (its nodes keep their names
/// in Kubernetes, which its volumes and pods are bound to, and its CA and
/// service-account keys), under the new profile's engine names, port and
/// network. What the original holds on the host (published NodePorts, a
/// registry) is left out, said.
fn into_another(
    ctx: &Ctx,
    saved: &mut Profile,
    name: &str,
    current: Option<&Profile>,
) -> Result<()> {
    let nodes = saved
        .node_names
        .take()
        .unwrap_or_else(|| saved.name.clone());
    saved.node_names = (nodes != name).then_some(nodes);
    saved.name = name.to_string();
    if !saved.ports.is_empty() {
        saved.ports.clear();
        ctx.ui.info(format!(
            "note: the NodePorts profile {} published are not published for {name}",
            saved.node_names.as_deref().unwrap_or(name)
        ));
    }
    if saved.registry.take().is_some() {
        ctx.ui.info(format!(
            "note: profile {name} gets no registry of its own (`berth registry enable -p {name}` gives it one)"
        ));
    }
    saved.network_id = None;
    if let Some(current) = current {
        // Several control planes know each other's etcd members by their
        // addresses, which another subnet would change.
        if saved.load_balancer && current.subnet != saved.subnet {
            return Err(several_control_planes(saved, name));
        }
        saved.api_port = current.api_port;
        saved.subnet = current.subnet;
        saved.node_ip = current.node_ip;
    }
    Ok(())
}

fn several_control_planes(saved: &Profile, name: &str) -> Error {
    Error::usage(format!(
        "the snapshot's cluster has several control planes, whose etcd members know each other \
         by their addresses on {}; profile {name} cannot have those",
        saved.subnet
    ))
    .with_hint(format!(
        "restore it into its own profile, or into {name} once no network is on {} \
         (`berth delete` the profile that has it)",
        saved.subnet
    ))
}

/// `snapshot restore` once the snapshot is checked. Nothing is taken back:
/// the cluster as it was is what the restore replaces, and restoring again
/// finishes a restore that was cut.
const RESTORE: [Restore; 4] = [
    Restore::Clear,
    Restore::Network,
    Restore::State,
    Restore::Nodes,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Restore {
    /// The profile's nodes, their containers and volumes, go.
    Clear,
    /// Its network, made again on its subnet when it was deleted; a new
    /// profile's on the first free one (with a port of its own) when the
    /// snapshot's is taken.
    Network,
    /// The profile's state and certificates are the snapshot's.
    State,
    /// Each node made anew from its archive, not started; a new profile's
    /// certificates issued for its addresses first.
    Nodes,
}

struct Restoring {
    dir: PathBuf,
    /// The profile the snapshot is of.
    from: String,
    /// Restored into another profile than `from`.
    renamed: bool,
    current: Option<Profile>,
    saved: Profile,
}

impl Step<Restoring> for Restore {
    fn title(self, restoring: &Restoring) -> Option<String> {
        match self {
            Restore::Nodes => Some(format!(
                "Restoring {}",
                berth_core::ui::count(restoring.saved.nodes().len(), "node")
            )),
            _ => None,
        }
    }

    async fn run(self, ctx: &Ctx, restoring: &mut Restoring) -> Result<()> {
        let names = ctx.names(&restoring.saved);
        match self {
            Restore::Clear => {
                let mut gone = restoring.saved.nodes();
                if let Some(current) = &restoring.current {
                    gone.extend(current.nodes());
                }
                // Only what carries the profile's labels: the engine may be
                // shared.
                let doomed: Vec<String> = gone
                    .into_iter()
                    .flat_map(|node| [node.container, node.volume])
                    .collect();
                let mut ours = ctx.docker.resources(&names.filter()).await?;
                ours.retain(|r| r.kind != Kind::Network && doomed.contains(&r.name));
                super::remove::remove_in_order(ctx, ours).await?;
            }
            Restore::State => {
                let saved = &mut restoring.saved;
                if let Some(current) = &restoring.current {
                    saved.kubeconfig = current.kubeconfig.clone();
                    saved.previous_context = current.previous_context.clone();
                    saved.network_id = current.network_id.clone();
                    saved.engine = current.engine.clone();
                } else {
                    saved.kubeconfig = ctx.kubeconfig.clone();
                    saved.previous_context = None;
                    let facts = ctx.docker.facts().await?;
                    // A forward over ssh goes on where the engine is still
                    // reached over ssh.
                    let forwarded = saved.engine.as_ref().is_some_and(|e| e.ssh_forward)
                        && facts.endpoint.starts_with("ssh://");
                    saved.engine = Some(match forwarded {
                        true => berth_core::profile::EngineRef::forwarded(&facts),
                        false => berth_core::profile::EngineRef::of(&facts),
                    });
                }
                let pki = ctx.store.pki_dir(&saved.name);
                let _ = std::fs::remove_dir_all(&pki);
                copy_dir(&Store::new(&restoring.dir).pki_dir(&restoring.from), &pki)
                    .map_err(|e| Error::failure(format!("cannot write {}: {e}", pki.display())))?;
                if restoring.renamed {
                    // The CAs and service-account keys stay (tokens and
                    // trust go on); every leaf is issued anew for the new
                    // profile's addresses and names.
                    berth_core::pki::Pki::new(&pki)
                        .keep_only_authorities()
                        .map_err(|e| {
                            Error::failure(format!("cannot write {}: {e}", pki.display()))
                        })?;
                    nodes::ensure_pki(ctx, saved, &saved.nodes())?;
                }
                ctx.store.save(saved)?;
            }
            Restore::Network => {
                let saved = &mut restoring.saved;
                if !ctx
                    .docker
                    .named(Kind::Network, &names.network())
                    .await?
                    .is_empty()
                {
                    return Ok(());
                }
                let labels = names.labels_created_by(&ctx.token);
                let new = restoring.renamed && restoring.current.is_none();
                if new {
                    saved.api_port = super::host::free_port()?;
                }
                let subnet = [saved.subnet.to_string()];
                match ctx
                    .docker
                    .make_network(&names.network(), &labels, &subnet, &saved.node_image)
                    .await?
                {
                    NetworkMade::Made { id, .. } => saved.network_id = Some(id),
                    NetworkMade::NoneFree if new && saved.load_balancer => {
                        return Err(several_control_planes(saved, &saved.name));
                    }
                    // A copy beside its original gets a subnet of its own.
                    NetworkMade::NoneFree if new => {
                        let made = super::create::network_on_free_subnet(
                            ctx,
                            &names.network(),
                            &labels,
                            &saved.node_image,
                        )
                        .await?;
                        let (id, subnet) =
                            made.map_err(|other| super::claims::taken(ctx, &names, &other))?;
                        saved.network_id = Some(id);
                        saved.subnet = subnet;
                        saved.node_ip = subnet.host(2);
                    }
                    NetworkMade::NameTaken(other) => {
                        return Err(super::claims::taken(ctx, &names, &other));
                    }
                    NetworkMade::NoneFree => {
                        return Err(Error::engine(format!(
                            "the profile's subnet {} is another network's now",
                            saved.subnet
                        ))
                        .with_hint(
                            "delete the profile or the network that took it, then restore again",
                        ));
                    }
                }
            }
            Restore::Nodes => {
                let saved = &restoring.saved;
                let binaries = super::binaries::binaries_volume(ctx, saved).await?;
                let dir = &restoring.dir;
                try_join_all(saved.nodes().into_iter().map(|node| {
                    let binaries = binaries.clone();
                    async move {
                        let var = NodeArchive::path(dir, &node.name);
                        nodes::make(ctx, saved, &node, binaries, false, Some(&var)).await
                    }
                }))
                .await?;
                if restoring.current.is_none() {
                    // What a deleted profile had beside its nodes.
                    super::balancer::create(ctx, saved).await?;
                    let binaries = super::binaries::binaries_volume(ctx, saved).await?;
                    super::service_lb::create(ctx, saved, binaries).await?;
                    super::registry::create(ctx, saved).await?;
                }
            }
        }
        Ok(())
    }
}

/// `snapshot delete`: the snapshot directory or file, once it is known to
/// be one.
pub fn delete(path: &Path) -> Result<Manifest> {
    let manifest = snapshot::read_any(path)?;
    let removed = if snapshot::is_file(path) {
        std::fs::remove_file(path)
    } else {
        std::fs::remove_dir_all(path)
    };
    removed.map_err(|e| Error::failure(format!("cannot remove {}: {e}", path.display())))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, never};
    use berth_engine::fake::FakeEngine;
    use std::sync::Arc;

    /// A running two-node profile `dev` with its state and certificates.
    fn running() -> (tempfile::TempDir, Arc<FakeEngine>, Ctx, Profile) {
        let made = crate::testing::running(vec![1]);
        let pki = made.2.store.pki_dir("dev");
        std::fs::create_dir_all(&pki).unwrap();
        std::fs::write(pki.join("ca.crt"), "ca").unwrap();
        made
    }

    fn states(engine: &FakeEngine, profile: &Profile) -> Vec<Option<ContainerState>> {
        profile
            .nodes()
            .iter()
            .map(|n| engine.state(&n.container))
            .collect()
    }

    #[test]
    fn a_save_freezes_every_node_copies_each_and_thaws_them() {
        let (home, engine, ctx, profile) = running();
        let dir = home.path().join("snapshots/first");
        let manifest = block_on(save(&ctx, &profile, &dir, never)).unwrap();
        assert!(manifest.running);
        assert_eq!(
            manifest
                .nodes
                .iter()
                .map(|n| n.node.as_str())
                .collect::<Vec<_>>(),
            ["dev", "dev-m02"]
        );
        snapshot::verify(&dir, &manifest).unwrap();
        let saved = Store::new(&dir).load("dev").unwrap().unwrap();
        assert_eq!(saved, ctx.store.load("dev").unwrap().unwrap());
        assert_eq!(
            states(&engine, &profile),
            [Some(ContainerState::Running); 2]
        );
        let listed = snapshot::list(home.path());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1.as_ref().unwrap(), &manifest);

        let error = block_on(save(&ctx, &profile, &dir, never)).err().unwrap();
        assert!(error.message.contains("exists already"), "{error}");
    }

    #[test]
    fn a_save_that_fails_thaws_the_nodes_and_leaves_no_snapshot() {
        let (home, engine, ctx, profile) = running();
        engine.fail("download", &profile.nodes()[1].container);
        let dir = home.path().join("snapshots/first");
        assert!(block_on(save(&ctx, &profile, &dir, never)).is_err());
        assert_eq!(
            states(&engine, &profile),
            [Some(ContainerState::Running); 2]
        );
        let left: Vec<_> = std::fs::read_dir(home.path().join("snapshots"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[test]
    fn a_snapshot_into_another_profile_keeps_its_node_names_and_not_its_host_ports() {
        let (_home, _engine, ctx, mut saved) = running();
        saved.ports = vec![berth_core::settings::Port {
            host: 8080,
            node_port: 30080,
        }];
        saved.registry = Some(berth_core::profile::Registry { port: 5001 });
        let mut copy = saved.clone();
        into_another(&ctx, &mut copy, "copy", None).unwrap();
        assert_eq!(copy.name, "copy");
        let nodes: Vec<(String, String)> = copy
            .nodes()
            .into_iter()
            .map(|n| (n.name, n.container))
            .collect();
        let own = |n: &str| berth_core::names::container(n, copy.home_id.as_deref());
        assert_eq!(
            nodes,
            [
                ("dev".to_string(), own("copy")),
                ("dev-m02".to_string(), own("copy-m02"))
            ]
        );
        assert!(copy.ports.is_empty() && copy.registry.is_none());
        assert_eq!(copy.network_id, None);
        // A copy of the copy still names its nodes after the first; one
        // restored back into the first's name names them as its own.
        let mut again = copy.clone();
        into_another(&ctx, &mut again, "third", None).unwrap();
        assert_eq!(again.node_names.as_deref(), Some("dev"));
        into_another(&ctx, &mut again, "dev", None).unwrap();
        assert_eq!(again.node_names, None);

        // Over an existing profile: its port and subnet; several control
        // planes only on their own subnet.
        let current = Profile {
            name: "copy".into(),
            api_port: 7000,
            subnet: berth_node::net::Cidr::slash24(172, 30, 9),
            node_ip: "172.30.9.2".parse().unwrap(),
            ..saved.clone()
        };
        let mut over = saved.clone();
        into_another(&ctx, &mut over, "copy", Some(&current)).unwrap();
        assert_eq!((over.api_port, over.subnet), (7000, current.subnet));
        let mut several = Profile {
            load_balancer: true,
            control_planes: vec![1, 2],
            ..saved
        };
        let error = into_another(&ctx, &mut several, "copy", Some(&current)).unwrap_err();
        assert_eq!(error.exit, berth_core::error::Exit::Usage);
        assert!(
            error.message.contains("several control planes"),
            "{}",
            error.message
        );
    }
}
