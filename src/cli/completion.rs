use clap::{Args, ValueEnum};
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::EnvCompleter;

use berth_core::error::{Error, Result};
use berth_core::profile::Store;

#[derive(Args)]
#[command(after_help = "Examples:
  source <(berth completion bash)                          # this bash session
  berth completion bash > ~/.local/share/bash-completion/completions/berth
  berth completion zsh > \"${fpath[1]}/_berth\"
  berth completion fish > ~/.config/fish/completions/berth.fish

The script calls berth back at each TAB, so profile names after -p and node
names after --node come from this berth home's profiles as they are then.")]
pub struct Completion {
    shell: Shell,
}

#[derive(Clone, Copy, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

/// The environment variable through which the shell asks berth for
/// candidates (clap's dynamic completion protocol).
pub const VAR: &str = "COMPLETE";

pub fn run(cmd: Completion) -> Result<()> {
    use clap_complete::env::{Bash, Elvish, Fish, Powershell, Zsh};
    let shell: &dyn EnvCompleter = match cmd.shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Powershell => &Powershell,
        Shell::Elvish => &Elvish,
    };
    shell
        .write_registration(
            VAR,
            "berth",
            "berth",
            "berth",
            &mut std::io::stdout().lock(),
        )
        .map_err(|e| Error::failure(format!("cannot write the completion script: {e}")))
}

/// The profiles of this berth home, for `-p`.
pub fn profiles() -> Vec<CompletionCandidate> {
    Store::new(&berth_core::paths::home_dir())
        .names()
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// The nodes of every profile of this berth home, for `--node`: a node's
/// name starts with its profile's, so each is told apart.
pub fn nodes() -> Vec<CompletionCandidate> {
    let store = Store::new(&berth_core::paths::home_dir());
    store
        .names()
        .into_iter()
        .filter_map(|name| store.load(&name).ok().flatten())
        .flat_map(|profile| profile.nodes())
        .map(|node| CompletionCandidate::new(node.name))
        .collect()
}
