//! A version's binaries as a Docker volume, filled once from the host cache
//! and mounted read-only by every node of that version. A volume, not a bind
//! mount of the cache, so that nodes work on engines that do not share the
//! host's file system (remote engines, Docker Desktop's VM).

use std::collections::HashMap;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{Cache, Manifest};
use crate::error::{Error, Result};
use crate::names;
use berth_engine::{BINARIES_MOUNT, BinariesVolume, Engine, Kind, NodeContainer};

/// Written last when a volume is filled; a volume without it was cut off
/// halfway and is filled again.
const COMPLETE: &str = ".complete";

/// Named after the exact binaries, so a version imported again with other
/// binaries never meets a volume of the old ones.
pub fn volume_name(manifest: &Manifest) -> String {
    let mut hash = Sha256::new();
    for (name, file) in &manifest.files {
        hash.update(format!("{name} {}\n", file.sha256));
    }
    let digest = hex::encode(hash.finalize());
    format!(
        "berth-kubernetes-{}-{}-{}",
        manifest.version,
        manifest.arch,
        &digest[..12]
    )
}

/// Who fills a volume: the node image its helper container is made from,
/// and the home and process token the helper is labelled with.
pub struct Filler {
    pub image: String,
    pub home: PathBuf,
    pub token: String,
}

/// The volume of `manifest`'s binaries, filled from the cache when it does
/// not exist yet or was left incomplete.
///
/// Volumes are shared by every home on the engine. The helper container
/// that looks into or fills one is named after it, so while one berth, of
/// any home, is at work on a volume, another cannot make its own and waits
/// for it to finish. A helper whose berth is surely gone is removed when it
/// is of this home; another home's is waited for, up to
/// `HELPER_LIFETIME_SECS`, and then named in an error.
pub async fn ensure_volume(
    docker: &dyn Engine,
    cache: &Cache,
    manifest: &Manifest,
    filler: &Filler,
) -> Result<String> {
    let name = volume_name(manifest);
    let helper = NodeContainer {
        binaries: Some(BinariesVolume {
            name: name.clone(),
            writable: true,
        }),
        ..NodeContainer::helper(
            format!("{name}-fill"),
            &filler.image,
            names::helper_labels(&filler.home, "binaries", &filler.token),
        )
    };
    // The host remembers which volumes (by creation time, one line each:
    // several engines may share the cache) it saw complete, so that a
    // start need not look into one with a helper container.
    let seen = cache.dir(&manifest.version).join("volume.complete");
    let seen_lines = || std::fs::read_to_string(&seen).unwrap_or_default();
    let seen_complete = |created: &str| {
        let line = format!("{name} {created}");
        seen_lines().lines().any(|l| l == line)
    };
    let labels = HashMap::from([
        (names::LABEL_BERTH.into(), "true".into()),
        (names::LABEL_BINARIES.into(), manifest.version.to_string()),
    ]);
    loop {
        if let Some(created) = docker.volume_created(&name).await?
            && seen_complete(&created)
        {
            return Ok(name);
        }
        docker.create_volume(&name, &labels).await?;
        match docker.create_container(&helper).await {
            Ok(id) => {
                let filled = fill(docker, cache, manifest, &id).await;
                docker.remove_container(&id).await?;
                filled?;
                if let Some(created) = docker.volume_created(&name).await? {
                    let known = seen_lines();
                    // The newest eight: a volume made again leaves a stale line.
                    let kept: Vec<&str> = known.lines().rev().take(7).collect();
                    let mut text: String = kept.iter().rev().map(|l| format!("{l}\n")).collect();
                    text.push_str(&format!("{name} {created}\n"));
                    let _ = std::fs::write(&seen, text);
                }
                return Ok(name);
            }
            Err(berth_engine::Error::Taken { .. }) => {
                wait_for_other(docker, &helper.name, &filler.home).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Fills the volume through the helper `id` unless it is complete.
async fn fill(docker: &dyn Engine, cache: &Cache, manifest: &Manifest, id: &str) -> Result<()> {
    if docker
        .file_exists(id, &format!("{BINARIES_MOUNT}/{COMPLETE}"))
        .await?
    {
        return Ok(());
    }
    let tar = tokio::task::block_in_place(|| binaries_tar(cache, manifest))?;
    docker.upload(id, tar).await?;
    Ok(())
}

/// Waits a moment while another berth's helper named `helper` is at work;
/// removes it when its berth is surely gone and it is of this home.
async fn wait_for_other(docker: &dyn Engine, helper: &str, home: &std::path::Path) -> Result<()> {
    let Some(other) = docker.named(Kind::Container, helper).await?.pop() else {
        return Ok(());
    };
    let now = berth_node::now() as i64;
    let age = now - other.created.unwrap_or(now);
    let dead = names::helper_is_dead(&other.labels, other.created, now);
    let ours = other.labels.get(names::LABEL_HOME) == Some(&home.display().to_string());
    if dead && ours {
        docker.remove(&other).await?;
        return Ok(());
    }
    if age <= names::HELPER_LIFETIME_SECS {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        return Ok(());
    }
    Err(Error::engine(format!(
        "the helper container {helper} of {} has been filling a volume of Kubernetes binaries \
             for {} minutes: its berth was probably killed",
        names::owner(&other.labels),
        age / 60
    ))
    .with_hint(format!(
        "if no berth runs there any more, remove it with `{} rm -f {helper}`",
        docker.flavour().cli()
    )))
}

/// The cached binaries (Kubernetes', and the runtime's when the version
/// brought one) as a tar rooted at `/`, the completion mark last.
fn binaries_tar(cache: &Cache, manifest: &Manifest) -> Result<Vec<u8>> {
    let dir = cache.dir(&manifest.version);
    let mount = BINARIES_MOUNT.trim_start_matches('/');
    let mut builder = tar::Builder::new(Vec::with_capacity(manifest.size() as usize + (1 << 20)));
    let unreadable = |e: std::io::Error| {
        Error::failure(format!(
            "cannot read the cached binaries of Kubernetes {} in {}: {e}",
            manifest.version,
            dir.display()
        ))
        .with_hint(format!(
            "import the version again with `berth cache import {} DIR`",
            manifest.version
        ))
    };
    for name in manifest.files.keys() {
        builder
            .append_path_with_name(dir.join(name), format!("{mount}/{name}"))
            .map_err(unreadable)?;
    }
    berth_node::append_file(&mut builder, &format!("{mount}/{COMPLETE}"), &[], 0o644)
        .map_err(unreadable)?;
    builder.into_inner().map_err(unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binaries::{FileEntry, host_arch};

    fn manifest(kubelet_sum: &str) -> Manifest {
        Manifest {
            version: "v1.30.2".parse().unwrap(),
            arch: host_arch().into(),
            files: [("kubelet".to_string(), kubelet_sum.to_string())]
                .into_iter()
                .map(|(n, sha256)| {
                    (
                        n,
                        FileEntry {
                            sha256,
                            size: 1,
                            reports: "v1.30.2".into(),
                        },
                    )
                })
                .collect(),
            defects: Some(Vec::new()),
            runtime: None,
            source: None,
            images: Vec::new(),
        }
    }

    #[test]
    fn volume_names_follow_the_binaries() {
        let a = volume_name(&manifest("aa"));
        assert!(a.starts_with(&format!("berth-kubernetes-v1.30.2-{}-", host_arch())));
        assert_eq!(a, volume_name(&manifest("aa")));
        assert_ne!(a, volume_name(&manifest("bb")));
    }
}
