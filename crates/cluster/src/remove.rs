//! Taking things away: a profile with everything it has (`delete`), what
//! one start made (its rollback), and helpers left by killed berths. Only
//! what carries this home's and the profile's labels, or this process's
//! token, is ever removed: the engine may be shared with other homes.

use std::time::Duration;

use futures_util::future::try_join_all;

use super::Ctx;
use super::plan::{self, Step};
use berth_core::error::{Error, Result};
use berth_core::kubeconfig;
use berth_core::names::{self, LABEL_CREATED_BY, LABEL_HELPER, LABEL_HOME, LABEL_PROFILE};
use berth_core::profile::Profile;
use berth_engine::{Filter, Kind, Resource};

/// Deleting a profile of this home: every trace of it. Nothing to take
/// back; a delete cut short is finished by the next.
const DELETE: [Delete; 3] = [Delete::Resources, Delete::Kubeconfig, Delete::State];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Delete {
    /// Every container, volume and network with its labels (also what a
    /// cut-off start left, and networks that share its name).
    Resources,
    /// Its kubeconfig entry, the context current before it current again.
    Kubeconfig,
    /// Its state directory.
    State,
}

struct Deleting<'a> {
    name: &'a str,
    /// Its state, when it can be read.
    profile: Option<&'a Profile>,
    names: names::Names,
    /// Whether there was anything to remove.
    found: bool,
}

impl Step<Deleting<'_>> for Delete {
    fn title(self, _: &Deleting) -> Option<String> {
        None
    }

    async fn run(self, ctx: &Ctx, deleting: &mut Deleting<'_>) -> Result<()> {
        let Deleting {
            name,
            profile,
            names,
            found,
        } = deleting;
        match self {
            Delete::Resources => {
                *found |= sweep(ctx, &names.filter(), &Kind::ALL, name).await?;
            }
            Delete::Kubeconfig => {
                let (kubeconfig, restore) = match profile {
                    Some(p) => (p.kubeconfig.clone(), p.previous_context.clone()),
                    None => (ctx.kubeconfig.clone(), None),
                };
                if kubeconfig.exists() {
                    kubeconfig::update(&kubeconfig, |c| {
                        kubeconfig::remove(c, &names.context(), restore.as_deref())
                    })?;
                }
            }
            Delete::State => {
                if let Some(profile) = profile {
                    super::ssh_forward::end(&ctx.store, profile).await;
                }
                *found |= ctx.store.exists(name);
                ctx.store.remove(name)?;
            }
        }
        Ok(())
    }
}

/// Removes every trace of a profile of this home (see `DELETE`); `profile`
/// is its state when it can be read. Returns whether there was anything.
/// Deleting takes nothing back: a cut delete says so, and deleting again
/// removes the rest.
pub async fn remove_everything<F, Fut>(
    ctx: &Ctx,
    name: &str,
    profile: Option<&Profile>,
    interrupted: F,
) -> Result<bool>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
    let mut deleting = Deleting {
        name,
        profile,
        names: match profile {
            Some(p) => ctx.names(p),
            None => ctx.names_for(name),
        },
        found: false,
    };
    let verb = plan::Verb {
        what: format!("the delete of profile {name}"),
        again: format!("`berth delete -p {name}` removes the rest"),
        undo: None,
    };
    plan::execute(ctx, verb, &DELETE, &mut deleting, interrupted).await?;
    Ok(deleting.found)
}

/// What a delete of a cluster over several engines left because an
/// engine did not answer.
pub struct Unreached {
    /// The engine, and the containers and volumes of the nodes on it.
    pub engine: String,
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    /// The cluster's network, which the Swarm keeps while a node of that
    /// engine is on it (any node of the profile there is).
    pub network: Option<String>,
}

