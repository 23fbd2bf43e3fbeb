//! Headlamp, the Kubernetes web UI of SIG UI, in place of the Kubernetes
//! Dashboard (archived in January 2026; the Kubernetes docs now point to
//! Headlamp), and the two service accounts whose tokens log in to it
//! (`berth dashboard`). It serves plain HTTP and calls the API server with
//! the token of whoever logs in, so its own account may read nothing.
//!
//! One release for every minor: Headlamp publishes no table of minors it
//! supports. Its Go backend is not served by the module proxy (403), so
//! berth cannot build its image; a node pulls it, or takes it from `berth
//! image load`.

use super::{Definition, RetiredFrom, fill};
use crate::minors::Minor;
use crate::render::NodeSpec;

pub const DASHBOARD_NAMESPACE: &str = "headlamp";
/// Headlamp's Service, which `berth dashboard` forwards to.
pub const DASHBOARD_SERVICE: &str = "headlamp";
/// The service accounts whose tokens `berth dashboard` prints: read-only
/// (the `view` role) and administrator (`cluster-admin`).
pub const DASHBOARD_VIEWER: &str = "berth-dashboard-viewer";
pub const DASHBOARD_ADMIN: &str = "berth-dashboard-admin";

const IMAGE: &str = "ghcr.io/headlamp-k8s/headlamp:v0.44.0";

pub struct Dashboard;

impl Definition for Dashboard {
    fn name(&self) -> &'static str {
        "dashboard"
    }

    fn about(&self) -> &'static str {
        "Headlamp, the Kubernetes web UI (`berth dashboard`)"
    }

    fn project(&self) -> &'static str {
        "kubernetes-sigs/headlamp"
    }

    fn images(&self, _row: &Minor) -> Vec<String> {
        vec![IMAGE.to_string()]
    }

    fn deployments(&self) -> &'static [(&'static str, &'static str)] {
        &[(DASHBOARD_NAMESPACE, "headlamp")]
    }

    fn manifest(&self, _spec: &NodeSpec) -> String {
        fill(include_str!("dashboard.yaml"), &[("IMAGE", IMAGE)])
    }

    fn retired(&self) -> Option<RetiredFrom> {
        Some(RetiredFrom {
            name: "kubernetes-dashboard",
            marker: "kubernetesui/dashboard",
            what: "the Kubernetes Dashboard, archived upstream in January 2026,",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Addon;
    use super::super::tests::{holds, objects};
    use super::*;

    /// `berth dashboard` finds the Service and accounts by these names.
    #[test]
    fn the_manifest_has_the_objects_berth_dashboard_uses() {
        let manifest = Addon::Dashboard.manifest(&crate::render::tests::spec(37));
        let objects = objects(&manifest);
        assert!(holds(&objects, "Namespace", None, DASHBOARD_NAMESPACE));
        let ns = Some(DASHBOARD_NAMESPACE);
        assert!(holds(&objects, "Service", ns, DASHBOARD_SERVICE));
        assert!(holds(&objects, "ServiceAccount", ns, DASHBOARD_VIEWER));
        assert!(holds(&objects, "ServiceAccount", ns, DASHBOARD_ADMIN));
        // What an older berth's manifest held, and this one does not.
        let retired = Addon::Dashboard.retired().unwrap();
        assert!(!manifest.contains(retired.marker));
    }
}
