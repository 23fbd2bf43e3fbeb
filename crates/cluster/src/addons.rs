//! A running profile's addons: how each is doing, and enabling or
//! disabling one. Every addon is a manifest the control plane holds and
//! applies at each boot; CoreDNS and storage also change what every node
//! runs (kubelet's cluster DNS, the provisioner unit), metrics-server the
//! API server's flags of profiles made before berth set them.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::{Ctx, node_states, nodes};
use berth_core::error::{Error, Result};
use berth_core::profile::{Node, Profile};
use berth_engine::Command;
use berth_node::addons::Addon;
use berth_node::command;
use berth_node::render::NodeFile;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AddonState {
    Ready,
    Starting,
    /// Enabled, and cannot become ready as things are (an image that cannot
    /// be pulled, a provisioner that does not run).
    Unavailable,
    Disabled,
    /// Not known: the API server does not answer.
    Unknown,
}

impl std::fmt::Display for AddonState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddonState::Ready => "ready",
            AddonState::Starting => "starting",
            AddonState::Unavailable => "unavailable",
            AddonState::Disabled => "disabled",
            AddonState::Unknown => "unknown",
        })
    }
}

/// Where an addon's images in the nodes came from, the least settled of
/// them for an addon of several.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ImageOrigin {
    /// Built here by berth, from source.
    Built,
    /// In the nodes, not built by berth: pulled, or loaded by the user.
    Pulled,
    /// Not in the nodes.
    Missing,
}

impl std::fmt::Display for ImageOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageOrigin::Built => "built here",
            ImageOrigin::Pulled => "pulled",
            ImageOrigin::Missing => "missing",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AddonStatus {
    pub name: &'static str,
    /// Its upstream project.
    pub project: &'static str,
    /// The release it runs on the profile's minor.
    pub version: Option<String>,
    pub enabled: bool,
    pub state: AddonState,
    /// Why it is not ready, and what to do.
    pub reason: Option<String>,
    pub images: Vec<String>,
    /// Where its images in the nodes came from; `None` for one that runs
    /// no image, or when the nodes cannot be asked.
    pub image_origin: Option<ImageOrigin>,
}

impl AddonStatus {
    pub fn new(profile: &Profile, addon: Addon, state: AddonState, reason: Option<String>) -> Self {
        let images = images(profile, addon);
        let version = images
            .first()
            .and_then(|i| i.rsplit_once(':'))
            .map(|(_, tag)| tag.to_string());
        AddonStatus {
            name: addon.name(),
            project: addon.project(),
            version,
            enabled: profile.has(addon),
            state,
            reason,
            images,
            image_origin: None,
        }
    }

    /// An enabled addon whose state cannot be asked: the API server does
    /// not answer.
    pub fn unknown(profile: &Profile, addon: Addon) -> Self {
        let reason = Some("the API server is not ready".into());
        AddonStatus::new(profile, addon, AddonState::Unknown, reason)
    }
}

/// Fills in where each addon's images in the nodes came from, as the first
/// running control plane's containerd holds them (berth loads the images
/// it builds into every node); left empty where that cannot be asked.
pub async fn image_origins(ctx: &Ctx, profile: &Profile, addons: &mut [AddonStatus]) {
    let Ok(states) = node_states(ctx, profile).await else {
        return;
    };
    let Some((_, container)) = states
        .iter()
        .find(|(node, c)| node.is_control_plane() && super::state_of(c).is_running())
    else {
        return;
    };
    let Ok(present) = super::containerd::list(&*ctx.docker, &container.id).await else {
        return;
    };
    let version = &profile.kubernetes_version;
    let mut built: Vec<String> = match ctx.cache.get(version) {
        Ok(Some(manifest)) => manifest.images,
        _ => Vec::new(),
    };
    if let Ok(row) = berth_node::supported(version) {
        built.extend(
            Addon::ALL
                .iter()
                .flat_map(|a| a.built_from_source(row))
                .filter(|image| ctx.cache.images_dir().join(image.archive()).exists())
                .map(|image| image.image),
        );
    }
    for addon in addons {
        addon.image_origin = addon
            .images
            .iter()
            .map(|image| {
                if !present.contains(&super::containerd::normalize(image)) {
                    ImageOrigin::Missing
                } else if built.contains(image) {
                    ImageOrigin::Built
                } else {
                    ImageOrigin::Pulled
                }
            })
            .max();
    }
}

