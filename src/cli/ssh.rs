use std::io::IsTerminal as _;

use clap::Args;
use clap_complete::engine::ArgValueCandidates;

use super::Global;
use berth_core::error::Result;
use berth_core::ui::{RawTerminal, Ui};

#[derive(Args)]
#[command(after_help = "Examples:
  berth ssh -p dev                                   # a login shell in the control plane
  berth ssh -p dev --node dev-m02 -- ctr -n k8s.io images ls  # a command; its exit status is berth's
  tar c manifests | berth ssh -p dev -- tar x -C /tmp  # stdin reaches the command

Through the Docker API (exec), like `docker exec -it`; no SSH server runs.")]
pub struct Ssh {
    /// The node (`berth node list` names them); default: the first control
    /// plane.
    #[arg(long, value_name = "NODE", add = ArgValueCandidates::new(super::completion::nodes))]
    node: Option<String>,
    /// A command to run instead of a login shell, after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Returns the command's exit status, which becomes berth's.
pub async fn run(cmd: Ssh, global: &Global, ui: Ui) -> Result<u8> {
    let name = global.profile_name()?;
    let profile = global.load(&name)?;
    let ctx = global.ctx_for(ui, Some(&profile)).await?;
    let node = cmd
        .node
        .clone()
        .unwrap_or_else(|| profile.control_plane().name);
    let nodes = berth_cluster::images::running_nodes(&ctx, &profile, Some(&node)).await?;
    let container = &nodes[0].container;
    let command = if cmd.command.is_empty() {
        vec!["/bin/bash".to_string(), "--login".to_string()]
    } else {
        cmd.command
    };
    // A terminal only when both ends are one, as `docker exec -it` would be
    // asked for: piped input or output stays byte for byte.
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let raw = tty.then(RawTerminal::enter).flatten();
    let code = ctx
        .docker
        .exec_attached(container, &command, raw.is_some())
        .await;
    drop(raw);
    Ok(u8::try_from(code?).unwrap_or(1))
}
