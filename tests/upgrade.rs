//! `berth upgrade` against the real engine: a two-node cluster on the
//! minor before the tested one is taken to the tested version, control
//! plane first, then the worker; its workloads keep running where they
//! have somewhere to go, its data and images stay, and every part then
//! runs the new version (API server, kubelets, etcd's cluster version,
//! CoreDNS). An upgrade cut by Ctrl-C says where it stopped and the same
//! command carries it on; a downgrade, a skipped minor and a second
//! upgrade to the same version are refused and change nothing.

mod common;

use std::time::Duration;

use common::{Env, eventually, json, shared_busybox};

/// The version the cluster starts on: `BERTH_TEST_UPGRADE_FROM` (which
/// scripts/test sets and builds beside the tests), else v1.36.3; `None`
/// when that is not the minor before the tested version.
fn from_version(to: &berth_core::binaries::Version) -> Option<String> {
    let from = std::env::var("BERTH_TEST_UPGRADE_FROM").unwrap_or_else(|_| "v1.36.3".into());
    let parsed: berth_core::binaries::Version = from.parse().unwrap();
    (parsed.minor + 1 == to.minor).then_some(from)
}

/// Builds `version` into the cache unless there (scripts/test starts the
/// build beside the tests; berth's build lock makes this wait for it).
fn cache(version: &str) {
    let toolchain = std::process::Command::new("scripts/go-toolchain")
        .output()
        .unwrap();
    assert!(toolchain.status.success(), "scripts/go-toolchain failed");
    let dir = String::from_utf8(toolchain.stdout).unwrap();
    let path = format!(
        "{}:{}",
        dir.trim(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = common::berth()
        .env("PATH", path)
        .args(["cache", "build", version])
        .timeout(Duration::from_secs(3600))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "berth cache build {version}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A pod no controller makes again, with a marker on a persistent volume,
/// and a Deployment `web` of two replicas with a disruption budget, served
/// as a LoadBalancer Service on the host's `port`.
fn workloads(image: &str, port: u16) -> String {
    let script = "[ -f /data/marker ] || echo before > /data/marker; sleep 3600";
    format!(
        r#"{}---
{}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web}}
spec:
  minAvailable: 1
  selector: {{matchLabels: {{app: web}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: {port}, targetPort: 8080}}]
"#,
        common::claim_and_writer(image, "10Mi", script, None),
        common::web_deployment(image, 2)
    )
}

fn ready_replicas(env: &Env) -> String {
    env.kubectl(
        "up",
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
    )
}

/// Each of `web`'s pods as "name node uid".
fn web_pods(env: &Env) -> Vec<String> {
    let out = env.kubectl(
        "up",
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.uid}{"\n"}{end}"#,
        ],
    );
    out.lines().map(str::to_string).collect()
}

fn kubelet_versions(env: &Env) -> String {
    env.kubectl(
        "up",
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.nodeInfo.kubeletVersion}",
        ],
    )
}

/// etcd's `/version` in control plane `node`: its server's and its
/// cluster's version.
fn etcd_version(env: &Env, profile: &str, node: &str) -> serde_json::Value {
    let out = env.ok(&[
        "ssh",
        "-p",
        profile,
        "--node",
        node,
        "--",
        "sh",
        "-c",
        "printf 'GET /version HTTP/1.0\r\n\r\n' | openssl s_client -quiet -connect 127.0.0.1:2379 \
         -CAfile /etc/kubernetes/pki/ca.crt -cert /etc/kubernetes/pki/apiserver-etcd-client.crt \
         -key /etc/kubernetes/pki/apiserver-etcd-client.key 2>/dev/null | tail -n 1",
    ]);
    json(&out)
}

/// The version etcd's cluster runs once every member runs `row`'s.
fn etcd_cluster_version(row: &berth_node::Minor) -> String {
    let minor: Vec<&str> = row.etcd.split('.').take(2).collect();
    format!("{}.0", minor.join("."))
}

fn profile_json(env: &Env) -> String {
    std::fs::read_to_string(env.berth_home().join("profiles/up/profile.json")).unwrap()
}