/// The images `addon` runs on `profile`'s minor; none where berth has no
/// row for it (a profile of a newer berth), which status still shows.
pub(super) fn images(profile: &Profile, addon: Addon) -> Vec<String> {
    berth_node::supported(&profile.kubernetes_version)
        .map(|row| addon.images(row))
        .unwrap_or_default()
}

/// How a Deployment of an addon is doing.
pub enum Readiness {
    Ready,
    Starting(String),
    /// Its pods wait for an image that cannot be pulled: the reason says
    /// which, and the `berth image load` that brings it.
    Unavailable(String),
}

pub(super) const WAITING_FOR_IMAGE: [&str; 3] =
    ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"];

/// Whether the Deployment `namespace/name` (`what` in messages) has an
/// available pod, and if not, why.
pub async fn deployment_readiness(
    client: &kube::Client,
    profile: &Profile,
    (namespace, name): (&str, &str),
    what: &str,
) -> Readiness {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let Ok(Some(deployment)) = deployments.get_opt(name).await else {
        return Readiness::Starting(format!(
            "{what} is not deployed yet; the control plane applies it once its API server answers"
        ));
    };
    let available = deployment
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    if available > 0 {
        return Readiness::Ready;
    }
    let selector = deployment
        .spec
        .and_then(|s| s.selector.match_labels)
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    for container in pods
        .iter()
        .flat_map(|p| p.status.iter())
        .flat_map(|s| s.container_statuses.iter().flatten())
    {
        let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
        let reason = waiting
            .and_then(|w| w.reason.as_deref())
            .unwrap_or_default();
        if WAITING_FOR_IMAGE.contains(&reason) {
            return Readiness::Unavailable(format!(
                "the image {image} cannot be pulled ({reason}); where no registry is reachable, \
                 `docker pull` or `docker load` it on a machine that can, then \
                 `berth image load {image} -p {profile}`",
                image = container.image,
                profile = profile.name,
            ));
        }
    }
    Readiness::Starting(format!("the {what} pod is not ready yet"))
}

/// How an enabled addon other than CoreDNS and storage is doing: ready
/// when each of its Deployments is.
pub async fn state(client: &kube::Client, profile: &Profile, addon: Addon) -> AddonStatus {
    let mut status = AddonStatus::new(profile, addon, AddonState::Ready, None);
    for &deployment in addon.deployments() {
        let (state, reason) =
            match deployment_readiness(client, profile, deployment, deployment.1).await {
                Readiness::Ready => continue,
                Readiness::Starting(reason) => (AddonState::Starting, reason),
                Readiness::Unavailable(reason) => (AddonState::Unavailable, reason),
            };
        // The worst of its Deployments says how the addon is.
        if status.state != AddonState::Unavailable {
            status.state = state;
            status.reason = Some(reason);
        }
    }
    status
}

/// Enabling or disabling an addon on a running profile, each step beside
/// what takes it back, so that one that fails or is interrupted leaves the
/// addon as it was. Enabling: `Files`, `Apply`, `Save`; disabling:
/// `Remove` first.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Set {
    /// On: the images it runs that berth builds from source, built when
    /// missing and loaded into every node, and its CRDs put into the
    /// control plane. Undo: none, images are kept (the CRDs go with the
    /// manifest).
    Images,
    /// Off: its objects deleted. Undo: applied again from its manifest.
    Remove,
    /// The files of every node concerned, for the new setting, and the
    /// units they change restarted. Undo: the files as they were.
    Files,
    /// On: its CRDs applied and established, then its objects; off: its
    /// manifest and CRDs taken out of the control plane (which applies
    /// what it holds at each boot), while the CRDs stay in the cluster
    /// with the objects users made of them. Undo (on): its objects deleted.
    Apply,
    /// The profile's state has the new setting.
    Save,
}

