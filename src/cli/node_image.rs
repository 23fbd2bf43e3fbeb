use std::path::PathBuf;

use clap::Subcommand;

use super::{Global, Output, print_json};
use berth_core::error::Result;
use berth_core::node_image::{self, Built, Context};
use berth_core::ui::Ui;
use berth_engine::Docker;

#[derive(Subcommand)]
pub enum NodeImage {
    /// Build the node image, unless one built from the same context exists.
    /// Prints the image name on stdout.
    Build {
        /// Base image (Debian bookworm). Default: debian:bookworm-slim, or
        /// berth/debian:bookworm when only that one is present.
        #[arg(long, value_name = "IMAGE")]
        base: Option<String>,
        /// Tag to use instead of the one derived from the build context.
        #[arg(long)]
        tag: Option<String>,
        /// Build from this directory instead of the context built into berth.
        #[arg(long, value_name = "DIR")]
        context: Option<PathBuf>,
    },
}

pub async fn run(cmd: NodeImage, global: &Global, ui: Ui) -> Result<()> {
    let NodeImage::Build { base, tag, context } = cmd;
    let context = match context {
        Some(dir) => Context::from_dir(&dir)?,
        None => Context::embedded(),
    };
    let image = format!(
        "{}:{}",
        node_image::REPOSITORY,
        tag.unwrap_or_else(|| context.tag())
    );
    let engine = Docker::connect_to(&global.endpoint()?).await?;
    let base = match base {
        Some(base) => base,
        None => node_image::default_base(&engine).await?,
    };
    let step = ui.step(format!("Building {image} on {base}"));
    let built =
        node_image::ensure(&engine, &context, &image, &base, |line| step.detail(line)).await?;
    let reused = matches!(built, Built::Reused);
    step.done_with(if reused { "reused" } else { "built" });
    match global.output {
        Output::Text => println!("{image}"),
        Output::Json => print_json(&serde_json::json!({ "image": image, "reused": reused })),
    }
    Ok(())
}
