use clap::Subcommand;

use super::{Global, Output, mib, print_json, table};
use berth_cluster::registry_cache::{self, Enabled};
use berth_core::error::Result;
use berth_core::registry_cache::Upstream;
use berth_core::ui::Ui;

#[derive(Subcommand)]
pub enum CacheRegistry {
    /// Start the cache and make every profile's nodes, now and later, pull
    /// through it (they pull from the registry itself when it cannot
    /// serve).
    Enable {
        /// Another registry to cache, as the name images use and its URL
        /// (repeatable); one of a default's name replaces its URL.
        #[arg(long, value_name = "HOST=URL", value_parser = parse_upstream)]
        upstream: Vec<Upstream>,
    },
    /// Stop pulling through the cache and remove it with its images.
    Disable,
    /// Remove the cached images; the cache stays on.
    Prune,
    /// Whether the cache is on, what it holds and which profiles it serves.
    Status,
}

fn parse_upstream(arg: &str) -> std::result::Result<Upstream, String> {
    Upstream::parse(arg).map_err(|e| match e.hint {
        Some(hint) => format!("{}; {hint}", e.message),
        None => e.message,
    })
}

pub async fn run(cmd: CacheRegistry, global: &Global, ui: Ui) -> Result<()> {
    let ctx = global.ctx(ui).await?;
    let _lock = berth_core::lock::registry_cache(&ctx.home, global.lock_timeout, ui)?;
    match cmd {
        CacheRegistry::Enable { upstream } => {
            match registry_cache::enable(&ctx, upstream, super::interrupted).await? {
                Enabled::Made(_) => ui.info(
                    "The registry cache is on: every profile of this berth home pulls through it",
                ),
                Enabled::Already(_) => ui.info(
                    "The registry cache was on already; every profile is attached to it again",
                ),
            }
            print_status(global, registry_cache::status(&ctx).await?);
        }
        CacheRegistry::Disable => {
            if registry_cache::disable(&ctx).await? {
                ui.info("The registry cache is off and its images are gone; nodes pull from the registries themselves");
            } else {
                ui.info("The registry cache was off already");
            }
        }
        CacheRegistry::Prune => {
            let freed = registry_cache::prune(&ctx).await?;
            ui.info(format!(
                "Removed {} of cached images; the cache stays on",
                mib(freed)
            ));
            if global.output == Output::Json {
                print_json(&serde_json::json!({ "freed_bytes": freed }));
            }
        }
        CacheRegistry::Status => print_status(global, registry_cache::status(&ctx).await?),
    }
    Ok(())
}

fn print_status(global: &Global, status: Option<registry_cache::Status>) {
    let Some(status) = status else {
        match global.output {
            Output::Json => print_json(&serde_json::json!({ "enabled": false })),
            Output::Text => {
                println!("Registry cache: off (`berth cache registry enable` turns it on)")
            }
        }
        return;
    };
    let state = status.state.map_or("gone", |s| s.display()).to_lowercase();
    let upstreams: Vec<(&Upstream, u16)> = status.cache.ports().collect();
    match global.output {
        Output::Json => print_json(&serde_json::json!({
            "enabled": true,
            "state": state,
            "container": status.container,
            "network": status.container,
            "subnet": status.cache.subnet.to_string(),
            "address": status.cache.ip().to_string(),
            "bytes": status.bytes,
            "profiles": status.profiles,
            "upstreams": upstreams.iter().map(|(u, port)| serde_json::json!({
                "host": u.host, "url": u.url, "port": port,
                "serving": status.serving.contains(port),
            })).collect::<Vec<_>>(),
        })),
        Output::Text => {
            let held = status.bytes.map(|b| format!(", {} held", mib(b)));
            println!(
                "Registry cache: {state}{}, container and network {} ({})",
                held.unwrap_or_default(),
                status.container,
                status.cache.subnet
            );
            let served = match status.profiles.as_slice() {
                [] => "none yet".to_string(),
                names => names.join(", "),
            };
            println!("Profiles it serves: {served}");
            let rows: Vec<[String; 4]> = upstreams
                .iter()
                .map(|(u, port)| {
                    let serves = if status.serving.contains(port) {
                        "serving"
                    } else {
                        "waiting for the upstream"
                    };
                    [
                        u.host.clone(),
                        port.to_string(),
                        serves.into(),
                        u.url.clone(),
                    ]
                })
                .collect();
            for line in table(["REGISTRY", "PORT", "MIRROR", "UPSTREAM"], &rows) {
                println!("{line}");
            }
        }
    }
}
