//! Where the runtime a minor pairs with (`berth_node::runtime`) comes from:
//! a downloaded or built version brings it into its cache directory; a
//! version imported from a directory runs with the node image's own.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub use berth_node::minors::{CNI_DIR, Runtime};

use super::{Error, FileEntry, host_arch, write, write_hashed};

/// A release version as users type it (`3.6.9` or `v3.6.9`), without the
/// `v`; nothing else, since it becomes part of URLs and paths.
pub fn release_version(text: &str) -> Result<String, Error> {
    let digits = text.strip_prefix('v').unwrap_or(text);
    reported(digits)
        .filter(|r| r == digits)
        .ok_or_else(|| Error::BadReleaseVersion(text.to_string()))
}

/// The files a runtime adds to a version's cache directory and volume.
pub const FILES: [&str; 4] = ["etcd", "containerd", "containerd-shim-runc-v2", "runc"];

/// The CNI plugins a node uses (berth_node's CNI template), by their
/// directory in the plugins' module and their file in the cache.
pub const CNI_PLUGINS: [(&str, &str); 4] = [
    ("main/bridge", "cni/bridge"),
    ("main/loopback", "cni/loopback"),
    ("ipam/host-local", "cni/host-local"),
    ("meta/portmap", "cni/portmap"),
];
/// CoreDNS's image, built from source, in the cache directory and volume;
/// every node imports what `images/` holds at boot.
pub const COREDNS_ARCHIVE: &str = "images/coredns.tar";

/// Where each project publishes releases. With a mirror (anything but the
/// official Kubernetes URL) everything comes from it, each project under
/// its own name: `<mirror>/etcd/v3.6.9/etcd-v3.6.9-linux-amd64.tar.gz`.
pub struct Sources {
    etcd: String,
    containerd: String,
    runc: String,
    cni: String,
}

impl Sources {
    pub fn new(kubernetes_base: &str) -> Self {
        if kubernetes_base == super::OFFICIAL_RELEASES {
            let github = |repo: &str| format!("https://github.com/{repo}/releases/download");
            Sources {
                etcd: github("etcd-io/etcd"),
                containerd: github("containerd/containerd"),
                runc: github("opencontainers/runc"),
                cni: github("containernetworking/plugins"),
            }
        } else {
            Sources {
                etcd: format!("{kubernetes_base}/etcd"),
                containerd: format!("{kubernetes_base}/containerd"),
                runc: format!("{kubernetes_base}/runc"),
                cni: format!("{kubernetes_base}/cni-plugins"),
            }
        }
    }

    /// The downloads of `runtime`: etcd, containerd, runc and, where it
    /// pins them, the CNI plugins.
    pub fn artifacts(&self, runtime: &Runtime) -> Vec<Artifact> {
        let arch = host_arch();
        let etcd_dir = format!("{}/v{}", self.etcd, runtime.etcd);
        let etcd_file = format!("etcd-v{}-linux-{arch}.tar.gz", runtime.etcd);
        let etcd_root = format!("etcd-v{}-linux-{arch}", runtime.etcd);
        let containerd_dir = format!("{}/v{}", self.containerd, runtime.containerd);
        // The static build: no dependence on the node image's C library.
        let containerd_file = format!(
            "containerd-static-{}-linux-{arch}.tar.gz",
            runtime.containerd
        );
        let runc_dir = format!("{}/v{}", self.runc, runtime.runc);
        let runc_file = format!("runc.{arch}");
        let mut all = vec![
            Artifact {
                url: format!("{etcd_dir}/{etcd_file}"),
                sums_url: format!("{etcd_dir}/SHA256SUMS"),
                file: etcd_file,
                members: vec![(format!("{etcd_root}/etcd"), "etcd")],
                version: runtime.etcd.clone(),
            },
            Artifact {
                url: format!("{containerd_dir}/{containerd_file}"),
                sums_url: format!("{containerd_dir}/{containerd_file}.sha256sum"),
                file: containerd_file,
                members: vec![
                    ("bin/containerd".into(), "containerd"),
                    (
                        "bin/containerd-shim-runc-v2".into(),
                        "containerd-shim-runc-v2",
                    ),
                ],
                version: runtime.containerd.clone(),
            },
            Artifact {
                url: format!("{runc_dir}/{runc_file}"),
                sums_url: format!("{runc_dir}/runc.sha256sum"),
                file: runc_file,
                members: Vec::new(),
                version: runtime.runc.clone(),
            },
        ];
        if let Some(cni) = &runtime.cni {
            let dir = format!("{}/v{cni}", self.cni);
            let file = format!("cni-plugins-linux-{arch}-v{cni}.tgz");
            all.push(Artifact {
                url: format!("{dir}/{file}"),
                sums_url: format!("{dir}/{file}.sha256"),
                file,
                members: CNI_PLUGINS
                    .iter()
                    .map(|(_, cached)| (cached.trim_start_matches("cni/").to_string(), *cached))
                    .collect(),
                version: cni.clone(),
            });
        }
        all
    }
}

