//! One cluster over several Docker engines of one Swarm: engines of the
//! test's own, each in a network namespace with an address of its own,
//! joined into a Swarm by the test, the cluster's nodes placed over them
//! on the Swarm's overlay network.

mod common;

use common::ns_engine::NsEngine;
use common::{Env, json};

/// `count` engines, of one Swarm the test makes when `joined`, each
/// holding this machine's node image, and a test environment that reaches
/// them; `None`, said, where this machine cannot make them.
fn swarm_of(count: usize, joined: bool, what: &str) -> Option<(Vec<NsEngine>, Env)> {
    if let Err(why) = NsEngine::possible() {
        common::skipped(&format!("tests/swarm.rs ({what})"), &why);
        return None;
    }
    // dockerd takes half a minute to start here: all at once.
    let engines: Vec<NsEngine> = std::thread::scope(|s| {
        let started: Vec<_> = (0..count).map(|_| s.spawn(NsEngine::start)).collect();
        started.into_iter().map(|t| t.join().unwrap()).collect()
    });
    if joined {
        NsEngine::swarm(&engines.iter().collect::<Vec<_>>());
    }
    let env = Env::new();
    let image = env.ok(&["node-image", "build"]);
    for engine in &engines {
        engine.load(image.trim());
    }
    // The first engine is the one berth finds; the TLS variables serve
    // every engine named with --engine.
    env.use_engine(engines[0].vars());
    Some((engines, env))
}

/// A pod `name` on node `node` serving `page` on 8080, labelled app=web.
fn web_pod(name: &str, node: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: web}}}}\nspec:\n  nodeName: {node}\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    imagePullPolicy: Never\n    \
         command: [sh, -c, \"mkdir -p /w && echo {name} > /w/index.html && httpd -f -p 8080 -h /w\"]\n---\n"
    )
}

