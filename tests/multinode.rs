//! Clusters of several nodes against the real engine and Kubernetes
//! binaries: pod networking across nodes, Services over all of them, stop
//! and start, adding and removing nodes, and images loaded into every node.

mod common;

use std::time::Duration;

use berth_engine::{Command, Docker};
use common::{Env, Guard, Resource, block_on, busybox_image, eventually, json};

/// Three replicas, at most one per node, each serving its own name.
const SPREAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {matchLabels: {app: web}}
      containers:
      - name: web
        image: berth.test/multinode:1
        imagePullPolicy: Never
        command: [sh, -c, "mkdir -p /www && hostname > /www/index.html && httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: web-node-port}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
"#;

/// A pod pinned to `node` that prints the image's /marker and serves its
/// own name.
fn pinned_pod(name: &str, node: &str, image: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {image}
    imagePullPolicy: Never
    command: [sh, -c, "echo $(cat /marker); mkdir -p /www && hostname > /www/index.html && httpd -f -p 8080 -h /www"]
"#
    )
}

/// Runs pods (name, node) of berth.test/grow:1 and waits until they are
/// Ready.
fn run_pinned(env: &Env, profile: &str, pods: &[(&str, &str)]) {
    let mut wait = vec!["wait", "--for=condition=Ready", "--timeout=180s"];
    let names: Vec<String> = pods.iter().map(|(name, _)| format!("pod/{name}")).collect();
    for (name, node) in pods {
        env.apply(profile, &pinned_pod(name, node, "berth.test/grow:1"));
    }
    wait.extend(names.iter().map(String::as_str));
    env.kubectl(profile, &wait);
}

/// (name, IP, node) of every Running pod with the label app=web.
fn web_pods(env: &Env, profile: &str) -> Vec<(String, String, String)> {
    let pods = json(&env.kubectl(profile, &["get", "pods", "-l", "app=web", "-o", "json"]));
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|p| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&p["metadata"]["name"]),
                s(&p["status"]["podIP"]),
                s(&p["spec"]["nodeName"]),
            )
        })
        .collect()
}

/// One web pod on each of the three nodes; every pod reaches the pods on
/// the other nodes by IP; the Service reaches the pods on every node.
fn spread_network_works(env: &Env, profile: &str) -> Result<(), String> {
    let pods = web_pods(env, profile);
    let mut nodes: Vec<&str> = pods.iter().map(|p| p.2.as_str()).collect();
    nodes.sort();
    let want = [
        profile.to_string(),
        format!("{profile}-m02"),
        format!("{profile}-m03"),
    ];
    if nodes != want {
        return Err(format!("pods are not one per node: {pods:?}"));
    }
    for (from, _, from_node) in &pods {
        for (to, ip, to_node) in &pods {
            if from_node != to_node {
                let answer = env.get_from_pod(profile, from, &format!("{ip} 8080"))?;
                if answer != *to {
                    return Err(format!("{from} asked {to} at {ip} and got {answer}"));
                }
            }
        }
    }
    let service = env.kubectl(
        profile,
        &["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"],
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        seen.insert(env.get_from_pod(profile, &pods[0].0, &format!("{service} 80"))?);
        if seen.len() == 3 {
            return Ok(());
        }
    }
    Err(format!("the Service reached only {seen:?} of {pods:?}"))
}

/// The nodes that hold `image`, as `image ls` tells.
fn holders(env: &Env, profile: &str, image: &str) -> Vec<String> {
    let listed = json(&env.ok(&["image", "ls", "-p", profile, "-o", "json"]));
    listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == image)
        .map(|i| serde_json::from_value(i["nodes"].clone()).unwrap())
        .unwrap_or_default()
}

fn image(name: &str, marker: &str) -> Guard {
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        busybox_image(&docker, name, &[("marker", marker)], &[]).await;
    });
    Guard(Resource::Image(name.into()))
}

