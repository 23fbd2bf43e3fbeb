//! `upgrade`: a running cluster's Kubernetes taken to a newer patch or the
//! next minor in place, node by node as upstream's skew policy orders it:
//! the control planes first, then the workers. Each node is drained (when
//! another can take its pods), its container made anew on the new
//! version's binaries volume over the same `/var` (etcd's data, images,
//! volumes, pods' state), and waited for until Ready before the next. The
//! profile says an upgrade is under way until every node runs the new
//! version, so that one cut short (a failure, Ctrl-C) is carried on by the
//! same command: nodes that run it already are passed over.

use std::time::Duration;

use super::plan::{self, Step};
use super::{Ctx, nodes, ready};
use berth_core::binaries::Version;
use berth_core::error::{Error, Result};
use berth_core::profile::{Node, Profile};
use berth_engine::{Kind, Resource};
use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::api::{Api, Patch, PatchParams};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Upgrade {
    /// The new version's binaries volume (downloaded when not cached) and
    /// the addon images berth builds for its minor. Undo: none, shared.
    Binaries,
    /// The profile says that an upgrade to the version is under way.
    Begin,
    /// The node at this place in `Upgrading::nodes`: drained, made anew,
    /// Ready, uncordoned. No undo: a newer etcd may have moved its data on.
    Node(usize),
    /// The LoadBalancer controller made anew on the new binaries; the
    /// profile runs the new version; pods waiting for an image of the new
    /// minor's (CoreDNS's), which a node upgraded later lacked, are made
    /// again at once.
    Finish,
}

struct Upgrading {
    /// The profile as saved.
    profile: Profile,
    /// The profile as it is once every node runs the new version.
    target: Profile,
    /// Every node in the order upgraded, with the version its container
    /// runs (`None`: gone, removed by an upgrade cut short).
    nodes: Vec<(Node, Option<Version>)>,
    binaries: Option<String>,
    wait: Duration,
    /// An upgrade cut short before is carried on.
    carried_on: bool,
}

impl Upgrading {
    fn to(&self) -> &Version {
        &self.target.kubernetes_version
    }

