//! Profiles: named clusters and their state on disk under `$BERTH_HOME`:
//! `profiles/<name>/profile.json` and `profiles/<name>/pki/`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::binaries::Version;
use crate::docker::Privilege;
use crate::pki::{create_private_dir, write_atomic};

pub const DEFAULT_PROFILE: &str = "berth";
pub const NAME_MAX: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{0}` is not a valid profile name: use lower-case letters, digits and `-`, \
         starting and ending with a letter or digit, at most {NAME_MAX} characters"
    )]
    BadName(String),
    #[error("the profile file {} cannot be read: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Profile names become container, network and file names, so they are
/// held to what is safe in all of them.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let bytes = name.as_bytes();
    let ok_char = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let ok_end = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if bytes.len() <= NAME_MAX
        && bytes.iter().all(ok_char)
        && ok_end(bytes.first())
        && ok_end(bytes.last())
    {
        Ok(())
    } else {
        Err(Error::BadName(name.to_string()))
    }
}

/// What a profile was created with; a restart reuses all of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    pub name: String,
    pub kubernetes_version: Version,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub node_image: String,
    pub privilege: Privilege,
    pub cgroup_v2: bool,
    /// The API server's port on 127.0.0.1, chosen at creation and kept.
    pub api_port: u16,
    /// The profile's Docker network, a /24.
    pub subnet: String,
    pub node_ip: String,
    pub cpus: Option<f64>,
    pub memory_mib: Option<u64>,
    pub kubeconfig: PathBuf,
    /// The kubeconfig's current context before `start` switched to this
    /// profile's, restored by `delete`.
    pub previous_context: Option<String>,
}

impl Profile {
    pub fn container(&self) -> String {
        container_name(&self.name)
    }

    pub fn context(&self) -> String {
        format!("berth-{}", self.name)
    }

    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }
}

pub fn container_name(profile: &str) -> String {
    format!("berth-{profile}")
}

pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(home: &Path) -> Self {
        Self {
            root: home.to_path_buf(),
        }
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join("profiles").join(name)
    }

    pub fn pki_dir(&self, name: &str) -> PathBuf {
        self.dir(name).join("pki")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir(name).join("profile.json")
    }

    pub fn exists(&self, name: &str) -> bool {
        self.dir(name).exists()
    }

    /// The profile, `None` when it has no state, an error when its file
    /// cannot be parsed (the file is then left exactly as it is).
    pub fn load(&self, name: &str) -> Result<Option<Profile>, Error> {
        let path = self.file(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Corrupt {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    pub fn save(&self, profile: &Profile) -> Result<(), Error> {
        let dir = self.dir(&profile.name);
        create_private_dir(&self.root).map_err(|e| io_error(&self.root, e))?;
        create_private_dir(&dir).map_err(|e| io_error(&dir, e))?;
        let json = serde_json::to_vec_pretty(profile).expect("profile serialises");
        let path = self.file(&profile.name);
        write_atomic(&path, &json, 0o600).map_err(|source| Error::Io { path, source })
    }

    pub fn remove(&self, name: &str) -> Result<(), Error> {
        match fs::remove_dir_all(self.dir(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
                path: self.dir(name),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Names of every profile with a state directory, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.root.join("profiles"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| validate_name(n).is_ok())
            .collect();
        names.sort();
        names
    }

    /// The profile set with `berth profile NAME`, else `berth`.
    pub fn default_name(&self) -> String {
        fs::read_to_string(self.root.join("default-profile"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|n| validate_name(n).is_ok())
            .unwrap_or_else(|| DEFAULT_PROFILE.to_string())
    }

    pub fn set_default(&self, name: &str) -> Result<(), Error> {
        create_private_dir(&self.root).map_err(|e| io_error(&self.root, e))?;
        let path = self.root.join("default-profile");
        write_atomic(&path, name.as_bytes(), 0o600).map_err(|source| Error::Io { path, source })
    }
}

fn io_error(path: &Path, e: crate::pki::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: io::Error::other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_of_at_most_32_characters() {
        for good in ["dev", "a", "e2e-a", "0", "a-b-c", &"x".repeat(32)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Dev",
            "a_b",
            "a.b",
            "../x",
            "a b",
            "--help",
            &"x".repeat(33),
            "é",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_corrupt_profile_file_is_reported_and_left_alone() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::new(home.path());
        fs::create_dir_all(store.dir("x")).unwrap();
        fs::write(store.file("x"), "{\"name\": \"x\", \"kube").unwrap();
        assert!(matches!(store.load("x"), Err(Error::Corrupt { .. })));
        assert_eq!(
            fs::read_to_string(store.file("x")).unwrap(),
            "{\"name\": \"x\", \"kube"
        );
    }
}
