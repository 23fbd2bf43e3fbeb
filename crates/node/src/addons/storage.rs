//! The default StorageClass `standard` and its provisioner: a script over
//! the cluster's own kubectl on every node, so it needs no image.

use super::{Definition, fill};
use crate::minors::Minor;
use crate::render::{API_PORT, K8S_DIR, NodeFile, NodeSpec, enabled_unit, file};

/// The provisioner's name in StorageClasses, and on the volumes it makes.
pub const STORAGE_PROVISIONER: &str = "io.berth/local-path";
/// Where a node keeps the volumes provisioned on it: in its `/var` volume,
/// so they live as long as the node.
pub const STORAGE_ROOT: &str = "/var/lib/berth/storage";
/// The provisioner's identity, which the manifest's RBAC names.
pub const STORAGE_USER: &str = "berth:storage-provisioner";
/// The provisioner's unit, on every node.
pub const STORAGE_UNIT: &str = "berth-storage";
pub(crate) const STORAGE_SCRIPT: &str = "/usr/local/lib/berth/storage-provisioner";

pub struct Storage;

impl Definition for Storage {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn about(&self) -> &'static str {
        "the default StorageClass `standard` and its provisioner"
    }

    fn project(&self) -> &'static str {
        "berth (a script, no image)"
    }

    fn by_default(&self) -> bool {
        true
    }

    fn images(&self, _: &Minor) -> Vec<String> {
        Vec::new()
    }

    fn deployments(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    fn manifest(&self, _: &NodeSpec) -> String {
        fill(
            include_str!("storage.yaml"),
            &[("PROVISIONER", STORAGE_PROVISIONER), ("USER", STORAGE_USER)],
        )
    }

    /// Every node's provisioner, as a unit that follows the API from boot
    /// on and never holds up a start.
    fn node_files(&self, spec: &NodeSpec) -> Vec<NodeFile> {
        let pki = format!("{K8S_DIR}/pki");
        let script = crate::follow::with_library(
            include_str!("storage-provisioner.sh"),
            &format!("{}:{API_PORT}", spec.api_ip),
            &format!("{pki}/ca.crt"),
            &format!("{pki}/storage-provisioner.crt"),
            &format!("{pki}/storage-provisioner.key"),
        )
        .replace("@PROVISIONER@", STORAGE_PROVISIONER)
        .replace("@ROOT@", STORAGE_ROOT)
        .replace(
            "@KUBECTL@",
            &format!("{}/kubectl", berth_engine::BINARIES_MOUNT),
        )
        .replace("@KUBECONFIG@", &format!("{K8S_DIR}/storage.conf"));
        let unit = format!(
            "# Rendered by berth.
[Unit]
Description=Storage provisioner of the StorageClass standard
After=kubelet.service

[Service]
# It must never slow the components a start waits for: anything it does
# while the nodes boot (even waiting for the API server's port) cost a
# 3-node start half a second, measured with scripts/bench-compare; a claim
# made at once waits these seconds more.
ExecStartPre=/bin/sleep 8
ExecStart={STORAGE_SCRIPT} {node}
Restart=always
RestartSec=2
Nice=10

[Install]
WantedBy=multi-user.target
",
            node = spec.node
        );
        let mut files = vec![file(STORAGE_SCRIPT, script, 0o755)];
        files.extend(enabled_unit(STORAGE_UNIT, unit));
        files
    }

    fn units(&self) -> &'static [&'static str] {
        &[STORAGE_UNIT]
    }
}
