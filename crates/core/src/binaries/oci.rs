//! A single-layer OCI image archive written from files, which
//! `ctr images import` takes: how berth turns a binary it built (CoreDNS)
//! into an image a node runs, with no registry and no Docker build. It is
//! also a `docker save` archive (a manifest.json beside the OCI index, as
//! Docker 25 writes them), so `docker load` takes it on any engine.

use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// A file of the image's only layer.
pub struct LayerFile<'a> {
    pub path: &'a str,
    pub content: &'a [u8],
    pub mode: u32,
    /// Capabilities the file grants when run (`setcap ...=+ep`), as the
    /// kernel keeps them in the `security.capability` attribute.
    pub capabilities: &'a [u32],
}

/// What a container of the image runs as and with.
pub struct ImageConfig<'a> {
    pub entrypoint: &'a [&'a str],
    pub user: &'a str,
    pub exposed_ports: &'a [&'a str],
}

/// Writes the image `reference` (`registry.k8s.io/coredns/coredns:v1.14.6`)
/// as an OCI archive at `out`.
pub fn write_archive(
    reference: &str,
    files: &[LayerFile],
    config: &ImageConfig,
    arch: &str,
    out: &Path,
) -> io::Result<()> {
    let layer = layer(files)?;
    let layer_digest = digest(&layer);
    let ports: serde_json::Map<String, serde_json::Value> = config
        .exposed_ports
        .iter()
        .map(|p| (p.to_string(), serde_json::json!({})))
        .collect();
    let image_config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "User": config.user,
            "Entrypoint": config.entrypoint,
            "ExposedPorts": ports,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &image_config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    }))?;
    let tag = reference.rsplit_once(':').map_or("latest", |(_, t)| t);
    let mut index = descriptor("application/vnd.oci.image.manifest.v1+json", &manifest);
    index["annotations"] = serde_json::json!({
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": tag,
    });
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [index],
    }))?;
    let blob_path = |blob: &[u8]| format!("blobs/sha256/{}", &digest(blob)["sha256:".len()..]);
    let docker_manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": blob_path(&image_config),
        "RepoTags": [reference],
        "Layers": [blob_path(&layer)],
    }]))?;

    let mut archive = tar::Builder::new(std::fs::File::create(out)?);
    append(
        &mut archive,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    append(&mut archive, "index.json", &index)?;
    append(&mut archive, "manifest.json", &docker_manifest)?;
    for blob in [&image_config, &manifest, &layer] {
        append(&mut archive, &blob_path(blob), blob)?;
    }
    archive.into_inner()?.flush()
}

fn layer(files: &[LayerFile]) -> io::Result<Vec<u8>> {
    let mut layer = tar::Builder::new(Vec::new());
    for file in files {
        if !file.capabilities.is_empty() {
            let xattr = capability_xattr(file.capabilities);
            layer.append_pax_extensions([("SCHILY.xattr.security.capability", &xattr[..])])?;
        }
        let mut header = tar::Header::new_ustar();
        header.set_size(file.content.len() as u64);
        header.set_mode(file.mode);
        header.set_uid(0);
        header.set_gid(0);
        // A fixed time: the same binary makes the same image.
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        layer.append_data(&mut header, file.path, file.content)?;
    }
    layer.into_inner()
}

/// `struct vfs_cap_data` of revision 2 with the effective bit: each
/// capability permitted and raised when the file runs (linux/capability.h).
fn capability_xattr(capabilities: &[u32]) -> Vec<u8> {
    const REVISION_2: u32 = 0x0200_0000;
    const EFFECTIVE: u32 = 0x1;
    let mut permitted = [0u32; 2];
    for &cap in capabilities {
        permitted[(cap / 32) as usize] |= 1 << (cap % 32);
    }
    let mut out = Vec::with_capacity(20);
    for word in [REVISION_2 | EFFECTIVE, permitted[0], 0, permitted[1], 0] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out
}

fn append<W: Write>(archive: &mut tar::Builder<W>, path: &str, content: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    archive.append_data(&mut header, path, content)
}

fn digest(blob: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(blob)))
}

fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest(blob), "size": blob.len()})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;

    /// An entry's content and its PAX extensions.
    type Entry = (Vec<u8>, BTreeMap<String, Vec<u8>>);

    /// Every entry of a tar, by path.
    fn entries(tar: &[u8]) -> BTreeMap<String, Entry> {
        let mut archive = tar::Archive::new(tar);
        let mut out = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let pax: BTreeMap<String, Vec<u8>> = entry
                .pax_extensions()
                .unwrap()
                .into_iter()
                .flatten()
                .map(|e| {
                    let e = e.unwrap();
                    (e.key().unwrap().to_string(), e.value_bytes().to_vec())
                })
                .collect();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            out.insert(path, (content, pax));
        }
        out
    }

    #[test]
    fn the_archive_is_an_oci_layout_that_names_the_image_and_holds_what_it_points_to() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("coredns.tar");
        let files = [LayerFile {
            path: "coredns",
            content: b"\x7fELF binary",
            mode: 0o755,
            capabilities: &[10],
        }];
        let config = ImageConfig {
            entrypoint: &["/coredns"],
            user: "65532:65532",
            exposed_ports: &["53/tcp", "53/udp"],
        };
        let reference = "registry.k8s.io/coredns/coredns:v1.14.6";
        write_archive(reference, &files, &config, "amd64", &out).unwrap();
        let archive = entries(&std::fs::read(&out).unwrap());
        let blob = |digest: &str| {
            let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
            let (content, _) = &archive[&name];
            assert_eq!(
                digest,
                super::digest(content),
                "{name} is not what its name says"
            );
            content.clone()
        };
        let json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();

        let index = json(&archive["index.json"].0);
        let entry = &index["manifests"][0];
        assert_eq!(entry["annotations"]["io.containerd.image.name"], reference);
        assert_eq!(
            entry["annotations"]["org.opencontainers.image.ref.name"],
            "v1.14.6"
        );
        let manifest = json(&blob(entry["digest"].as_str().unwrap()));
        let image = json(&blob(manifest["config"]["digest"].as_str().unwrap()));
        assert_eq!(image["config"]["Entrypoint"][0], "/coredns");
        assert_eq!(image["config"]["User"], "65532:65532");
        let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
        assert_eq!(image["rootfs"]["diff_ids"][0], layer_digest);
        // `docker load` reads the same blobs through manifest.json.
        let docker = json(&archive["manifest.json"].0);
        assert_eq!(docker[0]["RepoTags"][0], reference);
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        assert_eq!(
            docker[0]["Config"],
            format!("blobs/sha256/{}", &config_digest[7..])
        );
        assert_eq!(
            docker[0]["Layers"][0],
            format!("blobs/sha256/{}", &layer_digest[7..])
        );

        let layer = entries(&blob(layer_digest));
        let (content, pax) = &layer["coredns"];
        assert_eq!(content, b"\x7fELF binary");
        // cap_net_bind_service (10) permitted and effective: what `setcap
        // cap_net_bind_service=+ep` writes, as upstream's image has it.
        assert_eq!(
            pax["SCHILY.xattr.security.capability"],
            [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }
}
