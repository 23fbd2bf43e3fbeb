//! metrics-server, reading each kubelet over TLS verified against the
//! cluster's CA (which signs the kubelets' serving certificates), as an
//! aggregated API the API server reaches through its front-proxy
//! certificate.
//!
//! Its image per minor, from its README's "Compatibility matrix": 0.5.x
//! for 1.8+, 0.6.x for 1.25+, 0.7.x for 1.27+, 0.8.x for 1.31+.

use super::{Definition, FromSource, fill};
use crate::minors::Minor;
use crate::render::NodeSpec;

pub struct MetricsServer;

impl Definition for MetricsServer {
    fn name(&self) -> &'static str {
        "metrics-server"
    }

    fn about(&self) -> &'static str {
        "resource metrics: `kubectl top`, autoscaling"
    }

    fn project(&self) -> &'static str {
        "kubernetes-sigs/metrics-server"
    }

    fn images(&self, row: &Minor) -> Vec<String> {
        let tag = match row.minor {
            ..=24 => "v0.5.2",
            25 | 26 => "v0.6.4",
            27..=30 => "v0.7.2",
            _ => "v0.8.0",
        };
        vec![format!(
            "registry.k8s.io/metrics-server/metrics-server:{tag}"
        )]
    }

    /// The module proxy serves v0.8.0 (and v0.9.0, which is no approved
    /// release): the image of every minor from 1.31 on.
    fn built_from_source(&self, row: &Minor) -> Vec<FromSource> {
        let image = self.images(row).remove(0);
        if !image.ends_with(":v0.8.0") {
            return Vec::new();
        }
        // Its Makefile stamps client-go's version package.
        let stamp = "k8s.io/client-go/pkg/version";
        vec![FromSource {
            image,
            module: "sigs.k8s.io/metrics-server",
            version: "v0.8.0",
            package: "sigs.k8s.io/metrics-server/cmd/metrics-server",
            ldflags: format!("-s -w -X {stamp}.gitVersion=v0.8.0 -X {stamp}.gitTreeState=clean"),
            // Its Dockerfile's USER.
            user: "65534:65534",
        }]
    }

    fn deployments(&self) -> &'static [(&'static str, &'static str)] {
        &[("kube-system", "metrics-server")]
    }

    fn manifest(&self, spec: &NodeSpec) -> String {
        fill(
            include_str!("metrics-server.yaml"),
            &[("IMAGE", &self.images(spec.row)[0])],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Addon, tests::tags};

    #[test]
    fn each_minor_gets_a_release_its_matrix_lists() {
        assert_eq!(tags(Addon::MetricsServer, 20), ["v0.5.2"]);
        assert_eq!(tags(Addon::MetricsServer, 27), ["v0.7.2"]);
        assert_eq!(tags(Addon::MetricsServer, 34), ["v0.8.0"]);
    }

    #[test]
    fn the_release_the_module_proxy_serves_is_built_for_the_minors_that_run_it() {
        let row = |minor| {
            crate::minors::MINORS
                .iter()
                .find(|r| r.minor == minor)
                .unwrap()
        };
        assert!(Addon::MetricsServer.built_from_source(row(30)).is_empty());
        let built = Addon::MetricsServer.built_from_source(row(37));
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].image, Addon::MetricsServer.images(row(37))[0]);
        assert_eq!(built[0].binary(), "metrics-server");
        assert_eq!(built[0].archive(), "metrics-server-v0.8.0.tar");
    }
}