    /// Where the nodes are, as "dev runs v1.37.2; dev-m02 runs v1.36.3".
    fn progress(&self) -> String {
        self.nodes
            .iter()
            .map(|(node, runs)| match runs {
                Some(v) => format!("{} runs {v}", node.name),
                None => format!("{} has no container", node.name),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Step<Upgrading> for Upgrade {
    fn title(self, up: &Upgrading) -> Option<String> {
        match self {
            Upgrade::Binaries => Some(format!("Preparing the Kubernetes {} binaries", up.to())),
            // Each node shows its own steps.
            Upgrade::Begin | Upgrade::Node(_) | Upgrade::Finish => None,
        }
    }

    async fn run(self, ctx: &Ctx, up: &mut Upgrading) -> Result<()> {
        match self {
            Upgrade::Binaries => {
                let volume = super::binaries::binaries_volume(ctx, &up.target).await?;
                let to = up.to().clone();
                if let Some(manifest) = ctx.cache.get(&to)? {
                    up.target.runtime = manifest.runtime;
                }
                super::addon_images::ensure(ctx, &to, &up.target.addons_on()).await?;
                up.binaries = Some(volume);
            }
            Upgrade::Begin => {
                // A node made anew finds the network by this id, also when
                // the first control plane's container is the one away.
                let network = super::network_id(ctx, &up.profile).await?;
                up.profile.network_id = Some(network.clone());
                up.target.network_id = Some(network);
                up.profile.upgrading = Some(up.to().clone());
                ctx.store.save(&up.profile)?;
            }
            Upgrade::Node(place) => upgrade_node(ctx, up, place).await?,
            Upgrade::Finish => {
                // The LoadBalancer controller runs the cluster's kubectl
                // from the binaries volume too.
                if up.target.lb_address.is_some() {
                    let binaries = plan::output(&up.binaries, "the binaries step")?.clone();
                    let controller = ctx.names(&up.target).service_lb();
                    ctx.docker.remove_container(&controller).await?;
                    super::service_lb::create(ctx, &up.target, binaries).await?;
                }
                // Every control plane behind the load balancer again, also
                // one an upgrade cut short had taken off.
                if up.target.load_balancer {
                    super::balancer::update(ctx, &up.target).await?;
                }
                up.target.upgrading = None;
                ctx.store.save(&up.target)?;
                let row = berth_node::supported(up.to())?;
                let mut images = vec![row.coredns.to_string()];
                let built = super::addon_images::cached(ctx, up.to(), &up.target.addons_on())?;
                images.extend(built.images.into_iter().map(|(image, _)| image.image));
                let client = ctx.client(&up.target).await?;
                super::dns::retry_image_pulls(&client, &images).await;
            }
        }
        Ok(())
    }
}

/// Upgrades the node at `place` of `up.nodes`, unless it runs the new
/// version already.
async fn upgrade_node(ctx: &Ctx, up: &mut Upgrading, place: usize) -> Result<()> {
    let (node, runs) = up.nodes[place].clone();
    let to = up.to().clone();
    if runs.as_ref() == Some(&to) {
        if up.carried_on {
            let client = ctx.client(&up.target).await?;
            release(&client, &node.name).await?;
        }
        return Ok(());
    }
    let what = if node.is_control_plane() {
        format!("control plane {}", node.name)
    } else {
        format!("node {}", node.name)
    };
    // With one node its pods have nowhere to go: they stop with it and
    // start again on the new version, as after a restart.
    let drained = up.profile.nodes().len() > 1 && runs.is_some();
    let container = own_container(ctx, &up.profile, &node).await?;
    if let Some(container) = &container {
        if node.is_control_plane() && up.profile.load_balancer {
            super::etcd::check_quorum_without(ctx, &up.profile, &node, "upgrading").await?;
            // The API stays only if the others serve it (after a start,
            // one may still be making its roles).
            for (other, _) in up
                .nodes
                .iter()
                .filter(|(n, _)| n.is_control_plane() && n.name != node.name)
            {
                let what = format!("control plane {}", other.name);
                own_api_server(ctx, &up.profile, other, &what, up.wait).await?;
            }
        }
        if drained {
            let step = ctx.ui.step(format!("Draining {what}"));
            let client = ctx.client(&up.profile).await?;
            // A node its user cordoned stays so; one cordoned here is
            // marked, so that an upgrade carried on after a cut knows
            // to uncordon it.
            if !cordoned(&client, &node.name).await? {
                mark(&client, &node.name, Some("true")).await?;
            }
            // Pods no controller makes again stay, and start again with the
            // node, as after a restart.
            nodes::drain(&client, &node.name, true, false).await?;
            step.done();
        }
        let step = ctx
            .ui
            .step(format!("Stopping {what} ({})", runs_text(&runs)));
        // The load balancer stops sending to it first, instead of finding
        // it gone within its checks' two seconds.
        if node.is_control_plane() && up.profile.load_balancer {
            super::balancer::without(ctx, &up.profile, &node.name).await?;
            super::etcd::hand_over_leadership(ctx, &container.id).await?;
        }
        if node.is_control_plane() && super::state_of(container).is_running() {
            super::lifecycle::stop_control_plane(ctx, &up.profile, &container.id).await?;
        }
        ctx.docker.remove_container(&container.id).await?;
        step.done();
    }
    up.nodes[place].1 = None;
    let step = ctx
        .ui
        .step(format!("Making {what} anew on Kubernetes {to}"));
    // Heartbeats are stamped in whole seconds: a report the old kubelet
    // sent in the second its container went would pass for the new one's
    // (CI saw a worker "Ready" still on the old version). The new kubelet
    // boots for seconds before it reports.
    let since = berth_node::now() as i64 + 1;
    let binaries = plan::output(&up.binaries, "the binaries step")?.clone();
    let id = nodes::make_container(ctx, &up.target, &node, binaries, false, None).await?;
    ctx.docker.start_container(&id).await?;
    up.nodes[place].1 = Some(to.clone());
    step.done();
    let one = std::slice::from_ref(&node);
    ready::wait_ready(ctx, &up.target, Some(one), Some(since), Some(up.wait)).await?;
    if node.is_control_plane() && up.profile.load_balancer {
        // Back behind the load balancer once its own API server answers.
        own_api_server(ctx, &up.profile, &node, &what, up.wait).await?;
        super::balancer::update(ctx, &up.target).await?;
    }
    // Also a node drained by an upgrade cut before its container was made
    // anew: `release` uncordons only what an upgrade cordoned.
    if up.profile.nodes().len() > 1 {
        let client = ctx.client(&up.target).await?;
        release(&client, &node.name).await?;
    }
    Ok(())
}

/// Waits up to `wait` for the API server of control plane `node` (`what`)
/// to be ready, asked on its own loopback.
async fn own_api_server(
    ctx: &Ctx,
    profile: &Profile,
    node: &Node,
    what: &str,
    wait: Duration,
) -> Result<()> {
    let deadline = std::time::Instant::now() + wait;
    while !super::status::own_api_server_ready(ctx, &node.container).await? {
        if std::time::Instant::now() > deadline {
            return Err(Error::failure(format!(
                "the API server of {what} was not ready within {} s",
                wait.as_secs()
            ))
            .with_hint(format!(
                "`berth logs -p {} --node {} --component kube-apiserver` says why",
                profile.name, node.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Marks a node this upgrade cordoned.
const CORDONED_HERE: &str = "berth.io/cordoned-for-upgrade";

fn failed(what: &str, name: &str, e: kube::Error) -> Error {
    Error::failure(format!("cannot {what} node {name}: {e}"))
        .with_hint("`berth status` shows whether the API server is ready")
}

/// Whether node `name` is cordoned.
async fn cordoned(client: &kube::Client, name: &str) -> Result<bool> {
    let nodes: Api<NodeObject> = Api::all(client.clone());
    let node = nodes.get(name).await.map_err(|e| failed("read", name, e))?;
    Ok(node.spec.and_then(|s| s.unschedulable).unwrap_or(false))
}

/// Sets (or with `None` removes) node `name`'s `CORDONED_HERE` mark.
async fn mark(client: &kube::Client, name: &str, value: Option<&str>) -> Result<()> {
    let nodes: Api<NodeObject> = Api::all(client.clone());
    let patch = serde_json::json!({"metadata": {"annotations": {CORDONED_HERE: value}}});
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| failed("mark", name, e))?;
    Ok(())
}

/// Uncordons node `name` when this upgrade (or one cut short) cordoned it.
async fn release(client: &kube::Client, name: &str) -> Result<()> {
    let nodes: Api<NodeObject> = Api::all(client.clone());
    let node = nodes.get(name).await.map_err(|e| failed("read", name, e))?;
    let marked = node
        .metadata
        .annotations
        .is_some_and(|a| a.contains_key(CORDONED_HERE));
    if marked {
        nodes::uncordon(client, name).await?;
        mark(client, name, None).await?;
    }
    Ok(())
}

fn runs_text(runs: &Option<Version>) -> String {
    runs.as_ref()
        .map_or("no container".to_string(), |v| v.to_string())
}

/// `node`'s container among the profile's own, if it has one.
async fn own_container(ctx: &Ctx, profile: &Profile, node: &Node) -> Result<Option<Resource>> {
    let names = ctx.names(profile);
    Ok(ctx
        .docker
        .resources(&names.filter())
        .await?
        .into_iter()
        .find(|r| r.kind == Kind::Container && r.name == node.container))
}

/// Why `profile` cannot be upgraded to `to` now; nothing is changed.
async fn check(ctx: &Ctx, profile: &Profile, to: &Version) -> Result<Vec<(Node, Option<Version>)>> {
    let name = &profile.name;
    match &profile.upgrading {
        Some(under_way) if under_way != to => {
            return Err(Error::usage(format!(
                "profile {name} is being upgraded to {under_way} already, not to {to}"
            ))
            .with_hint(format!(
                "`berth upgrade -p {name} --kubernetes-version {under_way}` finishes that upgrade first"
            )));
        }
        Some(_) => {}
        None => berth_node::minors::upgrade(&profile.kubernetes_version, to)
            .map_err(|skew| refused(profile, to, skew))?,
    }
    let names = ctx.names(profile);
    let mine = ctx.docker.resources(&names.filter()).await?;
    let mut order = profile.control_plane_nodes();
    order.extend(
        profile
            .nodes()
            .into_iter()
            .filter(|n| !n.is_control_plane()),
    );
    order
        .into_iter()
        .map(|node| {
            let container = mine
                .iter()
                .find(|r| r.kind == Kind::Container && r.name == node.container);
            match container {
                // A node an upgrade cut short left without its container
                // is made anew by this one.
                None if profile.upgrading.is_some() => Ok((node, None)),
                None => Err(super::broken(name, &node.container)),
                Some(c) if !super::state_of(c).is_running() => Err(Error::usage(format!(
                    "node {} of profile {name} is {}, and an upgrade needs every node running",
                    node.name,
                    super::state_of(c).display().to_lowercase()
                ))
                .with_hint(format!(
                    "`berth start -p {name}` (or `berth unpause -p {name}`) first"
                ))),
                Some(c) => {
                    let runs = nodes::version_of(profile, c);
                    Ok((node, Some(runs)))
                }
            }
        })
        .collect()
}

fn refused(profile: &Profile, to: &Version, skew: berth_node::Skew) -> Error {
    use berth_node::Skew;
    let name = &profile.name;
    let hint = match &skew {
        Skew::Same(_) => "nothing to do".to_string(),
        Skew::Older { .. } => format!(
            "a cluster goes back to an older version by a snapshot taken before its upgrade \
             (`berth snapshot restore`), or made anew: `berth delete -p {name}` and `berth start -p {name} --kubernetes-version {to}`"
        ),
        Skew::Skips { next, .. } => format!(
            "`berth upgrade -p {name} --kubernetes-version v1.{next}.N` (a patch of v1.{next} that `berth cache list` shows, \
             or that `berth cache download` or `cache build` gets), then to {to}"
        ),
        Skew::Unsupported(_) => "`berth cache list` shows the versions at hand".to_string(),
    };
    Error::usage(format!("profile {name} cannot be upgraded to {to}: {skew}")).with_hint(hint)
}

/// Upgrades a running profile to `to` (see the module's comment), waiting
/// up to `wait` for each node. A failure or an interruption (`interrupted`
/// resolves) stops where it is, saying which node runs which version and
/// that the same command carries on; nothing is taken back.
pub async fn upgrade<F, Fut>(
    ctx: &Ctx,
    profile: Profile,
    to: Version,
    wait: Duration,
    interrupted: F,
) -> Result<Profile>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
    let nodes = check(ctx, &profile, &to).await?;
    let name = profile.name.clone();
    let again = format!("`berth upgrade -p {name} --kubernetes-version {to}` carries on");
    let target = Profile {
        kubernetes_version: to.clone(),
        ..profile.clone()
    };
    let mut up = Upgrading {
        carried_on: profile.upgrading.is_some(),
        profile,
        target,
        nodes,
        binaries: None,
        wait,
    };
    let mut steps = vec![Upgrade::Binaries, Upgrade::Begin];
    steps.extend((0..up.nodes.len()).map(Upgrade::Node));
    steps.push(Upgrade::Finish);
    let verb = plan::Verb {
        what: format!("the upgrade of profile {name} to {to}"),
        again: again.clone(),
        undo: None,
    };
    match plan::execute(ctx, verb, &steps, &mut up, interrupted).await {
        Ok(()) => Ok(up.target),
        // Before `Begin` nothing was changed: the error says it all.
        Err(error) if up.profile.upgrading.is_none() => Err(error),
        Err(mut error) => {
            error.message = format!(
                "{}; the upgrade stopped half-way ({})",
                error.message,
                up.progress()
            );
            error.hint = Some(match error.hint {
                Some(hint) if !hint.contains("berth upgrade") => format!("{hint}; then {again}"),
                _ => again,
            });
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, never, running};
    use berth_engine::Engine;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    /// A running two-node profile `dev` on `version`, maybe `upgrading`.
    fn dev_on(
        version: &str,
        upgrading: Option<&str>,
    ) -> (
        tempfile::TempDir,
        std::sync::Arc<berth_engine::fake::FakeEngine>,
        Ctx,
        Profile,
    ) {
        let (dir, engine, ctx, mut profile) = running(vec![1]);
        profile.kubernetes_version = v(version);
        profile.upgrading = upgrading.map(v);
        ctx.store.save(&profile).unwrap();
        (dir, engine, ctx, profile)
    }

    /// `upgrade` to `to`, which must be refused without a change to the
    /// engine or the saved profile: its error.
    fn refused_unchanged(
        engine: &berth_engine::fake::FakeEngine,
        ctx: &Ctx,
        profile: Profile,
        to: &str,
    ) -> Error {
        let before = engine.names();
        let saved = ctx.store.load(&profile.name).unwrap();
        let error = block_on(upgrade(ctx, profile, v(to), Duration::from_secs(1), never))
            .expect_err("the upgrade was not refused");
        assert_eq!(
            engine.names(),
            before,
            "a refused upgrade changed the engine"
        );
        assert_eq!(ctx.store.load("dev").unwrap(), saved);
        error
    }

    #[test]
    fn an_upgrade_that_skips_a_minor_or_goes_back_is_refused_naming_the_way() {
        let (_dir, engine, ctx, profile) = dev_on("v1.35.4", None);
        let error = refused_unchanged(&engine, &ctx, profile.clone(), "v1.37.2");
        assert_eq!(error.exit, berth_core::error::Exit::Usage);
        assert!(
            error.message.contains("so v1.36 comes first"),
            "{}",
            error.message
        );
        let hint = error.hint.unwrap();
        assert!(
            hint.contains("berth upgrade -p dev --kubernetes-version v1.36.N")
                && hint.contains("then to v1.37.2"),
            "{hint}"
        );
        let error = refused_unchanged(&engine, &ctx, profile.clone(), "v1.34.4");
        assert!(
            error.message.contains("does not downgrade"),
            "{}",
            error.message
        );
        assert!(error.hint.unwrap().contains("snapshot restore"));
        let error = refused_unchanged(&engine, &ctx, profile, "v1.35.4");
        assert!(
            error.message.contains("runs v1.35.4 already"),
            "{}",
            error.message
        );
    }

    #[test]
    fn an_upgrade_under_way_is_carried_on_only_to_its_own_version() {
        let (_dir, engine, ctx, profile) = dev_on("v1.36.3", Some("v1.37.2"));
        let error = refused_unchanged(&engine, &ctx, profile.clone(), "v1.37.1");
        assert!(
            error.message.contains("being upgraded to v1.37.2 already"),
            "{}",
            error.message
        );
        assert!(
            error
                .hint
                .unwrap()
                .contains("berth upgrade -p dev --kubernetes-version v1.37.2")
        );
        // Carried on, a node whose container a cut upgrade removed is made
        // anew, not called broken; the order is control planes first.
        block_on(engine.remove_container(&profile.nodes()[1].container)).unwrap();
        let order = block_on(check(&ctx, &profile, &v("v1.37.2"))).unwrap();
        let order: Vec<(String, Option<Version>)> =
            order.into_iter().map(|(n, runs)| (n.name, runs)).collect();
        assert_eq!(
            order,
            [
                ("dev".to_string(), Some(v("v1.36.3"))),
                ("dev-m02".to_string(), None)
            ]
        );
    }

    #[test]
    fn an_upgrade_needs_every_node_running() {
        let (_dir, engine, ctx, profile) = dev_on("v1.36.3", None);
        block_on(engine.stop_container(&profile.nodes()[1].container, 0)).unwrap();
        let error = refused_unchanged(&engine, &ctx, profile, "v1.37.2");
        assert!(
            error
                .message
                .contains("node dev-m02 of profile dev is stopped"),
            "{}",
            error.message
        );
        assert!(error.hint.unwrap().contains("berth start -p dev"));
    }
}
