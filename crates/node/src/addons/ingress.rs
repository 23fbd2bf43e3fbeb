//! Traefik on the control-plane node, bound to the node's ports 80 and 443
//! (which `--ingress` publishes on 127.0.0.1): one controller for Ingress
//! (the default IngressClass `traefik`), for Ingresses written for the
//! retired ingress-nginx (class `nginx`, through Traefik's provider for
//! them), and for the Gateway API (the GatewayClass `traefik` and a Gateway
//! on port 80 any namespace's routes may attach to).
//!
//! Why Traefik: ingress-nginx was retired in March 2026; Traefik is one Go
//! program that implements both APIs (the standard channel of Gateway API
//! v1.4.0, by its conformance report) and the module proxy serves it, so
//! berth builds it where no registry serves its image. Its v3.6 line is
//! the newest whose dependencies the proxy serves whole (v3.7's are not).
//! The Gateway API's CRDs come from that release's module; they are
//! applied on the minors its support policy covers (the five newest at
//! its release, 1.30 to 1.34) and on those after, whose API server still
//! serves them.

use super::{Crds, Definition, FromSource, RetiredFrom, fill};
use crate::minors::Minor;
use crate::render::NodeSpec;

pub const INGRESS_NAMESPACE: &str = "traefik";
/// The controller's Deployment and Service; `berth tunnel` forwards to the
/// Service.
pub const INGRESS_CONTROLLER: &str = "traefik";

const VERSION: &str = "v3.6.12";
const IMAGE: &str = "docker.io/library/traefik:v3.6.12";

/// The Gateway API release Traefik implements.
const GATEWAY_API: Crds = Crds {
    module: "sigs.k8s.io/gateway-api",
    version: "v1.4.0",
    dir: "config/crd/standard",
};

/// The first minor its Gateway API release supports.
const FIRST_GATEWAY_MINOR: u32 = 30;

pub struct Ingress;

impl Definition for Ingress {
    fn name(&self) -> &'static str {
        "ingress"
    }

    fn about(&self) -> &'static str {
        "Traefik on ports 80 and 443: Ingress (class nginx too) and the Gateway API"
    }

    fn project(&self) -> &'static str {
        "traefik/traefik"
    }

    fn images(&self, _row: &Minor) -> Vec<String> {
        vec![IMAGE.to_string()]
    }

    fn built_from_source(&self, _row: &Minor) -> Vec<FromSource> {
        let stamp = "github.com/traefik/traefik/v3/pkg/version";
        vec![FromSource {
            image: IMAGE.to_string(),
            module: "github.com/traefik/traefik/v3",
            version: VERSION,
            package: "github.com/traefik/traefik/v3/cmd/traefik",
            // Its Makefile's version stamp (the release's codename is set
            // by its CI, which the module does not carry).
            ldflags: format!("-s -w -X {stamp}.Version={VERSION}"),
            user: "65532:65532",
        }]
    }

    fn crds(&self, row: &Minor) -> Option<Crds> {
        (row.minor >= FIRST_GATEWAY_MINOR).then_some(GATEWAY_API)
    }

    fn deployments(&self) -> &'static [(&'static str, &'static str)] {
        &[(INGRESS_NAMESPACE, INGRESS_CONTROLLER)]
    }

    fn retired(&self) -> Option<RetiredFrom> {
        Some(RetiredFrom {
            name: "ingress-nginx",
            marker: "ingress-nginx-controller",
            what: "ingress-nginx, retired upstream in March 2026,",
        })
    }

    fn manifest(&self, spec: &NodeSpec) -> String {
        let gateway = self.crds(spec.row).is_some();
        let args = if gateway {
            "        - --providers.kubernetesGateway=true\n        - --providers.kubernetesGateway.statusAddress.ip=127.0.0.1"
        } else {
            "        # No Gateway API on this minor."
        };
        let mut manifest = fill(
            include_str!("ingress.yaml"),
            &[
                ("IMAGE", IMAGE),
                ("NODE", &spec.node),
                ("GATEWAY_ARGS", args),
            ],
        );
        if gateway {
            manifest.push_str(include_str!("ingress-gateway.yaml"));
        }
        manifest
    }
}

#[cfg(test)]
mod tests {
    use super::super::Addon;
    use super::super::tests::{holds, objects};
    use super::*;

    /// `berth tunnel` forwards to this Service.
    #[test]
    fn the_manifest_has_the_service_berth_tunnel_uses() {
        let manifest = Addon::Ingress.manifest(&crate::render::tests::spec(37));
        let objects = objects(&manifest);
        let ns = Some(INGRESS_NAMESPACE);
        assert!(holds(&objects, "Service", ns, INGRESS_CONTROLLER));
    }

    /// The Gateway API where its release supports the minor: the CRDs, the
    /// provider, the class and a Gateway; without it, Ingress alone.
    #[test]
    fn the_gateway_api_comes_with_the_minors_its_release_supports() {
        for (minor, gateway) in [(29, false), (30, true), (37, true)] {
            let spec = crate::render::tests::spec(minor);
            let manifest = Addon::Ingress.manifest(&spec);
            let objects = objects(&manifest);
            assert_eq!(
                holds(&objects, "GatewayClass", None, "traefik"),
                gateway,
                "1.{minor}"
            );
            assert_eq!(
                holds(&objects, "Gateway", Some(INGRESS_NAMESPACE), "traefik"),
                gateway
            );
            assert_eq!(manifest.contains("kubernetesGateway=true"), gateway);
            assert_eq!(Addon::Ingress.crds(spec.row).is_some(), gateway);
            assert!(holds(&objects, "IngressClass", None, "traefik"));
            assert!(holds(&objects, "IngressClass", None, "nginx"));
        }
    }

    #[test]
    fn traefik_is_built_from_its_module_with_its_version_stamped() {
        let row = crate::minors::MINORS.last().unwrap();
        let built = Addon::Ingress.built_from_source(row);
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].image, Addon::Ingress.images(row)[0]);
        assert_eq!(built[0].binary(), "traefik");
        assert!(built[0].ldflags.contains("version.Version=v3.6.12"));
        let crds = Addon::Ingress.crds(row).unwrap();
        assert_eq!(crds.file_name(), "gateway-api-v1.4.0-standard.yaml");
    }
}