const ENABLE: [Set; 4] = [Set::Images, Set::Files, Set::Apply, Set::Save];
const DISABLE: [Set; 4] = [Set::Remove, Set::Files, Set::Apply, Set::Save];

struct Setting {
    before: Profile,
    after: Profile,
    addon: Addon,
    on: bool,
    states: Vec<(Node, berth_engine::Resource)>,
    /// The images step put the addon's CRDs into the control plane.
    crds: bool,
}

impl Setting {
    fn control_plane(&self) -> &str {
        &self.states[0].1.id
    }

    /// Puts `profile`'s files into the nodes the addon concerns.
    async fn files(&self, ctx: &Ctx, profile: &Profile, on: bool) -> Result<()> {
        let every_node = self.addon.every_node();
        nodes::ensure_pki(ctx, profile, &profile.nodes())?;
        let mut restarted = Vec::new();
        for (node, container) in &self.states {
            if every_node || node.is_control_plane() {
                restarted.extend(
                    refresh_files(ctx, profile, node, &container.id, self.addon, on).await?,
                );
            }
        }
        if restarted.contains(&"kube-apiserver") {
            wait_for_api_server(ctx, profile).await?;
        }
        Ok(())
    }
}

impl super::plan::Step<Setting> for Set {
    fn title(self, _: &Setting) -> Option<String> {
        None
    }

    async fn run(self, ctx: &Ctx, setting: &mut Setting) -> Result<()> {
        let manifest = setting.addon.manifest_path();
        let control_plane = setting.control_plane();
        match self {
            Set::Images => {
                let built = super::addon_images::ensure(
                    ctx,
                    &setting.after.kubernetes_version,
                    &[setting.addon],
                )
                .await?;
                let containers: Vec<String> =
                    setting.states.iter().map(|(_, c)| c.id.clone()).collect();
                super::addon_images::load(ctx, &containers, &built).await?;
                setting.crds = !built.crds.is_empty();
                Ok(())
            }
            Set::Remove => delete_objects(ctx, control_plane, &manifest).await,
            Set::Files => setting.files(ctx, &setting.after, setting.on).await,
            Set::Apply if setting.on => {
                if setting.crds {
                    let crds = setting.addon.crds_path();
                    let apply = ["apply", "--server-side", "--force-conflicts", "-f", &crds];
                    kubectl(ctx, control_plane, &apply).await?;
                    let established = ["--for=condition=Established", "--timeout=60s"];
                    let wait = [&["wait"][..], &established, &["-f", &crds]].concat();
                    kubectl(ctx, control_plane, &wait).await?;
                }
                apply(ctx, control_plane, &manifest).await
            }
            Set::Apply => remove_files(ctx, control_plane, &setting.after, setting.addon).await,
            Set::Save => Ok(ctx.store.save(&setting.after)?),
        }
    }

    async fn undo(self, ctx: &Ctx, setting: &Setting) -> Result<()> {
        let manifest = setting.addon.manifest_path();
        let control_plane = setting.control_plane();
        match self {
            Set::Remove => apply(ctx, control_plane, &manifest).await,
            Set::Files => {
                setting.files(ctx, &setting.before, !setting.on).await?;
                if setting.on {
                    remove_files(ctx, control_plane, &setting.before, setting.addon).await?;
                }
                Ok(())
            }
            Set::Apply if setting.on => delete_objects(ctx, control_plane, &manifest).await,
            // The manifest comes back with the files.
            Set::Images | Set::Apply | Set::Save => Ok(()),
        }
    }
}

