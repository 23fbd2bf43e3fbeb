//! Several control planes against the real engine and Kubernetes binaries:
//! one etcd cluster, the API through the load balancer, the loss of a
//! control plane, its return, stop and start, and control planes added and
//! deleted.

mod common;

use std::time::{Duration, Instant};

use berth_engine::{Command, Docker};
use common::{Env, block_on, eventually, json};

const PROFILE: &str = "e2e-ha";

fn status(env: &Env) -> serde_json::Value {
    // Its exit code says what does not run, which some checks expect.
    let (_, stdout, stderr) = env.run(&["status", "-p", PROFILE, "-o", "json"]);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("status: {e}\n{stderr}"))
}

/// Healthy etcd members and leaders among the control planes, as `status`
/// shows them, and the load balancer's backends that are UP.
fn etcd_and_backends(env: &Env) -> (usize, usize, Vec<String>) {
    let status = status(env);
    let members: Vec<&serde_json::Value> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.get("etcd"))
        .collect();
    let healthy = members.iter().filter(|m| m["healthy"] == true).count();
    let leaders = members.iter().filter(|m| m["leader"] == true).count();
    let up = status["load_balancer"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["state"] == "UP")
        .map(|b| b["node"].as_str().unwrap().to_string())
        .collect();
    (healthy, leaders, up)
}

