//! Cluster DNS: CoreDNS as kubeadm deploys it (its Service `kube-dns` at
//! the address every kubelet hands its pods), in the version kubeadm pairs
//! with the minor (the minors' table).

use super::{Definition, fill};
use crate::minors::Minor;
use crate::render::{CLUSTER_DNS, CONTROL_PLANE_LABEL, NodeSpec};

pub struct CoreDns;

impl Definition for CoreDns {
    fn name(&self) -> &'static str {
        "coredns"
    }

    fn about(&self) -> &'static str {
        "cluster DNS"
    }

    fn project(&self) -> &'static str {
        "coredns/coredns"
    }

    fn by_default(&self) -> bool {
        true
    }

    fn images(&self, row: &Minor) -> Vec<String> {
        vec![row.coredns.to_string()]
    }

    fn deployments(&self) -> &'static [(&'static str, &'static str)] {
        &[("kube-system", "coredns")]
    }

    fn manifest(&self, spec: &NodeSpec) -> String {
        fill(
            include_str!("coredns.yaml"),
            &[
                ("IMAGE", spec.row.coredns),
                ("CLUSTER_DNS", CLUSTER_DNS),
                ("CONTROL_PLANE_LABEL", CONTROL_PLANE_LABEL),
            ],
        )
    }

    /// Every kubelet names its address to its pods.
    fn every_node(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_serves_its_metrics_on_the_port_it_advertises() {
        let manifest = CoreDns.manifest(&crate::render::tests::spec(34));
        assert!(manifest.contains("prometheus :9153"));
        assert!(manifest.contains("containerPort: 9153"));
    }

    #[test]
    fn it_runs_only_where_its_image_is_imported() {
        let manifest = CoreDns.manifest(&crate::render::tests::spec(37));
        assert!(
            manifest.contains("- {key: berth.io/control-plane, operator: Exists}"),
            "{manifest}"
        );
    }
}
