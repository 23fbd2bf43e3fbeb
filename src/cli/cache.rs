use std::path::PathBuf;

use clap::Subcommand;

use super::{Global, Output, print_json};
use crate::binaries::{Cache as BinaryCache, Manifest, Version};
use crate::error::Result;
use crate::paths;
use crate::ui::Ui;

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
        #[arg(long, value_name = "URL", default_value = crate::binaries::OFFICIAL_RELEASES)]
        binary_mirror: String,
        /// Another etcd than the one paired with the minor (e.g. 3.6.9).
        #[arg(long, value_name = "VERSION")]
        etcd: Option<String>,
        /// Another containerd than the one paired with the minor.
        #[arg(long, value_name = "VERSION")]
        containerd: Option<String>,
        /// Another runc than the one paired with the minor.
        #[arg(long, value_name = "VERSION")]
        runc: Option<String>,
    },
    /// Show the cached Kubernetes versions.
    List,
}

pub fn run(cmd: Cache, global: &Global, ui: Ui) -> Result<()> {
    let cache = BinaryCache::new(&paths::cache_dir());
    match cmd {
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
            etcd,
            containerd,
            runc,
        } => {
            let version: Version = version.parse()?;
            let mut runtime = crate::binaries::runtime_for_minor(version.minor);
            for (field, chosen) in [
                (&mut runtime.etcd, etcd),
                (&mut runtime.containerd, containerd),
                (&mut runtime.runc, runc),
            ] {
                if let Some(v) = chosen {
                    *field = crate::binaries::release_version(&v)?;
                }
            }
            let step = ui.step(format!(
                "Downloading Kubernetes {version} from {binary_mirror}"
            ));
            let manifest =
                cache.download(&version, &binary_mirror, &runtime, &|l| step.detail(l))?;
            step.done();
            print_cached(global, &cache, &manifest);
        }
        Cache::List => {
            let cached = cache.list()?;
            match global.output {
                Output::Json => print_json(&cached),
                Output::Text => {
                    println!(
                        "{:<12} {:<8} {:>9}  {:<8} {:<40} PATH",
                        "VERSION", "ARCH", "SIZE", "STATUS", "RUNTIME"
                    );
                    for m in &cached {
                        let size = format!("{:.0} MiB", m.size() as f64 / (1024.0 * 1024.0));
                        let status = if m.defects().is_empty() {
                            "ok"
                        } else {
                            "rebuild"
                        };
                        let runtime = match &m.runtime {
                            Some(r) => format!(
                                "etcd {} containerd {} runc {}",
                                r.etcd, r.containerd, r.runc
                            ),
                            None => "the node image's".to_string(),
                        };
                        println!(
                            "{:<12} {:<8} {size:>9}  {status:<8} {runtime:<40} {}",
                            m.version,
                            m.arch,
                            cache.dir(&m.version).display()
                        );
                    }
                    for m in cached.iter().filter(|m| !m.defects().is_empty()) {
                        println!(
                            "\n{} must be rebuilt: its binaries are {}.\n  {}",
                            m.version,
                            crate::binaries::describe(m.defects()),
                            crate::error::rebuild_hint(&m.version)
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
