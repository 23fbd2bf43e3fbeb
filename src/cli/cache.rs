use std::path::PathBuf;

use clap::Subcommand;

use super::{Global, Output, print_json};
use berth_core::binaries::{Cache as BinaryCache, Manifest, Source, Version};
use berth_core::error::{Error, Result};
use berth_core::paths;
use berth_core::ui::Ui;

#[derive(Subcommand)]
pub enum Cache {
    /// Copy a directory of Kubernetes binaries into the cache, after checking
    /// that every one is there, executable, and of VERSION.
    Import { version: String, dir: PathBuf },
    /// Download a version's official binaries, and the etcd, containerd and
    /// runc paired with its minor, into the cache, each checked against its
    /// published SHA-256 (what `start` does for a missing one).
    Download {
        version: String,
        /// A server with the official layout, instead of dl.k8s.io; it also
        /// serves etcd, containerd and runc under `etcd/`, `containerd/` and
        /// `runc/` in their projects' release layout.
        #[arg(long, value_name = "URL", default_value = berth_core::binaries::OFFICIAL_RELEASES)]
        binary_mirror: String,
        #[command(flatten)]
        runtime: RuntimeChoice,
    },
    /// Build a version from source with the Go on PATH, from the module
    /// proxy Go is configured for (GOPROXY, GOFLAGS, GOTOOLCHAIN as Go reads
    /// them): Kubernetes, the etcd, containerd, runc and CNI plugins paired
    /// with its minor, and CoreDNS as an image every node imports.
    #[command(
        after_help = "Examples:\n  berth cache build v1.37.2\n  GOPROXY=https://goproxy.example.com berth cache build v1.36.3"
    )]
    Build {
        version: String,
        #[command(flatten)]
        runtime: RuntimeChoice,
    },
    /// Show the cached Kubernetes versions.
    List,
    /// A pull-through image cache that every profile of this berth home
    /// shares: images of docker.io, registry.k8s.io, ghcr.io, quay.io (and
    /// registries you name) are fetched once, then served to every node.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  berth cache registry enable\n  berth cache registry enable --upstream registry.example.com=https://registry.example.com\n  berth cache registry status\n  berth cache registry prune\n  berth cache registry disable"
    )]
    Registry(super::cache_registry::CacheRegistry),
}

/// Versions of the runtime chosen instead of those paired with the minor.
#[derive(clap::Args)]
pub struct RuntimeChoice {
    /// Another etcd than the one paired with the minor (e.g. 3.6.9).
    #[arg(long, value_name = "VERSION")]
    etcd: Option<String>,
    /// Another containerd than the one paired with the minor.
    #[arg(long, value_name = "VERSION")]
    containerd: Option<String>,
    /// Another runc than the one paired with the minor.
    #[arg(long, value_name = "VERSION")]
    runc: Option<String>,
}

/// The runtime paired with `version`'s minor, with the versions a user
/// chose in its place.
fn runtime_of(version: &Version, chosen: RuntimeChoice) -> Result<berth_core::binaries::Runtime> {
    let mut runtime = berth_node::supported(version)?.runtime();
    for (field, chosen) in [
        (&mut runtime.etcd, chosen.etcd),
        (&mut runtime.containerd, chosen.containerd),
        (&mut runtime.runc, chosen.runc),
    ] {
        if let Some(v) = chosen {
            *field = berth_core::binaries::release_version(&v)?;
        }
    }
    Ok(runtime)
}

pub async fn run(cmd: Cache, global: &Global, ui: Ui) -> Result<()> {
    let cache = BinaryCache::new(&paths::cache_dir());
    match cmd {
        Cache::Registry(cmd) => return super::cache_registry::run(cmd, global, ui).await,
        Cache::Import { version, dir } => {
            let version: Version = version.parse()?;
            let step = ui.step(format!(
                "Importing Kubernetes {version} from {}",
                dir.display()
            ));
            let manifest = cache.import(&version, &dir)?;
            step.done();
            print_cached(global, &cache, &manifest);
        }
        Cache::Download {
            version,
            binary_mirror,
            runtime,
        } => {
            let version: Version = version.parse()?;
            let runtime = runtime_of(&version, runtime)?;
            let step = ui.step(format!(
                "Downloading Kubernetes {version} from {binary_mirror}"
            ));
            let manifest =
                cache.download(&version, &binary_mirror, &runtime, &|l| step.detail(l))?;
            step.done();
            print_cached(global, &cache, &manifest);
        }
        Cache::Build { version, runtime } => {
            let version: Version = version.parse()?;
            let runtime = runtime_of(&version, runtime)?;
            // A cold build takes about 11 minutes: wait for another at
            // least that long, whatever --lock-timeout says.
            let _building = berth_core::lock::build(
                &berth_core::paths::cache_dir(),
                &version.to_string(),
                global
                    .lock_timeout
                    .max(std::time::Duration::from_secs(3600)),
                ui,
            )?;
            if let Some(cached) = cache.get(&version)?
                && cached.defects().is_empty()
                && cached.runtime.as_ref() == Some(&runtime)
                && matches!(cached.source, Some(Source::Built { .. }))
            {
                ui.info(format!("Kubernetes {version} is built and cached already"));
                print_cached(global, &cache, &cached);
                return Ok(());
            }
            let step = ui.step(format!("Building Kubernetes {version} from source"));
            let stage = |line: &str| step.stage(line);
            let built = cache.build(&version, &runtime, &stage);
            let manifest = tokio::select! {
                built = built => built?,
                signal = super::interrupted() => {
                    return Err(Error::interrupted(format!(
                        "the build of Kubernetes {version} was interrupted ({signal}); nothing was cached"
                    )));
                }
            };
            step.done();
            print_cached(global, &cache, &manifest);
        }
        Cache::List => {
            let cached = cache.list()?;
            match global.output {
                Output::Json => print_json(&cached),
                Output::Text => {
                    println!(
                        "{:<12} {:<8} {:>9}  {:<8} {:<30} {:<58} PATH",
                        "VERSION", "ARCH", "SIZE", "STATUS", "SOURCE", "RUNTIME"
                    );
                    for m in &cached {
                        let size = format!("{:.0} MiB", m.size() as f64 / (1024.0 * 1024.0));
                        let status = if m.defects().is_empty() {
                            "ok"
                        } else {
                            "rebuild"
                        };
                        let runtime = match &m.runtime {
                            Some(r) => {
                                let mut text = format!(
                                    "etcd {} containerd {} runc {}",
                                    r.etcd, r.containerd, r.runc
                                );
                                if let Some(cni) = &r.cni {
                                    text.push_str(&format!(" cni {cni}"));
                                }
                                text
                            }
                            None => "the node image's".to_string(),
                        };
                        let source = match &m.source {
                            Some(source) => source.describe(),
                            None if m.runtime.is_some() => "downloaded".to_string(),
                            None => "imported".to_string(),
                        };
                        println!(
                            "{:<12} {:<8} {size:>9}  {status:<8} {source:<30} {runtime:<58} {}",
                            m.version,
                            m.arch,
                            cache.dir(&m.version).display()
                        );
                    }
                    for m in cached.iter().filter(|m| !m.defects().is_empty()) {
                        println!(
                            "\n{} must be rebuilt: its binaries are {}.\n  {}",
                            m.version,
                            berth_core::binaries::describe(m.defects()),
                            berth_core::error::rebuild_hint(&m.version)
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn print_cached(global: &Global, cache: &BinaryCache, manifest: &Manifest) {
    match global.output {
        Output::Text => println!("{}", cache.dir(&manifest.version).display()),
        Output::Json => print_json(manifest),
    }
}
