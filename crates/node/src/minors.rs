//! A row per Kubernetes minor berth runs: the runtime upstream pairs with
//! it beside its own binaries (etcd, containerd, runc, the CNI plugins) and
//! its CoreDNS. A new minor is a new row here and its golden file; a minor
//! without a row is refused, never given a neighbour's values.

use serde::{Deserialize, Serialize};

use crate::Version;

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

/// What upstream pairs with one minor.
#[derive(Debug, PartialEq, Eq)]
pub struct Minor {
    pub minor: u32,
    pub etcd: &'static str,
    pub containerd: &'static str,
    pub runc: &'static str,
    /// The CNI plugins' version; `None` runs the node image's.
    pub cni: Option<&'static str>,
    /// CoreDNS's image, under its upstream name.
    pub coredns: &'static str,
}

const fn row(
    minor: u32,
    etcd: &'static str,
    containerd: &'static str,
    runc: &'static str,
    cni: Option<&'static str>,
    coredns: &'static str,
) -> Minor {
    Minor {
        minor,
        etcd,
        containerd,
        runc,
        cni,
        coredns,
    }
}

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
///
/// CoreDNS: the version kubeadm ships with each minor version
/// (`CoreDNSVersion` in cmd/kubeadm/app/constants/constants.go, also in
/// build/dependencies.yaml), under its upstream name. 1.33: v1.12.0,
/// 1.34: v1.12.1, 1.35: v1.13.1, 1.36: v1.14.2, 1.37: v1.14.6 (read from
/// k8s.io/kubernetes v1.34.4 to v1.37.2).
pub const MINORS: &[Minor] = &[
    row(
        20,
        "3.4.13",
        "1.7.29",
        "1.3.3",
        None,
        "registry.k8s.io/coredns:1.7.0",
    ),
    row(
        21,
        "3.4.13",
        "1.7.29",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.8.0",
    ),
    row(
        22,
        "3.5.24",
        "1.7.29",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.8.4",
    ),
    row(
        23,
        "3.5.24",
        "1.7.29",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.8.6",
    ),
    row(
        24,
        "3.5.24",
        "1.7.29",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.8.6",
    ),
    row(
        25,
        "3.5.24",
        "1.7.29",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.9.3",
    ),
    row(
        26,
        "3.5.24",
        "1.7.29",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.9.3",
    ),
    row(
        27,
        "3.5.24",
        "1.7.29",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.10.1",
    ),
    row(
        28,
        "3.5.24",
        "1.7.29",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.10.1",
    ),
    row(
        29,
        "3.5.24",
        "1.7.29",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.11.1",
    ),
    row(
        30,
        "3.5.24",
        "2.1.5",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.11.1",
    ),
    row(
        31,
        "3.5.24",
        "2.1.5",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.11.3",
    ),
    row(
        32,
        "3.5.24",
        "2.1.5",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.11.3",
    ),
    row(
        33,
        "3.5.24",
        "2.1.5",
        "1.3.3",
        None,
        "registry.k8s.io/coredns/coredns:v1.12.0",
    ),
    row(
        34,
        "3.6.5",
        "2.1.5",
        "1.3.3",
        Some("1.7.1"),
        "registry.k8s.io/coredns/coredns:v1.12.1",
    ),
    row(
        35,
        "3.6.6",
        "2.2.0",
        "1.3.3",
        Some("1.8.0"),
        "registry.k8s.io/coredns/coredns:v1.13.1",
    ),
    row(
        36,
        "3.6.8",
        "2.3.7",
        "1.5.2",
        Some("1.9.1"),
        "registry.k8s.io/coredns/coredns:v1.14.2",
    ),
    row(
        37,
        "3.7.0",
        "2.4.2",
        "1.5.2",
        Some("1.9.1"),
        "registry.k8s.io/coredns/coredns:v1.14.6",
    ),
];

/// The oldest and newest minor versions berth runs.
pub const OLDEST_MINOR: u32 = MINORS[0].minor;
pub const NEWEST_MINOR: u32 = MINORS[MINORS.len() - 1].minor;

/// A version berth has no row for.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("Kubernetes {0} is not supported: berth runs v1.{OLDEST_MINOR}.x to v1.{NEWEST_MINOR}.x")]
pub struct Unsupported(pub Version);

/// The row of `version`'s minor.
pub fn supported(version: &Version) -> Result<&'static Minor, Unsupported> {
    MINORS
        .iter()
        .find(|row| version.major == 1 && row.minor == version.minor)
        .ok_or_else(|| Unsupported(version.clone()))
}

