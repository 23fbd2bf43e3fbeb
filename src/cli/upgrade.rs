use std::time::Duration;

use clap::Args;

use super::{Global, Output, print_json};
use berth_core::binaries::Version;
use berth_core::error::{Error, Result};
use berth_core::ui::Ui;

#[derive(Args)]
pub struct Upgrade {
    /// The version to take the cluster to: a newer patch of its minor, or
    /// the next minor (one at a time, as Kubernetes' skew policy says).
    #[arg(long, value_name = "VERSION")]
    kubernetes_version: String,
    /// How long to wait for each node to be Ready on the new version.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = super::start::parse_duration)]
    wait: Duration,
}

pub async fn run(cmd: Upgrade, global: &Global, ui: Ui) -> Result<()> {
    let to: Version = cmd.kubernetes_version.parse()?;
    if cmd.wait.is_zero() {
        return Err(Error::usage(
            "an upgrade waits for each node before the next, so --wait cannot be 0",
        )
        .with_hint("leave --wait out (5 minutes per node) or give a longer one"));
    }
    let name = global.profile_name()?;
    let _lock = global.lock(&name, ui)?;
    let profile = global.load(&name)?;
    let from = profile.kubernetes_version.clone();
    let ctx = global.ctx_for(ui, Some(&profile)).await?;
    let started = std::time::Instant::now();
    let profile =
        berth_cluster::upgrade(&ctx, profile, to.clone(), cmd.wait, super::interrupted).await?;
    ui.info(format!(
        "Profile {name} runs Kubernetes {to} (was {from}), upgraded in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    if global.output == Output::Json {
        print_json(&serde_json::json!({
            "profile": name,
            "kubernetes_version": profile.kubernetes_version,
            "was": from,
        }));
    }
    Ok(())
}
