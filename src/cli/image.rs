use std::io::Read;
use std::path::PathBuf;

use std::collections::BTreeMap;

use clap::Subcommand;
use futures_util::future::try_join_all;
use serde::Serialize;

use super::{Global, Output, print_json};
use crate::error::{Error, Result};
use crate::images;
use crate::profile::Node;
use crate::ui::Ui;

#[derive(Subcommand)]
pub enum Image {
    /// Load images into the cluster's nodes, from the host's Docker engine
    /// or from a `docker save` archive; an image of the same name is
    /// replaced.
    Load {
        /// Images in the host's engine, such as myapp:dev.
        #[arg(required_unless_present = "archive", conflicts_with = "archive")]
        images: Vec<String>,
        /// A `docker save` archive instead of images from the engine.
        #[arg(long, value_name = "FILE")]
        archive: Option<PathBuf>,
        /// Only this node (`berth node list` names them); default: every node.
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
    },
    /// List the images in the cluster's nodes.
    Ls,
}

#[derive(Serialize)]
struct Listed {
    name: String,
    nodes: Vec<String>,
}

pub async fn run(cmd: Image, global: &Global, ui: Ui) -> Result<()> {
    let name = global.profile_name()?;
    let _lock = global.lock_if(!matches!(cmd, Image::Ls), &name, ui)?;
    let profile = global.load(&name)?;
    let ctx = global.ctx(ui).await?;
    let only = match &cmd {
        Image::Load {
            node: Some(node), ..
        } => Some(profile.node(node).ok_or_else(|| {
            Error::usage(format!("profile {name} has no node {node}"))
                .with_hint(format!("`berth node list -p {name}` shows its nodes"))
        })?),
        _ => None,
    };
    let states = crate::cluster::node_states(&ctx, &profile).await?;
    let nodes: Vec<Node> = states
        .into_iter()
        .filter(|(n, _)| only.as_ref().is_none_or(|o| o.name == n.name))
        .map(|(n, container)| {
            let state = crate::cluster::state_of(&container);
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
        .collect::<Result<_>>()?;
    let containers: Vec<String> = nodes.iter().map(|n| n.container.clone()).collect();
    match cmd {
        Image::Load {
            images, archive, ..
        } => {
            let (archive, names) = match archive {
                Some(path) => {
                    let bytes = std::fs::read(&path).map_err(|e| {
                        Error::usage(format!("cannot read {}: {e}", path.display()))
                    })?;
                    let names = archive_names(&bytes).ok_or_else(|| {
                        Error::usage(format!(
                            "{} is not an image archive written by `docker save`",
                            path.display()
                        ))
                        .with_hint("make one with `docker save IMAGE -o FILE.tar`")
                    })?;
                    (bytes, names)
                }
                None => {
                    for image in &images {
                        if !ctx.docker.image_exists(image).await? {
                            return Err(Error::usage(format!(
                                "image {image} is not in the host's Docker engine"
                            ))
                            .with_hint(
                                "build or pull it first; `docker images` lists what is there",
                            ));
                        }
                    }
                    let step = ui.step(format!("Reading {} from the engine", images.join(", ")));
                    let archive = ctx.docker.save_images(&images).await?;
                    step.done();
                    (archive, images)
                }
            };
            let step = ui.step(format!(
                "Loading {} into {}",
                names.join(", "),
                match nodes.as_slice() {
                    [one] => format!("node {}", one.name),
                    all => format!("{} nodes", all.len()),
                }
            ));
            try_join_all(
                containers
                    .iter()
                    .map(|c| images::load_archive(&*ctx.docker, c, &archive, &names)),
            )
            .await?;
            step.done();
            // Pods that wait for these images start now, not after their
            // pull back-off; a cluster whose API is not up has none waiting.
            if let Ok(client) = crate::cluster::client(&ctx.store, &profile).await {
                for pod in crate::cluster::dns::retry_image_pulls(&client, &names).await {
                    ui.info(format!("Restarted pod {pod}, which waited for the image"));
                }
            }
        }
        Image::Ls => {
            let lists =
                try_join_all(containers.iter().map(|c| images::list(&*ctx.docker, c))).await?;
            let mut by_image: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (node, list) in nodes.iter().zip(lists) {
                for image in list {
                    by_image.entry(image).or_default().push(node.name.clone());
                }
            }
            let listed: Vec<Listed> = by_image
                .into_iter()
                .map(|(name, nodes)| Listed { name, nodes })
                .collect();
            match global.output {
                Output::Json => print_json(&listed),
                Output::Text => {
                    println!("{:<60} NODES", "IMAGE");
                    for l in listed {
                        println!("{:<60} {}", l.name, l.nodes.join(","));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The image names a `docker save` archive holds, from its manifest.json.
fn archive_names(archive: &[u8]) -> Option<Vec<String>> {
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.path().ok()?.to_str() == Some("manifest.json") {
            let mut text = String::new();
            entry.read_to_string(&mut text).ok()?;
            let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
            let names: Vec<String> = manifest
                .as_array()?
                .iter()
                .flat_map(|m| m["RepoTags"].as_array().cloned().unwrap_or_default())
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect();
            return (!names.is_empty()).then_some(names);
        }
    }
    None
}
