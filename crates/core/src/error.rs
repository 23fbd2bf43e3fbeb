//! The one error type the command line sees: what happened, what to do about
//! it, and the documented exit code it maps to.

use std::fmt;
use std::process::ExitCode;

/// Exit codes, documented in docs/commands.md. Stable: scripts test them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Anything not covered below.
    Failure = 1,
    /// Bad arguments or bad input files.
    Usage = 2,
    /// The Docker engine cannot be reached or refused what berth asked.
    Docker = 3,
    /// The cluster did not become ready in time.
    NotReady = 4,
    /// The profile does not exist or is broken.
    Profile = 5,
    /// Interrupted by a signal.
    Interrupted = 130,
}

#[derive(Debug)]
pub struct Error {
    pub exit: Exit,
    /// What happened and why, in one sentence or a few lines.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
    /// The module's own error this one was made from, kept for `source()`.
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// Errors are made by their kind (`usage`, `engine`, ...): the exit
    /// code follows from the kind here, and nowhere else.
    fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// Anything not covered by a kind below.
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(Exit::Failure, message)
    }

    /// The engine cannot be reached or refused what berth asked.
    pub fn engine(message: impl Into<String>) -> Self {
        Self::new(Exit::Docker, message)
    }

    /// The cluster did not become ready in time.
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::new(Exit::NotReady, message)
    }

    /// The profile does not exist or is broken.
    pub fn profile(message: impl Into<String>) -> Self {
        Self::new(Exit::Profile, message)
    }

    /// Stopped by a signal.
    pub fn interrupted(message: impl Into<String>) -> Self {
        Self::new(Exit::Interrupted, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Keeps the error this one was made from, for callers that look into
    /// the cause (`std::error::Error::source`).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The causes below this error's message, outermost first: every
    /// error of the chain whose text the message (or a cause above it)
    /// does not already say.
    pub fn causes(&self) -> Vec<String> {
        let mut said = self.message.clone();
        let mut causes = Vec::new();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let text = cause.to_string();
            if !said.contains(&text) {
                said.push_str(&text);
                causes.push(text);
            }
            next = cause.source();
        }
        causes
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit as u8)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<berth_engine::Error> for Error {
    fn from(e: berth_engine::Error) -> Self {
        use berth_engine::Error as D;
        let exit = match &e {
            D::Build { .. } => Exit::Failure,
            D::Taken { .. } => Exit::Usage,
            _ => Exit::Docker,
        };
        Error::new(exit, e.to_string())
            .with_hint(e.hint())
            .with_source(e)
    }
}

impl From<crate::node_image::Error> for Error {
    fn from(e: crate::node_image::Error) -> Self {
        match e {
            crate::node_image::Error::Docker(d) => d.into(),
            other => Error::usage(other.to_string())
                .with_hint("pass a directory that holds a Dockerfile")
                .with_source(other),
        }
    }
}

/// What to do when Kubernetes binaries cannot be downloaded.
pub const DOWNLOAD_HINT: &str = "check the network, or pass --binary-mirror with a server of the \
     official layout; where only a Go module proxy is reachable, `berth cache build VERSION` \
     builds it from source; offline, put the binaries in a directory and run \
     `berth cache import VERSION DIR`";

/// What to do about cached or offered binaries with a known defect.
pub fn rebuild_hint(version: &crate::binaries::Version) -> String {
    format!(
        "build the version anew from source with `berth cache build {version}` (its modules carry \
         the fixed reflect2), or import binaries built with reflect2 1.0.2 or newer"
    )
}

impl From<crate::binaries::Error> for Error {
    fn from(e: crate::binaries::Error) -> Self {
        let error = {
            use crate::binaries::Error as B;
            match &e {
                B::BadVersion(_) => Error::usage(e.to_string()).with_hint("write the version as v1.30.2"),
                B::Unsupported(_) => Error::usage(e.to_string()).with_hint(
                    "pick a version of a minor berth runs (`berth version` lists them); `berth cache list` shows the cached ones",
                ),
                B::BadReleaseVersion(_) => Error::usage(e.to_string())
                    .with_hint("write the version as its project's release page names it, without the v: 3.6.9"),
                B::Missing { .. } | B::NotExecutable { .. } | B::WrongVersion { .. } | B::Unrunnable { .. } => {
                    Error::usage(format!("{e}; nothing was imported")).with_hint(
                        "the directory must hold kube-apiserver, kube-controller-manager, kube-scheduler, \
                         kubelet, kube-proxy and kubectl, each executable and of the version given \
                         (`berth cache build VERSION` builds and caches them from source instead)",
                    )
                }
                B::BadMirror(_) => Error::usage(e.to_string()).with_hint(format!(
                    "give the base URL under which VERSION/bin/linux/ARCH/kubelet lies, as in {}",
                    crate::binaries::OFFICIAL_RELEASES
                )),
                B::Download { .. } | B::Checksum { .. } => Error::new(Exit::Failure, format!("{e}; nothing was cached"))
                    .with_hint(DOWNLOAD_HINT),
                B::Defective { version, .. } => Error::usage(format!("{e}; nothing was cached")).with_hint(
                    rebuild_hint(version),
                ),
                B::NoGo(_) => Error::new(Exit::Failure, format!("{e}; nothing was built")).with_hint(
                    "install Go (https://go.dev/dl, or your distribution's golang package) and put `go` on PATH; \
                     `berth cache download VERSION` fetches official releases instead",
                ),
                B::GoTooOld { needs, .. } => Error::new(Exit::Failure, format!("{e}; nothing was built")).with_hint(format!(
                    "install Go {needs} or newer, or let the go command fetch it: `export GOTOOLCHAIN=go{needs}+auto`"
                )),
                B::NotServed { module, .. } => Error::usage(format!("{e}; nothing was built")).with_hint(format!(
                    "check the version; `go list -m -versions {module}` lists what the module proxy (GOPROXY) serves"
                )),
                B::Build { .. } => Error::new(Exit::Failure, format!("{e}\nnothing was cached")).with_hint(
                    "fix what go says above: runc and containerd are built with cgo and need a C compiler and \
                     libseccomp's static library (Debian: gcc libseccomp-dev); modules come from GOPROXY as `go env` shows it",
                ),
                B::Write { .. } | B::Read { .. } => Error::new(Exit::Failure, e.to_string())
                    .with_hint("check the permissions of the cache, or set BERTH_CACHE_DIR to a writable directory"),
            }
        };
        error.with_source(e)
    }
}

impl From<berth_node::BadVersion> for Error {
    fn from(e: berth_node::BadVersion) -> Self {
        crate::binaries::Error::from(e).into()
    }
}

impl From<berth_node::Unsupported> for Error {
    fn from(e: berth_node::Unsupported) -> Self {
        crate::binaries::Error::from(e).into()
    }
}

impl From<crate::pki::Error> for Error {
    fn from(e: crate::pki::Error) -> Self {
        let error = {
            Error::new(Exit::Failure, e.to_string())
                .with_hint("check the permissions of berth's state directory ($BERTH_HOME)")
        };
        error.with_source(e)
    }
}

impl From<crate::settings::Error> for Error {
    fn from(e: crate::settings::Error) -> Self {
        let error = {
            use crate::settings::Error as S;
            let hint = match &e {
                S::Port(_) => "publish NodePorts (30000-32767) as --ports 8080:30080,8443:30443",
                S::Extra(_) => {
                    "write --extra-config kubelet.max-pods=150; values may hold letters, digits and ._,:=/@+-*[]"
                }
                S::KubeProxyFlag(_) => {
                    "set kube-proxy's behaviour through the cluster's Services, or use another component"
                }
                S::FeatureGates(_) => "write --feature-gates Name=true,Other=false",
                S::Preset { .. } => "fix the file; the presets in profiles/ show every field",
                S::Mount(_) | S::MountPath { .. } => {
                    "write --mount /absolute/host/folder:/node/folder, with :ro to mount it read-only"
                }
                S::LbAddress(_) => "`ip -4 addr` lists this host's addresses",
                S::Proxy(_) => {
                    "give --proxy (or HTTP_PROXY, HTTPS_PROXY) as http://HOST:PORT, and NO_PROXY as a comma-separated list"
                }
                S::CaCert { .. } => {
                    "give a file of PEM certificates, such as your company's root CA (.crt or .pem)"
                }
            };
            Error::usage(e.to_string()).with_hint(hint)
        };
        error.with_source(e)
    }
}

impl From<crate::profile::Error> for Error {
    fn from(e: crate::profile::Error) -> Self {
        let error = {
            use crate::profile::Error as P;
            match &e {
                P::BadName(_) | P::NodeLikeName(_) => {
                    Error::usage(e.to_string()).with_hint("pick a name such as `dev` or `ci-1`")
                }
                P::Corrupt { path, .. } => {
                    let name = path
                        .parent()
                        .and_then(|d| d.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "NAME".into());
                    Error::new(Exit::Profile, format!("{e}; it was left as it is")).with_hint(
                        format!(
                            "`berth delete -p {name}` removes the profile and what is left of it"
                        ),
                    )
                }
                P::Newer { written_by, .. } => {
                    Error::new(Exit::Profile, format!("{e}; it was left as it is")).with_hint(
                        format!("use {written_by} or a newer berth for this profile"),
                    )
                }
                P::Io { .. } => Error::new(Exit::Failure, e.to_string())
                    .with_hint("check the permissions of berth's state directory ($BERTH_HOME)"),
            }
        };
        error.with_source(e)
    }
}

impl From<crate::kubeconfig::Error> for Error {
    fn from(e: crate::kubeconfig::Error) -> Self {
        let error = {
            use crate::kubeconfig::Error as K;
            let hint = match &e {
                K::Unparsable { .. } => {
                    "fix the file (kubectl cannot read it either), or pass --kubeconfig with another file"
                }
                K::Locked { .. } => {
                    "another kubectl or berth is writing it; if none runs, the lock is stale and can be removed"
                }
                K::Io { .. } => {
                    "check the file's permissions, or pass --kubeconfig with another file"
                }
            };
            let exit = if matches!(e, K::Unparsable { .. }) {
                Exit::Usage
            } else {
                Exit::Failure
            };
            Error::new(exit, e.to_string()).with_hint(hint)
        };
        error.with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_module_error_keeps_its_cause_and_maps_to_its_exit_code() {
        let engine = berth_engine::Error::Unreachable {
            engine: berth_engine::Flavour::Docker,
            endpoint: "unix:///x.sock".into(),
            reason: "refused".into(),
        };
        let error = Error::from(engine);
        assert_eq!(error.exit, Exit::Docker);
        assert!(
            error
                .hint
                .as_deref()
                .unwrap()
                .contains("start the Docker engine")
        );
        let cause = error.source().expect("the cause is kept");
        assert!(matches!(
            cause.downcast_ref::<berth_engine::Error>(),
            Some(berth_engine::Error::Unreachable { .. })
        ));
        let version = Error::from("x".parse::<crate::binaries::Version>().unwrap_err());
        assert_eq!(version.exit, Exit::Usage);
        assert!(version.source().is_some());
        assert!(Error::usage("plain").source().is_none());
    }

    #[test]
    fn hints_name_the_commands_of_the_engine_in_use() {
        use berth_engine::{Error as E, Flavour};
        let podman = Flavour::Podman;
        let unreachable = Error::from(E::Unreachable {
            engine: podman,
            endpoint: "unix:///run/podman/podman.sock".into(),
            reason: "refused".into(),
        });
        assert!(unreachable.message.starts_with("cannot reach podman at"));
        assert!(unreachable.hint.unwrap().contains("podman.socket"));
        let in_use = Error::from(E::NetworkInUse {
            engine: podman,
            name: "berth-dev".into(),
            containers: vec!["other".into()],
        });
        assert!(
            in_use
                .hint
                .unwrap()
                .contains("`podman network disconnect berth-dev other`")
        );
        let refused = Error::from(E::Api {
            engine: Flavour::Docker,
            action: "start x".into(),
            message: "no".into(),
        });
        assert!(refused.message.starts_with("the Docker engine refused"));
        assert!(refused.hint.unwrap().contains("`docker info`"));
    }

    #[test]
    fn every_cause_not_already_said_is_listed_outermost_first() {
        let io = std::io::Error::other("disk on fire");
        let kubeconfig = crate::kubeconfig::Error::Io {
            path: "/k".into(),
            source: io,
        };
        // The module's message says its cause: nothing more to list.
        let error = Error::from(kubeconfig);
        assert!(error.message.contains("disk on fire"));
        assert!(error.causes().is_empty(), "{:?}", error.causes());
        // A message of its own keeps the chain's texts as causes.
        let io = std::io::Error::other("disk on fire");
        let error =
            Error::failure("cannot save the profile").with_source(crate::kubeconfig::Error::Io {
                path: "/k".into(),
                source: io,
            });
        assert_eq!(
            error.causes(),
            ["cannot read or write the kubeconfig /k: disk on fire"]
        );
    }
}