/// Why a cluster on one version cannot be upgraded to another in one go.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Skew {
    #[error("it runs {0} already")]
    Same(Version),
    #[error("{to} is older than the {from} it runs, and berth does not downgrade a cluster")]
    Older { from: Version, to: Version },
    /// Upstream's skew policy: control planes one minor apart at most, so
    /// that an API server never meets a controller manager or a kubelet
    /// newer than itself, and etcd upgrades one minor at a time.
    #[error(
        "{to} is more than one minor past the {from} it runs: a cluster is upgraded one minor at a time, \
         as Kubernetes' version skew policy says, so v1.{next} comes first"
    )]
    Skips {
        from: Version,
        to: Version,
        next: u32,
    },
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
}

/// Whether a cluster running `from` can be upgraded to `to` in one step:
/// a newer patch of its minor, or any patch of the next minor.
pub fn upgrade(from: &Version, to: &Version) -> Result<(), Skew> {
    supported(to)?;
    if to == from {
        return Err(Skew::Same(from.clone()));
    }
    if to < from {
        return Err(Skew::Older {
            from: from.clone(),
            to: to.clone(),
        });
    }
    if to.minor > from.minor + 1 {
        return Err(Skew::Skips {
            from: from.clone(),
            to: to.clone(),
            next: from.minor + 1,
        });
    }
    Ok(())
}

/// What upstream changed at a minor that changes what berth renders, each
/// holding from its minor on; a new minor that adds or removes a flag berth
/// sets is a row here. render.rs's test table `UPSTREAM` checks the files
/// of every minor against the changelogs, independently of this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// The controller manager's and scheduler's insecure ports are off by
    /// default (CHANGELOG-1.23), so berth no longer sets `--port=0`.
    InsecurePortsOff,
    /// Dockershim is gone (CHANGELOG-1.24): kube-apiserver's
    /// `--insecure-port`, kubelet's `--network-plugin`, and cAdvisor's
    /// probe of the Docker socket.
    NoDockershim,
    /// A service account no longer gets a token Secret made for it
    /// (KEP-2799, CHANGELOG-1.24).
    NoTokenSecrets,
    /// kubelet's `--container-runtime` flags are gone; the endpoint is a
    /// KubeletConfiguration field (CHANGELOG-1.27).
    RuntimeEndpointInConfig,
    /// KubeletConfiguration has `failCgroupV1` (KEP-4569, v1.31).
    FailCgroupV1Field,
    /// kubelet refuses a cgroup v1 host unless told otherwise (KEP-5573,
    /// v1.35).
    CgroupV1Refused,
}

impl Upstream {
    /// The first minor it holds for.
    pub const fn since(self) -> u32 {
        match self {
            Upstream::InsecurePortsOff => 23,
            Upstream::NoDockershim | Upstream::NoTokenSecrets => 24,
            Upstream::RuntimeEndpointInConfig => 27,
            Upstream::FailCgroupV1Field => 31,
            Upstream::CgroupV1Refused => 35,
        }
    }
}

impl Minor {
    /// Whether upstream's `change` holds for this minor.
    pub fn has(&self, change: Upstream) -> bool {
        self.minor >= change.since()
    }

    /// The runtime a version of this minor brings along.
    pub fn runtime(&self) -> Runtime {
        Runtime {
            etcd: self.etcd.into(),
            containerd: self.containerd.into(),
            runc: self.runc.into(),
            cni: self.cni.map(Into::into),
        }
    }

