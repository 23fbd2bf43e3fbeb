//! A snapshot of a cluster as it lies on disk: a directory holding
//! `snapshot.json` (what is in it, with each archive's SHA-256), the
//! profile's state as berth's home holds it (`profiles/<name>/profile.json`
//! and `pki/`, so a `profile::Store` reads it) and each node's `/var` as a tar
//! (`nodes/<node>.tar`: etcd's data, containerd's images, the kubelet's
//! state and the persistent volumes). A snapshot is checked whole before
//! anything is restored from it.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::binaries::Version;
use crate::error::{Error, Result};

/// The format of the snapshots this berth writes; a higher one is refused.
pub const FORMAT: u64 = 1;
/// What marks a directory as a snapshot.
pub const MANIFEST: &str = "snapshot.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u64,
    pub written_by: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub profile: String,
    pub kubernetes_version: Version,
    /// Whether the cluster ran (frozen for the copy) when it was saved.
    pub running: bool,
    pub nodes: Vec<NodeArchive>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeArchive {
    pub node: String,
    pub sha256: String,
    pub bytes: u64,
}

impl NodeArchive {
    /// Where the archive of `node` lies in a snapshot.
    pub fn path(dir: &Path, node: &str) -> PathBuf {
        dir.join("nodes").join(format!("{node}.tar"))
    }
}

impl Manifest {
    pub fn bytes(&self) -> u64 {
        self.nodes.iter().map(|n| n.bytes).sum()
    }
}

/// Where the snapshot `arg` lies: a path when it has a `/` (or is `.` or
/// `..`), else a name in the home's `snapshots/`.
pub fn locate(home: &Path, arg: &str) -> Result<PathBuf> {
    if arg.contains('/') || arg == "." || arg == ".." {
        return Ok(PathBuf::from(arg));
    }
    crate::profile::validate_name(arg).map_err(|_| {
        Error::usage(format!("`{arg}` is not a snapshot name")).with_hint(
            "use lower-case letters, digits and `-` (as for profiles), or a path with a `/` \
             such as ./my-snapshot",
        )
    })?;
    Ok(dir(home).join(arg))
}

/// Whether `path` names a snapshot in one file (a tar of its directory)
/// rather than a directory.
pub fn is_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "tar")
}

/// Packs the snapshot directory `dir` into the tar `file`, its manifest
/// first (so that it is read without unpacking the rest); written aside and
/// moved into place, so that `file` is whole or absent.
pub fn pack(dir: &Path, file: &Path) -> Result<()> {
    let failed = |e: io::Error| {
        Error::failure(format!("cannot write {}: {e}", file.display()))
            .with_hint("check the free space and permissions where the snapshot goes")
    };
    let partial = aside(file, "partial");
    let written = (|| {
        // The cluster's keys and its etcd are inside: its owner's alone.
        let out = io::BufWriter::new(
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)?,
        );
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        tar.append_path_with_name(dir.join(MANIFEST), MANIFEST)?;
        for part in ["profiles", "nodes"] {
            tar.append_dir_all(part, dir.join(part))?;
        }
        let out = tar.into_inner()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&partial, file)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&partial);
        return Err(failed(e));
    }
    Ok(())
}