/// Enables (`on`) or disables `addon`; see `Set`. Returns whether anything
/// changed.
pub async fn set<F, Fut>(
    ctx: &Ctx,
    profile: Profile,
    addon: Addon,
    on: bool,
    interrupted: F,
) -> Result<bool>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
    if profile.has(addon) == on {
        return Ok(false);
    }
    let states = node_states(ctx, &profile).await?;
    nodes::require_running(ctx, &profile, true).await?;
    let mut after = profile.clone();
    after.set(addon, on);
    let name = profile.name.clone();
    let (verb, undone, done) = if on {
        ("enable", "this enable", "enabled")
    } else {
        ("disable", "this disable", "disabled")
    };
    let verb = super::plan::Verb {
        what: format!("`addons {verb} {addon}` of profile {name}"),
        again: format!("`berth addons {verb} {addon} -p {name}` does it again"),
        undo: Some(super::plan::Undo {
            maker: undone,
            kept: None,
            left_hint: format!("`berth addons {verb} {addon} -p {name}` finishes it"),
            left: super::plan::left(move || async move { vec![format!("{addon} partly {done}")] }),
        }),
    };
    let mut setting = Setting {
        before: profile,
        after,
        addon,
        on,
        states,
        crds: false,
    };
    let steps: &[Set] = if on { &ENABLE } else { &DISABLE };
    super::plan::execute(ctx, verb, steps, &mut setting, interrupted).await?;
    Ok(true)
}

/// Replaces what an older berth ran for an addon whose upstream project
/// was retired since (ingress-nginx, the Kubernetes Dashboard), in a
/// running profile whose control plane still holds that manifest and
/// applies it at each boot: the old objects deleted, and the addon
/// enabled anew with what it runs now. Returns what a user is told, one
/// line per addon replaced.
pub async fn replace_retired<F, Fut>(
    ctx: &Ctx,
    profile: &Profile,
    interrupted: F,
) -> Result<Vec<String>>
where
    F: Fn() -> Fut + Copy,
    Fut: std::future::Future<Output = &'static str>,
{
    let mut notes = Vec::new();
    let old: Vec<_> = profile
        .addons_on()
        .into_iter()
        .filter_map(|a| Some((a, a.retired()?)))
        .collect();
    if old.is_empty() {
        return Ok(notes);
    }
    let states = node_states(ctx, profile).await?;
    let control_plane = match states.first() {
        Some((_, c)) if super::state_of(c).is_running() => c.id.clone(),
        _ => return Ok(notes),
    };
    // Every old manifest is read, and its objects deleted, before any
    // addon changes: changing one puts every node file of this berth's,
    // every addon's manifest with them, into the node.
    let mut found = Vec::new();
    for (addon, retired) in old {
        let manifest = addon.manifest_path();
        let held = ctx
            .docker
            .exec(&control_plane, &command::cat(&manifest))
            .await?
            .stdout;
        if held.contains(retired.marker) {
            delete_objects(ctx, &control_plane, &manifest).await?;
            found.push((addon, retired));
        }
    }
    let name = &profile.name;
    let row = berth_node::supported(&profile.kubernetes_version)?;
    for (addon, retired) in found {
        // Its old objects are gone: saved as off, it is enabled anew, and
        // one that fails to is left plainly off.
        let mut off = ctx.store.load(name)?.unwrap_or_else(|| profile.clone());
        off.set(addon, false);
        ctx.store.save(&off)?;
        set(ctx, off, addon, true, interrupted)
            .await
            .map_err(|e| {
                e.with_hint(format!(
                    "the {addon} addon of profile {name} is off now; `berth addons enable {addon} -p {name}` turns it on"
                ))
            })?;
        let images: Vec<String> = addon
            .images(row)
            .iter()
            .map(|i| i.rsplit('/').next().unwrap_or(i).to_string())
            .collect();
        notes.push(format!(
            "note: {} was replaced in profile {name} by {} ({}): {}",
            retired.what,
            images.join(", "),
            addon.project(),
            addon.about()
        ));
    }
    Ok(notes)
}

