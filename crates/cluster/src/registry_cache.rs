//! The pull-through image cache every profile of a home shares (`berth
//! cache registry`): Debian's docker-registry in proxy mode, one process
//! per upstream registry, in a container of the node image on a network of
//! its own (where it reaches the upstreams). It is attached to each
//! profile's network at a fixed address, and every node's containerd takes
//! the upstreams' images from it first and from the upstream itself when
//! it cannot serve them. It belongs to the home, not to a profile: no
//! profile's delete removes it, only `disable` does.

use super::plan::{self, Step};
use super::{Ctx, remove};
use berth_core::error::{Error, Result};
use berth_core::names;
use berth_core::profile::Profile;
use berth_core::registry_cache::{self as state, RegistryCache, Upstream};
use berth_engine::{ContainerState, NodeContainer};
use berth_node::command;
use berth_node::render::{self, NodeFile};

/// Where each upstream's configuration goes in the container.
const CONFIG_DIR: &str = "/etc/berth/cache";
/// How long a mirror whose upstream did not answer waits to try again.
const RETRY_SECS: u32 = 10;
/// The cached images, a folder per upstream.
const DATA: &str = "/var/lib/docker-registry";

/// Each mirror's configuration: plain HTTP on its port, reachable only on
/// berth's networks (nothing is published), the upstream fetched on a miss.
fn config(upstream: &Upstream, port: u16) -> String {
    format!(
        "# Rendered by berth: the home's registry cache of {host}.
version: 0.1
log:
  fields: {{service: registry-cache, upstream: '{host}'}}
storage:
  filesystem: {{rootdirectory: '{DATA}/{host}'}}
  delete: {{enabled: true}}
http:
  addr: ':{port}'
proxy:
  remoteurl: '{url}'
",
        host = upstream.host,
        url = upstream.url
    )
}

/// The cache's container name (also its network's).
fn name(ctx: &Ctx) -> String {
    names::registry_cache(names::home_id(&ctx.home).as_deref())
}

fn volume(ctx: &Ctx) -> String {
    format!("{}-data", name(ctx))
}

/// Every mirror in one container, each started again while it ends: in
/// proxy mode the registry exits at once when its upstream does not answer
/// (offline, or a name that does not resolve), and one upstream out of
/// reach must not take the others' mirrors with it.
fn container(ctx: &Ctx, cache: &RegistryCache, image: &str) -> NodeContainer {
    let serve = format!(
        "for config in {CONFIG_DIR}/*.yml; do \
         (while :; do /usr/bin/docker-registry serve \"$config\"; sleep {RETRY_SECS}; done) & \
         done; wait"
    );
    let mut labels = names::registry_cache_labels(&ctx.home);
    labels.insert(names::LABEL_CREATED_BY.into(), ctx.token.clone());
    NodeContainer {
        hostname: "registry-cache".into(),
        privilege: None,
        cgroup_v2: true,
        entrypoint: Some(vec!["/bin/bash".into(), "-c".into(), serve]),
        network: Some((name(ctx), cache.ip().to_string())),
        var_volume: Some(volume(ctx)),
        ..NodeContainer::helper(name(ctx), image, labels)
    }
}

/// Where a profile's nodes reach the mirror of each upstream: the cache's
/// address on the profile's network.
fn mirror_files(cache: &RegistryCache, profile: &Profile, on: bool) -> Vec<NodeFile> {
    let ip = state::ip_on(profile.subnet);
    cache
        .ports()
        .map(|(upstream, port)| {
            let mirror = on.then(|| format!("http://{ip}:{port}"));
            render::mirror_hosts(&upstream.host, &upstream.url, mirror.as_deref())
        })
        .collect()
}

/// The files a new node of `profile` gets: none while the cache is off.
pub(crate) fn node_files(ctx: &Ctx, profile: &Profile) -> Result<Vec<NodeFile>> {
    Ok(match state::load(&ctx.home)? {
        Some(cache) => mirror_files(&cache, profile, true),
        None => Vec::new(),
    })
}

/// At a profile's start: the cache runs (an engine restart stopped it) and
/// is attached to the profile's network.
pub(crate) async fn join(ctx: &Ctx, profile: &Profile) -> Result<()> {
    if state::load(&ctx.home)?.is_none() {
        return Ok(());
    }
    if let Err(e) = attach(ctx, profile, true).await {
        unserved(ctx, profile, &e);
    }
    Ok(())
}