/// A hidden sibling of `path`, for what is made beside it.
pub fn aside(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or("snapshot".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

/// The manifest of the snapshot file `file`, read from its first entry.
pub fn read_file(file: &Path) -> Result<Manifest> {
    let opened = fs::File::open(file).map_err(|e| refuse(file, e))?;
    let mut archive = tar::Archive::new(io::BufReader::new(opened));
    let first = archive
        .entries()
        .map_err(|e| refuse(file, e))?
        .next()
        .ok_or_else(|| refuse(file, "it is an empty tar"))?
        .map_err(|e| refuse(file, format!("it is no tar: {e}")))?;
    if first.path().ok().as_deref() != Some(Path::new(MANIFEST)) {
        return Err(refuse(file, format!("it does not begin with {MANIFEST}")));
    }
    let mut bytes = Vec::new();
    let mut first = first;
    first.read_to_end(&mut bytes).map_err(|e| refuse(file, e))?;
    parse(file, &bytes)
}

/// The manifest of the snapshot at `path`, a file or a directory.
pub fn read_any(path: &Path) -> Result<Manifest> {
    if is_file(path) {
        read_file(path)
    } else {
        read(path)
    }
}

/// Unpacks the snapshot file `file` into the new directory `into`, which
/// `read` and `verify` then check as any snapshot directory; nothing is
/// written outside `into`.
pub fn unpack(file: &Path, into: &Path) -> Result<()> {
    read_file(file)?;
    let opened = fs::File::open(file).map_err(|e| refuse(file, e))?;
    let mut archive = tar::Archive::new(io::BufReader::new(opened));
    archive.unpack(into).map_err(|e| {
        refuse(
            file,
            format!("it cannot be unpacked into {}: {e}", into.display()),
        )
    })
}

/// The home's own snapshots.
pub fn dir(home: &Path) -> PathBuf {
    home.join("snapshots")
}

fn refuse(dir: &Path, why: impl std::fmt::Display) -> Error {
    Error::usage(format!(
        "{} is not a snapshot berth can restore: {why}",
        dir.display()
    ))
    .with_hint(
        "name a directory or a .tar file `berth snapshot save` made (`berth snapshot list` \
             shows this home's); nothing was changed",
    )
}

/// Reads a snapshot's manifest, refusing a directory that is none, one of
/// a newer format, or one whose profile state is missing.
pub fn read(dir: &Path) -> Result<Manifest> {
    let file = dir.join(MANIFEST);
    let bytes = fs::read(&file).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => refuse(dir, format!("it has no {MANIFEST}")),
        _ => refuse(dir, e),
    })?;
    let manifest = parse(dir, &bytes)?;
    let state = Path::new("profiles").join(&manifest.profile);
    for needed in [state.join("profile.json"), state.join("pki/ca.crt")] {
        if !dir.join(&needed).is_file() {
            let needed = needed.display();
            return Err(refuse(dir, format!("{needed} is missing")));
        }
    }
    Ok(manifest)
}

/// A manifest from its bytes, refusing one of a newer format or without
/// nodes; `dir` names the snapshot in errors.
fn parse(dir: &Path, bytes: &[u8]) -> Result<Manifest> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| refuse(dir, format!("{MANIFEST}: {e}")))?;
    let format = json.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
    if format > FORMAT {
        let by = json.get("written_by").and_then(|w| w.as_str());
        return Err(refuse(
            dir,
            format!(
                "it is of snapshot format {format}, written by {}; this berth reads format {FORMAT}",
                by.unwrap_or("a newer berth")
            ),
        ));
    }
    let manifest: Manifest =
        serde_json::from_value(json).map_err(|e| refuse(dir, format!("{MANIFEST}: {e}")))?;
    if manifest.nodes.is_empty() {
        return Err(refuse(dir, "it holds no node"));
    }
    Ok(manifest)
}

/// Checks every archive against its size and SHA-256, so that a snapshot
/// cut short or changed is refused before anything is restored.
pub fn verify(dir: &Path, manifest: &Manifest) -> Result<()> {
    for archive in &manifest.nodes {
        let path = NodeArchive::path(dir, &archive.node);
        let (sha256, bytes) = digest(&path).map_err(|e| {
            refuse(
                dir,
                format!("the archive of node {} cannot be read: {e}", archive.node),
            )
        })?;
        if bytes != archive.bytes || sha256 != archive.sha256 {
            return Err(refuse(
                dir,
                format!(
                    "the archive of node {} is damaged ({bytes} bytes, {} expected, or its \
                     SHA-256 differs)",
                    archive.node, archive.bytes
                ),
            ));
        }
    }
    Ok(())
}