#[test]
fn a_cluster_is_upgraded_in_place_one_minor_with_its_workloads_and_data() {
    let to = common::k8s_version();
    let Some(from) = from_version(&to) else {
        common::skipped(
            "the upgrade test",
            &format!("BERTH_TEST_UPGRADE_FROM is not of the minor before {to}"),
        );
        return;
    };
    let from = from.as_str();
    cache(from);
    let to = to.to_string();
    let env = Env::new();
    let image = shared_busybox("berth-test/upgrade:1");
    env.ok(&[
        "start",
        "-p",
        "up",
        "--nodes",
        "2",
        "--kubernetes-version",
        from,
    ]);
    env.ok(&["image", "load", "berth-test/upgrade:1", "-p", "up"]);
    let port = common::free_port();
    env.apply("up", &workloads("berth-test/upgrade:1", port));
    env.wait_ready("up", "writer");
    eventually(Duration::from_secs(120), || {
        let ready = ready_replicas(&env);
        (ready == "2")
            .then_some(())
            .ok_or(format!("ready: {ready:?}"))
    });
    assert_eq!(kubelet_versions(&env), format!("{from} {from}"));

    // Refused before anything changes: a skipped minor (from the
    // profile's version to one two minors on), a downgrade, a version
    // berth has no row for; start with another version names `upgrade`.
    let saved = profile_json(&env);
    let skipped = format!(
        "v1.{}.0",
        to.parse::<berth_core::binaries::Version>().unwrap().minor + 1
    );
    for (version, says) in [
        (skipped.as_str(), "not supported"),
        ("v1.34.4", "older than"),
    ] {
        let (code, _, stderr) = env.run(&["upgrade", "-p", "up", "--kubernetes-version", version]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    let (code, _, stderr) = env.run(&["start", "-p", "up", "--kubernetes-version", &to]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("berth upgrade -p up"), "{stderr}");
    assert_eq!(
        profile_json(&env),
        saved,
        "a refused upgrade changed the profile"
    );

    // Cut while the control plane is made anew: it says where it stopped,
    // and the same command carries on. The worker's pods of `web` keep
    // running meanwhile (the control plane's move to the worker).
    let on_worker: Vec<String> = web_pods(&env)
        .into_iter()
        .filter(|p| p.contains(" up-m02 "))
        .collect();
    let mut cut = env
        .command(assert_cmd::cargo::cargo_bin("berth"))
        .args(["upgrade", "-p", "up", "--kubernetes-version", &to])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    {
        use std::io::BufRead;
        let stderr = std::io::BufReader::new(cut.stderr.take().unwrap());
        let mut lines = stderr.lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            said.push_str(&line);
            said.push('\n');
            if line.contains("Waiting for the API server") {
                unsafe { libc::kill(cut.id() as i32, libc::SIGINT) };
                break;
            }
        }
        for line in lines {
            said.push_str(&line.unwrap());
            said.push('\n');
        }
    }
    let status = cut.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(said.contains("the upgrade stopped half-way"), "{said}");
    assert!(
        said.contains(&format!("up runs {to}")) && said.contains(&format!("up-m02 runs {from}")),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "berth upgrade -p up --kubernetes-version {to}` carries on"
        )),
        "{said}"
    );
    let (_, stdout, _) = env.run(&["status", "-p", "up", "-o", "json"]);
    assert_eq!(json(&stdout)["upgrading"], to.as_str(), "{stdout}");
    let (code, _, stderr) = env.run(&["node", "add", "-p", "up"]);
    assert_eq!(
        code, 2,
        "a node was added in the middle of an upgrade: {stderr}"
    );

    eventually(Duration::from_secs(120), || {
        let (code, out, err) = env.run(&["kubectl", "-p", "up", "--", "get", "pods"]);
        (code == 0).then_some(()).ok_or(format!("{out}{err}"))
    });
    let now = web_pods(&env);
    for pod in &on_worker {
        assert!(now.contains(pod), "{pod} did not keep running: {now:?}");
    }

    let out = env.ok(&[
        "upgrade",
        "-p",
        "up",
        "--kubernetes-version",
        &to,
        "-o",
        "json",
    ]);
    let out = json(&out);
    assert_eq!(out["kubernetes_version"], to.as_str(), "{out}");
    assert_eq!(out["was"], from, "{out}");

    // Every part runs the new version, and no node is left cordoned (the
    // control plane drained by the cut run is uncordoned by the second).
    assert_eq!(kubelet_versions(&env), format!("{to} {to}"));
    let cordoned = env.kubectl(
        "up",
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].spec.unschedulable}",
        ],
    );
    assert_eq!(cordoned, "", "a node stayed cordoned");
    let version = json(&env.kubectl("up", &["version", "-o", "json"]));
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        to.as_str(),
        "{version}"
    );
    let etcd = etcd_version(&env, "up", "up");
    let row = common::k8s_row();
    assert_eq!(etcd["etcdserver"], row.etcd, "{etcd}");
    assert_eq!(etcd["etcdcluster"], etcd_cluster_version(row), "{etcd}");
    let listed = json(&env.ok(&["profile", "list", "-o", "json"]));
    assert_eq!(listed[0]["kubernetes_version"], to.as_str(), "{listed}");
    assert!(!profile_json(&env).contains("upgrading"));

    // Workloads, data and images are there.
    eventually(Duration::from_secs(120), || {
        let ready = ready_replicas(&env);
        (ready == "2")
            .then_some(())
            .ok_or(format!("ready: {ready:?}"))
    });
    env.wait_ready("up", "writer");
    eventually(Duration::from_secs(60), || {
        common::http_get(port, None).map(|_| ())
    });
    // Asked until its container is there: right after its node came back,
    // the pod's status may still be the Ready of before.
    eventually(Duration::from_secs(90), || {
        let (code, out, err) = env.run(&[
            "kubectl",
            "-p",
            "up",
            "--",
            "exec",
            "writer",
            "--",
            "cat",
            "/data/marker",
        ]);
        (code == 0 && out.trim() == "before")
            .then_some(())
            .ok_or(format!("{out}{err}"))
    });
    let images = env.ok(&["image", "ls", "-p", "up"]);
    assert!(images.contains("berth-test/upgrade:1"), "{images}");
    // CoreDNS runs the new minor's image and answers.
    let coredns = env.kubectl(
        "up",
        &[
            "-n",
            "kube-system",
            "get",
            "deployment",
            "coredns",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(coredns, row.coredns);
    let pods = web_pods(&env);
    let pod = pods[0].split(' ').next().unwrap();
    env.assert_resolves(
        "up",
        pod,
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    );

    // Upgraded already: refused, nothing changes.
    let saved = profile_json(&env);
    let (code, _, stderr) = env.run(&["upgrade", "-p", "up", "--kubernetes-version", &to]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("runs") && stderr.contains("already"),
        "{stderr}"
    );
    assert_eq!(profile_json(&env), saved);

    // Stop and start keep the new version.
    env.ok(&["stop", "-p", "up"]);
    env.ok(&["start", "-p", "up"]);
    assert_eq!(kubelet_versions(&env), format!("{to} {to}"));
    env.ok(&["delete", "-p", "up"]);
    assert!(env.leftovers("up").is_empty());
    drop(image);
}

/// Three control planes are upgraded one by one while the API answers
/// through the load balancer: each leaves it, hands etcd's leadership on
/// and comes back on the new version; etcd's cluster moves to the new
/// minor once every member runs it.
#[test]
fn three_control_planes_are_upgraded_while_the_api_answers() {
    let to = common::k8s_version();
    let Some(from) = from_version(&to) else {
        common::skipped(
            "the upgrade test of several control planes",
            &format!("BERTH_TEST_UPGRADE_FROM is not of the minor before {to}"),
        );
        return;
    };
    cache(&from);
    let to = to.to_string();
    let env = Env::new();
    env.ok(&[
        "start",
        "-p",
        "upha",
        "--control-planes",
        "3",
        "--kubernetes-version",
        &from,
    ]);

    // Asked every 200 ms from the start of the upgrade to its end: how
    // long each request took, whether it was answered, and what was said.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        let mut ask = env.command(assert_cmd::cargo::cargo_bin("berth"));
        ask.args(["kubectl", "-p", "upha", "--", "get", "--raw", "/readyz"]);
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let asked = std::time::Instant::now();
                let out = ask.output().unwrap();
                let said = String::from_utf8_lossy(&out.stderr).into_owned();
                answers.push((asked.elapsed(), out.status.success(), said));
                std::thread::sleep(Duration::from_millis(200));
            }
            answers
        })
    };
    env.ok(&["upgrade", "-p", "upha", "--kubernetes-version", &to]);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = poller.join().unwrap();

    // Never two refusals in a row, and few at all: the API stayed (a
    // request the load balancer had begun to a server as it left can be
    // cut; the next one goes elsewhere).
    let failed: Vec<&String> = answers.iter().filter(|a| !a.1).map(|a| &a.2).collect();
    let slowest = answers.iter().map(|a| a.0).max().unwrap_or_default();
    eprintln!(
        "upgrade of 3 control planes: {} of {} API requests failed, the slowest took {:.1} s: {failed:?}",
        failed.len(),
        answers.len(),
        slowest.as_secs_f64()
    );
    assert!(
        answers.len() >= 20,
        "the upgrade took {} polls",
        answers.len()
    );
    assert!(
        answers.windows(2).all(|w| w[0].1 || w[1].1),
        "the API refused twice in a row: {failed:?}"
    );
    assert!(failed.len() * 10 <= answers.len(), "{failed:?}");

    let row = common::k8s_row();
    for node in ["upha", "upha-m02", "upha-m03"] {
        let etcd = etcd_version(&env, "upha", node);
        assert_eq!(etcd["etcdserver"], row.etcd, "{node}: {etcd}");
        assert_eq!(
            etcd["etcdcluster"],
            etcd_cluster_version(row),
            "{node}: {etcd}"
        );
    }
    // Every member healthy, every API server behind the load balancer and
    // up in its checks (a server put back is checked within seconds).
    eventually(Duration::from_secs(30), || {
        let status = json(&env.ok(&["status", "-p", "upha", "-o", "json"]));
        let healthy = status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["etcd"]["healthy"] == true)
            .count();
        let backends = status["load_balancer"]["backends"].as_array().unwrap();
        let up = backends.iter().filter(|b| b["state"] == "UP").count();
        (healthy == 3 && up == 3)
            .then_some(())
            .ok_or(format!("{status}"))
    });
    let versions = env.kubectl(
        "upha",
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.nodeInfo.kubeletVersion}",
        ],
    );
    assert_eq!(versions, [to.as_str(); 3].join(" "));
}
