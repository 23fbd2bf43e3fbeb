use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;

use super::{Global, Output, print_json};
use crate::error::{Error, Result};
use crate::images;
use crate::ui::Ui;

#[derive(Subcommand)]
pub enum Image {
    /// Load images into the cluster's node, from the host's Docker engine or
    /// from a `docker save` archive; an image of the same name is replaced.
    Load {
        /// Images in the host's engine, such as myapp:dev.
        #[arg(required_unless_present = "archive", conflicts_with = "archive")]
        images: Vec<String>,
        /// A `docker save` archive instead of images from the engine.
        #[arg(long, value_name = "FILE")]
        archive: Option<PathBuf>,
    },
    /// List the images in the cluster's node.
    Ls,
}

pub async fn run(cmd: Image, global: &Global, ui: Ui) -> Result<()> {
    let name = global.profile_name()?;
    let profile = global.load(&name)?;
    let ctx = global.ctx(ui).await?;
    let node = profile.container();
    let state = ctx.docker.container_state(&node).await?;
    if state.as_deref() != Some("running") {
        return Err(Error::usage(format!(
            "profile {name} is not running (its node is {})",
            state.as_deref().unwrap_or("gone")
        ))
        .with_hint(format!(
            "`berth start -p {name}` (or `berth unpause -p {name}`) first"
        )));
    }
    match cmd {
        Image::Load { images, archive } => {
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
                profile.name
            ));
            images::load_archive(&ctx.docker, &node, archive, &names).await?;
            step.done();
        }
        Image::Ls => {
            let present = images::list(&ctx.docker, &node).await?;
            match global.output {
                Output::Json => print_json(&present),
                Output::Text => present.iter().for_each(|i| println!("{i}")),
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