fn digest(path: &Path) -> io::Result<(String, u64)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// The home's snapshots, by name, with their manifests (or why one cannot
/// be read).
pub fn list(home: &Path) -> Vec<(String, std::result::Result<Manifest, String>)> {
    let mut found: Vec<_> = fs::read_dir(dir(home))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            // A save under way, or one cut off, is not a snapshot.
            (!name.starts_with('.')).then(|| (name, read(&e.path()).map_err(|e| e.message)))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            written_by: "berth 0.1.0".into(),
            created: 1,
            profile: "dev".into(),
            kubernetes_version: "v1.37.2".parse().unwrap(),
            running: true,
            nodes: vec![NodeArchive {
                node: "dev".into(),
                sha256: hex::encode(Sha256::digest(b"var")),
                bytes: 3,
            }],
        }
    }

    /// A snapshot directory as `save` leaves it.
    fn saved(dir: &Path) {
        fs::create_dir_all(dir.join("nodes")).unwrap();
        fs::create_dir_all(dir.join("profiles/dev/pki")).unwrap();
        fs::write(dir.join("profiles/dev/pki/ca.crt"), "ca").unwrap();
        fs::write(dir.join("profiles/dev/profile.json"), "{}").unwrap();
        fs::write(NodeArchive::path(dir, "dev"), "var").unwrap();
        fs::write(dir.join(MANIFEST), serde_json::to_vec(&manifest()).unwrap()).unwrap();
    }

    #[test]
    fn names_live_in_the_home_and_paths_where_they_say() {
        let home = Path::new("/h");
        assert_eq!(
            locate(home, "before-upgrade").unwrap(),
            Path::new("/h/snapshots/before-upgrade")
        );
        assert_eq!(locate(home, "./s").unwrap(), Path::new("./s"));
        assert_eq!(locate(home, "/tmp/s").unwrap(), Path::new("/tmp/s"));
        assert!(
            locate(home, "Bad Name")
                .unwrap_err()
                .hint
                .unwrap()
                .contains("./")
        );
    }

    #[test]
    fn a_whole_snapshot_is_read_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        saved(dir.path());
        let read_back = read(dir.path()).unwrap();
        assert_eq!(read_back, manifest());
        verify(dir.path(), &read_back).unwrap();
    }

    #[test]
    fn a_snapshot_packed_into_one_file_reads_and_unpacks_whole() {
        let place = tempfile::tempdir().unwrap();
        let dir = place.path().join("dir");
        saved(&dir);
        let file = place.path().join("dev.tar");
        assert!(is_file(&file) && !is_file(&dir));
        pack(&dir, &file).unwrap();
        assert_eq!(read_file(&file).unwrap(), manifest());
        assert_eq!(read_any(&file).unwrap(), manifest());
        let leftovers: Vec<_> = fs::read_dir(place.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        let into = place.path().join("unpacked");
        unpack(&file, &into).unwrap();
        let read_back = read(&into).unwrap();
        verify(&into, &read_back).unwrap();
        assert_eq!(
            fs::read_to_string(into.join("profiles/dev/pki/ca.crt")).unwrap(),
            "ca"
        );

        // A file that is no tar, or a tar of something else, is refused
        // and nothing is unpacked.
        let text = place.path().join("notes.tar");
        fs::write(&text, "hello").unwrap();
        let other = place.path().join("other.tar");
        let mut tar = tar::Builder::new(fs::File::create(&other).unwrap());
        tar.append_path_with_name(&text, "notes.txt").unwrap();
        tar.finish().unwrap();
        for bad in [&text, &other] {
            let into = place.path().join("never");
            let error = unpack(bad, &into).unwrap_err();
            assert_eq!(error.exit, crate::error::Exit::Usage, "{error}");
            assert!(!into.exists());
        }
    }

    #[test]
    fn foreign_damaged_and_newer_snapshots_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = read(dir.path()).unwrap_err();
        assert!(error.message.contains("no snapshot.json"), "{error}");

        saved(dir.path());
        fs::write(NodeArchive::path(dir.path(), "dev"), "vaR").unwrap();
        let error = verify(dir.path(), &manifest()).unwrap_err();
        assert!(error.message.contains("damaged"), "{error}");
        fs::write(NodeArchive::path(dir.path(), "dev"), "va").unwrap();
        assert!(verify(dir.path(), &manifest()).is_err());
        fs::remove_file(NodeArchive::path(dir.path(), "dev")).unwrap();
        let error = verify(dir.path(), &manifest()).unwrap_err();
        assert!(error.message.contains("cannot be read"), "{error}");

        let mut newer = serde_json::to_value(manifest()).unwrap();
        newer["format"] = (FORMAT + 1).into();
        fs::write(dir.path().join(MANIFEST), newer.to_string()).unwrap();
        let error = read(dir.path()).unwrap_err();
        assert!(error.message.contains("format 2"), "{error}");
        assert_eq!(error.exit, crate::error::Exit::Usage);

        fs::write(dir.path().join(MANIFEST), "{").unwrap();
        assert!(read(dir.path()).is_err());
        saved(dir.path());
        fs::remove_file(dir.path().join("profiles/dev/pki/ca.crt")).unwrap();
        let error = read(dir.path()).unwrap_err();
        assert!(error.message.contains("profiles/dev/pki/ca.crt"), "{error}");
    }
}
