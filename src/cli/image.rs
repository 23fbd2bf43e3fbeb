use std::path::PathBuf;

use clap::Subcommand;

use super::{Global, Output, print_json};
use berth_cluster::images::{self, Source};
use berth_core::error::Result;
use berth_core::ui::Ui;

#[derive(Subcommand)]
pub enum Image {
    /// Load images into the cluster's nodes, from the profile's engine
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
        #[arg(long, value_name = "NODE", add = clap_complete::engine::ArgValueCandidates::new(super::completion::nodes))]
        node: Option<String>,
    },
    /// List the images in the cluster's nodes.
    Ls,
}

pub async fn run(cmd: Image, global: &Global, ui: Ui) -> Result<()> {
    let name = global.profile_name()?;
    let _lock = global.lock_if(!matches!(cmd, Image::Ls), &name, ui)?;
    let profile = global.load(&name)?;
    let ctx = global.ctx_for(ui, Some(&profile)).await?;
    match cmd {
        Image::Load {
            images,
            archive,
            node,
        } => {
            let nodes = images::running_nodes(&ctx, &profile, node.as_deref()).await?;
            let source = match archive {
                Some(path) => Source::Archive(path),
                None => Source::Engine(images),
            };
            images::load(&ctx, &profile, &nodes, source).await?;
        }
        Image::Ls => {
            let listed = images::list(&ctx, &profile).await?;
            match global.output {
                Output::Json => print_json(&listed),
                Output::Text => {
                    let rows: Vec<[String; 2]> = listed
                        .iter()
                        .map(|l| [l.name.clone(), l.nodes.join(",")])
                        .collect();
                    for line in super::table(["IMAGE", "NODES"], &rows) {
                        println!("{line}");
                    }
                }
            }
        }
    }
    Ok(())
}