/// One published file: a tar.gz whose `members` become cache files, or,
/// without members, the binary itself (cached as `runc`).
pub struct Artifact {
    pub url: String,
    /// A checksum file in `sha256sum` format that lists `file`.
    pub sums_url: String,
    pub file: String,
    pub members: Vec<(String, &'static str)>,
    pub version: String,
}

impl Artifact {
    /// The names this artifact adds to the cache.
    pub fn names(&self) -> Vec<&'static str> {
        if self.members.is_empty() {
            vec!["runc"]
        } else {
            self.members.iter().map(|(_, name)| *name).collect()
        }
    }

    /// Unpacks the verified download at `archive` (whose SHA-256 is
    /// `archive_sha`) into `dir`; returns the SHA-256 of each file there.
    pub fn unpack(
        &self,
        archive: &Path,
        archive_sha: &str,
        dir: &Path,
    ) -> Result<Vec<(String, String)>, Error> {
        if self.members.is_empty() {
            let target = dir.join("runc");
            fs::rename(archive, &target).map_err(write(&target))?;
            return Ok(vec![("runc".into(), archive_sha.to_string())]);
        }
        let broken = |reason: String| Error::Download {
            url: self.url.clone(),
            reason,
        };
        let file = fs::File::open(archive).map_err(|e| broken(e.to_string()))?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut found = Vec::new();
        for entry in tar.entries().map_err(|e| broken(e.to_string()))? {
            let mut entry = entry.map_err(|e| broken(e.to_string()))?;
            let path = entry.path().map_err(|e| broken(e.to_string()))?;
            let path = path.to_string_lossy().trim_start_matches("./").to_string();
            let Some((_, name)) = self.members.iter().find(|(member, _)| *member == path) else {
                continue;
            };
            let target = dir.join(name);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(write(parent))?;
            }
            let sha = write_hashed(&mut entry, &target).map_err(write(&target))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                .map_err(write(&target))?;
            found.push((name.to_string(), sha));
        }
        for name in self.names() {
            if !found.iter().any(|(n, _)| n == name) {
                return Err(broken(format!("the archive holds no {name}")));
            }
        }
        Ok(found)
    }
}

/// The digest listed for `file` in a `sha256sum`-style text.
pub fn listed_checksum(sums: &str, file: &str) -> Option<String> {
    sums.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let digest = fields.next()?.to_ascii_lowercase();
        let name = fields.next()?.trim_start_matches('*');
        let name = name.rsplit('/').next().unwrap_or(name);
        (name == file && digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(digest)
    })
}

/// Each runtime file in `dir` is executable and reports the version it
/// should; entries carry no checksum yet.
pub fn check(runtime: &Runtime, dir: &Path) -> Result<BTreeMap<String, FileEntry>, Error> {
    FILES
        .iter()
        .map(|name| {
            let expected = match *name {
                "etcd" => &runtime.etcd,
                "runc" => &runtime.runc,
                _ => &runtime.containerd,
            };
            // The shim has no --version, only -v.
            let flag = if *name == "containerd-shim-runc-v2" {
                "-v"
            } else {
                "--version"
            };
            let ask = |path: &Path| {
                let output = super::run_for_version(path, flag)?;
                // What it printed, when it names no version.
                Ok(reported(&output)
                    .unwrap_or_else(|| output.lines().next().unwrap_or_default().to_string()))
            };
            Ok((name.to_string(), super::checked(dir, name, expected, ask)?))
        })
        .collect()
}

/// Each CNI plugin of `runtime` in `dir/cni` is executable and reports the
/// version it should (`CNI bridge plugin v1.9.1`); none when the runtime
/// uses the node image's plugins.
pub fn check_cni(runtime: &Runtime, dir: &Path) -> Result<BTreeMap<String, FileEntry>, Error> {
    let Some(version) = &runtime.cni else {
        return Ok(BTreeMap::new());
    };
    CNI_PLUGINS
        .iter()
        .map(|(_, name)| {
            let ask = |path: &Path| {
                // A plugin answers --version on stderr, and only with the
                // CNI_COMMAND=VERSION of its protocol on stdout.
                let output = std::process::Command::new(path)
                    .arg("--version")
                    .output()
                    .map_err(|e| Error::Unrunnable {
                        path: path.into(),
                        reason: e.to_string(),
                    })?;
                let text = String::from_utf8_lossy(&output.stderr).into_owned()
                    + &String::from_utf8_lossy(&output.stdout);
                Ok(reported(&text)
                    .unwrap_or_else(|| text.lines().next().unwrap_or_default().to_string()))
            };
            Ok((name.to_string(), super::checked(dir, name, version, ask)?))
        })
        .collect()
}

