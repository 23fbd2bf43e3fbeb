//! The ingress-nginx controller on the control-plane node, bound to the
//! node's ports 80 and 443 (which `--ingress` publishes on 127.0.0.1), and
//! the default IngressClass `nginx`. Without its admission webhook: that
//! needs a second image and jobs to make its certificate, and an Ingress
//! with a mistake shows in the controller's log instead.
//!
//! Its image per minor, from its README's "Supported Versions table": the
//! newest controller whose row lists the minor; v1.14.0 (1.30-1.34) is the
//! last release before the project's retirement (March 2026) and serves
//! every later minor.

use super::{Definition, fill};
use crate::minors::Minor;
use crate::render::NodeSpec;

pub const INGRESS_NAMESPACE: &str = "ingress-nginx";
/// The controller's Deployment and Service; `berth tunnel` forwards to the
/// Service.
pub const INGRESS_CONTROLLER: &str = "ingress-nginx-controller";

pub struct Ingress;

impl Definition for Ingress {
    fn name(&self) -> &'static str {
        "ingress"
    }

    fn about(&self) -> &'static str {
        "the ingress-nginx controller on ports 80 and 443"
    }

    fn project(&self) -> &'static str {
        "kubernetes/ingress-nginx"
    }

    fn images(&self, row: &Minor) -> Vec<String> {
        let tag = match row.minor {
            ..=21 => "v1.3.1",
            22 => "v1.4.0",
            23 => "v1.6.4",
            24 => "v1.8.4",
            25 => "v1.9.6",
            26 | 27 => "v1.11.8",
            28 => "v1.12.8",
            29 => "v1.13.4",
            _ => "v1.14.0",
        };
        vec![format!("registry.k8s.io/ingress-nginx/controller:{tag}")]
    }

    fn deployments(&self) -> &'static [(&'static str, &'static str)] {
        &[(INGRESS_NAMESPACE, INGRESS_CONTROLLER)]
    }

    fn manifest(&self, spec: &NodeSpec) -> String {
        fill(
            include_str!("ingress.yaml"),
            &[("IMAGE", &self.images(spec.row)[0]), ("NODE", &spec.node)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::Addon;
    use super::super::tests::{holds, objects, tags};
    use super::*;

    #[test]
    fn each_minor_gets_the_newest_controller_that_lists_it() {
        assert_eq!(tags(Addon::Ingress, 20), ["v1.3.1"]);
        assert_eq!(tags(Addon::Ingress, 28), ["v1.12.8"]);
        assert_eq!(tags(Addon::Ingress, 34), ["v1.14.0"]);
    }

    /// `berth tunnel` forwards to this Service.
    #[test]
    fn the_manifest_has_the_service_berth_tunnel_uses() {
        let objects = objects(include_str!("ingress.yaml"));
        let ns = Some(INGRESS_NAMESPACE);
        assert!(holds(&objects, "Service", ns, INGRESS_CONTROLLER));
    }
}
