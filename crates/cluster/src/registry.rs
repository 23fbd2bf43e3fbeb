//! A profile's own image registry: Debian's docker-registry (the CNCF
//! distribution registry) in a container made from the node image, so that
//! nothing is pulled, on the profile's network at its last address, its
//! images in a volume that lives as long as the profile, published on
//! 127.0.0.1 at a port kept for the profile's life. Every node's containerd
//! takes images named `localhost:<port>/...` from it, so one name serves
//! `docker push` on the host and a pod's spec.

use super::{Ctx, nodes};
use berth_core::error::{Error, Result};
use berth_core::profile::{Profile, Registry};
use berth_engine::{ContainerState, NodeContainer};
use berth_node::command;
use berth_node::render::{self, NodeFile};

/// berth's configuration of the registry: Debian's asks for passwords; a
/// registry on the loopback and the profile's own network serves anyone
/// who reaches it, as kind's and k3d's do.
const CONFIG: &str = "/etc/berth/registry.yml";
const CONFIG_YAML: &str = "# Rendered by berth.
version: 0.1
log:
  fields: {service: registry}
storage:
  filesystem: {rootdirectory: /var/lib/docker-registry}
  delete: {enabled: true}
http:
  addr: :5000
";

/// The registry's container, labelled as made by this process.
fn container(ctx: &Ctx, profile: &Profile, registry: Registry, network: String) -> NodeContainer {
    let names = ctx.names(profile);
    let serve = ["/usr/bin/docker-registry", "serve", CONFIG];
    NodeContainer {
        var_volume: Some(names.registry_volume()),
        ports: vec![(registry.port, Registry::INNER_PORT)],
        // Pushed to as localhost:PORT by the engine itself (`docker push`
        // runs in the daemon), also when the daemon is another machine's.
        published_on: std::net::Ipv4Addr::LOCALHOST,
        ..super::beside_container(
            ctx,
            profile,
            names.registry(),
            &serve,
            network,
            profile.registry_ip(),
        )
    }
}

/// Makes and starts the registry of `profile`, whose `registry` is set.
pub async fn create(ctx: &Ctx, profile: &Profile) -> Result<()> {
    let Some(registry) = profile.registry else {
        return Ok(());
    };
    let names = ctx.names(profile);
    ctx.docker
        .create_volume(
            &names.registry_volume(),
            &names.labels_created_by(&ctx.token),
        )
        .await?;
    let network = super::network_id(ctx, profile).await?;
    let id = ctx
        .docker
        .create_container(&container(ctx, profile, registry, network))
        .await?;
    let config = NodeFile::File {
        path: CONFIG.into(),
        content: CONFIG_YAML.into(),
        mode: 0o644,
    };
    ctx.docker.upload(&id, render::tar_of(&[config])).await?;
    Ok(ctx.docker.start_container(&id).await?)
}

/// The registry container's state; `None` when the profile has none or it
/// is gone.
pub async fn state(ctx: &Ctx, profile: &Profile) -> Result<Option<ContainerState>> {
    if profile.registry.is_none() {
        return Ok(None);
    }
    let states = super::containers(ctx, &ctx.names(profile).filter()).await?;
    Ok(states.get(&ctx.names(profile).registry()).copied())
}

/// `registry enable` on a running profile, each step beside what takes it
/// back, so that one that fails or is interrupted leaves no registry.
const ENABLE: [Enable; 3] = [Enable::Container, Enable::Save, Enable::Nodes];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Enable {
    /// A free port, and the registry's container and volume on it. Undo:
    /// what this process made, removed.
    Container,
    /// The profile's state names the registry. Undo: the state as it was.
    Save,
    /// Every running node's containerd learns of it (it reads its hosts at
    /// each pull). Undo: the nodes forget it.
    Nodes,
}

struct Enabling {
    before: Profile,
    profile: Profile,
    running: Vec<berth_core::profile::Node>,
}

impl super::plan::Step<Enabling> for Enable {
    fn title(self, _: &Enabling) -> Option<String> {
        (self == Enable::Container).then(|| "Starting the registry".to_string())
    }

