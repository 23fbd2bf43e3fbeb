//! The runtime each Kubernetes minor runs on beside its own binaries: etcd,
//! containerd, runc, the CNI plugins and CoreDNS, at the versions upstream
//! pairs with it.

use serde::{Deserialize, Serialize};

/// The versions of the runtime a cached Kubernetes version brought along.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    pub etcd: String,
    pub containerd: String,
    pub runc: String,
    /// The CNI plugins, in `cni/`; `None` uses the node image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<String>,
}

impl Runtime {
    /// containerd 2 reads its configuration in version 3 and names its CRI
    /// plugins differently.
    pub fn containerd_major(&self) -> u32 {
        major(&self.containerd)
    }
}

fn major(version: &str) -> u32 {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// Where a runtime's CNI plugins are, in the cache directory and volume.
pub const CNI_DIR: &str = "cni";
/// etcd as kubeadm pins it (`SupportedEtcdVersion`, from v1.34
/// `DefaultEtcdVersion`, in cmd/kubeadm/app/constants/constants.go):
/// - 1.20, 1.21: 3.4.13-0 (release-1.21).
/// - 1.22 to 1.33: the 3.5 line; release-1.34 pins 3.5.24-0 for 1.31 to 1.33
///   and release-1.32 the same for 1.29 to 1.32. Minors older than 1.29
///   get the same patch, as kubeadm itself falls back to the nearest listed
///   version (`EtcdSupportedVersion`); 3.5 patches share one storage format.
/// - 1.34 on: each release's own, read from k8s.io/kubernetes v1.34.4,
///   v1.35.4, v1.36.3 and v1.37.2: 3.6.5, 3.6.6, 3.6.8, 3.7.0.
///
/// containerd as its RELEASES.md ("Kubernetes support", v2.4.2) lists for
/// the minor, the newest line listed that still speaks the minor's CRI:
/// - up to 1.22 kubelet speaks only CRI v1alpha2, which containerd 2.0
///   removed: 1.7.29, the last 1.7 security release (Nov 2025).
/// - 1.23 to 1.29: 1.7.29 (1.29 lists 1.7.11+; older minors fell out of
///   the matrix while 1.7 still served them).
/// - 1.30 to 1.34: 2.1.5 (1.30/1.31 list 2.0.0+, 1.32/1.33 2.1.0+, 1.34
///   2.1.3+).
/// - 1.35: 2.2.0; 1.36: 2.3.7 (2.3.0+); 1.37: 2.4.2 (2.4.0+).
///
/// runc: what that containerd release is tested with
/// (script/setup/runc-version): 1.3.3 up to containerd 2.2.0, which fixes
/// the November 2025 runc advisories (GHSA-qw9x-cqr3-wc7r and two more);
/// 1.5.2 for 2.3.7 and 2.4.2.
///
/// CNI plugins, from 1.34: what that containerd release's go.mod requires
/// (1.7.1, 1.8.0, 1.9.1); older minors use the node image's.
pub fn for_minor(minor: u32) -> Runtime {
    let (etcd, containerd, runc, cni) = match minor {
        ..=21 => ("3.4.13", "1.7.29", "1.3.3", None),
        22..=29 => ("3.5.24", "1.7.29", "1.3.3", None),
        30..=33 => ("3.5.24", "2.1.5", "1.3.3", None),
        34 => ("3.6.5", "2.1.5", "1.3.3", Some("1.7.1")),
        35 => ("3.6.6", "2.2.0", "1.3.3", Some("1.8.0")),
        36 => ("3.6.8", "2.3.7", "1.5.2", Some("1.9.1")),
        _ => ("3.7.0", "2.4.2", "1.5.2", Some("1.9.1")),
    };
    Runtime {
        etcd: etcd.into(),
        containerd: containerd.into(),
        runc: runc.into(),
        cni: cni.map(Into::into),
    }
}

/// CoreDNS of the version kubeadm ships with each minor version
/// (`CoreDNSVersion` in cmd/kubeadm/app/constants/constants.go, also in
/// build/dependencies.yaml), under its upstream name. 1.33: v1.12.0,
/// 1.34: v1.12.1, 1.35: v1.13.1, 1.36: v1.14.2, 1.37: v1.14.6 (read from
/// k8s.io/kubernetes v1.34.4 to v1.37.2).
pub fn coredns_image(minor: u32) -> &'static str {
    match minor {
        ..=20 => "registry.k8s.io/coredns:1.7.0",
        21 => "registry.k8s.io/coredns/coredns:v1.8.0",
        22 => "registry.k8s.io/coredns/coredns:v1.8.4",
        23 | 24 => "registry.k8s.io/coredns/coredns:v1.8.6",
        25 | 26 => "registry.k8s.io/coredns/coredns:v1.9.3",
        27 | 28 => "registry.k8s.io/coredns/coredns:v1.10.1",
        29 | 30 => "registry.k8s.io/coredns/coredns:v1.11.1",
        31 | 32 => "registry.k8s.io/coredns/coredns:v1.11.3",
        33 => "registry.k8s.io/coredns/coredns:v1.12.0",
        34 => "registry.k8s.io/coredns/coredns:v1.12.1",
        35 => "registry.k8s.io/coredns/coredns:v1.13.1",
        36 => "registry.k8s.io/coredns/coredns:v1.14.2",
        _ => "registry.k8s.io/coredns/coredns:v1.14.6",
    }
}

