use std::time::Duration;

use clap::Args;

use super::Global;
use crate::cluster::{self, StartOptions};
use crate::error::{Error, Result};
use crate::ui::Ui;

#[derive(Args)]
pub struct Start {
    /// Kubernetes version (default: the newest cached one).
    #[arg(long, value_name = "V")]
    kubernetes_version: Option<String>,
    /// How long to wait for the API server and the node to be ready; 0
    /// returns once the node container runs.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    wait: Duration,
    /// Leave the kubeconfig's current context as it is.
    #[arg(long)]
    keep_context: bool,
    /// CPUs for the node (may be fractional).
    #[arg(long)]
    cpus: Option<f64>,
    /// Memory for the node, such as 4g or 2048m.
    #[arg(long, value_parser = parse_memory_mib)]
    memory: Option<u64>,
    /// Node image to use instead of the one built into berth.
    #[arg(long)]
    image: Option<String>,
    /// Download missing Kubernetes binaries from this URL instead of
    /// https://dl.k8s.io/release (same layout: VERSION/bin/linux/ARCH/NAME
    /// with NAME.sha256 beside each).
    #[arg(long, value_name = "URL")]
    binary_mirror: Option<String>,
    /// Nodes of a new cluster: one control plane and N-1 workers.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=crate::profile::MAX_NODES as i64))]
    nodes: Option<u32>,
}

pub async fn run(cmd: Start, global: &Global, ui: Ui) -> Result<()> {
    let name = global.profile_name()?;
    let version = cmd
        .kubernetes_version
        .as_deref()
        .map(str::parse)
        .transpose()?;
    if cmd.cpus.is_some_and(|c| !(c > 0.0 && c <= 1024.0)) {
        return Err(Error::usage("--cpus must be a number above 0"));
    }
    let opts = StartOptions {
        version,
        wait: (!cmd.wait.is_zero()).then_some(cmd.wait),
        keep_context: cmd.keep_context,
        cpus: cmd.cpus,
        memory_mib: cmd.memory,
        image: cmd.image,
        binary_mirror: cmd.binary_mirror,
        nodes: cmd.nodes,
    };
    let ctx = global.ctx(ui).await?;
    let profile = cluster::start(&ctx, &name, &opts).await?;
    let nodes = match profile.nodes().len() {
        1 => String::new(),
        n => format!(" on {n} nodes"),
    };
    ui.info(format!(
        "Profile {} is up: Kubernetes {}{nodes} at {} (context {})",
        profile.name,
        profile.kubernetes_version,
        profile.server(),
        profile.context()
    ));
    Ok(())
}

/// `0`, `90` (seconds), `90s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90s or 5m"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{text}` is not a duration such as 90s or 5m")),
    };
    Ok(Duration::from_secs(secs))
}

/// `4g`, `2048m`, `2048` (MiB).
pub fn parse_memory_mib(text: &str) -> Result<u64, String> {
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = lower.split_at(
        lower
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(lower.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 4g or 2048m"))?;
    let mib = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" | "m" => n,
        "g" => n * 1024,
        _ => return Err(format!("`{text}` is not a size such as 4g or 2048m")),
    };
    if mib < 512 {
        return Err(format!(
            "{text} is too little memory for a node: give at least 512m"
        ));
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse_as_users_write_them() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5 minutes").is_err());
        assert_eq!(parse_memory_mib("4g").unwrap(), 4096);
        assert_eq!(parse_memory_mib("2048MiB").unwrap(), 2048);
        assert!(parse_memory_mib("100m").is_err());
        assert!(parse_memory_mib("lots").is_err());
    }
}
