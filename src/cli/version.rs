use serde::Serialize;

use super::{Global, Output, print_json};
use berth_core::error::Result;

#[derive(Serialize)]
struct Version {
    version: &'static str,
    commit: &'static str,
    /// The node image `start` uses unless told otherwise.
    node_image: String,
    kubernetes: Supported,
    /// The Kubernetes versions in the cache, oldest first.
    cached: Vec<String>,
    /// The engine commands talk to, and how it was found.
    engine: berth_engine::discover::Endpoint,
}

#[derive(Serialize)]
struct Supported {
    oldest: String,
    newest: String,
    default: &'static str,
}

/// This berth's version and the commit it was built from.
pub fn build() -> String {
    format!(
        "{} ({})",
        env!("CARGO_PKG_VERSION"),
        env!("BERTH_GIT_COMMIT")
    )
}

pub fn run(global: &Global) -> Result<()> {
    use berth_node::minors::{NEWEST_MINOR, OLDEST_MINOR};
    let cache = berth_core::binaries::Cache::new(&berth_core::paths::cache_dir());
    let version = Version {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("BERTH_GIT_COMMIT"),
        node_image: berth_core::node_image::Context::embedded().image(),
        kubernetes: Supported {
            oldest: format!("v1.{OLDEST_MINOR}"),
            newest: format!("v1.{NEWEST_MINOR}"),
            default: berth_cluster::DEFAULT_VERSION,
        },
        cached: cache
            .list()?
            .into_iter()
            .map(|m| m.version.to_string())
            .collect(),
        engine: global.endpoint()?,
    };
    match global.output {
        Output::Json => print_json(&version),
        Output::Text => {
            println!("berth {} (commit {})", version.version, version.commit);
            println!("node image: {}", version.node_image);
            println!(
                "engine: {} (from {})",
                version.engine.host, version.engine.found
            );
            println!(
                "kubernetes: {} to {} (default {})",
                version.kubernetes.oldest, version.kubernetes.newest, version.kubernetes.default
            );
            println!(
                "cached:     {}",
                if version.cached.is_empty() {
                    "none".to_string()
                } else {
                    version.cached.join(", ")
                }
            );
        }
    }
    Ok(())
}
