//! Which engine berth talks to, found as the docker CLI finds it, podman's
//! socket last: `--engine` (an address or a Docker context's name), else
//! `BERTH_ENGINE`, else `DOCKER_HOST` (with `DOCKER_TLS_VERIFY` and
//! `DOCKER_CERT_PATH`), else the current Docker context (`DOCKER_CONTEXT`,
//! else the CLI config's `currentContext`), else Docker's local socket, else
//! podman's (`CONTAINER_HOST`, the rootful socket, the user's own).

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Error, Result};

/// Docker's local socket.
pub const LOCAL_SOCKET: &str = "/var/run/docker.sock";
const PODMAN_ROOTFUL: &str = "/run/podman/podman.sock";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// `unix:///path`, `tcp://host:port` or `ssh://user@host`.
    pub host: String,
    pub found: Found,
    /// Client certificate and CA of a TLS engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// How the engine was found, as `version` and `status` say it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by", content = "name")]
pub enum Found {
    Flag,
    BerthEngine,
    DockerHost,
    /// A Docker context, by name.
    Context(String),
    LocalSocket,
    Podman,
    /// The engine a profile was made on, which its commands use.
    Profile,
    /// Nothing answered where an engine is looked for: the local socket,
    /// which the error on connecting then names.
    Nothing,
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Found::Flag => write!(f, "--engine"),
            Found::BerthEngine => write!(f, "BERTH_ENGINE"),
            Found::DockerHost => write!(f, "DOCKER_HOST"),
            Found::Context(name) => write!(f, "the Docker context {name}"),
            Found::LocalSocket => write!(f, "Docker's local socket"),
            Found::Podman => write!(f, "podman's socket"),
            Found::Profile => write!(f, "the profile, made on it"),
            Found::Nothing => write!(f, "no engine found; Docker's local socket assumed"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Whether the engine's certificate is checked against `ca`.
    pub verify: bool,
}

/// What discovery reads: the environment and the file system, so that a
/// test can give its own.
pub struct Inputs<'a> {
    pub flag: Option<&'a str>,
    pub var: &'a dyn Fn(&str) -> Option<String>,
    pub exists: &'a dyn Fn(&Path) -> bool,
}

impl Inputs<'_> {
    fn var(&self, name: &str) -> Option<String> {
        (self.var)(name).filter(|v| !v.is_empty())
    }

    /// The docker CLI's configuration directory.
    fn config_dir(&self) -> PathBuf {
        match self.var("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(self.var("HOME").unwrap_or_default()).join(".docker"),
        }
    }
}

/// The process's own environment and file system.
pub fn from_process(flag: Option<&str>) -> Result<Endpoint> {
    discover(&Inputs {
        flag,
        var: &|name| std::env::var(name).ok(),
        exists: &|path| path.exists(),
    })
}

pub fn discover(inputs: &Inputs) -> Result<Endpoint> {
    let given = |value: String, found: Found| -> Result<Endpoint> {
        if value.contains("://") {
            // As the docker CLI's -H: DOCKER_TLS_VERIFY's files serve a
            // tcp:// engine named on the command line too.
            let tls = value
                .starts_with("tcp://")
                .then(|| env_tls(inputs))
                .flatten();
            Ok(Endpoint {
                host: value,
                found,
                tls,
            })
        } else {
            // A name: a Docker context's.
            context(inputs, &value)
        }
    };
    if let Some(flag) = inputs.flag {
        return given(flag.to_string(), Found::Flag);
    }
    if let Some(engine) = inputs.var("BERTH_ENGINE") {
        return given(engine, Found::BerthEngine);
    }
    if let Some(host) = inputs.var("DOCKER_HOST") {
        return Ok(Endpoint {
            host,
            found: Found::DockerHost,
            tls: env_tls(inputs),
        });
    }
    let current = inputs.var("DOCKER_CONTEXT").or_else(|| {
        let config = std::fs::read(inputs.config_dir().join("config.json")).ok()?;
        let config: serde_json::Value = serde_json::from_slice(&config).ok()?;
        config["currentContext"].as_str().map(str::to_string)
    });
    if let Some(name) = current.filter(|n| n != "default") {
        return context(inputs, &name);
    }
    let unix = |path: &str| format!("unix://{path}");
    if (inputs.exists)(Path::new(LOCAL_SOCKET)) {
        return Ok(plain(unix(LOCAL_SOCKET), Found::LocalSocket));
    }
    if let Some(host) = inputs.var("CONTAINER_HOST") {
        return Ok(plain(host, Found::Podman));
    }
    let rootless = inputs
        .var("XDG_RUNTIME_DIR")
        .map(|dir| format!("{dir}/podman/podman.sock"));
    for socket in [Some(PODMAN_ROOTFUL.to_string()), rootless]
        .into_iter()
        .flatten()
    {
        if (inputs.exists)(Path::new(&socket)) {
            return Ok(plain(unix(&socket), Found::Podman));
        }
    }
    Ok(plain(unix(LOCAL_SOCKET), Found::Nothing))
}

