//! The command line: one file per verb, each with its clap definition beside
//! a thin handler.

mod cache;
mod node_image;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Result;
use crate::ui::Ui;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Real local Kubernetes clusters in Docker containers"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// The profile (cluster) to act on.
    #[arg(short, long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// How data is printed on stdout.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// No progress on stderr; errors are still printed.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The kubeconfig file to update, instead of the one kubectl would use.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Build the node image.
    #[command(subcommand)]
    NodeImage(node_image::NodeImage),
    /// Manage the host cache of Kubernetes binaries.
    #[command(subcommand)]
    Cache(cache::Cache),
}

pub async fn run(cli: Cli) -> Result<()> {
    let ui = Ui::new(cli.global.quiet);
    match cli.command {
        Command::NodeImage(cmd) => node_image::run(cmd, &cli.global, ui).await,
        Command::Cache(cmd) => cache::run(cmd, &cli.global, ui),
    }
}

/// Prints a value as JSON on stdout.
fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("output serialises")
    );
}