#[test]
fn three_nodes_network_across_nodes_and_keep_it_after_stop_and_start() {
    let env = Env::new();
    let profile = "e2e-three";
    let _image = image("berth.test/multinode:1", "one");
    let port = common::free_port();
    let ports = format!("{port}:30080");
    let preset = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/multinode.yaml");
    // A feature gate v1.34 to v1.37 know (GA and locked on from v1.35,
    // where setting it to its default is allowed): every component must
    // accept it.
    env.ok(&[
        "start",
        "-p",
        profile,
        "--config",
        preset.to_str().unwrap(),
        "--ports",
        &ports,
        "--feature-gates",
        "InPlacePodVerticalScaling=true",
        "--wait",
        "3m",
    ]);

    let nodes = json(&env.ok(&["node", "list", "-p", profile, "-o", "json"]));
    let roles: Vec<(&str, &str, &str)> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap(),
                n["role"].as_str().unwrap(),
                n["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("e2e-three", "control-plane", "Running"),
            ("e2e-three-m02", "worker", "Running"),
            ("e2e-three-m03", "worker", "Running"),
        ]
    );
    let ready = env.kubectl(
        profile,
        &[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.metadata.labels}{"\n"}{end}"#,
        ],
    );
    for line in ready.lines() {
        assert!(line.contains(" True "), "{ready}");
        let role = if line.starts_with("e2e-three ") {
            "node-role.kubernetes.io/control-plane"
        } else {
            "node-role.kubernetes.io/worker"
        };
        assert!(line.contains(role), "{ready}");
    }
    assert_eq!(ready.lines().count(), 3, "{ready}");
    let status = json(&env.ok(&["status", "-p", profile, "-o", "json"]));
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3, "{status}");
    let listed = json(&env.ok(&["profile", "list", "-o", "json"]));
    assert_eq!(listed[0]["nodes"], 3);

    // CoreDNS runs on the control plane, the one node that imported its
    // image; the workers booted without it.
    let coredns = common::k8s_row().coredns;
    assert_eq!(holders(&env, profile, coredns), ["e2e-three"]);
    eventually(Duration::from_secs(90), || {
        let on = env.kubectl(
            profile,
            &[
                "get",
                "pods",
                "-n",
                "kube-system",
                "-l",
                "k8s-app=kube-dns",
                "-o",
                r#"jsonpath={range .items[*]}{.spec.nodeName} {.status.phase}{"\n"}{end}"#,
            ],
        );
        (on.trim() == "e2e-three Running")
            .then_some(())
            .ok_or(format!("CoreDNS pods on: {on:?}"))
    });

    env.ok(&["image", "load", "-p", profile, "berth.test/multinode:1"]);
    env.apply(profile, &format!("{SPREAD}---\n{}", common::WEB_SERVICE));
    eventually(Duration::from_secs(180), || {
        spread_network_works(&env, profile)
    });
    // The real CoreDNS answers pods on every node: the cluster's names, a
    // Service's, and a name only the engine's DNS knows (another node's
    // container; absolute, as busybox's nslookup tries a short name only
    // with the search domains).
    let other = env.names(profile).container("e2e-three-m03");
    let web_ip = env.kubectl(
        profile,
        &["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"],
    );
    for (pod, _, _) in web_pods(&env, profile) {
        env.assert_resolves(
            profile,
            &pod,
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
        );
        env.assert_resolves(profile, &pod, "web.default.svc.cluster.local", &web_ip);
        env.assert_resolves(profile, &pod, &format!("{other}."), "172.30.");
    }
    // A worker's pods with the node's resolvers (dnsPolicy Default) resolve
    // the same through the worker's own address.
    let worker = "e2e-three-m02";
    env.resolver_pod(profile, "resolver", worker, "berth.test/multinode:1");
    env.assert_resolves(profile, "resolver", &other, "172.30.");
    // --ports: a NodePort reached from the host on 127.0.0.1.
    let names: Vec<String> = web_pods(&env, profile).into_iter().map(|p| p.0).collect();
    eventually(Duration::from_secs(60), || {
        let answer = common::http_get(port, None)?;
        names
            .contains(&answer)
            .then_some(())
            .ok_or(format!("127.0.0.1:{port} answered {answer}"))
    });

    // berth service: a local port forwarded through the API server.
    let mut service = env.spawn(&["service", "web", "-p", profile, "--url"]);
    let url = service.line();
    let port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a local URL: {url:?}"));
    for _ in 0..3 {
        let answer = common::http_get(port, None).unwrap();
        assert!(names.contains(&answer), "{url} answered {answer}");
    }
    drop(service);
    assert!(common::http_get(port, None).is_err(), "{url} still served");

    let all_nodes_are = |want: &str| {
        let nodes = json(&env.ok(&["node", "list", "-p", profile, "-o", "json"]));
        assert!(
            nodes
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["status"] == want),
            "not all {want}: {nodes}"
        );
    };
    env.ok(&["pause", "-p", profile]);
    all_nodes_are("Paused");
    env.ok(&["unpause", "-p", profile]);
    all_nodes_are("Running");
    env.ok(&["stop", "-p", profile]);
    all_nodes_are("Stopped");
    env.ok(&["start", "-p", profile, "--wait", "3m"]);
    eventually(Duration::from_secs(180), || {
        spread_network_works(&env, profile)
    });
    env.kubectl(
        profile,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/resolver",
            "--timeout=180s",
        ],
    );
    env.assert_resolves(profile, "resolver", &other, "172.30.");

    env.ok(&["delete", "-p", profile]);
    assert_eq!(env.leftovers(profile), Vec::<String>::new());
}

