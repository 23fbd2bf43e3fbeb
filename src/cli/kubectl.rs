use std::os::unix::process::CommandExt;
use std::process::Command;

use clap::Args;

use super::Global;
use berth_core::binaries::Cache;
use berth_core::error::{Error, Result};

#[derive(Args)]
pub struct Kubectl {
    /// Arguments for kubectl, after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Replaces berth with the cluster's kubectl, so stdin, stdout, stderr, the
/// terminal and the exit status are kubectl's own.
pub fn run(cmd: Kubectl, global: &Global) -> Result<()> {
    let name = global.profile_name()?;
    let profile = global.load(&name)?;
    let kubectl = Cache::new(&berth_core::paths::cache_dir())
        .dir(&profile.kubernetes_version)
        .join("kubectl");
    let err = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&profile.kubeconfig)
        .arg("--context")
        .arg(profile.context())
        .args(&cmd.args)
        .exec();
    Err(
        Error::failure(format!("cannot run {}: {err}", kubectl.display())).with_hint(format!(
            "`berth cache import {} DIR` puts kubectl back",
            profile.kubernetes_version
        )),
    )
}
