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
                copy_dir(&ctx.store.dir(&profile.name), &state)
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
/// seconds) or stopped, into the new directory `dir`.
pub async fn save<F, Fut>(
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
    berth_core::pki::create_private_dir(parent)
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

/// `snapshot restore`: the profile `name` as it was when the snapshot in
/// `dir` was saved, whether it runs, is stopped, or was deleted since.
/// The snapshot is checked whole first; nothing changes when it is not one
/// berth can restore.
pub async fn restore<F, Fut>(ctx: &Ctx, dir: &Path, name: &str, interrupted: F) -> Result<Profile>
where
    F: Fn() -> Fut + Copy,
    Fut: std::future::Future<Output = &'static str>,
{
    let manifest = snapshot::read(dir)?;
    if manifest.profile != name {
        return Err(Error::usage(format!(
            "the snapshot is of profile {}, not {name}",
            manifest.profile
        ))
        .with_hint(format!(
            "restore it with `-p {}`; restoring into another profile is not done yet",
            manifest.profile
        )));
    }
    let mut saved = Store::new(dir).load(name)?.ok_or_else(|| {
        Error::usage(format!(
            "{} holds no state of profile {name}",
            dir.display()
        ))
    })?;
    let current = ctx.store.load(name)?;
    // Named as this home names its profiles, whichever home saved it.
    saved.home_id = match &current {
        Some(current) => current.home_id.clone(),
        None => berth_core::names::home_id(&ctx.home),
    };
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
    let mut restoring = Restoring {
        dir: dir.to_path_buf(),
        current,
        saved,
    };
    plan::execute(ctx, verb, &RESTORE, &mut restoring, interrupted).await?;
    let opts = StartOptions {
        wait: Some(super::DEFAULT_WAIT),
        ..StartOptions::default()
    };
    super::start(ctx, name, &opts, interrupted).await
}

/// `snapshot restore` once the snapshot is checked. Nothing is taken back:
/// the cluster as it was is what the restore replaces, and restoring again
/// finishes a restore that was cut.
const RESTORE: [Restore; 4] = [
    Restore::Clear,
    Restore::State,
    Restore::Network,
    Restore::Nodes,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Restore {
    /// The profile's nodes, their containers and volumes, go.
    Clear,
    /// The profile's state and certificates are the snapshot's.
    State,
    /// Its network, made again on its subnet when it was deleted.
    Network,
    /// Each node made anew from its archive, not started.
    Nodes,
}

struct Restoring {
    dir: PathBuf,
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
                let mut gone: Vec<String> = restoring
                    .saved
                    .nodes()
                    .into_iter()
                    .map(|n| n.name)
                    .collect();
                if let Some(current) = &restoring.current {
                    gone.extend(current.nodes().into_iter().map(|n| n.name));
                }
                gone.sort();
                gone.dedup();
                // Only what carries the profile's labels: the engine may be
                // shared.
                let doomed: Vec<String> = gone
                    .iter()
                    .flat_map(|node| [names.container(node), names.var_volume(node)])
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
                    saved.engine = Some(berth_core::profile::EngineRef {
                        host: facts.endpoint,
                        id: facts.id,
                    });
                }
                let pki = ctx.store.pki_dir(&saved.name);
                let _ = std::fs::remove_dir_all(&pki);
                copy_dir(&Store::new(&restoring.dir).pki_dir(&saved.name), &pki)
                    .map_err(|e| Error::failure(format!("cannot write {}: {e}", pki.display())))?;
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
                let subnet = [saved.subnet.to_string()];
                match ctx
                    .docker
                    .make_network(&names.network(), &labels, &subnet)
                    .await?
                {
                    NetworkMade::Made { id, .. } => saved.network_id = Some(id),
                    NetworkMade::NameTaken(other) => {
                        return Err(super::claims::taken(&names, &other));
                    }
                    NetworkMade::NoneFree => {
                        return Err(Error::engine(format!(
                            "the profile's subnet {} is another network's now",
                            saved.subnet
                        ))
                        .with_hint(
                            "delete the profile or Docker network that took it, then restore again",
                        ));
                    }
                }
                ctx.store.save(saved)?;
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

/// `snapshot delete`: the snapshot directory, once it is known to be one.
pub fn delete(dir: &Path) -> Result<Manifest> {
    let manifest = snapshot::read(dir)?;
    std::fs::remove_dir_all(dir)
        .map_err(|e| Error::failure(format!("cannot remove {}: {e}", dir.display())))?;
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
}