/// The version of CoreDNS's module that `coredns_image` names (its tags
/// are the module's versions), for a build from source.
pub fn coredns_version(minor: u32) -> Option<String> {
    let tag = coredns_image(minor).rsplit_once(':')?.1;
    Some(format!("v{}", tag.trim_start_matches('v')))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream's pairings, restated: a change to the table must be a
    /// change here too, with its source.
    #[test]
    fn each_minor_runs_what_upstream_pairs_with_it() {
        let rows = [
            // (minor, etcd, containerd, runc, cni)
            (20, "3.4.13", "1.7.29", "1.3.3", None), // kubeadm release-1.21; kubelet speaks v1alpha2
            (22, "3.5.24", "1.7.29", "1.3.3", None), // v1alpha2 only: containerd 2 removed it
            (29, "3.5.24", "1.7.29", "1.3.3", None), // RELEASES.md: 1.29 -> 1.7.11+
            (30, "3.5.24", "2.1.5", "1.3.3", None),  // RELEASES.md: 1.30 -> 2.0.0+
            (33, "3.5.24", "2.1.5", "1.3.3", None),  // kubeadm release-1.34: 33 -> 3.5.24-0
            // kubeadm v1.34.4 DefaultEtcdVersion 3.6.5-0; 1.34 -> 2.1.3+;
            // containerd v2.1.5 pins runc v1.3.3 and plugins v1.7.1.
            (34, "3.6.5", "2.1.5", "1.3.3", Some("1.7.1")),
            // v1.35.4: 3.6.6-0; 1.35 -> 2.2.0+; v2.2.0: runc v1.3.3, plugins v1.8.0.
            (35, "3.6.6", "2.2.0", "1.3.3", Some("1.8.0")),
            // v1.36.3: 3.6.8-0; 1.36 -> 2.3.0+; v2.3.7: runc v1.5.2, plugins v1.9.1.
            (36, "3.6.8", "2.3.7", "1.5.2", Some("1.9.1")),
            // v1.37.2: 3.7.0-0; 1.37 -> 2.4.0+; v2.4.2: runc v1.5.2, plugins v1.9.1.
            (37, "3.7.0", "2.4.2", "1.5.2", Some("1.9.1")),
        ];
        for (minor, etcd, containerd, runc, cni) in rows {
            let r = for_minor(minor);
            assert_eq!(
                (
                    r.etcd.as_str(),
                    r.containerd.as_str(),
                    r.runc.as_str(),
                    r.cni.as_deref()
                ),
                (etcd, containerd, runc, cni),
                "v1.{minor}"
            );
        }
        // Kubernetes >= 1.34's API server is built against etcd 3.6's client
        // and kubeadm refuses etcd older than 3.5.24 there.
        assert!(for_minor(34).etcd.starts_with("3.6."));
        // kubelet < 1.23 speaks only CRI v1alpha2, gone in containerd 2.
        for minor in 20..=22 {
            assert_eq!(for_minor(minor).containerd_major(), 1);
        }
    }
}