/// Attaches the cache to a profile that exists and tells its nodes.
async fn serve(ctx: &Ctx, cache: &RegistryCache, profile: &Profile) -> Result<()> {
    match attach(ctx, profile, true).await {
        Ok(()) => tell_nodes(ctx, cache, profile, true).await,
        Err(e) => {
            unserved(ctx, profile, &e);
            Ok(())
        }
    }
}

/// A profile the cache cannot serve (its network gone, the cache's
/// container gone) is said, and the command goes on: its nodes pull from
/// the registries themselves, as without the cache.
fn unserved(ctx: &Ctx, profile: &Profile, e: &Error) {
    ctx.ui.info(format!(
        "warning: the registry cache cannot serve profile {}: {}; its nodes pull from the \
         registries themselves ({})",
        profile.name,
        e.message,
        e.hint
            .as_deref()
            .unwrap_or("`berth start` of the profile attaches it again")
    ));
}

/// Attaches the cache to the profile's network, thawed, and started when
/// `start` and stopped.
async fn attach(ctx: &Ctx, profile: &Profile, start: bool) -> Result<()> {
    let cache_name = name(ctx);
    let found = super::containers(ctx, &names::registry_cache_filter(&ctx.home)).await?;
    match found.get(&cache_name) {
        None => return Err(gone(&cache_name)),
        Some(ContainerState::Running) => {}
        Some(ContainerState::Paused) => ctx.docker.unpause_container(&cache_name).await?,
        Some(_) if start => ctx.docker.start_container(&cache_name).await?,
        Some(_) => {}
    }
    let ip = state::ip_on(profile.subnet).to_string();
    Ok(ctx
        .docker
        .attach(&network_of(ctx, profile), &cache_name, &ip)
        .await?)
}

/// The cache is on, but someone removed its container.
fn gone(cache_name: &str) -> Error {
    Error::failure(format!(
        "the registry cache is on, but its container {cache_name} is gone"
    ))
    .with_hint("`berth cache registry disable`, then `enable`, makes the cache anew")
}

/// Before a network of this home goes: the cache leaves it, or the engine
/// refuses to remove it. `network` is its id, or its name where no other
/// network can have it.
pub(crate) async fn leave(ctx: &Ctx, network: &str) -> berth_engine::Result<()> {
    ctx.docker.detach(network, &name(ctx)).await
}

/// The profile's network: its id when the profile knows it (a network of
/// another's may have its name), else its name.
fn network_of(ctx: &Ctx, profile: &Profile) -> String {
    (profile.network_id.clone()).unwrap_or_else(|| ctx.names(profile).network())
}

/// Tells every node of `profile` whether to pull through the cache; a node
/// that cannot be told (its profile paused) is said, not fatal: it pulls
/// from the registries themselves.
async fn tell_nodes(ctx: &Ctx, cache: &RegistryCache, profile: &Profile, on: bool) -> Result<()> {
    let tar = render::tar_of(&mirror_files(cache, profile, on));
    for (node, _) in super::node_states(ctx, profile).await? {
        if let Err(e) = ctx.docker.upload(&node.container, tar.clone()).await {
            ctx.ui.info(format!(
                "warning: node {} of profile {} did not learn of the registry cache: {e}",
                node.name, profile.name
            ));
        }
    }
    Ok(())
}

/// Every profile of this home whose state can be read.
fn profiles(ctx: &Ctx) -> Vec<Profile> {
    ctx.store
        .names()
        .iter()
        .filter_map(|name| ctx.store.load(name).ok().flatten())
        .collect()
}

/// `cache registry enable` for a home whose cache is off, each step beside
/// what takes it back.
const ENABLE: [Enable; 3] = [Enable::Container, Enable::State, Enable::Profiles];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Enable {
    /// Its network, volume and container, running. Undo: what this
    /// process made, removed.
    Container,
    /// The home remembers it. Undo: forgotten.
    State,
    /// Every profile's network has it, every node pulls through it. Undo:
    /// neither.
    Profiles,
}

struct Enabling {
    upstreams: Vec<Upstream>,
    cache: Option<RegistryCache>,
}

impl Step<Enabling> for Enable {
    fn title(self, _: &Enabling) -> Option<String> {
        match self {
            Enable::Container => Some("Starting the registry cache".into()),
            Enable::State => None,
            Enable::Profiles => Some("Telling the profiles' nodes".into()),
        }
    }