/// The first `X.Y.Z` (optionally `vX.Y.Z`) in a version text: `etcd
/// Version: 3.6.9`, `containerd github.com/containerd/containerd/v2 v2.1.5
/// <commit>`, `runc version 1.3.3`, `Version:  v2.1.5`. A distribution's
/// suffix (`1.7.24~ds1`, `2.1.9+unknown`) is not part of the version.
fn reported(text: &str) -> Option<String> {
    text.split_whitespace().find_map(|word| {
        let word = word.strip_prefix('v').unwrap_or(word);
        let end = word
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(word.len());
        let (digits, suffix) = word.split_at(end);
        let parts: Vec<&str> = digits.split('.').collect();
        let numeric = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        (numeric && (suffix.is_empty() || suffix.starts_with(['~', '+', '-'])))
            .then(|| digits.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minor(minor: u32) -> Runtime {
        let version = format!("v1.{minor}.0").parse().unwrap();
        berth_node::supported(&version).unwrap().runtime()
    }

    #[test]
    fn urls_follow_each_project_and_a_mirror_holds_all() {
        let runtime = Runtime {
            etcd: "3.6.9".into(),
            ..minor(34)
        };
        let arch = host_arch();
        let official = Sources::new(super::super::OFFICIAL_RELEASES).artifacts(&runtime);
        assert_eq!(
            official[0].url,
            format!(
                "https://github.com/etcd-io/etcd/releases/download/v3.6.9/etcd-v3.6.9-linux-{arch}.tar.gz"
            )
        );
        assert_eq!(
            official[0].sums_url,
            "https://github.com/etcd-io/etcd/releases/download/v3.6.9/SHA256SUMS"
        );
        assert_eq!(
            official[1].url,
            format!(
                "https://github.com/containerd/containerd/releases/download/v2.1.5/containerd-static-2.1.5-linux-{arch}.tar.gz"
            )
        );
        assert_eq!(
            official[1].sums_url,
            format!("{}.sha256sum", official[1].url)
        );
        assert_eq!(
            official[2].url,
            format!("https://github.com/opencontainers/runc/releases/download/v1.3.3/runc.{arch}")
        );
        let mirrored = Sources::new("http://127.0.0.1:8080/release").artifacts(&runtime);
        assert_eq!(
            mirrored[0].url,
            format!("http://127.0.0.1:8080/release/etcd/v3.6.9/etcd-v3.6.9-linux-{arch}.tar.gz")
        );
        assert_eq!(
            mirrored[2].sums_url,
            "http://127.0.0.1:8080/release/runc/v1.3.3/runc.sha256sum"
        );
        // The CNI plugins where the row pins them, as their project
        // publishes them; their files keep their names, under cni/.
        assert_eq!(
            official[3].url,
            format!(
                "https://github.com/containernetworking/plugins/releases/download/v1.7.1/cni-plugins-linux-{arch}-v1.7.1.tgz"
            )
        );
        assert_eq!(official[3].sums_url, format!("{}.sha256", official[3].url));
        assert!(
            official[3]
                .members
                .contains(&("bridge".to_string(), "cni/bridge"))
        );
        assert_eq!(
            mirrored[3].url,
            format!(
                "http://127.0.0.1:8080/release/cni-plugins/v1.7.1/cni-plugins-linux-{arch}-v1.7.1.tgz"
            )
        );
        assert_eq!(Sources::new("http://m").artifacts(&minor(33)).len(), 3);
    }

    #[test]
    fn checksums_are_found_by_file_name() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let sums =
            format!("{a}  etcd-v3.6.9-linux-arm64.tar.gz\n{b} *etcd-v3.6.9-linux-amd64.tar.gz\n");
        assert_eq!(
            listed_checksum(&sums, "etcd-v3.6.9-linux-amd64.tar.gz"),
            Some("b".repeat(64))
        );
        assert_eq!(
            listed_checksum(&sums, "etcd-v3.6.9-linux-s390x.tar.gz"),
            None
        );
        assert_eq!(listed_checksum("short  runc.amd64", "runc.amd64"), None);
    }

    #[test]
    fn versions_are_read_from_each_tools_own_words() {
        for (text, want) in [
            ("etcd Version: 3.6.9\nGit SHA: abc\n", Some("3.6.9")),
            (
                "containerd github.com/containerd/containerd/v2 v2.1.5 fcd4322\n",
                Some("2.1.5"),
            ),
            ("runc version 1.3.3\ncommit: v1.3.3-0\n", Some("1.3.3")),
            (
                "containerd-shim-runc-v2:\n  Version:  v2.1.5\n",
                Some("2.1.5"),
            ),
            // Debian's builds carry their packaging suffix.
            (
                "containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6\n",
                Some("1.7.24"),
            ),
            ("runc version 1.1.5+ds1\n", Some("1.1.5")),
            ("no version here, not even 1.2", None),
        ] {
            assert_eq!(reported(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn chosen_versions_are_plain_release_numbers() {
        assert_eq!(release_version("v3.6.9").unwrap(), "3.6.9");
        assert_eq!(release_version("1.7.24").unwrap(), "1.7.24");
        for bad in ["3.6", "3.6.9/../x", "latest", "3.6.9 1.2.3", ""] {
            assert!(release_version(bad).is_err(), "{bad}");
        }
    }
}