    /// The version of CoreDNS's module that its image names (the image's
    /// tags are the module's versions), for a build from source.
    pub fn coredns_version(&self) -> String {
        let tag = self.coredns.rsplit_once(':').map_or("", |(_, tag)| tag);
        format!("v{}", tag.trim_start_matches('v'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    fn row(minor: u32) -> &'static Minor {
        MINORS.iter().find(|r| r.minor == minor).unwrap()
    }

    #[test]
    fn an_upgrade_goes_one_minor_at_a_time_and_never_back() {
        assert_eq!(upgrade(&v("v1.36.3"), &v("v1.37.2")), Ok(()));
        assert_eq!(upgrade(&v("v1.37.0"), &v("v1.37.2")), Ok(()));
        assert_eq!(
            upgrade(&v("v1.37.2"), &v("v1.37.2")),
            Err(Skew::Same(v("v1.37.2")))
        );
        assert!(matches!(
            upgrade(&v("v1.37.2"), &v("v1.36.3")),
            Err(Skew::Older { .. })
        ));
        assert!(matches!(
            upgrade(&v("v1.37.2"), &v("v1.37.1")),
            Err(Skew::Older { .. })
        ));
        let skip = upgrade(&v("v1.35.4"), &v("v1.37.2")).unwrap_err();
        assert_eq!(
            skip,
            Skew::Skips {
                from: v("v1.35.4"),
                to: v("v1.37.2"),
                next: 36
            }
        );
        assert!(skip.to_string().contains("so v1.36 comes first"), "{skip}");
        assert!(matches!(
            upgrade(&v("v1.37.2"), &v("v1.38.0")),
            Err(Skew::Unsupported(_))
        ));
    }

    /// etcd upgrades one minor at a time (its data is migrated by each),
    /// so an upgrade of one Kubernetes minor may move etcd by one at most.
    #[test]
    fn neighbouring_minors_keep_etcd_within_one_minor() {
        let etcd_minor = |row: &Minor| -> (u32, u32) {
            let mut parts = row.etcd.split('.').map(|p| p.parse::<u32>().unwrap());
            (parts.next().unwrap(), parts.next().unwrap())
        };
        for pair in MINORS.windows(2) {
            let (a, b) = (etcd_minor(&pair[0]), etcd_minor(&pair[1]));
            assert_eq!(a.0, b.0, "etcd's major changes at v1.{}", pair[1].minor);
            assert!(
                b.1 == a.1 || b.1 == a.1 + 1,
                "etcd skips a minor at v1.{}: {} to {}",
                pair[1].minor,
                pair[0].etcd,
                pair[1].etcd
            );
        }
    }

    #[test]
    fn every_minor_has_one_row_in_order_and_any_other_is_refused() {
        for pair in MINORS.windows(2) {
            assert_eq!(pair[1].minor, pair[0].minor + 1);
        }
        assert_eq!(supported(&v("v1.37.2")).unwrap().etcd, "3.7.0");
        for unknown in ["v1.19.16", "v1.38.0", "v2.37.0"] {
            assert!(supported(&v(unknown)).is_err(), "{unknown}");
        }
        assert_eq!(
            Unsupported(v("v1.38.0")).to_string(),
            "Kubernetes v1.38.0 is not supported: berth runs v1.20.x to v1.37.x"
        );
    }

    #[test]
    fn each_row_runs_what_its_kubelet_and_api_server_speak() {
        for row in MINORS {
            // Kubernetes >= 1.34's API server is built against etcd 3.6's
            // client and kubeadm refuses older etcd there.
            if row.minor >= 34 {
                assert!(!row.etcd.starts_with("3.4.") && !row.etcd.starts_with("3.5."));
            }
            // kubelet < 1.23 speaks only CRI v1alpha2, gone in containerd 2.
            if row.minor <= 22 {
                assert_eq!(row.runtime().containerd_major(), 1, "v1.{}", row.minor);
            }
        }
        let old = supported(&v("v1.20.2")).unwrap();
        assert_eq!(old.coredns, "registry.k8s.io/coredns:1.7.0");
        assert_eq!(old.coredns_version(), "v1.7.0");
        assert_eq!(
            supported(&v("v1.37.2")).unwrap().coredns_version(),
            "v1.14.6"
        );
    }

    /// The README's table of what runs per minor is the code's: each row
    /// names its minors (`v1.22 to v1.29`, `v1.20, v1.21`) and, for
    /// CoreDNS, the versions of its first and last minor.
    #[test]
    fn the_readme_table_of_versions_is_what_berth_runs() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));
        let minor = |v: &str| v.trim().trim_start_matches("v1.").parse::<u32>().unwrap();
        let image_version = |m: u32| {
            let image = row(m).coredns;
            image[image.rfind(':').unwrap() + 1..].to_string()
        };
        let mut seen = Vec::new();
        for line in readme.lines().filter(|l| l.starts_with("| v1.")) {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let [minors, etcd, containerd, runc, cni, coredns, _proven] = cells[..] else {
                panic!("row {line}");
            };
            let (first, last) = if let Some((a, b)) = minors.split_once(" to ") {
                (minor(a), minor(b))
            } else if let Some((a, b)) = minors.split_once(", ") {
                (minor(a), minor(b))
            } else {
                (minor(minors), minor(minors))
            };
            for m in first..=last {
                let runtime = row(m).runtime();
                assert_eq!(
                    [etcd, containerd, runc],
                    [&runtime.etcd, &runtime.containerd, &runtime.runc].map(String::as_str),
                    "v1.{m}"
                );
                assert_eq!(
                    cni,
                    runtime.cni.as_deref().unwrap_or("the node image's"),
                    "v1.{m}"
                );
                seen.push(m);
            }
            let ends = if image_version(first) == image_version(last) {
                image_version(first)
            } else if minors.contains(" to ") {
                format!("{} to {}", image_version(first), image_version(last))
            } else {
                format!("{}, {}", image_version(first), image_version(last))
            };
            assert_eq!(coredns, ends, "{line}");
        }
        assert_eq!(seen, (OLDEST_MINOR..=NEWEST_MINOR).collect::<Vec<_>>());
    }
}