    async fn run(self, ctx: &Ctx, enabling: &mut Enabling) -> Result<()> {
        match self {
            Enable::Container => {
                let step = ctx.ui.step("Preparing the node image");
                let image = super::create::default_node_image(ctx, &step).await?;
                step.done();
                let mut labels = names::registry_cache_labels(&ctx.home);
                labels.insert(names::LABEL_CREATED_BY.into(), ctx.token.clone());
                let _allocating = berth_core::lock::allocate(&ctx.home, ctx.lock_timeout, ctx.ui)?;
                let subnet =
                    match super::create::network_on_free_subnet(ctx, &name(ctx), &labels, &image)
                        .await?
                    {
                        Ok((_, subnet)) => subnet,
                        Err(other) => return Err(taken(&other)),
                    };
                let cache = RegistryCache {
                    upstreams: enabling.upstreams.clone(),
                    subnet,
                };
                ctx.docker.create_volume(&volume(ctx), &labels).await?;
                ctx.docker
                    .create_container(&container(ctx, &cache, &image))
                    .await?;
                let configs: Vec<NodeFile> = cache
                    .ports()
                    .map(|(upstream, port)| NodeFile::File {
                        path: format!("{CONFIG_DIR}/{port}.yml"),
                        content: config(upstream, port),
                        mode: 0o644,
                    })
                    .collect();
                ctx.docker
                    .upload(&name(ctx), render::tar_of(&configs))
                    .await?;
                ctx.docker.start_container(&name(ctx)).await?;
                enabling.cache = Some(cache);
            }
            Enable::State => state::save(&ctx.home, plan::output(&enabling.cache, "Container")?)?,
            Enable::Profiles => {
                let cache = plan::output(&enabling.cache, "Container")?;
                for profile in profiles(ctx) {
                    serve(ctx, cache, &profile).await?;
                }
            }
        }
        Ok(())
    }

