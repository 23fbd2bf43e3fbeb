//! Container images in a cluster's nodes: loaded from the host's engine or
//! from a `docker save` archive into containerd's `k8s.io` namespace, where
//! kubelet finds them, so pods run them without any registry.

use std::io::Read;

use berth_core::error::{Error, Result};
use berth_engine::Engine;
use berth_node::command;

/// Where an archive is put in the node while containerd imports it: on the
/// node's /var volume, not its memory-backed /tmp.
const STAGING: &str = "var/tmp/berth-image-load.tar";

/// The name Kubernetes and containerd use for an image reference as users
/// write it: `busybox` is `docker.io/library/busybox:latest`.
pub fn normalize(reference: &str) -> String {
    let (name, tag) = match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (reference, None),
    };
    let has_digest = name.contains('@');
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let name = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    match (tag, has_digest) {
        (Some(tag), _) => format!("{name}:{tag}"),
        (None, true) => name,
        (None, false) => format!("{name}:latest"),
    }
}

/// Imports a `docker save` archive into a node's containerd, replacing
/// images of the same names, and checks that every one of `expected` is
/// there afterwards.
pub async fn load_archive(
    docker: &dyn Engine,
    node: &str,
    archive: &[u8],
    expected: &[String],
) -> Result<()> {
    let mut tar = tar::Builder::new(Vec::with_capacity(archive.len() + 1024));
    let mut header = tar::Header::new_gnu();
    header.set_size(archive.len() as u64);
    header.set_mode(0o600);
    header.set_cksum();
    tar.append_data(&mut header, STAGING, archive)
        .expect("writing a tar to memory cannot fail");
    docker
        .upload(node, tar.into_inner().expect("tar in memory"))
        .await?;
    let staged = format!("/{STAGING}");
    let imported = docker.exec(node, &command::import_images(&staged)).await;
    let _ = docker.exec(node, &command::remove(&staged)).await;
    imported?.success().map_err(|stderr| {
        Error::failure(format!(
            "containerd in node {node} refused the image archive: {stderr}"
        ))
        .with_hint("pass an archive written by `docker save`")
    })?;
    let present = list(docker, node).await?;
    let missing: Vec<&String> = expected
        .iter()
        .filter(|name| !present.contains(&normalize(name)))
        .collect();
    if !missing.is_empty() {
        return Err(Error::failure(format!(
            "after the import, node {node} does not hold {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint("`berth image ls` shows what the node holds; load the image again"));
    }
    Ok(())
}

/// The named images in a node, as containerd lists them for Kubernetes.
pub async fn list(docker: &dyn Engine, node: &str) -> Result<Vec<String>> {
    let out = docker
        .exec(node, &command::images(true))
        .await?
        .success()
        .map_err(|stderr| {
            Error::failure(format!("cannot list the images of node {node}: {stderr}"))
                .with_hint("`berth status` shows whether the node runs")
        })?;
    let mut names: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("sha256:"))
        .map(str::to_string)
        .collect();
    names.sort();
    Ok(names)
}

/// The image names a `docker save` archive holds, from its manifest.json.
pub fn archive_names(archive: &[u8]) -> Option<Vec<String>> {
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.path().ok()?.to_str() == Some("manifest.json") {
            let mut text = String::new();
            entry.read_to_string(&mut text).ok()?;
            let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
            let names: Vec<String> = manifest
                .as_array()?
                .iter()
                .flat_map(|m| m["RepoTags"].as_array().cloned().unwrap_or_default())
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect();
            return (!names.is_empty()).then_some(names);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn references_normalize_as_kubernetes_does() {
        for (given, full) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("me/app:v2", "docker.io/me/app:v2"),
            ("berth.test/busybox:1", "berth.test/busybox:1"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost/app:1", "localhost/app:1"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        ] {
            assert_eq!(normalize(given), full, "{given}");
        }
    }
}