#[test]
fn a_cluster_spread_over_two_engines_of_a_swarm_works_as_one_on_one() {
    let Some((engines, env)) = swarm_of(2, false, "two engines") else {
        return;
    };
    let (a, b) = (&engines[0], &engines[1]);
    let (host_a, host_b) = (a.host(), b.host());
    let spread = ["--engine", host_a.as_str(), "--engine", host_b.as_str()];

    // Engines in no Swarm are refused with how to make one; berth makes it
    // when asked, once.
    let (code, _, stderr) = env.run(&[&["start", "-p", "big"][..], &spread].concat());
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&format!("the engine at {host_a} is in no Docker Swarm"))
            && stderr.contains("berth engines join"),
        "{stderr}"
    );
    assert!(a.leftovers().is_empty() && b.leftovers().is_empty());
    let (code, _, said) = env.run(&["engines", "join", "--engine", &host_a, "--engine", &host_a]);
    assert_eq!(code, 3, "{said}");
    assert!(said.contains("named twice"), "{said}");
    // Several engines are for a new cluster's start and for joining; a
    // forward over ssh is for one engine.
    let (code, _, said) = env.run(&[&["node-image", "build"][..], &spread].concat());
    assert_eq!(code, 2, "{said}");
    assert!(
        said.contains("several engines (--engine) are for `berth start`"),
        "{said}"
    );
    let (code, _, said) =
        env.run(&[&["start", "-p", "big", "--ssh-forward"][..], &spread].concat());
    assert_eq!(code, 2, "{said}");
    assert!(
        said.contains("--ssh-forward is for a cluster on one engine"),
        "{said}"
    );
    let (_, _, said) = env.run(&[&["engines", "join"][..], &spread].concat());
    assert!(
        said.contains(&format!("{host_b} joined the Swarm of {host_a}")),
        "{said}"
    );
    let (_, _, said) = env.run(&[&["engines", "join"][..], &spread].concat());
    assert!(said.contains("one Swarm already"), "{said}");

    // One engine named twice is not two.
    let twice = [
        "start", "-p", "big", "--engine", &host_a, "--engine", &host_a,
    ];
    let (code, _, stderr) = env.run(&twice);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("is named twice") && stderr.contains("swarm init"),
        "{stderr}"
    );
    assert!(a.leftovers().is_empty(), "{:?}", a.leftovers());

    // The control plane and the second worker on the first engine, the
    // first worker on the second.
    env.ok(&[&["start", "-p", "big", "--nodes", "3"][..], &spread].concat());
    let names = env.names("big");
    let on = |engine: &NsEngine, node: &str| {
        engine
            .resources()
            .contains(&format!("container {}", names.container(node)))
    };
    assert!(on(a, "big") && on(b, "big-m02") && on(a, "big-m03"));
    assert!(!on(a, "big-m02") && !on(b, "big"));
    let nodes = json(&env.ok(&["node", "list", "-p", "big", "-o", "json"]));
    let node = |name: &str| {
        let all = nodes.as_array().unwrap();
        all.iter().find(|n| n["name"] == name).unwrap().clone()
    };
    assert_eq!(node("big-m02")["engine"], host_b.as_str());
    assert_eq!(node("big")["engine"], host_a.as_str());
    let status = env.ok(&["status", "-p", "big"]);
    let worker_ip = node("big-m02")["ip"].as_str().unwrap().to_string();
    assert!(
        status.contains(&format!("engines:     {host_a}, {host_b}"))
            && status.contains(&format!("big-m02 (worker, {worker_ip}, on {host_b})")),
        "{status}"
    );
    let listed = env.ok(&["profile", "list"]);
    assert!(
        listed.contains("Running") && listed.contains("(on 2 engines)"),
        "{listed}"
    );

    // An image loaded reaches the nodes of both engines; pods on each
    // reach each other, a Service and DNS across the overlay, with
    // packets larger than its MTU.
    let tag = "berth-test/busybox:swarm";
    // Built on the first engine, as the cluster's user would there.
    let busybox = common::shared_busybox(tag);
    a.load(tag);
    drop(busybox);
    env.ok(&["image", "load", "-p", "big", tag]);
    let manifest =
        web_pod("on-a", "big", tag) + &web_pod("on-b", "big-m02", tag) + common::WEB_SERVICE;
    env.apply("big", &manifest);
    env.wait_ready("big", "on-a");
    env.wait_ready("big", "on-b");
    let across = |from: &str, to: &str| {
        let ip = env.kubectl("big", &["get", "pod", to, "-o", "jsonpath={.status.podIP}"]);
        common::eventually(std::time::Duration::from_secs(30), || {
            env.get_from_pod("big", from, &format!("{ip}:8080"))
                .and_then(|page| match page == to {
                    true => Ok(()),
                    false => Err(page),
                })
        });
    };
    across("on-a", "on-b");
    across("on-b", "on-a");
    common::eventually(std::time::Duration::from_secs(30), || {
        let pages: Vec<String> = (0..8)
            .map(|_| env.get_from_pod("big", "on-b", "web.default.svc.cluster.local:80"))
            .collect::<Result<_, _>>()?;
        match pages.iter().any(|p| p == "on-a") && pages.iter().any(|p| p == "on-b") {
            true => Ok(()),
            false => Err(format!("the Service answered only {pages:?}")),
        }
    });
    let big = "i=0; while [ $i -lt 4000 ]; do echo line $i of a page larger than a packet; i=$((i+1)); done > /w/big.html; wc -c < /w/big.html";
    let size = env.kubectl("big", &["exec", "on-b", "--", "sh", "-c", big]);
    let ip = env.kubectl(
        "big",
        &["get", "pod", "on-b", "-o", "jsonpath={.status.podIP}"],
    );
    let fetch = format!(
        "printf 'GET /big.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip}:8080 | grep -c 'of a page'"
    );
    let lines = env.kubectl("big", &["exec", "on-a", "--", "sh", "-c", &fetch]);
    assert_eq!(
        lines.trim(),
        "4000",
        "a page of {} bytes came short",
        size.trim()
    );

    // Paused and thawed on both engines at once.
    env.ok(&["pause", "-p", "big"]);
    for engine in [a, b] {
        let paused = engine
            .api(
                "GET",
                "/containers/json?filters=%7B%22status%22%3A%5B%22paused%22%5D%7D",
            )
            .unwrap();
        assert!(!json(&paused).as_array().unwrap().is_empty(), "{paused}");
    }
    env.ok(&["unpause", "-p", "big"]);
    across("on-b", "on-a");

    // Stopped and started on both engines, it serves again.
    env.ok(&["stop", "-p", "big"]);
    for engine in [a, b] {
        let running = engine.api("GET", "/containers/json").unwrap();
        assert_eq!(json(&running).as_array().unwrap().len(), 0, "{running}");
    }
    env.ok(&["start", "-p", "big"]);
    env.wait_ready("big", "on-b");
    across("on-a", "on-b");

    // A node added on the second engine joins there; an engine that is
    // not the cluster's is refused.
    let (code, _, stderr) = env.run(&[
        "node",
        "add",
        "-p",
        "big",
        "--engine",
        "tcp://10.255.255.1:2376",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is not one of the engines of profile big"),
        "{stderr}"
    );
    let added = env.ok(&["node", "add", "-p", "big", "--engine", &host_b]);
    assert_eq!(added.trim(), "big-m04");
    assert!(on(b, "big-m04") && !on(a, "big-m04"));
    let nodes = json(&env.ok(&["node", "list", "-p", "big", "-o", "json"]));
    let added = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "big-m04")
        .unwrap();
    assert_eq!(added["engine"], host_b.as_str());
    let ready = env.kubectl(
        "big",
        &[
            "get",
            "node",
            "big-m04",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    assert_eq!(ready, "True");
    // And deleted there, drained through the API.
    env.ok(&["node", "delete", "-p", "big", "big-m04"]);
    assert!(!on(b, "big-m04"));

    // Delete leaves nothing on either engine.
    env.ok(&["delete", "-p", "big"]);
    assert!(a.leftovers().is_empty(), "{:?}", a.leftovers());
    assert!(b.leftovers().is_empty(), "{:?}", b.leftovers());
}

/// A Deployment `web` of 3 pods of `image`, whose pods leave a node that
/// is lost 5 s after it is found so (300 s by default).
fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 3\n  \
         selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      \
         terminationGracePeriodSeconds: 1\n      tolerations:\n      \
         - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}}\n      \
         - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5}}\n      \
         containers:\n      - {{name: c, image: {image}, imagePullPolicy: Never, command: [sleep, \"3600\"]}}\n"
    )
}

#[test]
fn three_control_planes_on_three_engines_outlive_the_loss_of_one_engine() {
    let Some((mut engines, env)) = swarm_of(3, true, "three engines") else {
        return;
    };
    // The lost engine's nodes die with it; that is not a crash.
    env.allow_restarts();
    let hosts: Vec<String> = engines.iter().map(NsEngine::host).collect();
    let mut start = vec!["start", "-p", "ha", "--control-planes", "3"];
    for host in &hosts {
        start.extend(["--engine", host.as_str()]);
    }
    env.ok(&start);
    let names = env.names("ha");
    for (engine, node) in engines.iter().zip(["ha", "ha-m02", "ha-m03"]) {
        let container = format!("container {}", names.container(node));
        assert!(
            engine.resources().contains(&container),
            "{node} is not on its engine"
        );
    }
    let tag = "berth-test/busybox:swarm-ha";
    let busybox = common::shared_busybox(tag);
    engines[0].load(tag);
    drop(busybox);
    env.ok(&["image", "load", "-p", "ha", tag]);
    env.apply("ha", &deployment(tag));
    env.kubectl("ha", &["rollout", "status", "deploy/web", "--timeout=120s"]);

    // The third engine goes, with its control plane and etcd member.
    engines[2].stop_daemon();
    let lost = names.container("ha-m03");

    // Two of three etcd members hold the cluster: the API answers through
    // the load balancer, and the Deployment's pods move off the lost node.
    common::eventually(std::time::Duration::from_secs(240), || {
        let (code, out, err) = env.run(&[
            "kubectl", "-p", "ha", "--", "get", "pods", "-l", "app=web", "-o",
            "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ]);
        let serving: Vec<&str> = out
            .lines()
            .filter(|l| l.ends_with("Running ") && !l.starts_with("ha-m03 "))
            .collect();
        match code == 0 && serving.len() == 3 {
            true => Ok(()),
            false => Err(format!("{out}{err}")),
        }
    });

    // status names the engine that does not answer and its node, and
    // still reads the others.
    let (code, out, _) = env.run(&["status", "-p", "ha"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!("not answering: {}", hosts[2]))
            && out.contains("container:   Unreachable")
            && out.contains("apiserver:   ready"),
        "{out}"
    );

    // delete removes what the engines that answer hold, and says what is
    // left on the one that does not.
    let (code, _, stderr) = env.run(&["delete", "-p", "ha"]);
    assert_eq!(code, 0, "{stderr}");
    let network = names.network();
    assert!(
        stderr.contains(&format!("the engine at {} did not answer", hosts[2]))
            && stderr.contains(&lost)
            && stderr.contains(&format!("the Swarm's network {network}")),
        "{stderr}"
    );
    // Only the network the Swarm keeps for the lost node, as said.
    for engine in &engines[..2] {
        let left = engine.leftovers();
        assert!(
            left.iter().all(|r| *r == format!("network {network}")),
            "{left:?}"
        );
    }
    // Back, the engine holds what delete named.
    engines[2].start_daemon();
    assert!(
        engines[2]
            .leftovers()
            .contains(&format!("container {lost}")),
        "{:?}",
        engines[2].leftovers()
    );
}
