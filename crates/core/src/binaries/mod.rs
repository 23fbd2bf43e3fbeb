//! The host cache of Kubernetes binaries, one directory per version shared
//! by every profile: `<cache dir>/kubernetes/<version>/linux-<arch>/`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod build;
mod defects;
mod download;
mod oci;
mod runtime;
mod volume;

pub use berth_node::Version;
pub use defects::Defect;
pub use download::OFFICIAL_RELEASES;
pub use runtime::{CNI_DIR, COREDNS_ARCHIVE, Runtime, release_version};
pub use volume::{Filler, ensure_volume, volume_name};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a node needs, and kubectl for `berth kubectl`.
pub const COMPONENTS: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
];

const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    BadVersion(#[from] berth_node::BadVersion),
    #[error(transparent)]
    Unsupported(#[from] berth_node::Unsupported),
    #[error("`{0}` is not a release version (expected the form 3.6.9)")]
    BadReleaseVersion(String),
    #[error("{} has no {name}", dir.display())]
    Missing { dir: PathBuf, name: &'static str },
    #[error("{} is not executable", path.display())]
    NotExecutable { path: PathBuf },
    #[error("{} reports version {reported}, not {expected}", path.display())]
    WrongVersion {
        path: PathBuf,
        reported: String,
        expected: String,
    },
    #[error("cannot run {} to ask its version: {reason}", path.display())]
    Unrunnable { path: PathBuf, reason: String },
    #[error("cannot write the cache at {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("`{0}` is not a mirror URL (expected http:// or https:// and the official layout)")]
    BadMirror(String),
    #[error("cannot download {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("{url} arrived with SHA-256 {actual}, but its published checksum is {expected}")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("cannot read the cache at {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("no usable Go: {0}")]
    NoGo(String),
    #[error("this go is {have}, but {module} asks for Go {needs} or newer")]
    GoTooOld {
        have: String,
        needs: String,
        module: String,
    },
    #[error("the Go module proxy has no {module} {version}: {answer}")]
    NotServed {
        module: String,
        version: String,
        answer: String,
    },
    #[error("cannot build {what}:\n{output}")]
    Build { what: String, output: String },
    #[error(
        "the Kubernetes {version} binaries from {from} are {}",
        describe(defects)
    )]
    Defective {
        version: Version,
        from: String,
        defects: Vec<Defect>,
    },
}

pub fn describe(defects: &[Defect]) -> String {
    defects
        .iter()
        .map(|d| d.describe())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The architecture as Kubernetes releases name it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub version: Version,
    pub arch: String,
    pub files: BTreeMap<String, FileEntry>,
    /// Known defects of these binaries; `None` in manifests written before
    /// berth looked for any, which are then looked into once.
    #[serde(default)]
    pub defects: Option<Vec<Defect>>,
    /// The etcd, containerd and runc among `files`; `None` when the version
    /// runs with the node image's own (an imported build).
    #[serde(default)]
    pub runtime: Option<Runtime>,
    /// Where the binaries came from; `None` in manifests written before
    /// berth said.
    #[serde(default)]
    pub source: Option<Source>,
    /// The images whose archives are among `files` (under `images/`),
    /// which every node imports at boot instead of pulling them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

/// How a cached version came to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Source {
    /// Official release files, from this base URL.
    Downloaded { from: String },
    /// Binaries made elsewhere, from this directory.
    Imported { from: String },
    /// Built here from the Go module proxy, with this Go.
    Built { go: String },
}

impl Source {
    /// How `cache list` says it.
    pub fn describe(&self) -> String {
        match self {
            Source::Downloaded { .. } => "downloaded".into(),
            Source::Imported { .. } => "imported".into(),
            Source::Built { go } => format!("built from source ({go})"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub size: u64,
    /// What the binary itself says it is.
    pub reports: String,
}

impl Manifest {
    pub fn size(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }

    pub fn defects(&self) -> &[Defect] {
        self.defects.as_deref().unwrap_or_default()
    }
}

pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            root: cache_dir.join("kubernetes"),
        }
    }

    /// Where images berth built from source are kept, for every version.
    pub fn images_dir(&self) -> PathBuf {
        self.root
            .with_file_name("images")
            .join(format!("linux-{}", host_arch()))
    }

    pub fn dir(&self, version: &Version) -> PathBuf {
        self.root
            .join(version.to_string())
            .join(format!("linux-{}", host_arch()))
    }

    /// Where the RBAC policy a version's API server made in the first new
    /// cluster is kept (see berth-cluster's `rbac_seed`); it is the same
    /// for every architecture.
    pub fn rbac_seed(&self, version: &Version) -> PathBuf {
        self.root
            .join(version.to_string())
            .join("bootstrap-rbac.json")
    }

