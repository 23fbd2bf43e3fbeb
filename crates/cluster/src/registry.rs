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
    let network = nodes::network_id(ctx, profile).await?;
    let id = ctx
        .docker
        .create_container(&container(ctx, profile, registry, network))
        .await?;
    let config = NodeFile::File {
        path: CONFIG.into(),
        content: CONFIG_YAML.into(),
        mode: 0o644,
    };
    ctx.docker.upload(&id, nodes::tar_of(&[config])).await?;
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

/// `registry enable`: a registry for a running profile that has none; every
/// node's containerd learns of it at once (it reads its hosts at each
/// pull). Returns the profile as saved.
pub async fn enable(ctx: &Ctx, mut profile: Profile) -> Result<Profile> {
    if let Some(registry) = profile.registry {
        return Err(Error::usage(format!(
            "profile {} has a registry already, at {}",
            profile.name,
            registry.host()
        ))
        .with_hint(format!(
            "push to it as `docker push {}/NAME:TAG`; `berth status -p {}` shows it",
            registry.host(),
            profile.name
        )));
    }
    let running = super::images::running_nodes(ctx, &profile, None).await?;
    let allocating = berth_core::lock::allocate(&ctx.home, ctx.lock_timeout, ctx.ui)?;
    profile.registry = Some(Registry {
        port: super::create::free_port()?,
    });
    let step = ctx.ui.step("Starting the registry");
    if let Err(error) = create(ctx, &profile).await {
        // Only what this process made goes.
        let _ = super::remove::sweep_created(ctx, &profile.name, &berth_engine::Kind::ALL).await;
        return Err(error);
    }
    drop(allocating);
    ctx.store.save(&profile)?;
    for node in &running {
        let spec = nodes::spec(&profile, node)?;
        let files: Vec<NodeFile> = render::registry_files(&spec);
        ctx.docker
            .upload(&node.container, nodes::tar_of(&files))
            .await?;
    }
    step.done();
    Ok(profile)
}
