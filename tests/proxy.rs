//! The user's proxy: a profile made with `HTTPS_PROXY` set pulls a pod's
//! image through that proxy (Debian's tinyproxy, the test's own, in the
//! node), from a TLS registry of the test's own whose certificate a test CA
//! signed (`--ca-cert`), and the proxy's log shows the pull; `status` shows
//! the proxy, and the cluster's own addresses are exceptions. The proxy is
//! the host's tinyproxy binary copied into the node: both are Debian 12
//! here; a host whose C library is newer than the node's would need the
//! node's own build.

mod common;

use common::{Env, TestCa, TlsRegistry, block_on, json};

const IMAGE: &str = "berth.test/proxy:1";
const REGISTRY: &str = "registry.berth-test";
const TINYPROXY: &str = "/usr/bin/tinyproxy";

#[test]
fn image_pulls_go_through_the_users_proxy_with_its_private_ca() {
    let env = Env::new();
    let profile = "e2e-proxy";
    let _image = common::shared_busybox(IMAGE);
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let out = env
        .berth()
        .env("HTTPS_PROXY", "http://127.0.0.1:8888")
        .env("NO_PROXY", "corp.example")
        .args([
            "start",
            "-p",
            profile,
            "--ca-cert",
            ca_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = json(&env.ok(&["status", "-p", profile, "-o", "json"]));
    assert_eq!(
        status["proxy"]["https"], "http://127.0.0.1:8888",
        "{status}"
    );
    assert_eq!(status["proxy"]["no_proxy"][0], "corp.example", "{status}");
    let dropin = env.ok(&[
        "ssh",
        "-p",
        profile,
        "--",
        "cat",
        "/etc/systemd/system/containerd.service.d/20-proxy.conf",
    ]);
    assert!(
        dropin.contains("NO_PROXY=corp.example,localhost,127.0.0.1"),
        "{dropin}"
    );

    // The registry, at an address of the profile's network that its
    // certificate does not name: the nodes reach it by the name.
    let nodes = json(&env.ok(&["node", "list", "-p", profile, "-o", "json"]));
    let (subnet, _) = nodes[0]["ip"].as_str().unwrap().rsplit_once('.').unwrap();
    let ip = format!("{subnet}.250");
    let (server, key) = ca.server(REGISTRY);
    let _registry = TlsRegistry::start(env.names(profile).network(), &ip, &server, &key, IMAGE);

    // The proxy in the node, on its loopback, where HTTPS_PROXY points
    // (not in /tmp: a tmpfs, which the engine's upload does not reach).
    let config = "Port 8888\nListen 127.0.0.1\nTimeout 60\nLogFile \"/var/log/tinyproxy.log\"\n\
                  LogLevel Info\nMaxClients 10\nAllow 127.0.0.1\nConnectPort 5000\n";
    let binary = std::fs::read(TINYPROXY).expect("tinyproxy-bin is installed by scripts/setup");
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content, mode) in [
        (
            "usr/local/lib/berth-test/tinyproxy",
            binary.as_slice(),
            0o755,
        ),
        (
            "usr/local/lib/berth-test/tinyproxy.conf",
            config.as_bytes(),
            0o644,
        ),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        tar.append_data(&mut header, path, content).unwrap();
    }
    let node = env.names(profile).container(profile);
    block_on(async {
        let docker = berth_engine::Docker::connect().await.unwrap();
        docker
            .upload(&node, tar.into_inner().unwrap())
            .await
            .unwrap();
    });
    let start = format!(
        "echo '{ip} {REGISTRY}' >> /etc/hosts && \
         setsid nohup /usr/local/lib/berth-test/tinyproxy -d -c /usr/local/lib/berth-test/tinyproxy.conf \
         >/var/log/tinyproxy.out 2>&1 < /dev/null &"
    );
    env.ok(&["ssh", "-p", profile, "--", "sh", "-c", &start]);

    env.apply(
        profile,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: pulled}}\nspec:\n  \
             terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, \
             image: {REGISTRY}:5000/app:1, imagePullPolicy: Always, command: [sleep, \"3600\"]}}\n"
        ),
    );
    env.wait_ready(profile, "pulled");
    let log = env.ok(&["ssh", "-p", profile, "--", "cat", "/var/log/tinyproxy.log"]);
    assert!(
        log.contains(&format!("CONNECT {REGISTRY}:5000")),
        "the pull did not go through the proxy:\n{log}"
    );
}

#[test]
fn a_proxy_that_is_no_url_is_refused_and_changes_nothing() {
    let env = Env::new();
    for (flag, value) in [("--proxy", "ftp://x:21"), ("--proxy", "http://a b")] {
        let (code, _, stderr) = env.run(&["start", "-p", "bad", flag, value]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("is not a URL such as http://"), "{stderr}");
    }
    let out = env
        .berth()
        .env("HTTP_PROXY", "http://x\"y:1")
        .args(["start", "-p", "bad"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(env.leftovers("bad"), Vec::<String>::new());
}