#[test]
fn nodes_are_added_and_deleted_and_images_load_into_each_of_them() {
    let env = Env::new();
    let profile = "e2e-grow";
    let first = image("berth.test/grow:1", "first build");
    env.ok(&["start", "-p", profile, "--wait", "3m"]);
    let added = env.ok(&["node", "add", "-p", profile, "--wait", "3m"]);
    assert_eq!(added.trim(), "e2e-grow-m02");
    let nodes = env.kubectl(profile, &["get", "nodes", "--no-headers"]);
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
    assert!(nodes.lines().all(|l| l.contains(" Ready ")), "{nodes}");
    // A worker runs no etcd: Debian's own unit is not enabled in the image.
    let worker = env.names(profile).container("e2e-grow-m02");
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let etcd = docker
            .exec(&worker, &Command::new(["pgrep", "-x", "etcd"]))
            .await
            .unwrap();
        assert_ne!(etcd.code, 0, "etcd runs on the worker: {}", etcd.stdout);
        let unit = docker
            .exec(
                &worker,
                &Command::new(["systemctl", "is-enabled", "etcd.service"]),
            )
            .await
            .unwrap();
        assert_eq!(unit.stdout.trim(), "disabled", "{unit:?}");
    });

    // Loaded into both nodes; a pod on each runs it and reaches the other.
    env.ok(&["image", "load", "-p", profile, "berth.test/grow:1"]);
    assert_eq!(
        holders(&env, profile, "berth.test/grow:1"),
        ["e2e-grow", "e2e-grow-m02"]
    );
    run_pinned(&env, profile, &[("a", "e2e-grow"), ("b", "e2e-grow-m02")]);
    let ip = |pod: &str| {
        env.kubectl(
            profile,
            &["get", "pod", pod, "-o", "jsonpath={.status.podIP}"],
        )
    };
    let (ip_a, ip_b) = (ip("a"), ip("b"));
    eventually(Duration::from_secs(60), || {
        let b = env.get_from_pod(profile, "a", &format!("{ip_b} 8080"))?;
        let a = env.get_from_pod(profile, "b", &format!("{ip_a} 8080"))?;
        (a == "a" && b == "b")
            .then_some(())
            .ok_or(format!("got {a} and {b}"))
    });
    assert!(env.kubectl(profile, &["logs", "b"]).contains("first build"));

    // The same tag built again replaces the image in the nodes.
    drop(first);
    let _second = image("berth.test/grow:1", "second build");
    env.ok(&["image", "load", "-p", profile, "berth.test/grow:1"]);
    env.kubectl(profile, &["delete", "pod", "b", "--wait=true"]);
    run_pinned(&env, profile, &[("b", "e2e-grow-m02")]);
    assert!(
        env.kubectl(profile, &["logs", "b"])
            .contains("second build")
    );

    // --node loads into that node only.
    let _only = image("berth.test/only:1", "only");
    env.ok(&[
        "image",
        "load",
        "-p",
        profile,
        "--node",
        "e2e-grow-m02",
        "berth.test/only:1",
    ]);
    assert_eq!(
        holders(&env, profile, "berth.test/only:1"),
        ["e2e-grow-m02"]
    );

    // The control plane cannot go; a worker goes entirely.
    let (code, _, stderr) = env.run(&["node", "delete", "-p", profile, "e2e-grow"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is the first control plane"), "{stderr}");
    env.ok(&["node", "delete", "-p", profile, "e2e-grow-m02"]);
    let nodes = env.kubectl(profile, &["get", "nodes", "--no-headers"]);
    assert_eq!(nodes.lines().count(), 1, "{nodes}");
    assert!(nodes.starts_with("e2e-grow "), "{nodes}");
    let left = env.leftovers(profile);
    assert!(
        !left.iter().any(|r| r.contains("m02")),
        "the node's container or volume is left: {left:?}"
    );
    let pod_b = env.run(&["kubectl", "-p", profile, "--", "get", "pod", "b"]);
    assert_ne!(pod_b.0, 0, "pod b outlived its node: {}", pod_b.1);
    assert_eq!(
        env.get_from_pod(profile, "a", &format!("{ip_a} 8080"))
            .unwrap(),
        "a"
    );

    env.ok(&["delete", "-p", profile]);
    assert_eq!(env.leftovers(profile), Vec::<String>::new());
}