    /// The manifest of a cached version, or `None` when it is not cached.
    /// A version cached before berth looked for defects is looked into now,
    /// once: what is found is written into its manifest.
    pub fn get(&self, version: &Version) -> Result<Option<Manifest>, Error> {
        let dir = self.dir(version);
        let Some(mut manifest) = read_manifest(&dir.join(MANIFEST))? else {
            return Ok(None);
        };
        if manifest.defects.is_none() {
            let paths: Vec<PathBuf> = manifest.files.keys().map(|n| dir.join(n)).collect();
            let found =
                defects::of_files(paths.iter().map(PathBuf::as_path)).map_err(|source| {
                    Error::Read {
                        path: dir.clone(),
                        source,
                    }
                })?;
            manifest.defects = Some(found);
            // Only a cache the user may not write is left unmarked, and
            // looked into again next time.
            let _ = write_manifest(&dir, &manifest);
        }
        Ok(Some(manifest))
    }

    /// Checks every binary in `source` and copies them in; the cache is
    /// untouched unless all of them pass.
    pub fn import(&self, version: &Version, source: &Path) -> Result<Manifest, Error> {
        let mut files = check(version, source)?;
        let staging = self.staging(version, "import")?;
        let copied = files.iter_mut().try_for_each(|(name, entry)| {
            let target = staging.path.join(name);
            entry.sha256 = copy_hashed(&source.join(name), &target).map_err(write(&target))?;
            Ok(())
        });
        copied.and_then(|()| {
            self.commit(
                version,
                &staging.path,
                files,
                None,
                Source::Imported {
                    from: source.display().to_string(),
                },
                Vec::new(),
            )
        })
    }

    /// A private directory beside the version's, removed when dropped, so
    /// that a version appears in the cache whole or not at all.
    fn staging(&self, version: &Version, purpose: &str) -> Result<Staging, Error> {
        let parent = self.root.join(version.to_string());
        fs::create_dir_all(&parent).map_err(write(&parent))?;
        Staging::new(parent.join(format!(".{purpose}-{}", std::process::id())))
    }

    /// Makes the checked binaries in `staging` the cached version, replacing
    /// one cached before in one rename. Binaries with a known defect are
    /// refused: they would give clusters that crash.
    fn commit(
        &self,
        version: &Version,
        staging: &Path,
        files: BTreeMap<String, FileEntry>,
        runtime: Option<Runtime>,
        source: Source,
        images: Vec<String>,
    ) -> Result<Manifest, Error> {
        for name in files.keys() {
            let path = staging.join(name);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(write(&path))?;
        }
        let paths: Vec<PathBuf> = files.keys().map(|n| staging.join(n)).collect();
        let found =
            defects::of_files(paths.iter().map(PathBuf::as_path)).map_err(write(staging))?;
        if !found.is_empty() {
            let from = match &source {
                Source::Downloaded { from } | Source::Imported { from } => from.clone(),
                Source::Built { go } => format!("a build with {go}"),
            };
            return Err(Error::Defective {
                version: version.clone(),
                from,
                defects: found,
            });
        }
        let manifest = Manifest {
            version: version.clone(),
            arch: host_arch().into(),
            files,
            defects: Some(found),
            runtime,
            source: Some(source),
            images,
        };
        write_manifest(staging, &manifest).map_err(write(staging))?;
        let dest = self.dir(version);
        let old = staging.with_extension("old");
        if dest.exists() {
            fs::rename(&dest, &old).map_err(write(&dest))?;
        }
        fs::rename(staging, &dest).map_err(write(&dest))?;
        let _ = fs::remove_dir_all(&old);
        Ok(manifest)
    }

    /// Every cached version, oldest first.
    pub fn list(&self) -> Result<Vec<Manifest>, Error> {
        let versions = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Read {
                    path: self.root.clone(),
                    source,
                });
            }
        };
        let mut found = Vec::new();
        for entry in versions.flatten() {
            let Some(version) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Version>().ok())
            else {
                continue;
            };
            if let Some(manifest) = self.get(&version)? {
                found.push(manifest);
            }
        }
        found.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(found)
    }
}

