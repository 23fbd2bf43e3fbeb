//! Official Kubernetes release binaries and the runtime paired with them,
//! fetched into the cache only after each file's published SHA-256 matches
//! what arrived.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use super::{Cache, Error, Manifest, Runtime, Version, check, host_arch, runtime, write_hashed};

/// Where Kubernetes publishes release binaries; `--binary-mirror` replaces
/// it with a server of the same layout:
/// `<base>/<version>/bin/linux/<arch>/<name>` and `<name>.sha256` beside it.
pub const OFFICIAL_RELEASES: &str = "https://dl.k8s.io/release";

impl Cache {
    /// Downloads every component of `version` from `base`, and the etcd,
    /// containerd and runc upstream pairs with its minor from where those
    /// projects publish (or the same mirror), all in parallel; verifies each
    /// against its published checksum and the version it reports, and
    /// caches them; the cache is untouched on any failure. `progress` hears
    /// of each file as it arrives.
    pub fn download(
        &self,
        version: &Version,
        base: &str,
        runtime: &Runtime,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Manifest, Error> {
        let base = mirror_base(base)?;
        let staging = self.staging(version, "download")?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .build()
            .into();
        let artifacts = runtime::Sources::new(&base).artifacts(runtime);
        let fetched: Vec<Result<Vec<(String, String)>, Error>> = std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for name in super::COMPONENTS {
                let url = file_url(&base, version, name);
                let target = staging.path.join(name);
                let agent = &agent;
                handles.push(scope.spawn(move || {
                    let published = fetch_text(agent, &format!("{url}.sha256"))?;
                    let expected = parse_checksum(&published)
                        .ok_or_else(|| no_checksum(&format!("{url}.sha256")))?;
                    let sha = fetch_verified(agent, &url, &expected, &target)?;
                    progress(&format!("{name} verified"));
                    Ok(vec![(name.to_string(), sha)])
                }));
            }
            for artifact in &artifacts {
                let dir = &staging.path;
                let agent = &agent;
                handles.push(scope.spawn(move || {
                    let sums = fetch_text(agent, &artifact.sums_url)?;
                    let expected = runtime::listed_checksum(&sums, &artifact.file)
                        .ok_or_else(|| no_checksum(&artifact.sums_url))?;
                    let archive = dir.join(format!(".{}", artifact.file));
                    let sha = fetch_verified(agent, &artifact.url, &expected, &archive)?;
                    let unpacked = artifact.unpack(&archive, &sha, dir);
                    let _ = std::fs::remove_file(&archive);
                    progress(&format!(
                        "{} {} verified",
                        artifact.names()[0],
                        artifact.version
                    ));
                    unpacked
                }));
            }
            handles
                .into_iter()
                .map(|h| h.join().expect("download threads do not panic"))
                .collect()
        });
        let mut sums = Vec::new();
        for result in fetched {
            sums.extend(result?);
        }
        // What arrived is not what was published for this version: the
        // download failed, whatever checked it.
        let unverified = |e: Error| match e {
            Error::Write { .. } | Error::Read { .. } => e,
            other => failed(&base, other.to_string()),
        };
        let mut files = check(version, &staging.path).map_err(unverified)?;
        files.extend(runtime::check(runtime, &staging.path).map_err(unverified)?);
        files.extend(runtime::check_cni(runtime, &staging.path).map_err(unverified)?);
        for (name, sha) in sums {
            if let Some(entry) = files.get_mut(&name) {
                entry.sha256 = sha;
            }
        }
        let source = super::Source::Downloaded { from: base };
        self.commit(
            version,
            &staging.path,
            files,
            Some(runtime.clone()),
            source,
            Vec::new(),
        )
    }
}

/// The mirror as given, without a trailing slash; only http(s) URLs.
fn mirror_base(base: &str) -> Result<String, Error> {
    let trimmed = base.trim_end_matches('/');
    let scheme_ok = trimmed.starts_with("https://") || trimmed.starts_with("http://");
    if !scheme_ok || trimmed.len() <= "https://".len() || trimmed.contains(char::is_whitespace) {
        return Err(Error::BadMirror(base.to_string()));
    }
    Ok(trimmed.to_string())
}

fn file_url(base: &str, version: &Version, name: &str) -> String {
    format!("{base}/{version}/bin/linux/{}/{name}", host_arch())
}

fn failed(url: &str, reason: String) -> Error {
    Error::Download {
        url: url.to_string(),
        reason,
    }
}

fn no_checksum(url: &str) -> Error {
    failed(url, "it does not hold a SHA-256 checksum".to_string())
}

fn fetch_text(agent: &ureq::Agent, url: &str) -> Result<String, Error> {
    agent
        .get(url)
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .map_err(|e| failed(url, e.to_string()))
}

/// Fetches `url` into `target`; returns its checksum once it is `expected`.
fn fetch_verified(
    agent: &ureq::Agent,
    url: &str,
    expected: &str,
    target: &Path,
) -> Result<String, Error> {
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| failed(url, e.to_string()))?;
    let mut body = response.body_mut().with_config().reader();
    let actual = write_hashed(&mut body, target).map_err(|e| failed(url, e.to_string()))?;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o755))
        .map_err(super::write(target))?;
    if actual != expected {
        return Err(Error::Checksum {
            url: url.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(actual)
}

/// A `.sha256` file holds the hex digest, optionally followed by a name.
fn parse_checksum(text: &str) -> Option<String> {
    let digest = text.split_whitespace().next()?.to_ascii_lowercase();
    (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())).then_some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_official_layout() {
        let v: Version = "1.30.2".parse().unwrap();
        let base = mirror_base("https://dl.k8s.io/release/").unwrap();
        assert_eq!(
            file_url(&base, &v, "kubelet"),
            format!(
                "https://dl.k8s.io/release/v1.30.2/bin/linux/{}/kubelet",
                host_arch()
            )
        );
        for bad in ["", "dl.k8s.io", "ftp://x", "https://", "http://a b"] {
            assert!(mirror_base(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn checksum_files_parse_with_or_without_a_name() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_checksum(&hex).as_deref(), Some(hex.as_str()));
        assert_eq!(
            parse_checksum(&format!("{}  kubelet\n", hex.to_uppercase())).as_deref(),
            Some(hex.as_str())
        );
        assert_eq!(parse_checksum("not a sum"), None);
        assert_eq!(parse_checksum(""), None);
    }
}