/// What a delete of `profile` could not reach: each of its engines that
/// did not answer, with what the profile has there.
pub fn unreached(ctx: &Ctx, profile: &Profile) -> Vec<Unreached> {
    let lost = ctx.docker.unreachable();
    if lost.is_empty() {
        return Vec::new();
    }
    let network = ctx.names(profile).network();
    let nodes = profile.nodes();
    profile
        .all_engines()
        .iter()
        .enumerate()
        .filter(|(_, engine)| lost.contains(&engine.host))
        .map(|(i, engine)| {
            let on: Vec<_> = nodes.iter().filter(|n| n.engine == i).collect();
            Unreached {
                engine: engine.host.clone(),
                containers: on.iter().map(|n| n.container.clone()).collect(),
                volumes: on.iter().map(|n| n.volume.clone()).collect(),
                network: (!on.is_empty()).then(|| network.clone()),
            }
        })
        .collect()
}

/// Removes the resources of `kinds` this process made in the engine (its
/// token) for profile `name`.
pub(super) async fn sweep_created(ctx: &Ctx, name: &str, kinds: &[Kind]) -> Result<bool> {
    sweep(ctx, &created_filter(ctx, name), kinds, name).await
}

/// What this berth process made for profile `name` and is still there.
pub(super) async fn created(ctx: &Ctx, name: &str) -> Vec<String> {
    let mut found = ctx
        .docker
        .resources(&created_filter(ctx, name))
        .await
        .unwrap_or_default();
    found.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    found.iter().map(Resource::to_string).collect()
}

fn created_filter(ctx: &Ctx, name: &str) -> Filter {
    vec![
        (LABEL_HOME.into(), Some(ctx.home.display().to_string())),
        (LABEL_PROFILE.into(), Some(name.to_string())),
        (LABEL_CREATED_BY.into(), Some(ctx.token.clone())),
    ]
}

/// How often a sweep lists and removes before it gives up.
const PASSES: u32 = 6;