/// The TLS files `DOCKER_TLS_VERIFY` asks for, in `DOCKER_CERT_PATH`.
fn env_tls(inputs: &Inputs) -> Option<Tls> {
    inputs.var("DOCKER_TLS_VERIFY").map(|_| {
        let dir = inputs
            .var("DOCKER_CERT_PATH")
            .map_or_else(|| inputs.config_dir(), PathBuf::from);
        tls_in(&dir, true)
    })
}

fn plain(host: String, found: Found) -> Endpoint {
    Endpoint {
        host,
        found,
        tls: None,
    }
}

/// The CLI's TLS files in `dir`, as `DOCKER_CERT_PATH` holds them.
fn tls_in(dir: &Path, verify: bool) -> Tls {
    Tls {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        verify,
    }
}

/// The Docker context `name`: its metadata and TLS files live under the
/// SHA-256 of its name in the CLI's configuration directory.
fn context(inputs: &Inputs, name: &str) -> Result<Endpoint> {
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let contexts = inputs.config_dir().join("contexts");
    let meta_file = contexts.join("meta").join(&id).join("meta.json");
    let missing = |why: String| Error::Context {
        name: name.to_string(),
        why,
    };
    let meta =
        std::fs::read(&meta_file).map_err(|e| missing(format!("{}: {e}", meta_file.display())))?;
    let meta: serde_json::Value = serde_json::from_slice(&meta)
        .map_err(|e| missing(format!("{}: {e}", meta_file.display())))?;
    let docker = &meta["Endpoints"]["docker"];
    let host = docker["Host"]
        .as_str()
        .ok_or_else(|| missing(format!("{} names no Docker endpoint", meta_file.display())))?;
    let tls_dir = contexts.join("tls").join(&id).join("docker");
    let verify = !docker["SkipTLSVerify"].as_bool().unwrap_or(false);
    let tls = (inputs.exists)(&tls_dir.join("cert.pem")).then(|| tls_in(&tls_dir, verify));
    Ok(Endpoint {
        host: host.to_string(),
        found: Found::Context(name.to_string()),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Discovery with `vars` set and only the files under `root` (and
    /// `sockets`) there.
    fn found(flag: Option<&str>, vars: &[(&str, String)], sockets: &[&str]) -> Result<Endpoint> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let sockets: Vec<PathBuf> = sockets.iter().map(PathBuf::from).collect();
        discover(&Inputs {
            flag,
            var: &|name| vars.get(name).cloned(),
            // Sockets as the test says; other files (a context's) as they are.
            exists: &|path| {
                sockets.iter().any(|s| s == path)
                    || (path.extension().is_none_or(|e| e != "sock") && path.exists())
            },
        })
    }

    /// A Docker CLI configuration in `dir` with a context `name` at `host`,
    /// with TLS files when `tls`, current when `current`.
    fn docker_config(dir: &Path, name: &str, host: &str, tls: bool, current: bool) {
        let id = hex::encode(Sha256::digest(name.as_bytes()));
        let meta = dir.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta).unwrap();
        let json = serde_json::json!({"Name": name, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}});
        std::fs::write(meta.join("meta.json"), json.to_string()).unwrap();
        if tls {
            let certs = dir.join("contexts/tls").join(&id).join("docker");
            std::fs::create_dir_all(&certs).unwrap();
            for file in ["ca.pem", "cert.pem", "key.pem"] {
                std::fs::write(certs.join(file), "pem").unwrap();
            }
        }
        if current {
            let config = serde_json::json!({"currentContext": name});
            std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        }
    }

    #[test]
    fn the_flag_then_berth_engine_then_docker_host_win_in_that_order() {
        let all = [
            ("BERTH_ENGINE", "unix:///b.sock".to_string()),
            ("DOCKER_HOST", "tcp://h:2375".to_string()),
        ];
        let e = found(Some("unix:///f.sock"), &all, &[LOCAL_SOCKET]).unwrap();
        assert_eq!((e.host.as_str(), e.found), ("unix:///f.sock", Found::Flag));
        let e = found(None, &all, &[LOCAL_SOCKET]).unwrap();
        assert_eq!(
            (e.host.as_str(), e.found),
            ("unix:///b.sock", Found::BerthEngine)
        );
        let e = found(None, &all[1..], &[LOCAL_SOCKET]).unwrap();
        assert_eq!(
            (e.host.as_str(), e.found, e.tls),
            ("tcp://h:2375", Found::DockerHost, None)
        );
        let tls = [
            ("DOCKER_HOST", "tcp://h:2376".to_string()),
            ("DOCKER_TLS_VERIFY", "1".to_string()),
            ("DOCKER_CERT_PATH", "/certs".to_string()),
        ];
        let e = found(None, &tls, &[]).unwrap();
        assert_eq!(e.tls.unwrap().cert, Path::new("/certs/cert.pem"));
        // As docker -H: the TLS variables serve a tcp:// engine named by
        // the flag, not a socket.
        let e = found(Some("tcp://other:2376"), &tls, &[]).unwrap();
        assert_eq!(e.tls.unwrap().ca, Path::new("/certs/ca.pem"));
        assert!(
            found(Some("unix:///f.sock"), &tls, &[])
                .unwrap()
                .tls
                .is_none()
        );
    }

    #[test]
    fn the_current_context_comes_before_the_local_socket() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().display().to_string();
        docker_config(dir.path(), "remote", "tcp://build:2376", true, true);
        docker_config(dir.path(), "other", "ssh://me@box", false, false);
        let vars = [("DOCKER_CONFIG", config.clone())];
        let e = found(None, &vars, &[LOCAL_SOCKET]).unwrap();
        assert_eq!(e.host, "tcp://build:2376");
        assert_eq!(e.found, Found::Context("remote".into()));
        assert!(e.tls.unwrap().verify);
        // DOCKER_CONTEXT over the config's; a name as --engine too.
        let vars = [
            ("DOCKER_CONFIG", config.clone()),
            ("DOCKER_CONTEXT", "other".into()),
        ];
        assert_eq!(found(None, &vars, &[]).unwrap().host, "ssh://me@box");
        let vars = [("DOCKER_CONFIG", config.clone())];
        assert_eq!(
            found(Some("other"), &vars, &[]).unwrap().found,
            Found::Context("other".into())
        );
        // `default` is the local socket; a context that is not there is an error.
        let vars = [
            ("DOCKER_CONFIG", config.clone()),
            ("DOCKER_CONTEXT", "default".into()),
        ];
        assert_eq!(
            found(None, &vars, &[LOCAL_SOCKET]).unwrap().found,
            Found::LocalSocket
        );
        let vars = [("DOCKER_CONFIG", config), ("DOCKER_CONTEXT", "gone".into())];
        let error = found(None, &vars, &[]).unwrap_err();
        assert!(error.to_string().contains("gone"), "{error}");
    }

    #[test]
    fn podman_is_found_where_docker_is_not() {
        let e = found(None, &[], &[LOCAL_SOCKET, PODMAN_ROOTFUL]).unwrap();
        assert_eq!(e.found, Found::LocalSocket);
        let e = found(None, &[], &[PODMAN_ROOTFUL]).unwrap();
        assert_eq!(
            (e.host.as_str(), e.found),
            ("unix:///run/podman/podman.sock", Found::Podman)
        );
        let vars = [("XDG_RUNTIME_DIR", "/run/user/1000".to_string())];
        let e = found(None, &vars, &["/run/user/1000/podman/podman.sock"]).unwrap();
        assert_eq!(e.host, "unix:///run/user/1000/podman/podman.sock");
        let vars = [("CONTAINER_HOST", "unix:///p.sock".to_string())];
        assert_eq!(found(None, &vars, &[]).unwrap().found, Found::Podman);
        let e = found(None, &[], &[]).unwrap();
        assert_eq!(
            (e.host.as_str(), e.found),
            ("unix:///var/run/docker.sock", Found::Nothing)
        );
    }
}
