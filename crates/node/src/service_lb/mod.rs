//! LoadBalancer Services, built in: a controller per profile in a container
//! of its own on the host's network, made from the node image (nothing is
//! pulled). It forwards each port of a Service of type LoadBalancer from
//! the profile's address on the host to the Service's NodePort, and writes
//! that address into the Service's status. Why a container on the host's
//! network: docs/internals.md.

use std::net::Ipv4Addr;

use crate::render::{API_PORT, NodeFile, file};

/// The controller's identity, which its RBAC names.
pub const USER: &str = "berth:service-lb";
/// Where its files are in its container.
const DIR: &str = "/etc/berth/service-lb";
const SCRIPT: &str = "/etc/berth/service-lb/controller";

/// Its RBAC, applied with the addons by the first control plane.
pub fn manifest() -> String {
    include_str!("rbac.yaml").replace("${USER}", USER)
}

/// Where the first control plane keeps that manifest.
pub fn manifest_path() -> String {
    format!("{}/service-lb.yaml", crate::addons::ADDONS_DIR)
}

/// What its container runs.
pub fn entrypoint() -> [&'static str; 2] {
    ["/bin/bash", SCRIPT]
}

/// The controller's files: Services answer on `address` of the host,
/// forwarded to their NodePorts on the node at `target`; it reaches the
/// API server at `api_ip` with the cluster's CA and its own certificate.
pub fn files(
    address: Ipv4Addr,
    target: Ipv4Addr,
    api_ip: Ipv4Addr,
    ca: &str,
    cert: &str,
    key: &str,
) -> Vec<NodeFile> {
    let server = format!("{api_ip}:{API_PORT}");
    let kubeconfig = format!("{DIR}/kubeconfig");
    let script = crate::follow::with_library(
        include_str!("controller.sh"),
        &server,
        &format!("{DIR}/ca.crt"),
        &format!("{DIR}/client.crt"),
        &format!("{DIR}/client.key"),
    )
    .replace("@ADDRESS@", &address.to_string())
    .replace("@TARGET@", &target.to_string())
    .replace(
        "@KUBECTL@",
        &format!("{}/kubectl", berth_engine::BINARIES_MOUNT),
    )
    .replace("@KUBECONFIG@", &kubeconfig);
    vec![
        file(SCRIPT, script, 0o755),
        file(
            &kubeconfig,
            crate::render::kubeconfig(&format!("https://{server}"), USER, ca, cert, key),
            0o600,
        ),
        file(&format!("{DIR}/ca.crt"), ca.to_string(), 0o644),
        file(&format!("{DIR}/client.crt"), cert.to_string(), 0o644),
        file(&format!("{DIR}/client.key"), key.to_string(), 0o600),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_is_filled_in_and_may_do_only_what_it_needs() {
        let files = files(
            "127.0.0.1".parse().unwrap(),
            "172.30.0.2".parse().unwrap(),
            "172.30.0.2".parse().unwrap(),
            "CA",
            "CERT",
            "KEY",
        );
        let NodeFile::File { content, .. } = &files[0] else {
            panic!("the script first");
        };
        for placeholder in [
            "@ADDRESS@",
            "@TARGET@",
            "@KUBECTL@",
            "@KUBECONFIG@",
            "@FOLLOW@",
        ] {
            assert!(!content.contains(placeholder), "{placeholder} left");
        }
        assert!(content.contains("api_server=172.30.0.2:6443\n"));
        assert!(content.contains("address=127.0.0.1\n"));
        let path = std::env::temp_dir().join(format!("berth-lb-{}.sh", std::process::id()));
        std::fs::write(&path, content).unwrap();
        let checked = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(checked.status.success(), "{checked:?}");
        let rbac = manifest();
        assert!(!rbac.contains("${"));
        assert!(rbac.contains("resources: [services/status]\n  verbs: [patch]"));
    }
}