/// Removes the resources of `kinds` that `filter` selects until a listing
/// comes back empty: a
/// request of a berth that was killed (or of this one, cut off) may
/// complete in the engine only after the first listing. Returns whether
/// anything was found.
async fn sweep(ctx: &Ctx, filter: &Filter, kinds: &[Kind], profile: &str) -> Result<bool> {
    let mut found = false;
    for pass in 0..PASSES {
        let mut resources = ctx.docker.resources(filter).await?;
        resources.retain(|r| kinds.contains(&r.kind));
        if resources.is_empty() {
            return Ok(found);
        }
        if found {
            // Left after a removal: new, or refused for a moment.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        found = true;
        if let Err(e) = remove_in_order(ctx, resources).await
            && pass + 1 == PASSES
        {
            return Err(e.into());
        }
    }
    Err(Error::engine(format!(
        "resources of profile {profile} keep appearing while it is removed"
    ))
    .with_hint("another berth may be starting it; wait for it, then delete again"))
}

/// Containers first: they hold the volumes and networks. The home's
/// registry cache, attached to every profile's network, leaves each first.
pub(super) async fn remove_in_order(
    ctx: &Ctx,
    resources: Vec<Resource>,
) -> berth_engine::Result<()> {
    for kind in Kind::ALL {
        if kind == Kind::Network {
            let networks = resources.iter().filter(|r| r.kind == kind);
            // By id: a network of berth's may share its name with another.
            try_join_all(networks.map(|r| super::registry_cache::leave(ctx, &r.id))).await?;
        }
        try_join_all(
            resources
                .iter()
                .filter(|r| r.kind == kind)
                .map(|r| ctx.docker.remove(r)),
        )
        .await?;
    }
    Ok(())
}

/// What `delete --all` deletes: every profile of this home, also those
/// whose state is gone but whose resources a cut-off start left.
pub async fn every_profile(ctx: &Ctx) -> Result<Vec<String>> {
    let mut names = ctx.store.names();
    names.extend(orphans(ctx).await?);
    names.sort();
    names.dedup();
    Ok(names)
}

/// Profiles of this home that have resources in the engine but no state.
pub async fn orphans(ctx: &Ctx) -> Result<Vec<String>> {
    let filter: Filter = vec![
        (LABEL_HOME.into(), Some(ctx.home.display().to_string())),
        (LABEL_PROFILE.into(), None),
    ];
    let mut found: Vec<String> = ctx
        .docker
        .resources(&filter)
        .await?
        .into_iter()
        .filter_map(|r| r.labels.get(LABEL_PROFILE).cloned())
        .filter(|n| berth_core::profile::validate_name(n).is_ok() && !ctx.store.exists(n))
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

/// Removes helper containers (the privilege probe, a binaries volume's
/// filler) with their anonymous volumes: this process's own, and this
/// home's whose berth is gone: known dead in this PID namespace, or older
/// than any helper lives. Another home's helpers, and those of another
/// berth of this home at work (also in another container), stay.
pub async fn remove_helpers(ctx: &Ctx) -> Result<()> {
    let filter: Filter = vec![
        (LABEL_HELPER.into(), None),
        (LABEL_HOME.into(), Some(ctx.home.display().to_string())),
    ];
    let now = berth_node::now() as i64;
    let done: Vec<Resource> = ctx
        .docker
        .resources(&filter)
        .await?
        .into_iter()
        .filter(|r| helper_is_done(r, &ctx.token, now))
        .collect();
    try_join_all(done.iter().map(|r| ctx.docker.remove(r))).await?;
    Ok(())
}

/// Whether a helper container of this home is done with: this process's
/// own (token), one whose process is known to be gone (in this PID
/// namespace), or older than any helper lives.
fn helper_is_done(helper: &Resource, token: &str, now: i64) -> bool {
    helper.kind == Kind::Container
        && (helper.labels.get(LABEL_CREATED_BY).map(String::as_str) == Some(token)
            || names::helper_is_dead(&helper.labels, helper.created, now))
}

/// What exists of a profile of this home, each as a short description:
/// state, containers, volumes, networks and kubeconfig entry.
pub(super) async fn traces(ctx: &Ctx, name: &str) -> Result<Vec<String>> {
    let names = ctx.names_for(name);
    let mut found = Vec::new();
    if ctx.store.exists(name) {
        found.push(format!("state {}", ctx.store.dir(name).display()));
    }
    let mut resources = ctx.docker.resources(&names.filter()).await?;
    resources.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    found.extend(resources.iter().map(Resource::to_string));
    let context = names.context();
    if kubeconfig::read(&ctx.kubeconfig)
        .ok()
        .and_then(|c| kubeconfig::server(&c, &context))
        .is_some()
    {
        found.push(format!("kubeconfig context {context}"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, never};
    use berth_engine::fake::FakeEngine;
    use std::sync::Arc;

    /// An engine shared by this home (profiles `dev` and `web`, a start of
    /// `dev` by another process), another home's `dev`, and a container
    /// named like berth's that berth did not make.
    fn shared_engine(ctx_home: &std::path::Path) -> Arc<FakeEngine> {
        let engine = Arc::new(FakeEngine::default());
        let home = ctx_home.display().to_string();
        let ours = |profile: &'static str, token: &'static str| {
            vec![
                (names::LABEL_BERTH, "true"),
                (LABEL_PROFILE, profile),
                (LABEL_HOME, home.as_str()),
                (LABEL_CREATED_BY, token),
            ]
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect::<Vec<_>>()
        };
        let add = |kind, name: &str, labels: &[(&str, String)]| {
            engine.add(kind, name, labels.iter().map(|(k, v)| (*k, v)));
        };
        for (kind, name) in [
            (Kind::Container, "berth-dev"),
            (Kind::Volume, "berth-dev-var"),
            (Kind::Network, "berth-dev"),
        ] {
            add(kind, name, &ours("dev", "this-start"));
        }
        add(
            Kind::Container,
            "berth-dev-m02",
            &ours("dev", "other-start"),
        );
        add(Kind::Container, "berth-web", &ours("web", "this-start"));
        let theirs = [
            (names::LABEL_BERTH, "true".to_string()),
            (LABEL_PROFILE, "dev".to_string()),
            (LABEL_HOME, "/another/home".to_string()),
        ];
        add(Kind::Container, "berth-dev-abc123", &theirs);
        add(Kind::Container, "berth-dev-foreign", &[]);
        engine
    }

    #[test]
    fn delete_removes_the_profile_of_this_home_only_containers_first() {
        let dir = tempfile::tempdir().unwrap();
        let ctx_dir = dir.path();
        let engine = shared_engine(&ctx_dir.join("home"));
        let ctx = Ctx::for_test(engine.clone(), ctx_dir);
        assert!(block_on(remove_everything(&ctx, "dev", None, never)).unwrap());
        assert_eq!(
            engine.names(),
            [
                "container berth-dev-abc123",
                "container berth-dev-foreign",
                "container berth-web"
            ]
        );
        let removed = engine.removed.lock().unwrap().clone();
        let first_other = removed
            .iter()
            .position(|r| !r.starts_with("container"))
            .unwrap();
        assert!(
            removed[first_other..]
                .iter()
                .all(|r| !r.starts_with("container")),
            "containers first: {removed:?}"
        );
        // Nothing left: a second delete finds nothing and says so.
        assert!(!block_on(remove_everything(&ctx, "dev", None, never)).unwrap());
    }

    #[test]
    fn delete_all_removes_every_profile_of_this_home_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let engine = shared_engine(&dir.path().join("home"));
        let ctx = Ctx::for_test(engine.clone(), dir.path());
        // `web` has its state; `dev` only what a cut-off start left, and
        // `old` only its state.
        ctx.store.save(&Profile::example("web")).unwrap();
        ctx.store.save(&Profile::example("old")).unwrap();
        let all = block_on(every_profile(&ctx)).unwrap();
        assert_eq!(all, ["dev", "old", "web"]);
        for name in &all {
            let profile = ctx.store.load(name).unwrap();
            assert!(block_on(remove_everything(&ctx, name, profile.as_ref(), never)).unwrap());
        }
        assert_eq!(
            engine.names(),
            ["container berth-dev-abc123", "container berth-dev-foreign"],
            "another home's or nobody's went, or ours stayed"
        );
        assert!(ctx.store.names().is_empty());
        assert!(block_on(every_profile(&ctx)).unwrap().is_empty());
    }

    #[test]
    fn a_sweep_of_what_this_start_made_takes_only_that() {
        let dir = tempfile::tempdir().unwrap();
        let engine = shared_engine(&dir.path().join("home"));
        let ctx = Ctx::for_test(engine.clone(), dir.path());
        assert!(block_on(sweep_created(&ctx, "dev", &Kind::ALL)).unwrap());
        assert_eq!(
            engine.names(),
            [
                "container berth-dev-abc123",
                "container berth-dev-foreign",
                "container berth-dev-m02",
                "container berth-web"
            ]
        );
    }

    #[test]
    fn orphans_are_this_homes_profiles_with_resources_and_no_state() {
        let dir = tempfile::tempdir().unwrap();
        let engine = shared_engine(&dir.path().join("home"));
        let ctx = Ctx::for_test(engine, dir.path());
        assert_eq!(block_on(orphans(&ctx)).unwrap(), ["dev", "web"]);
    }

    #[test]
    fn helpers_go_when_they_are_this_processs_or_surely_dead() {
        let helper = |token: &str, created: i64| Resource {
            kind: Kind::Container,
            id: "id".into(),
            name: "berth-privilege-probe-x".into(),
            labels: names::helper_labels(std::path::Path::new("/h"), "probe", token),
            state: None,
            created: Some(created),
        };
        let now = 10_000;
        assert!(helper_is_done(&helper("mine", now), "mine", now));
        // This test process is alive: its helpers are not taken for dead.
        assert!(!helper_is_done(&helper("other", now - 5), "mine", now));
        let mut dead = helper("other", now - 5);
        let me = names::this_process().unwrap();
        let (pid_and_namespace, _) = me.rsplit_once(':').unwrap();
        // Its id with a start time it never had: a later process's.
        dead.labels.insert(
            names::LABEL_PROCESS.into(),
            format!("{pid_and_namespace}:0"),
        );
        assert!(helper_is_done(&dead, "mine", now));
        // Another berth of this home at work, whatever its process id.
        assert!(!helper_is_done(&helper("other", now - 5), "mine", now));
        assert!(!helper_is_done(&helper("other", now - 600), "mine", now));
        assert!(helper_is_done(&helper("other", now - 601), "mine", now));
    }
}