/// Files whose change needs their unit restarted, with that unit.
const RESTARTED_ON_CHANGE: [(&str, &str); 2] = [
    (API_SERVER_UNIT, "kube-apiserver"),
    ("/etc/kubernetes/kubelet.yaml", "kubelet"),
];

const API_SERVER_UNIT: &str = "/etc/systemd/system/kube-apiserver.service";

/// The files of `RESTARTED_ON_CHANGE` whose rendering for the profile as
/// it is now differs from what the running node holds, by unit.
async fn changed_units(
    ctx: &Ctx,
    profile: &Profile,
    node: &Node,
    container: &str,
) -> Result<Vec<&'static str>> {
    let files = nodes::rendered(profile, node)?;
    let mut changed = Vec::new();
    for (path, unit) in RESTARTED_ON_CHANGE {
        let old = ctx
            .docker
            .exec(container, &command::cat(path))
            .await?
            .stdout;
        let differs = files.iter().any(|f| {
            matches!(f, NodeFile::File { path: p, content, .. } if p == path && *content != old)
        });
        if differs {
            changed.push(unit);
        }
    }
    Ok(changed)
}

/// Puts the node's files, rendered for the profile as it is now, into the
/// running node, and restarts (or starts, or stops) what they changed;
/// returns the units it restarted.
async fn refresh_files(
    ctx: &Ctx,
    profile: &Profile,
    node: &Node,
    container: &str,
    addon: Addon,
    on: bool,
) -> Result<Vec<&'static str>> {
    let restart = changed_units(ctx, profile, node, container).await?;
    nodes::upload_files(ctx, profile, node, container).await?;
    exec(ctx, container, &command::daemon_reload()).await?;
    if !restart.is_empty() {
        exec(ctx, container, &command::restart(&restart)).await?;
    }
    for unit in addon.units() {
        let cmd = if on {
            // The storage provisioner waits seconds before it begins;
            // nothing need wait for that.
            command::start_in_background(unit)
        } else {
            command::disable_now(unit)
        };
        exec(ctx, container, &cmd).await?;
    }
    Ok(restart)
}