    async fn undo(self, ctx: &Ctx, enabling: &Enabling) -> Result<()> {
        match self {
            Enable::Container => {
                let mut filter = names::registry_cache_filter(&ctx.home);
                filter.push((names::LABEL_CREATED_BY.into(), Some(ctx.token.clone())));
                let made = ctx.docker.resources(&filter).await?;
                remove::remove_in_order(ctx, made).await?;
            }
            Enable::State => state::remove(&ctx.home)?,
            Enable::Profiles => {
                if let Some(cache) = &enabling.cache {
                    for profile in profiles(ctx) {
                        leave(ctx, &network_of(ctx, &profile)).await?;
                        tell_nodes(ctx, cache, &profile, false).await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The name the cache wants is another's.
fn taken(other: &berth_engine::Resource) -> Error {
    Error::usage(format!(
        "the registry cache's name {} is taken by {}",
        other.name,
        names::owner(&other.labels)
    ))
    .with_hint(
        "when it is this home's own, left by an enable that was cut off, `berth cache registry \
         disable` removes it; else remove that network, or use another BERTH_HOME",
    )
}

/// What `enable` found or made.
pub enum Enabled {
    Made(RegistryCache),
    /// It was on with these upstreams; every profile is attached again.
    Already(RegistryCache),
}

/// `cache registry enable`: the home's cache with the default upstreams and
/// `named` ones. On already with the same ones, it is checked and every
/// profile attached again; with others, refused.
pub async fn enable<F, Fut>(ctx: &Ctx, named: Vec<Upstream>, interrupted: F) -> Result<Enabled>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
    let upstreams = RegistryCache::upstreams(named);
    if let Some(cache) = state::load(&ctx.home)? {
        if cache.upstreams != upstreams {
            return Err(
                Error::usage("the registry cache is on with other upstream registries").with_hint(
                    "`berth cache registry status` shows them; `berth cache registry disable` \
                 first (it drops the cached images), then enable it with the ones you want",
                ),
            );
        }
        let cache_name = name(ctx);
        let found = super::containers(ctx, &names::registry_cache_filter(&ctx.home)).await?;
        if !found.contains_key(&cache_name) {
            return Err(gone(&cache_name));
        }
        for profile in profiles(ctx) {
            serve(ctx, &cache, &profile).await?;
        }
        return Ok(Enabled::Already(cache));
    }
    let verb = plan::Verb {
        what: "`cache registry enable`".into(),
        again: "`berth cache registry enable` does it again".into(),
        undo: Some(plan::Undo {
            maker: "this cache registry enable",
            kept: None,
            left_hint: "`berth cache registry disable` removes what is named above".into(),
            left: plan::left(|| async {
                let found = ctx
                    .docker
                    .resources(&names::registry_cache_filter(&ctx.home))
                    .await
                    .unwrap_or_default();
                found.iter().map(ToString::to_string).collect()
            }),
        }),
    };
    let mut enabling = Enabling {
        upstreams,
        cache: None,
    };
    plan::execute(ctx, verb, &ENABLE, &mut enabling, interrupted).await?;
    Ok(Enabled::Made(enabling.cache.expect("the plan ran")))
}

/// `cache registry disable`: every profile's nodes pull from the
/// registries themselves again, and the cache with its images goes.
/// Returns whether there was one.
pub async fn disable(ctx: &Ctx) -> Result<bool> {
    // A state file that cannot be read does not keep what is in the
    // engine: the nodes' files then stay, and fall back by themselves.
    let cache = state::load(&ctx.home);
    for profile in profiles(ctx) {
        leave(ctx, &network_of(ctx, &profile)).await?;
        if let Ok(Some(cache)) = &cache {
            tell_nodes(ctx, cache, &profile, false).await?;
        }
    }
    let found = ctx
        .docker
        .resources(&names::registry_cache_filter(&ctx.home))
        .await?;
    let there = !found.is_empty() || matches!(cache, Ok(Some(_)));
    remove::remove_in_order(ctx, found).await.map_err(|e| {
        let hint = match &e {
            berth_engine::Error::NetworkInUse {
                engine,
                name,
                containers,
            } => format!(
                "containers not made by berth are attached to its network: \
                 `{} network disconnect {name} {}`, then disable again",
                engine.cli(),
                containers[0]
            ),
            _ => "see the engine's message above; disable again to remove the rest".into(),
        };
        Error::from(e).with_hint(hint)
    })?;
    state::remove(&ctx.home)?;
    Ok(there)
}

/// What `cache registry status` shows.
pub struct Status {
    pub cache: RegistryCache,
    pub container: String,
    /// `None` when its container is gone.
    pub state: Option<ContainerState>,
    /// Bytes of images held, when it runs.
    pub bytes: Option<u64>,
    /// The profiles whose networks it is attached to.
    pub profiles: Vec<String>,
    /// The ports whose mirror serves; the others wait for their upstream.
    pub serving: Vec<u16>,
}

pub async fn status(ctx: &Ctx) -> Result<Option<Status>> {
    let Some(cache) = state::load(&ctx.home)? else {
        return Ok(None);
    };
    let container = name(ctx);
    let found = super::containers(ctx, &names::registry_cache_filter(&ctx.home)).await?;
    let state = found.get(&container).copied();
    let running = state == Some(ContainerState::Running);
    let bytes = if running { held(ctx).await } else { None };
    let serving = if running {
        serving(ctx, &cache).await
    } else {
        Vec::new()
    };
    let networks = if state.is_some() {
        ctx.docker.network_ids(&container).await?
    } else {
        Vec::new()
    };
    let profiles = profiles(ctx)
        .into_iter()
        .filter(|p| {
            p.network_id
                .as_ref()
                .is_some_and(|id| networks.contains(id))
        })
        .map(|p| p.name)
        .collect();
    Ok(Some(Status {
        cache,
        container,
        state,
        bytes,
        profiles,
        serving,
    }))
}

/// The mirrors' ports that take connections in the running cache.
async fn serving(ctx: &Ctx, cache: &RegistryCache) -> Vec<u16> {
    let ports: Vec<u16> = cache.ports().map(|(_, port)| port).collect();
    match ctx
        .docker
        .exec(&name(ctx), &command::listening(&ports))
        .await
    {
        Ok(out) => out.stdout.lines().filter_map(|l| l.parse().ok()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Bytes below `DATA` in the running cache.
async fn held(ctx: &Ctx) -> Option<u64> {
    let out = ctx
        .docker
        .exec(&name(ctx), &command::size_of(DATA))
        .await
        .ok()?;
    out.stdout.split_whitespace().next()?.parse().ok()
}

/// `cache registry prune`: the cached images go, the cache stays on.
/// Returns the bytes freed.
pub async fn prune(ctx: &Ctx) -> Result<u64> {
    let Some(status) = status(ctx).await? else {
        return Err(off());
    };
    if status.state != Some(ContainerState::Running) {
        return Err(Error::usage(format!(
            "the registry cache is not running ({})",
            status
                .state
                .map_or("its container is gone", |s| s.display())
                .to_lowercase()
        ))
        .with_hint("`berth cache registry enable` starts it again"));
    }
    ctx.docker
        .exec(&status.container, &command::empty_dir(DATA))
        .await?
        .success()
        .map_err(|e| Error::failure(format!("the cache's images cannot be removed: {e}")))?;
    // Each mirror keeps what it knows of its blobs in memory too.
    ctx.docker.stop_container(&status.container, 2).await?;
    ctx.docker.start_container(&status.container).await?;
    Ok(status.bytes.unwrap_or(0))
}

/// The error of a command that needs the cache on.
pub fn off() -> Error {
    Error::usage("the registry cache of this berth home is off")
        .with_hint("`berth cache registry enable` turns it on")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, never};
    use berth_engine::Kind;
    use berth_engine::fake::FakeEngine;
    use std::sync::Arc;

    /// A home with a running single-node profile `dev`.
    fn home() -> (tempfile::TempDir, Arc<FakeEngine>, Ctx, Profile) {
        crate::testing::running(Vec::new())
    }

    #[test]
    fn enable_attaches_every_profile_and_a_delete_leaves_the_cache_alone() {
        let (_dir, engine, ctx, profile) = home();
        let Enabled::Made(cache) = block_on(enable(&ctx, Vec::new(), never)).unwrap() else {
            panic!("made anew")
        };
        assert_eq!(cache.upstreams.len(), 4);
        assert_eq!(engine.state(&name(&ctx)), Some(ContainerState::Running));
        let network = ctx.names(&profile).network();
        assert!(
            engine
                .attached
                .lock()
                .unwrap()
                .contains(&(network.clone(), name(&ctx)))
        );
        assert!(
            (engine.uploads.lock().unwrap()).contains(&profile.control_plane().container),
            "the node was not told"
        );
        assert_eq!(state::load(&ctx.home).unwrap(), Some(cache.clone()));

        // Enabling again with the same upstreams is fine, with others not.
        assert!(matches!(
            block_on(enable(&ctx, Vec::new(), never)).unwrap(),
            Enabled::Already(_)
        ));
        let other = vec![Upstream::parse("r.test=http://r:5000").unwrap()];
        let error = block_on(enable(&ctx, other, never)).err().unwrap();
        assert!(error.hint.unwrap().contains("disable"));

        // The profile's delete takes its network, which the cache leaves.
        block_on(remove::remove_everything(
            &ctx,
            "dev",
            Some(&profile),
            never,
        ))
        .unwrap();
        assert!(!engine.names().contains(&format!("network {network}")));
        assert_eq!(engine.state(&name(&ctx)), Some(ContainerState::Running));

        assert!(block_on(disable(&ctx)).unwrap());
        assert!(
            engine.names().iter().all(|n| !n.contains("registry-cache")),
            "{:?}",
            engine.names()
        );
        assert_eq!(state::load(&ctx.home).unwrap(), None);
        assert!(!block_on(disable(&ctx)).unwrap());
    }

    #[test]
    fn a_profile_whose_network_is_gone_does_not_keep_the_others_from_the_cache() {
        let (_dir, engine, ctx, broken) = home();
        let gone = ctx.names(&broken).network();
        (engine.resources.lock().unwrap()).retain(|r| !(r.kind == Kind::Network && r.name == gone));
        let other = Profile {
            name: "web".into(),
            ..broken.clone()
        };
        ctx.store.save(&other).unwrap();
        let names = ctx.names(&other);
        let labels = names.labels_created_by("earlier-start");
        let network = engine.add(Kind::Network, &names.network(), &labels);
        engine.add(Kind::Container, &other.control_plane().container, &labels);
        ctx.store
            .save(&Profile {
                network_id: Some(network.id),
                ..other
            })
            .unwrap();
        assert!(matches!(
            block_on(enable(&ctx, Vec::new(), never)).unwrap(),
            Enabled::Made(_)
        ));
        let attached = engine.attached.lock().unwrap().clone();
        assert_eq!(attached, [(names.network(), name(&ctx))]);
    }

    #[test]
    fn an_enable_that_fails_leaves_no_cache_and_no_state() {
        let (_dir, engine, ctx, profile) = home();
        engine.fail("upload", &name(&ctx));
        let error = block_on(enable(&ctx, Vec::new(), never)).err();
        assert!(error.is_some());
        assert!(
            engine.names().iter().all(|n| !n.contains("registry-cache")),
            "{:?}",
            engine.names()
        );
        assert_eq!(state::load(&ctx.home).unwrap(), None);
        assert!(engine.attached.lock().unwrap().is_empty());
        assert!(!(engine.uploads.lock().unwrap()).contains(&profile.control_plane().container));
    }
}
