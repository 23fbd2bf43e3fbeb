//! A version's binaries as a Docker volume, filled once from the host cache
//! and mounted read-only by every node of that version. A volume, not a bind
//! mount of the cache, so that nodes work on engines that do not share the
//! host's file system (remote engines, Docker Desktop's VM).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::{COMPONENTS, Cache, Manifest};
use crate::docker::{BINARIES_MOUNT, BinariesVolume, Docker, NodeContainer};
use crate::error::{Error, Exit, Result};

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

/// The volume of `manifest`'s binaries, filled from the cache when it does
/// not exist yet or was left incomplete. The helper that fills it is created
/// from the node image `image` and never started.
pub async fn ensure_volume(
    docker: &Docker,
    cache: &Cache,
    manifest: &Manifest,
    image: &str,
) -> Result<String> {
    let name = volume_name(manifest);
    let helper = NodeContainer {
        name: format!("{name}-fill-{}", std::process::id()),
        labels: HashMap::from([
            ("io.berth".into(), "true".into()),
            ("io.berth.helper".into(), "binaries".into()),
        ]),
        binaries: Some(BinariesVolume {
            name: name.clone(),
            writable: true,
        }),
        ..NodeContainer::probe(image)
    };
    // The host remembers which volume (by creation time) it saw complete,
    // so that a start need not look into it with a helper container.
    let seen = cache.dir(&manifest.version).join("volume.complete");
    let seen_complete = |created: &str| {
        std::fs::read_to_string(&seen).is_ok_and(|s| s == format!("{name} {created}"))
    };
    let remember = |created: Option<String>| {
        if let Some(created) = created {
            let _ = std::fs::write(&seen, format!("{name} {created}"));
        }
    };
    if let Some(created) = docker.volume_created(&name).await? {
        if seen_complete(&created) {
            return Ok(name);
        }
        docker.create_container(&helper).await?;
        let complete = docker
            .file_exists(&helper.name, &format!("{BINARIES_MOUNT}/{COMPLETE}"))
            .await;
        docker.remove_container(&helper.name).await?;
        if complete? {
            remember(Some(created));
            return Ok(name);
        }
        docker.remove_volume(&name).await?;
    }
    let labels = HashMap::from([
        ("io.berth".into(), "true".into()),
        ("io.berth.binaries".into(), manifest.version.to_string()),
    ]);
    // A mark never outlives the volume it was written for.
    let _ = std::fs::remove_file(&seen);
    docker.create_volume(&name, &labels).await?;
    let filled = async {
        let tar = tokio::task::block_in_place(|| binaries_tar(cache, manifest))?;
        docker.create_container(&helper).await?;
        docker.upload(&helper.name, tar).await?;
        Ok::<_, Error>(())
    }
    .await;
    let removed = docker.remove_container(&helper.name).await;
    if let Err(e) = filled {
        let _ = docker.remove_volume(&name).await;
        return Err(e);
    }
    removed?;
    remember(docker.volume_created(&name).await?);
    Ok(name)
}

/// The cached binaries as a tar rooted at `/`, the completion mark last.
fn binaries_tar(cache: &Cache, manifest: &Manifest) -> Result<Vec<u8>> {
    let dir = cache.dir(&manifest.version);
    let mount = BINARIES_MOUNT.trim_start_matches('/');
    let mut builder = tar::Builder::new(Vec::with_capacity(manifest.size() as usize + (1 << 20)));
    let unreadable = |e: std::io::Error| {
        Error::new(
            Exit::Failure,
            format!(
                "cannot read the cached binaries of Kubernetes {} in {}: {e}",
                manifest.version,
                dir.display()
            ),
        )
        .with_hint(format!(
            "import the version again with `berth cache import {} DIR`",
            manifest.version
        ))
    };
    for name in COMPONENTS {
        builder
            .append_path_with_name(dir.join(name), format!("{mount}/{name}"))
            .map_err(unreadable)?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, format!("{mount}/{COMPLETE}"), &[][..])
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
