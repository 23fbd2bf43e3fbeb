//! `image load` and `image ls`: images in the nodes of a running cluster,
//! through their containerd (see `crate::containerd`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures_util::future::try_join_all;
use serde::Serialize;

use super::Ctx;
use berth_core::error::{Error, Result};
use berth_core::profile::{Node, Profile};

/// Where the images to load come from.
pub enum Source {
    /// Images in the host's engine, by reference.
    Engine(Vec<String>),
    /// A `docker save` archive.
    Archive(PathBuf),
}

/// An image and the nodes that hold it.
#[derive(Serialize)]
pub struct Listed {
    pub name: String,
    pub nodes: Vec<String>,
}

/// The profile's nodes (or `only` that one), each running; an error names
/// the first that is not.
pub async fn running_nodes(ctx: &Ctx, profile: &Profile, only: Option<&str>) -> Result<Vec<Node>> {
    let name = &profile.name;
    if let Some(node) = only
        && profile.node(node).is_none()
    {
        return Err(Error::usage(format!("profile {name} has no node {node}"))
            .with_hint(format!("`berth node list -p {name}` shows its nodes")));
    }
    super::node_states(ctx, profile)
        .await?
        .into_iter()
        .filter(|(n, _)| only.is_none_or(|o| o == n.name))
        .map(|(n, container)| {
            let state = super::state_of(&container);
            if state.is_running() {
                Ok(n)
            } else {
                Err(Error::usage(format!(
                    "profile {name} is not running (node {} is {})",
                    n.name,
                    state.display().to_lowercase()
                ))
                .with_hint(format!(
                    "`berth start -p {name}` (or `berth unpause -p {name}`) first"
                )))
            }
        })
        .collect()
}

/// Loads the images of `source` into every one of `nodes` at once, then
/// restarts the pods that waited for them. Returns the images' names.
pub async fn load(
    ctx: &Ctx,
    profile: &Profile,
    nodes: &[Node],
    source: Source,
) -> Result<Vec<String>> {
    let (archive, names) = match source {
        Source::Archive(path) => {
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
            let names = crate::containerd::archive_names(&bytes).ok_or_else(|| {
                Error::usage(format!(
                    "{} is not an image archive written by `docker save`",
                    path.display()
                ))
                .with_hint("make one with `docker save IMAGE -o FILE.tar`")
            })?;
            (bytes, names)
        }
        Source::Engine(images) => {
            for image in &images {
                if !ctx.docker.image_exists(image).await? {
                    let engine = ctx.docker.flavour();
                    return Err(Error::usage(format!("image {image} is not in {engine}"))
                        .with_hint(format!(
                            "build or pull it first; `{} images` lists what is there",
                            engine.cli()
                        )));
                }
            }
            let step = ctx
                .ui
                .step(format!("Reading {} from the engine", images.join(", ")));
            let archive = ctx.docker.save_images(&images).await?;
            step.done();
            (archive, images)
        }
    };
    let step = ctx.ui.step(format!(
        "Loading {} into {}",
        names.join(", "),
        match nodes {
            [one] => format!("node {}", one.name),
            all => format!("{} nodes", all.len()),
        }
    ));
    try_join_all(
        nodes
            .iter()
            .map(|n| crate::containerd::load_archive(&*ctx.docker, &n.container, &archive, &names)),
    )
    .await?;
    step.done();
    // Pods that wait for these images start now, not after their pull
    // back-off; a cluster whose API is not up has none waiting.
    if let Ok(client) = ctx.client(profile).await {
        for pod in super::dns::retry_image_pulls(&client, &names).await {
            ctx.ui
                .info(format!("Restarted pod {pod}, which waited for the image"));
        }
    }
    Ok(names)
}

/// Every image in the profile's nodes, with the nodes that hold it.
pub async fn list(ctx: &Ctx, profile: &Profile) -> Result<Vec<Listed>> {
    let nodes = running_nodes(ctx, profile, None).await?;
    let lists = try_join_all(
        nodes
            .iter()
            .map(|n| crate::containerd::list(&*ctx.docker, &n.container)),
    )
    .await?;
    let mut by_image: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (node, list) in nodes.iter().zip(lists) {
        for image in list {
            by_image.entry(image).or_default().push(node.name.clone());
        }
    }
    Ok(by_image
        .into_iter()
        .map(|(name, nodes)| Listed { name, nodes })
        .collect())
}