fn write(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

struct Staging {
    path: PathBuf,
}

impl Staging {
    /// An empty directory at `path`, which goes when dropped.
    fn new(path: PathBuf) -> Result<Staging, Error> {
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).map_err(write(&path))?;
        Ok(Staging { path })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
        // The version's directory too, when a failure left it empty.
        if let Some(parent) = self.path.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// Every component is in `dir`, executable, and says it is `version`. The
/// entries it returns have no checksum yet.
fn check(version: &Version, dir: &Path) -> Result<BTreeMap<String, FileEntry>, Error> {
    let expected = version.to_string();
    COMPONENTS
        .iter()
        .map(|name| {
            Ok((
                name.to_string(),
                checked(dir, name, &expected, reported_version)?,
            ))
        })
        .collect()
}

/// The entry of `dir/name`, an executable that `ask` finds to report
/// `expected`; it has no checksum yet.
fn checked(
    dir: &Path,
    name: &'static str,
    expected: &str,
    ask: impl Fn(&Path) -> Result<String, Error>,
) -> Result<FileEntry, Error> {
    let meta = executable(dir, name)?;
    let path = dir.join(name);
    let reports = ask(&path)?;
    if reports != expected {
        return Err(Error::WrongVersion {
            path,
            reported: reports,
            expected: expected.to_string(),
        });
    }
    Ok(FileEntry {
        sha256: String::new(),
        size: meta.len(),
        reports,
    })
}

/// The entry of a file that is no program (an image archive): what it
/// holds is `reports`; it has no checksum yet.
fn checked_file(dir: &Path, name: &'static str, reports: &str) -> Result<FileEntry, Error> {
    let meta = fs::metadata(dir.join(name)).map_err(|_| Error::Missing {
        dir: dir.into(),
        name,
    })?;
    Ok(FileEntry {
        sha256: String::new(),
        size: meta.len(),
        reports: reports.to_string(),
    })
}

fn sha256_of(path: &Path) -> io::Result<String> {
    let mut hash = Sha256::new();
    io::copy(&mut fs::File::open(path)?, &mut hash)?;
    Ok(hex::encode(hash.finalize()))
}

/// `dir/name` is an executable file.
fn executable(dir: &Path, name: &'static str) -> Result<fs::Metadata, Error> {
    let path = dir.join(name);
    let meta = fs::metadata(&path).map_err(|_| Error::Missing {
        dir: dir.into(),
        name,
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::NotExecutable { path });
    }
    Ok(meta)
}

/// What `path flag` prints on stdout.
fn run_for_version(path: &Path, flag: &str) -> Result<String, Error> {
    let output = Command::new(path)
        .arg(flag)
        .output()
        .map_err(|e| Error::Unrunnable {
            path: path.into(),
            reason: e.to_string(),
        })?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    let path = dir.join(MANIFEST);
    let temp = dir.join(format!(".{MANIFEST}.{}", std::process::id()));
    fs::write(&temp, json)?;
    fs::rename(&temp, path)
}

fn read_manifest(path: &Path) -> Result<Option<Manifest>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.into(),
            source,
        }),
    }
}

fn copy_hashed(from: &Path, to: &Path) -> io::Result<String> {
    write_hashed(&mut fs::File::open(from)?, to)
}

/// Writes `input` to a new file and returns the SHA-256 of what was written.
fn write_hashed(input: &mut impl io::Read, to: &Path) -> io::Result<String> {
    let mut output = fs::File::create(to)?;
    let mut hasher = HashingWriter {
        inner: &mut output,
        hash: Sha256::new(),
    };
    io::copy(input, &mut hasher)?;
    let digest = hex::encode(hasher.hash.finalize());
    output.sync_all()?;
    Ok(digest)
}

struct HashingWriter<'a, W> {
    inner: &'a mut W,
    hash: Sha256,
}

impl<W: io::Write> io::Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a Kubernetes binary says its version is. kubectl's `--version` flag
/// does not exist, so it is asked with `version --client -o json`.
fn reported_version(path: &Path) -> Result<String, Error> {
    let kubectl = path.file_name().is_some_and(|n| n == "kubectl");
    let mut command = Command::new(path);
    if kubectl {
        command.args(["version", "--client", "-o", "json"]);
    } else {
        command.arg("--version");
    }
    let unrunnable = |reason: String| Error::Unrunnable {
        path: path.into(),
        reason,
    };
    let output = command.output().map_err(|e| unrunnable(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reported = if kubectl {
        serde_json::from_str::<serde_json::Value>(&stdout)
            .ok()
            .and_then(|v| {
                v["clientVersion"]["gitVersion"]
                    .as_str()
                    .map(str::to_string)
            })
    } else {
        stdout
            .split_whitespace()
            .find(|w| w.starts_with('v'))
            .map(str::to_string)
    };
    reported.ok_or_else(|| unrunnable(format!("it printed `{}`", stdout.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_or_without_v() {
        assert_eq!("1.20.2".parse::<Version>().unwrap().to_string(), "v1.20.2");
        assert_eq!("v1.34.1".parse::<Version>().unwrap().minor, 34);
        for bad in [
            "",
            "1.20",
            "v1.20.2.1",
            "1.x.2",
            "v1.20.-1",
            "../1.2.3",
            "1.2.3 --x",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn versions_order_numerically() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("1.9.0") < v("1.20.0"));
        assert!(v("1.20.10") > v("1.20.2"));
    }
}
