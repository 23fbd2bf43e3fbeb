//! A cluster's life on podman, through its Docker-compatible API: two
//! nodes, an image loaded from podman's own store, pods that reach each
//! other across nodes and a Service, DNS, stop and start, pause and
//! unpause, a snapshot saved and restored, a node added and deleted,
//! delete with nothing left in podman.
//!
//! A rootless podman on this cgroup v1 host is refused before anything
//! is made, with what to do.
//!
//! Ignored in a plain `cargo test`: scripts/test runs them with
//! `DOCKER_HOST` at podman's socket and `BERTH_TEST_ROOTLESS_PODMAN` at a
//! rootless one (`scripts/setup-podman` makes both), so that this file's
//! helpers and berth both talk to podman.

mod common;

use berth_engine::{Docker, Engine as _, Flavour};
use common::{Env, Guard, Resource, block_on, busybox_image, eventually, json};

const PROFILE: &str = "e2e-podman";
const IMAGE: &str = "berth.test/podman:1";

/// A pod on `node` serving its own name on 8080.
fn pinned_pod(name: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: web}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "mkdir -p /www && hostname > /www/index.html && httpd -f -p 8080 -h /www"]
"#
    )
}

/// Each pod reaches the other across nodes by its address, and the
/// Service (by its DNS name) reaches both.
fn network_works(env: &Env) -> Result<(), String> {
    let ip = |pod: &str| {
        env.kubectl(
            PROFILE,
            &["get", "pod", pod, "-o", "jsonpath={.status.podIP}"],
        )
    };
    for (from, to) in [("one", "two"), ("two", "one")] {
        let answer = env.get_from_pod(PROFILE, from, &format!("{} 8080", ip(to)))?;
        if answer != to {
            return Err(format!("{from} asked {to} and got {answer}"));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        seen.insert(env.get_from_pod(PROFILE, "one", "web.default.svc.cluster.local 80")?);
        if seen.len() == 2 {
            return Ok(());
        }
    }
    Err(format!("the Service reached only {seen:?}"))
}

fn wait_pods(env: &Env) {
    env.kubectl(
        PROFILE,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/one",
            "pod/two",
            "--timeout=180s",
        ],
    );
}

