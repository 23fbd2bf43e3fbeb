//! The Kubernetes dashboard with its metrics scraper, and the two service
//! accounts whose tokens log in to it (`berth dashboard`).
//!
//! Its images per minor, from its release notes' "Compatibility": v2.2.0
//! fully supports 1.20, v2.3.1 1.21, v2.5.1 1.23, v2.6.1 1.24, v2.7.0
//! 1.25. Later releases (7.x) are Helm charts of five images behind Kong;
//! the project was retired in January 2026, so v2.7.0 stays the dashboard
//! of every later minor.

use super::{Definition, fill};
use crate::minors::Minor;
use crate::render::NodeSpec;

pub const DASHBOARD_NAMESPACE: &str = "kubernetes-dashboard";
/// The dashboard's Service, which `berth dashboard` forwards to.
pub const DASHBOARD_SERVICE: &str = "kubernetes-dashboard";
/// The service accounts whose tokens `berth dashboard` prints: read-only
/// (the `view` role) and administrator (`cluster-admin`).
pub const DASHBOARD_VIEWER: &str = "berth-dashboard-viewer";
pub const DASHBOARD_ADMIN: &str = "berth-dashboard-admin";

pub struct Dashboard;

impl Definition for Dashboard {
    fn name(&self) -> &'static str {
        "dashboard"
    }

    fn about(&self) -> &'static str {
        "the Kubernetes dashboard (`berth dashboard`)"
    }

    fn project(&self) -> &'static str {
        "kubernetes/dashboard"
    }

    fn images(&self, row: &Minor) -> Vec<String> {
        let (dashboard, scraper) = match row.minor {
            ..=20 => ("v2.2.0", "v1.0.6"),
            21 | 22 => ("v2.3.1", "v1.0.6"),
            23 => ("v2.5.1", "v1.0.8"),
            24 => ("v2.6.1", "v1.0.8"),
            _ => ("v2.7.0", "v1.0.8"),
        };
        vec![
            format!("docker.io/kubernetesui/dashboard:{dashboard}"),
            format!("docker.io/kubernetesui/metrics-scraper:{scraper}"),
        ]
    }

    fn deployments(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (DASHBOARD_NAMESPACE, "kubernetes-dashboard"),
            (DASHBOARD_NAMESPACE, "dashboard-metrics-scraper"),
        ]
    }

    fn manifest(&self, spec: &NodeSpec) -> String {
        let images = self.images(spec.row);
        fill(
            include_str!("dashboard.yaml"),
            &[("IMAGE", &images[0]), ("SCRAPER_IMAGE", &images[1])],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::Addon;
    use super::super::tests::{holds, objects, tags};
    use super::*;

    #[test]
    fn each_minor_gets_a_release_that_supports_it() {
        assert_eq!(tags(Addon::Dashboard, 20), ["v2.2.0", "v1.0.6"]);
        assert_eq!(tags(Addon::Dashboard, 34), ["v2.7.0", "v1.0.8"]);
    }

    /// `berth dashboard` finds the Service and accounts by these names.
    #[test]
    fn the_manifest_has_the_objects_berth_dashboard_uses() {
        let objects = objects(include_str!("dashboard.yaml"));
        assert!(holds(&objects, "Namespace", None, DASHBOARD_NAMESPACE));
        let ns = Some(DASHBOARD_NAMESPACE);
        assert!(holds(&objects, "Service", ns, DASHBOARD_SERVICE));
        assert!(holds(&objects, "ServiceAccount", ns, DASHBOARD_VIEWER));
        assert!(holds(&objects, "ServiceAccount", ns, DASHBOARD_ADMIN));
    }
}
