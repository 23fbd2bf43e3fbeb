//! `--ca-cert`: a pod's image is pulled from a registry of the test's own
//! whose TLS certificate a private CA signed, which only that flag makes
//! the nodes trust; the node's system store (openssl) trusts it too.

mod common;

use std::time::Duration;

use berth_engine::{Docker, NodeContainer};
use common::{Env, Guard, Resource, block_on, eventually, free_port, json};

const IMAGE: &str = "berth.test/ca-certs:1";

/// A CA of the test's own.
struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

impl TestCa {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "berth test private CA");
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa { params, key, pem }
    }

    /// A server certificate for `ip` and its key.
    fn server(&self, ip: &str) -> (String, String) {
        let issuer = rcgen::Issuer::new(self.params.clone(), &self.key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![ip.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Debian's docker-registry in a container of the node image, its images
/// in the volume `volume`; `tls` serves HTTPS with that certificate and
/// key at `ip` on `network`, else plain HTTP published on 127.0.0.1:`port`
/// (where the host's engine pushes without TLS).
fn registry(
    name: &str,
    volume: &str,
    network: Option<(String, String)>,
    port: Option<u16>,
    tls: Option<(&str, &str)>,
) {
    let config = match tls {
        Some(_) => {
            "version: 0.1\nstorage: {filesystem: {rootdirectory: /var/lib/docker-registry}}\n\
                    http: {addr: ':5000', tls: {certificate: /etc/berth-test/tls.crt, key: /etc/berth-test/tls.key}}\n"
        }
        None => {
            "version: 0.1\nstorage: {filesystem: {rootdirectory: /var/lib/docker-registry}}\n\
                 http: {addr: ':5000'}\n"
        }
    };
    let mut files = vec![("etc/berth-test/config.yml", config.to_string())];
    if let Some((cert, key)) = tls {
        files.push(("etc/berth-test/tls.crt", cert.to_string()));
        files.push(("etc/berth-test/tls.key", key.to_string()));
    }
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, content.as_bytes())
            .unwrap();
    }
    let tar = tar.into_inner().unwrap();
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let image = berth_core::node_image::Context::embedded().image();
        let spec = NodeContainer {
            privilege: None,
            cgroup_v2: true,
            entrypoint: Some(
                [
                    "/usr/bin/docker-registry",
                    "serve",
                    "/etc/berth-test/config.yml",
                ]
                .map(String::from)
                .to_vec(),
            ),
            var_volume: Some(volume.to_string()),
            network,
            ports: port.map(|p| vec![(p, 5000)]).unwrap_or_default(),
            ..NodeContainer::helper(name.to_string(), &image, Default::default())
        };
        let id = docker.create_container(&spec).await.unwrap();
        docker.upload(&id, tar).await.unwrap();
        docker.start_container(&id).await.unwrap();
    });
}

/// Pushes IMAGE to the registry on 127.0.0.1:`port` as `app:1`.
fn push(port: u16) -> Guard {
    use futures_util::StreamExt as _;
    let name = format!("127.0.0.1:{port}/app");
    block_on(async {
        let api = bollard::Docker::connect_with_defaults().unwrap();
        let tag = bollard::query_parameters::TagImageOptions {
            repo: Some(name.clone()),
            tag: Some("1".into()),
        };
        api.tag_image(IMAGE, Some(tag)).await.unwrap();
        let options = bollard::query_parameters::PushImageOptions {
            tag: Some("1".into()),
            platform: None,
        };
        let anonymous = Some(bollard::auth::DockerCredentials::default());
        // The registry may still be starting.
        for attempt in 0.. {
            let mut progress = api.push_image(&name, Some(options.clone()), anonymous.clone());
            let mut failed = None;
            while let Some(step) = progress.next().await {
                match step {
                    Ok(step) if step.error_detail.is_none() => {}
                    other => failed = Some(format!("{other:?}")),
                }
            }
            match failed {
                None => break,
                Some(why) if attempt == 20 => panic!("push of {name}:1 failed: {why}"),
                Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    });
    Guard(Resource::Image(format!("{name}:1")))
}

#[test]
fn a_private_ca_given_with_ca_cert_is_trusted_by_pulls_and_the_system_store() {
    let env = Env::new();
    let profile = "e2e-ca";
    let _image = common::shared_busybox(IMAGE);
    let tag = std::process::id();
    let volume = format!("berth-test-ca-registry-{tag}");
    let _volume = Guard(Resource::Volume(volume.clone()));
    let plain = format!("berth-test-ca-registry-http-{tag}");
    let _plain = Guard(Resource::Container(plain.clone()));
    let secure = format!("berth-test-ca-registry-tls-{tag}");
    let _secure = Guard(Resource::Container(secure.clone()));

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
    let names = env.names(profile);
    let port = free_port();
    registry(&plain, &volume, None, Some(port), None);
    registry(
        &secure,
        &volume,
        Some((names.network(), ip.clone())),
        None,
        Some((&server, &key)),
    );
    let _pushed = push(port);

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