/// Waits up to a minute for the API server restarted by `refresh_files`.
async fn wait_for_api_server(ctx: &Ctx, profile: &Profile) -> Result<()> {
    let client = ctx.client(profile).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !super::api_ready(&client).await {
        if std::time::Instant::now() > deadline {
            return Err(Error::not_ready(format!(
                "the API server of profile {} did not come back within 60 s of its restart",
                profile.name
            ))
            .with_hint(format!(
                "`berth logs -p {} kube-apiserver` shows why",
                profile.name
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Deletes the objects of `manifest` (a path in the control plane).
/// Objects of a kind the cluster does not serve (CRDs not applied) are
/// not there to delete.
async fn delete_objects(ctx: &Ctx, container: &str, manifest: &str) -> Result<()> {
    let delete = [
        "delete",
        "--ignore-not-found",
        "--wait=false",
        "-f",
        manifest,
    ];
    let cmd = command::kubectl(&delete);
    exec_unless(ctx, container, &cmd, only_unserved_kinds).await
}

/// kubectl's complaints are all of kinds the API server does not serve.
fn only_unserved_kinds(stderr: &str) -> bool {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    !lines.is_empty()
        && lines.iter().all(|l| {
            l.starts_with("resource mapping not found")
                || l.starts_with("ensure CRDs are installed")
        })
}

/// Takes the addon's manifest, and its CRDs where it has them on the
/// profile's minor, out of the control plane.
async fn remove_files(
    ctx: &Ctx,
    control_plane: &str,
    profile: &Profile,
    addon: Addon,
) -> Result<()> {
    let row = berth_node::supported(&profile.kubernetes_version)?;
    let crds = addon.crds(row).map(|_| addon.crds_path());
    for path in std::iter::once(addon.manifest_path()).chain(crds) {
        exec(ctx, control_plane, &command::remove(&path)).await?;
    }
    Ok(())
}

/// Applies `manifest` (a path in the control plane). The node's addons
/// unit applies the same directory at each boot until all of it goes in,
/// so it may be at it still while a start replaces a retired addon: both
/// then create an object neither found, and one is refused with
/// AlreadyExists; applied again, it finds the object and changes it.
async fn apply(ctx: &Ctx, container: &str, manifest: &str) -> Result<()> {
    let cmd = command::kubectl(&["apply", "-f", manifest]);
    let mut tries = 1;
    loop {
        match ctx.docker.exec(container, &cmd).await?.success() {
            Ok(_) => return Ok(()),
            Err(stderr) if tries < APPLY_TRIES && stderr.contains("(AlreadyExists)") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await
            }
            Err(stderr) => return Err(failed(&cmd, &stderr)),
        }
    }
}

const APPLY_TRIES: usize = 3;

/// Runs the cluster's own kubectl in the control plane, as its admin.
async fn kubectl(ctx: &Ctx, container: &str, args: &[&str]) -> Result<()> {
    exec(ctx, container, &command::kubectl(args)).await
}

async fn exec(ctx: &Ctx, container: &str, cmd: &Command) -> Result<()> {
    exec_unless(ctx, container, cmd, |_| false).await
}

/// `exec`, where a failure whose errors `harmless` accepts is none.
async fn exec_unless(
    ctx: &Ctx,
    container: &str,
    cmd: &Command,
    harmless: fn(&str) -> bool,
) -> Result<()> {
    match ctx.docker.exec(container, cmd).await?.success() {
        Ok(_) => Ok(()),
        Err(stderr) if harmless(&stderr) => Ok(()),
        Err(stderr) => Err(failed(cmd, &stderr)),
    }
}

fn failed(cmd: &Command, stderr: &str) -> Error {
    Error::failure(format!("`{cmd}` failed in the node: {}", stderr.trim()))
        .with_hint("`berth status` shows whether the cluster is healthy; then try again")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, never};
    use berth_engine::Kind;
    use berth_engine::fake::FakeEngine;

    const KUBECTL: &str =
        "/opt/berth/kubernetes/bin/kubectl --kubeconfig=/etc/kubernetes/admin.conf";

    /// A running single-node profile `dev`, whose node answers what
    /// enabling or disabling metrics-server runs in it; its units' files
    /// are as rendered, so nothing needs a restart.
    fn running(metrics: bool) -> (tempfile::TempDir, std::sync::Arc<FakeEngine>, Ctx, Profile) {
        running_with(|profile| profile.set(Addon::MetricsServer, metrics))
    }

    /// `running`, with the example profile as `edit` leaves it.
    fn running_with(
        edit: impl FnOnce(&mut Profile),
    ) -> (tempfile::TempDir, std::sync::Arc<FakeEngine>, Ctx, Profile) {
        let (dir, engine, ctx) = Ctx::with_fake_engine();
        let mut profile = Profile::example("dev");
        edit(&mut profile);
        ctx.store.save(&profile).unwrap();
        nodes::ensure_pki(&ctx, &profile, &[]).unwrap();
        let labels = ctx.names(&profile).labels_created_by("earlier-start");
        let node = profile.control_plane();
        engine.add(Kind::Container, &node.container, &labels);
        for file in nodes::rendered(&profile, &node).unwrap() {
            if let NodeFile::File { path, content, .. } = file
                && RESTARTED_ON_CHANGE.iter().any(|(p, _)| *p == path)
            {
                engine.answer(&format!("cat {path}"), &content);
            }
        }
        for ok in ["systemctl", "rm -f", KUBECTL] {
            engine.answer(ok, "");
        }
        (dir, engine, ctx, profile)
    }

    /// The commands run in nodes from `from` on, without the container.
    fn ran(engine: &FakeEngine, from: &str) -> Vec<String> {
        let execs = engine.execs.lock().unwrap();
        let commands: Vec<String> = execs
            .iter()
            .map(|e| e.split_once(": ").unwrap().1.to_string())
            .collect();
        let start = commands.iter().position(|c| c.starts_with(from)).unwrap();
        commands[start..].to_vec()
    }

    #[test]
    fn enabling_applies_the_manifest_and_saves_without_restarting_the_api_server() {
        let (_dir, engine, ctx, profile) = running(false);
        let set = set(&ctx, profile, Addon::MetricsServer, true, never);
        assert!(block_on(set).unwrap());
        let manifest = Addon::MetricsServer.manifest_path();
        let execs = engine.execs.lock().unwrap().join("\n");
        assert!(
            execs.contains(&format!("{KUBECTL} apply -f {manifest}")),
            "{execs}"
        );
        assert!(!execs.contains("restart"), "{execs}");
        let saved = ctx.store.load("dev").unwrap().unwrap();
        assert!(saved.has(Addon::MetricsServer));
    }

    /// On a minor with the Gateway API, the ingress addon `on` or not.
    fn on_current_minor(on: bool) -> (tempfile::TempDir, std::sync::Arc<FakeEngine>, Ctx, Profile) {
        running_with(|profile| {
            profile.kubernetes_version = "v1.37.2".parse().unwrap();
            profile.set(Addon::Ingress, on);
        })
    }

    #[test]
    fn enabling_an_addon_with_crds_puts_them_in_and_applies_them_first() {
        let (_dir, engine, ctx, profile) = on_current_minor(false);
        // In the cache, as `ensure` leaves them.
        let row = berth_node::supported(&profile.kubernetes_version).unwrap();
        let cached = ctx.cache.images_dir();
        std::fs::create_dir_all(&cached).unwrap();
        let file = cached.join(Addon::Ingress.crds(row).unwrap().file_name());
        std::fs::write(file, "kind: CustomResourceDefinition\n").unwrap();
        let set = set(&ctx, profile, Addon::Ingress, true, never);
        assert!(block_on(set).unwrap());
        let crds = Addon::Ingress.crds_path();
        let after = ran(&engine, &format!("{KUBECTL} apply"));
        assert_eq!(
            after[..3],
            [
                format!("{KUBECTL} apply --server-side --force-conflicts -f {crds}"),
                format!("{KUBECTL} wait --for=condition=Established --timeout=60s -f {crds}"),
                format!("{KUBECTL} apply -f {}", Addon::Ingress.manifest_path()),
            ],
            "{after:#?}"
        );
        // The CRDs, then the node's files.
        assert_eq!(engine.uploads.lock().unwrap().len(), 2);
    }

    #[test]
    fn disabling_an_addon_with_crds_leaves_them_and_what_was_made_of_them() {
        let (_dir, engine, ctx, profile) = on_current_minor(true);
        let set = set(&ctx, profile, Addon::Ingress, false, never);
        assert!(block_on(set).unwrap());
        let execs = engine.execs.lock().unwrap().join("\n");
        assert!(
            execs.contains(&format!("rm -f {}", Addon::Ingress.crds_path())),
            "{execs}"
        );
        let deletes: Vec<&str> = execs.lines().filter(|l| l.contains(" delete ")).collect();
        assert_eq!(deletes.len(), 1, "{deletes:?}");
        assert!(
            deletes[0].ends_with(&Addon::Ingress.manifest_path()),
            "{deletes:?}"
        );
    }

    #[test]
    fn a_retired_ingress_controller_is_replaced_once_and_said() {
        let (_dir, engine, ctx, profile) = on_current_minor(true);
        let manifest = Addon::Ingress.manifest_path();
        engine.answer(
            &format!("cat {manifest}"),
            "name: ingress-nginx-controller\n",
        );
        let notes = block_on(replace_retired(&ctx, &profile, never)).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("ingress-nginx, retired upstream"),
            "{notes:?}"
        );
        assert!(notes[0].contains("traefik:v3.6.12"), "{notes:?}");
        let after = ran(&engine, &format!("{KUBECTL} delete"));
        assert!(after[0].ends_with(&manifest), "{after:#?}");
        assert!(
            after.contains(&format!("{KUBECTL} apply -f {manifest}")),
            "{after:#?}"
        );
        assert!(ctx.store.load("dev").unwrap().unwrap().has(Addon::Ingress));

        // Its manifest now is Traefik's: nothing to replace.
        engine.answer(&format!("cat {manifest}"), "name: traefik\n");
        let again = block_on(replace_retired(&ctx, &profile, never)).unwrap();
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn objects_of_kinds_not_served_are_not_there_to_delete() {
        let unserved = "resource mapping not found for name: \"traefik\" namespace: \"\" from \"x.yaml\": no matches for kind \"GatewayClass\" in version \"gateway.networking.k8s.io/v1\"\nensure CRDs are installed first\n";
        assert!(only_unserved_kinds(unserved));
        let refused = format!("{unserved}Error from server (Forbidden): nope\n");
        assert!(!only_unserved_kinds(&refused));
        assert!(!only_unserved_kinds(""));
    }

    #[test]
    fn an_enable_whose_apply_fails_is_taken_back() {
        let (_dir, engine, ctx, profile) = running(false);
        engine.refuse(&format!("{KUBECTL} apply"), "the API server said no");
        let set = set(&ctx, profile, Addon::MetricsServer, true, never);
        let error = block_on(set).unwrap_err();
        assert!(
            error.message.contains("the API server said no"),
            "{}",
            error.message
        );
        let manifest = Addon::MetricsServer.manifest_path();
        // Its objects deleted, the files as they were, the manifest gone.
        let after = ran(&engine, &format!("{KUBECTL} apply"));
        let delete = format!("{KUBECTL} delete --ignore-not-found --wait=false -f {manifest}");
        assert_eq!(after[1], delete, "{after:#?}");
        assert_eq!(
            after.last().unwrap(),
            &format!("rm -f {manifest}"),
            "{after:#?}"
        );
        assert_eq!(
            engine.uploads.lock().unwrap().len(),
            2,
            "files, then files undone"
        );
        let saved = ctx.store.load("dev").unwrap().unwrap();
        assert!(
            !saved.has(Addon::MetricsServer),
            "the failed enable was saved"
        );
    }

    #[test]
    fn an_apply_refused_for_an_object_made_meanwhile_is_tried_again() {
        let (_dir, engine, ctx, profile) = running(false);
        let manifest = Addon::MetricsServer.manifest_path();
        let apply = format!("{KUBECTL} apply -f {manifest}");
        engine.refuse(&apply, "Error from server (AlreadyExists): error when creating \"x.yaml\": services \"metrics-server\" already exists");
        let set = set(&ctx, profile, Addon::MetricsServer, true, never);
        assert!(block_on(set).is_err(), "refused at every try");
        let tries = ran(&engine, &format!("{KUBECTL} apply"))
            .iter()
            .filter(|c| **c == apply)
            .count();
        assert_eq!(tries, APPLY_TRIES);
    }

    #[test]
    fn a_disable_that_fails_half_way_applies_the_addon_again() {
        let (_dir, engine, ctx, profile) = running(true);
        engine.refuse("systemctl daemon-reload", "systemd is gone");
        let set = set(&ctx, profile, Addon::MetricsServer, false, never);
        assert!(block_on(set).is_err());
        let manifest = Addon::MetricsServer.manifest_path();
        let after = ran(&engine, &format!("{KUBECTL} delete"));
        assert_eq!(
            after.last().unwrap(),
            &format!("{KUBECTL} apply -f {manifest}"),
            "{after:#?}"
        );
        let saved = ctx.store.load("dev").unwrap().unwrap();
        assert!(
            saved.has(Addon::MetricsServer),
            "the failed disable was saved"
        );
    }
}
