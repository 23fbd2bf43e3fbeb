//! `--ca-cert`: a pod's image is pulled from a registry of the test's own
//! whose TLS certificate a private CA signed, which only that flag makes
//! the nodes trust; the node's system store (openssl) trusts it too.

mod common;

use std::time::Duration;

use common::{Env, TestCa, TlsRegistry, eventually, json};

const IMAGE: &str = "berth.test/ca-certs:1";

#[test]
fn a_private_ca_given_with_ca_cert_is_trusted_by_pulls_and_the_system_store() {
    let env = Env::new();
    let profile = "e2e-ca";
    let _image = common::shared_busybox(IMAGE);
    let ca = TestCa::new();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ca.crt");
    // Text around the PEM block, as in many a company's CA file.
    std::fs::write(&ca_file, format!("a private CA\n{}", ca.pem)).unwrap();
    env.ok(&[
        "start",
        "-p",
        profile,
        "--ca-cert",
        ca_file.to_str().unwrap(),
    ]);
    // The registry's address: one on the profile's subnet no node takes,
    // which its certificate names.
    let nodes = json(&env.ok(&["node", "list", "-p", profile, "-o", "json"]));
    let (subnet, _) = nodes[0]["ip"].as_str().unwrap().rsplit_once('.').unwrap();
    let ip = format!("{subnet}.250");
    let (server, key) = ca.server(&ip);
    let _registry = TlsRegistry::start(env.names(profile).network(), &ip, &server, &key, IMAGE);

    // The node's system store: openssl verifies the registry.
    let verify =
        format!("openssl s_client -connect {ip}:5000 -verify_return_error -brief </dev/null 2>&1");
    eventually(Duration::from_secs(30), || {
        let (code, out, err) = env.run(&["ssh", "-p", profile, "--", "sh", "-c", &verify]);
        (code == 0)
            .then_some(())
            .ok_or(format!("openssl in the node: {out}{err}"))
    });

    // containerd: a pod's image, pulled over TLS.
    env.apply(
        profile,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: pulled}}\nspec:\n  \
             terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {ip}:5000/app:1, \
             imagePullPolicy: Always, command: [sleep, \"3600\"]}}\n"
        ),
    );
    env.wait_ready(profile, "pulled");

    // The certificate is kept: a restart keeps the trust, and another one
    // is refused for the existing profile.
    let (code, _, stderr) = env.run(&[
        "start",
        "-p",
        profile,
        "--ca-cert",
        "/etc/ssl/certs/ca-certificates.crt",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--ca-cert"), "{stderr}");
}

#[test]
fn a_ca_cert_that_is_no_certificate_is_refused_and_changes_nothing() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-cert.pem");
    std::fs::write(&file, "hello\n").unwrap();
    for path in [file.to_str().unwrap(), "/nonexistent/ca.crt"] {
        let (code, _, stderr) = env.run(&["start", "-p", "bad", "--ca-cert", path]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(&format!("--ca-cert {path}")), "{stderr}");
        assert!(stderr.contains("PEM certificates"), "{stderr}");
    }
    assert_eq!(env.leftovers("bad"), Vec::<String>::new());
}