/// The members etcd itself lists, asked in control plane `via`.
fn etcd_members(env: &Env, via: &str) -> Vec<String> {
    let container = env.names(PROFILE).container(via);
    let out = block_on(async {
        let docker = Docker::connect().await.unwrap();
        let cmd = [
            "etcdctl",
            "--endpoints=https://127.0.0.1:2379",
            "--cacert=/etc/kubernetes/pki/ca.crt",
            "--cert=/etc/kubernetes/pki/apiserver-etcd-client.crt",
            "--key=/etc/kubernetes/pki/apiserver-etcd-client.key",
            "member",
            "list",
            "-w",
            "json",
        ];
        docker.exec(&container, &Command::new(cmd)).await.unwrap()
    });
    let list = json(&out.stdout);
    let mut names: Vec<String> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

fn all_healthy(env: &Env, control_planes: &[&str]) -> Result<(), String> {
    let (healthy, leaders, up) = etcd_and_backends(env);
    let n = control_planes.len();
    if healthy != n || leaders != 1 || up != control_planes {
        return Err(format!(
            "{healthy} healthy members, {leaders} leaders, backends up {up:?}"
        ));
    }
    Ok(())
}

/// The node whose component holds the kube-system lease `lease`.
fn lease_holder(env: &Env, lease: &str) -> String {
    let holder = env.kubectl(
        PROFILE,
        &[
            "-n",
            "kube-system",
            "get",
            "lease",
            lease,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    holder.split('_').next().unwrap_or_default().to_string()
}

/// Every node and the load balancer are in `state`, as `node list` says.
fn assert_all_nodes(env: &Env, state: &str) {
    let list = json(&env.ok(&["node", "list", "-p", PROFILE, "-o", "json"]));
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 5, "{list}");
    assert!(rows.iter().all(|r| r["status"] == state), "{list}");
}

fn api_ready(env: &Env) -> bool {
    let (code, _, _) = env.run(&[
        "kubectl",
        "-p",
        PROFILE,
        "--",
        "get",
        "--raw=/readyz",
        "--request-timeout=2s",
    ]);
    code == 0
}

#[test]
fn three_control_planes_survive_the_loss_of_one_and_change_their_members() {
    let env = Env::new();
    let m02 = format!("{PROFILE}-m02");
    let m03 = format!("{PROFILE}-m03");
    let m04 = format!("{PROFILE}-m04");
    let control_planes = [PROFILE, m02.as_str(), m03.as_str()];
    env.ok(&[
        "start",
        "-p",
        PROFILE,
        "--control-planes",
        "3",
        "--nodes",
        "4",
        "--wait",
        "4m",
    ]);

    // Every node Ready with its role; the API answers through the load
    // balancer, which alone publishes the API port.
    let nodes = env.kubectl(PROFILE, &["get", "nodes", "--no-headers"]);
    assert_eq!(nodes.matches(" Ready ").count(), 4, "{nodes}");
    assert_eq!(nodes.matches("control-plane").count(), 3, "{nodes}");
    assert!(
        nodes.contains(&format!("{m04} ")) && nodes.contains("worker"),
        "{nodes}"
    );
    assert_eq!(
        env.kubectl(PROFILE, &["get", "--raw", "/readyz"]).trim(),
        "ok"
    );
    let names = env.names(PROFILE);
    let server = json(&env.ok(&["status", "-p", PROFILE, "-o", "json"]))["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let published = |container: &str| {
        let info = block_on(async {
            let docker = Docker::connect().await.unwrap();
            docker.inspect_json(container).await.unwrap()
        });
        info["HostConfig"]["PortBindings"]["6443/tcp"][0]["HostPort"]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(
        published(&names.load_balancer()).map(|p| format!("https://127.0.0.1:{p}")),
        Some(server)
    );
    assert_eq!(published(&names.container(PROFILE)), None);
    // etcd has the three members, each healthy, one leader; the kubernetes
    // Service lists every API server.
    assert_eq!(etcd_members(&env, PROFILE), control_planes);
    eventually(Duration::from_secs(30), || {
        all_healthy(&env, &control_planes)
    });
    let endpoints = env.kubectl(
        PROFILE,
        &[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ],
    );
    assert_eq!(endpoints.split_whitespace().count(), 3, "{endpoints}");
    let list = json(&env.ok(&["node", "list", "-p", PROFILE, "-o", "json"]));
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|r| r["role"] == "load-balancer" && r["status"] == "Running"),
        "{list}"
    );
    env.kubectl(
        PROFILE,
        &["create", "configmap", "kept", "--from-literal=k=v"],
    );

    // The control plane whose controller manager leads goes away.
    let lost = lease_holder(&env, "kube-controller-manager");
    assert!(control_planes.contains(&lost.as_str()), "{lost}");
    let stopped = block_on(async {
        let docker = Docker::connect().await.unwrap();
        docker
            .stop_container(&names.container(&lost), 1)
            .await
            .unwrap();
        Instant::now()
    });
    while !api_ready(&env) {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "the API did not answer through the load balancer within 10 s of losing {lost}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Deleting another control plane now would leave etcd one healthy
    // member of two: refused, nothing changed.
    let other = control_planes
        .iter()
        .find(|n| **n != lost && **n != PROFILE)
        .unwrap();
    let (code, _, stderr) = env.run(&["node", "delete", "-p", PROFILE, other]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("majority"), "{stderr}");
    assert_eq!(etcd_members(&env, other).len(), 3);
    // The cluster goes on: a Deployment's pods run, and the leases move.
    // Its pods keep off the lost node, which Kubernetes takes for Ready
    // until its grace period (40 s) ends.
    env.apply(
        PROFILE,
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: after}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: after}}}}
  template:
    metadata: {{labels: {{app: after}}}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - {{key: kubernetes.io/hostname, operator: NotIn, values: [{lost}]}}
      containers:
      - {{name: pause, image: "berth.local/pause:1.0", imagePullPolicy: Never}}
"#
        ),
    );
    env.kubectl(
        PROFILE,
        &[
            "wait",
            "--for=condition=Available",
            "--timeout=120s",
            "deployment/after",
        ],
    );
    eventually(Duration::from_secs(60), || {
        let holders = [
            lease_holder(&env, "kube-controller-manager"),
            lease_holder(&env, "kube-scheduler"),
        ];
        if holders.contains(&lost) {
            return Err(format!("a lease is still held on {lost}: {holders:?}"));
        }
        Ok(())
    });
    // `start` brings it back: it rejoins, three healthy members again.
    env.ok(&["start", "-p", PROFILE, "--wait", "3m"]);
    eventually(Duration::from_secs(30), || {
        all_healthy(&env, &control_planes)
    });

    // A control plane deleted and one added, twice: first one that was
    // lost (its container stopped), then one that runs.
    for lost in [true, false] {
        if lost {
            block_on(async {
                let docker = Docker::connect().await.unwrap();
                docker
                    .stop_container(&names.container(&m03), 1)
                    .await
                    .unwrap();
            });
        }
        env.ok(&["node", "delete", "-p", PROFILE, &m03]);
        assert_eq!(etcd_members(&env, PROFILE), [PROFILE, m02.as_str()]);
        eventually(Duration::from_secs(20), || {
            all_healthy(&env, &[PROFILE, m02.as_str()])
        });
        let added = env.ok(&[
            "node",
            "add",
            "-p",
            PROFILE,
            "--control-plane",
            "--wait",
            "3m",
        ]);
        assert_eq!(added.trim(), m03);
        assert_eq!(etcd_members(&env, PROFILE), control_planes);
        eventually(Duration::from_secs(30), || {
            all_healthy(&env, &control_planes)
        });
    }
    let roles = env.kubectl(PROFILE, &["get", "node", &m03, "--no-headers"]);
    assert!(
        roles.contains("control-plane") && roles.contains(" Ready "),
        "{roles}"
    );
    // The first control plane holds the addons: it is never deleted.
    let (code, _, stderr) = env.run(&["node", "delete", "-p", PROFILE, PROFILE]);
    assert_eq!(code, 2, "{stderr}");

    // Paused and thawed with its load balancer.
    env.ok(&["pause", "-p", PROFILE]);
    assert_all_nodes(&env, "Paused");
    env.ok(&["unpause", "-p", PROFILE]);
    assert!(api_ready(&env));

    // Stopped and started twice: Ready, etcd whole, the data kept. The
    // first time one control plane boots seconds before the others, as an
    // engine may start them: its etcd member waits for them, nothing
    // crashes.
    for round in 0..2 {
        env.ok(&["stop", "-p", PROFILE]);
        assert_all_nodes(&env, "Stopped");
        if round == 0 {
            block_on(async {
                let docker = Docker::connect().await.unwrap();
                docker
                    .start_container(&names.container(&m03))
                    .await
                    .unwrap();
            });
            std::thread::sleep(Duration::from_secs(8));
        }
        env.ok(&["start", "-p", PROFILE, "--wait", "3m"]);
        eventually(Duration::from_secs(30), || {
            all_healthy(&env, &control_planes)
        });
    }
    assert_eq!(
        env.kubectl(
            PROFILE,
            &["get", "configmap", "kept", "-o", "jsonpath={.data.k}"]
        ),
        "v"
    );
    let nodes = env.kubectl(PROFILE, &["get", "nodes", "--no-headers"]);
    assert_eq!(nodes.matches(" Ready ").count(), 4, "{nodes}");
    // No component crashed through all of it (the lost node's were
    // stopped with it, not restarted).
    assert_eq!(env.restarted_units(), Vec::<String>::new());

    env.ok(&["delete", "-p", PROFILE]);
    assert_eq!(env.leftovers(PROFILE), Vec::<String>::new());
}

#[test]
fn control_plane_counts_that_etcd_gains_nothing_from_are_refused() {
    let env = Env::new();
    for (args, said) in [
        (&["--control-planes", "2"][..], "1, 3 or 5"),
        (
            &["--control-planes", "3", "--nodes", "2"][..],
            "fewer than the 3",
        ),
    ] {
        let mut all = vec!["start", "-p", "e2e-ha-count"];
        all.extend(args);
        let (code, _, stderr) = env.run(&all);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(said), "{stderr}");
        assert_eq!(env.leftovers("e2e-ha-count"), Vec::<String>::new());
    }
}