    async fn run(self, ctx: &Ctx, enabling: &mut Enabling) -> Result<()> {
        let profile = &mut enabling.profile;
        match self {
            Enable::Container => {
                // Held while the port is chosen and taken.
                let _allocating = berth_core::lock::allocate(&ctx.home, ctx.lock_timeout, ctx.ui)?;
                profile.registry = Some(Registry {
                    port: super::host::free_port()?,
                });
                create(ctx, profile).await?;
            }
            Enable::Save => ctx.store.save(profile)?,
            Enable::Nodes => {
                for node in &enabling.running {
                    let spec = nodes::spec(profile, node)?;
                    let files: Vec<NodeFile> = render::registry_files(&spec);
                    ctx.docker
                        .upload(&node.container, render::tar_of(&files))
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn undo(self, ctx: &Ctx, enabling: &Enabling) -> Result<()> {
        let profile = &enabling.profile;
        match self {
            Enable::Container => {
                let all = berth_engine::Kind::ALL;
                super::remove::sweep_created(ctx, &profile.name, &all).await?;
            }
            Enable::Save => ctx.store.save(&enabling.before)?,
            Enable::Nodes => {
                if let Some(registry) = profile.registry {
                    let dir = render::registry_hosts_dir(&registry.host());
                    for node in &enabling.running {
                        ctx.docker
                            .exec(&node.container, &command::remove_tree(&dir))
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `registry enable`: a registry for a running profile that has none (see
/// `ENABLE`). Returns the profile as saved.
pub async fn enable<F, Fut>(ctx: &Ctx, profile: Profile, interrupted: F) -> Result<Profile>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
    if let Some(registry) = profile.registry {
        return Err(Error::usage(format!(
            "profile {} has a registry already, at {}",
            profile.name,
            registry.host()
        ))
        .with_hint(format!(
            "push to it as `{} push {}/NAME:TAG`; `berth status -p {}` shows it",
            ctx.docker.flavour().cli(),
            registry.host(),
            profile.name
        )));
    }
    let running = super::images::running_nodes(ctx, &profile, None).await?;
    let name = profile.name.clone();
    let verb = super::plan::Verb {
        what: format!("`registry enable` of profile {name}"),
        again: format!("`berth registry enable -p {name}` does it again"),
        undo: Some(super::plan::Undo {
            maker: "this registry enable",
            kept: None,
            left_hint: format!(
                "what is named above is the half-made registry's: `{cli} rm -f` and \
                 `{cli} volume rm` remove it",
                cli = ctx.docker.flavour().cli()
            ),
            left: super::plan::left(|| super::remove::created(ctx, &name)),
        }),
    };
    let mut enabling = Enabling {
        before: profile.clone(),
        profile,
        running,
    };
    super::plan::execute(ctx, verb, &ENABLE, &mut enabling, interrupted).await?;
    Ok(enabling.profile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, never};
    use berth_engine::fake::FakeEngine;

    /// A running single-node profile `dev`, made by an earlier start.
    fn running() -> (tempfile::TempDir, std::sync::Arc<FakeEngine>, Ctx, Profile) {
        let made = crate::testing::running(Vec::new());
        made.1.answer("rm -rf /etc/containerd/certs.d/", "");
        made
    }

    #[test]
    fn enable_starts_the_registry_saves_it_and_tells_every_node() {
        let (_dir, engine, ctx, profile) = running();
        let node = profile.control_plane().container;
        let enabled = block_on(enable(&ctx, profile, never)).unwrap();
        let registry = enabled.registry.expect("a registry");
        let names = ctx.names(&enabled);
        assert_eq!(
            engine.state(&names.registry()),
            Some(ContainerState::Running)
        );
        assert!(
            engine
                .names()
                .contains(&format!("volume {}", names.registry_volume()))
        );
        assert_eq!(
            ctx.store.load("dev").unwrap().unwrap().registry,
            Some(registry)
        );
        assert!(engine.uploads.lock().unwrap().contains(&node));
    }

    #[test]
    fn an_enable_that_fails_at_the_nodes_leaves_no_registry() {
        let (_dir, engine, ctx, profile) = running();
        let before = engine.names();
        let node = profile.control_plane().container;
        engine.fail("upload", &node);
        assert!(block_on(enable(&ctx, profile, never)).is_err());
        assert_eq!(engine.names(), before, "the registry is left");
        assert_eq!(ctx.store.load("dev").unwrap().unwrap().registry, None);
        let execs = engine.execs.lock().unwrap().join("\n");
        assert!(
            execs.contains("rm -rf /etc/containerd/certs.d/localhost:"),
            "{execs}"
        );
    }
}