fn node_states(env: &Env) -> Vec<String> {
    let (_, out, _) = env.run(&["status", "-p", PROFILE, "-o", "json"]);
    json(&out)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["container"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
#[ignore = "run by scripts/test against podman's socket"]
fn a_cluster_lives_on_podman() {
    let engine = block_on(async { Docker::connect().await.unwrap() });
    assert_eq!(
        engine.flavour(),
        Flavour::Podman,
        "DOCKER_HOST must name podman's socket (scripts/setup-podman)"
    );
    block_on(busybox_image(&engine, IMAGE, &[], &[]));
    let _image = Guard(Resource::Image(IMAGE.into()));
    let env = Env::new();

    env.ok(&["start", "-p", PROFILE, "--nodes", "2", "--wait", "3m"]);
    let status = json(&env.ok(&["status", "-p", PROFILE, "-o", "json"]));
    assert_eq!(
        status["engine"]["host"],
        std::env::var("DOCKER_HOST").unwrap()
    );
    assert_eq!(node_states(&env), ["Running", "Running"]);
    // The same engine ID on every command, though podman's own changes
    // with every request: else each command after start would be refused.
    env.ok(&["profile", "list"]);

    // An image podman lacks is named in podman's terms, and nothing loads.
    let (code, _, stderr) = env.run(&["image", "load", "berth.test/absent:0", "-p", PROFILE]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("image berth.test/absent:0 is not in podman")
            && stderr.contains("`podman images`"),
        "{stderr}"
    );

    // From podman's store into both nodes.
    env.ok(&["image", "load", IMAGE, "-p", PROFILE]);
    let listed = json(&env.ok(&["image", "ls", "-p", PROFILE, "-o", "json"]));
    let holders = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == IMAGE)
        .map(|i| i["nodes"].as_array().unwrap().len());
    assert_eq!(holders, Some(2), "{listed}");

    let second = format!("{PROFILE}-m02");
    env.apply(PROFILE, &pinned_pod("one", PROFILE));
    env.apply(PROFILE, &pinned_pod("two", &second));
    env.apply(PROFILE, common::WEB_SERVICE);
    wait_pods(&env);
    eventually(std::time::Duration::from_secs(60), || network_works(&env));

    env.ok(&["stop", "-p", PROFILE]);
    assert_eq!(node_states(&env), ["Stopped", "Stopped"]);
    env.ok(&["start", "-p", PROFILE, "--wait", "3m"]);
    assert_eq!(node_states(&env), ["Running", "Running"]);
    wait_pods(&env);
    eventually(std::time::Duration::from_secs(60), || network_works(&env));

    env.ok(&["pause", "-p", PROFILE]);
    assert_eq!(node_states(&env), ["Paused", "Paused"]);
    env.ok(&["unpause", "-p", PROFILE]);
    assert_eq!(
        env.kubectl(PROFILE, &["get", "--raw", "/readyz"]).trim(),
        "ok"
    );
    assert_eq!(env.restarted_units(), Vec::<String>::new());

    // A snapshot as one file (podman archives a volume differently from
    // Docker): what changed after it is gone after restore, its pods back.
    let snapshot = env.home.path().join("podman.tar");
    let snapshot = snapshot.to_str().unwrap();
    env.ok(&["snapshot", "save", "-p", PROFILE, snapshot]);
    env.kubectl(
        PROFILE,
        &["create", "configmap", "after", "--from-literal=a=b"],
    );
    env.ok(&["snapshot", "restore", "-p", PROFILE, snapshot]);
    let configmaps = env.kubectl(PROFILE, &["get", "configmaps", "-o", "name"]);
    assert!(!configmaps.contains("configmap/after"), "{configmaps}");
    wait_pods(&env);

    let third = format!("{PROFILE}-m03");
    env.ok(&["node", "add", "-p", PROFILE]);
    assert_eq!(node_states(&env), ["Running", "Running", "Running"]);
    env.ok(&["node", "delete", "-p", PROFILE, &third]);
    assert_eq!(node_states(&env), ["Running", "Running"]);

    env.ok(&["delete", "-p", PROFILE]);
    assert_eq!(env.leftovers(PROFILE), Vec::<String>::new());
    // A second look, by podman's own listing of everything: nothing of
    // this home is left, whatever its labels say.
    let home = env.berth_home().display().to_string();
    let everything = block_on(async { engine.resources(&Vec::new()).await.unwrap() });
    let names = env.names(PROFILE);
    let ours: Vec<String> = everything
        .iter()
        .filter(|r| {
            r.labels.values().any(|v| *v == home) || r.name.starts_with(&names.container(PROFILE))
        })
        .map(ToString::to_string)
        .collect();
    assert_eq!(ours, Vec::<String>::new());
}

#[test]
#[ignore = "run by scripts/test against a rootless podman's socket"]
fn a_rootless_podman_on_cgroup_v1_is_refused_with_the_way_out() {
    let socket = std::env::var("BERTH_TEST_ROOTLESS_PODMAN")
        .expect("BERTH_TEST_ROOTLESS_PODMAN names a rootless podman's socket");
    let env = Env::new();
    let (code, _, stderr) = env.run(&["--engine", &socket, "start", "-p", PROFILE]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&format!("the engine at {socket} cannot run nodes"))
            && stderr.contains("rootless on a cgroup v1 host")
            && stderr.contains("Delegate=yes"),
        "{stderr}"
    );
    assert!(!env.berth_home().join("profiles").join(PROFILE).exists());
    let engine = block_on(async {
        let endpoint = berth_engine::discover::Endpoint {
            host: socket.clone(),
            tls: None,
            found: berth_engine::discover::Found::Flag,
        };
        Docker::connect_to(&endpoint).await.unwrap()
    });
    let everything = block_on(async { engine.resources(&Vec::new()).await.unwrap() });
    let made: Vec<String> = everything
        .iter()
        .filter(|r| r.labels.contains_key(berth_core::names::LABEL_BERTH))
        .map(ToString::to_string)
        .collect();
    assert_eq!(made, Vec::<String>::new());
}
