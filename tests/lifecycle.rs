//! Single-node clusters against the real engine and Kubernetes binaries:
//! start, workloads, stop and start again, pause, unpause, delete, several
//! profiles side by side, and input that must be refused.

mod common;

use berth_engine::{Command, Docker};
use common::{Env, Guard, Resource, block_on, busybox_image, json};
use yaml_serde::Value;

const FOREIGN_KUBECONFIG: &str = r#"apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
    insecure-skip-tls-verify: true
    extensions:
    - name: vendor
      extension: {region: eu}
users:
- name: prod-sso
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: sso-login
      args: [token, --cluster, prod]
      env: [{name: PROFILE, value: ops}]
contexts:
- name: prod
  context: {cluster: prod, user: prod-sso, namespace: shop}
current-context: prod
extensions:
- name: editor
  extension: {theme: dark}
"#;

fn yaml(path: &std::path::Path) -> Value {
    yaml_serde::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn http_from_node(node: &str, ip: &str) -> String {
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let request = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | socat -t 5 - TCP:{ip}:80");
        docker
            .exec(node, &Command::new(["sh", "-c", request.as_str()]))
            .await
            .unwrap()
            .stdout
    })
}

fn wait_pod_ready(env: &Env, profile: &str) {
    env.kubectl(
        profile,
        &["wait", "--for=condition=Ready", "pod/web", "--timeout=180s"],
    );
}

#[test]
fn a_cluster_runs_pods_and_survives_stop_start_pause_and_unpause_then_delete_leaves_nothing() {
    let env = Env::new();
    std::fs::create_dir_all(env.kubeconfig.parent().unwrap()).unwrap();
    std::fs::write(&env.kubeconfig, FOREIGN_KUBECONFIG).unwrap();
    let foreign = yaml(&env.kubeconfig);

    env.ok(&["start", "-p", "e2e-a", "--wait", "3m"]);
    let nodes = env.kubectl("e2e-a", &["get", "nodes", "--no-headers"]);
    assert!(
        nodes.starts_with("e2e-a ") && nodes.contains(" Ready "),
        "{nodes}"
    );
    // What a first pod needs is there when start returns: the node's
    // not-ready taint lifted, the cluster CA published in `default`.
    let taints = env.kubectl(
        "e2e-a",
        &["get", "node", "e2e-a", "-o", "jsonpath={.spec.taints}"],
    );
    assert!(!taints.contains("node.kubernetes.io/not-ready"), "{taints}");
    let published = env.kubectl(
        "e2e-a",
        &[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ],
    );
    let ca = std::fs::read_to_string(env.berth_home().join("profiles/e2e-a/pki/ca.crt")).unwrap();
    assert_eq!(published.trim(), ca.trim());
    let config = yaml(&env.kubeconfig);
    assert_eq!(
        config["current-context"],
        env.names("e2e-a").context().as_str()
    );
    for (list, name) in [
        ("clusters", "prod"),
        ("users", "prod-sso"),
        ("contexts", "prod"),
    ] {
        let kept = config[list]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap();
        let original = foreign[list]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap();
        assert_eq!(kept, original, "{list}/{name} changed");
    }

    let _image = Guard(Resource::Image("berth.test/busybox:1".into()));
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        busybox_image(&docker, "berth.test/busybox:1", &[], &[]).await;
    });
    env.ok(&["image", "load", "berth.test/busybox:1", "-p", "e2e-a"]);
    env.berth()
        .args(["kubectl", "-p", "e2e-a", "--", "apply", "-f", "-"])
        .write_stdin(common::web_pod_and_service(
            "berth.test/busybox:1",
            "hello from berth",
        ))
        .assert()
        .success();
    wait_pod_ready(&env, "e2e-a");
    // Names outside the cluster resolve from pods with the node's resolvers:
    // the node's own container name is one that only the engine's DNS knows.
    let node_container = env.names("e2e-a").container("e2e-a");
    env.resolver_pod("e2e-a", "resolver", "e2e-a", "berth.test/busybox:1");
    env.assert_resolves("e2e-a", "resolver", &node_container, "172.30.");
    assert!(env.kubectl("e2e-a", &["logs", "web"]).contains("serving"));
    assert_eq!(
        env.kubectl("e2e-a", &["exec", "web", "--", "cat", "/www/index.html"])
            .trim(),
        "hello from berth"
    );
    let cluster_ip = env.kubectl(
        "e2e-a",
        &["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"],
    );
    assert!(
        http_from_node(&env.names("e2e-a").container("e2e-a"), &cluster_ip)
            .contains("hello from berth")
    );

    let status = json(&env.ok(&["status", "-p", "e2e-a", "-o", "json"]));
    assert_eq!(status["exit_code"], 0);
    let node = &status["nodes"][0];
    assert_eq!(
        (node["container"].as_str(), node["kubelet"].as_str()),
        (Some("Running"), Some("active"))
    );
    assert_eq!(node["role"], "control-plane");
    assert_eq!(
        (status["apiserver"].as_str(), status["kubeconfig"].as_str()),
        (Some("ready"), Some("ok"))
    );
    assert!(status["certificate_days_left"].as_i64().unwrap() >= 364);
    // DNS is real: the CoreDNS of the version, built with it, answers for
    // the cluster's names, a Service's, and names outside the cluster.
    let dns_state = |want: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let status = json(&env.ok(&["status", "-p", "e2e-a", "-o", "json"]));
            if status["dns"]["state"] == want || std::time::Instant::now() > deadline {
                break status["dns"].clone();
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    };
    let dns = dns_state("available");
    assert_eq!(dns["state"], "available", "{dns}");
    env.assert_resolves(
        "e2e-a",
        "web",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    );
    env.assert_resolves("e2e-a", "web", "web.default.svc.cluster.local", &cluster_ip);
    // Through CoreDNS's forward, as an absolute name: busybox's nslookup
    // tries a short name only with the search domains.
    env.assert_resolves("e2e-a", "web", &format!("{node_container}."), "172.30.");

    // Where CoreDNS's image is missing (a version that brought none, an
    // engine that pulls nothing), status says so and how to load it; once
    // loaded, DNS comes back at once, not after the pull back-off.
    let image = common::k8s_row().coredns;
    let archive = berth_core::binaries::Cache::new(&berth_core::paths::cache_dir())
        .dir(&common::k8s_version())
        .join(berth_core::binaries::COREDNS_ARCHIVE);
    if archive.exists() {
        block_on(async {
            let docker = Docker::connect().await.unwrap();
            let removed = docker
                .exec(
                    &node_container,
                    &Command::new(["ctr", "-n", "k8s.io", "images", "rm", image]),
                )
                .await
                .unwrap();
            assert_eq!(removed.code, 0, "{removed:?}");
        });
        env.kubectl(
            "e2e-a",
            &[
                "delete",
                "pod",
                "-n",
                "kube-system",
                "-l",
                "k8s-app=kube-dns",
                "--wait=false",
            ],
        );
        let dns = dns_state("unavailable");
        assert_eq!(
            dns["state"],
            "unavailable",
            "{dns}\n{}",
            env.kubectl("e2e-a", &["get", "pods", "-A", "-o", "wide"])
        );
        let reason = dns["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("{image} cannot be pulled"))
                && reason.contains("berth image load"),
            "{reason}"
        );
        let _loaded = Guard(Resource::Image(image.into()));
        block_on(common::docker_load(&archive));
        let loaded = std::time::Instant::now();
        let (code, _, stderr) = env.run(&["image", "load", image, "-p", "e2e-a"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stderr.contains("Restarted pod kube-system/coredns-"),
            "{stderr}"
        );
        let dns = dns_state("available");
        assert_eq!(dns["state"], "available", "{dns}");
        assert!(
            loaded.elapsed().as_secs() < 60,
            "DNS came back after {:?}",
            loaded.elapsed()
        );
        env.assert_resolves(
            "e2e-a",
            "web",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
        );
    } else {
        common::skipped(
            "lifecycle: CoreDNS's image missing, then loaded",
            "the tests' Kubernetes version brought no CoreDNS image (not built with `berth cache build`)",
        );
    }
    let endpoint = status["endpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    let kubeconfig_before = std::fs::read_to_string(&env.kubeconfig).unwrap();

    // A component that crashes is restarted by systemd at once; status
    // still tells, with the count since the node booted and its last line.
    env.allow_restarts();
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let killed = docker
            .exec(
                &env.names("e2e-a").container("e2e-a"),
                &Command::new(["pkill", "-9", "-x", "kube-apiserver"]),
            )
            .await
            .unwrap();
        assert_eq!(killed.code, 0, "{killed:?}");
    });
    common::eventually(std::time::Duration::from_secs(60), || {
        let (_, out, _) = env.run(&["status", "-p", "e2e-a", "-o", "json"]);
        let status = json(&out);
        let unit = status["nodes"][0]["units"]
            .as_array()
            .and_then(|u| u.iter().find(|u| u["name"] == "kube-apiserver").cloned())
            .unwrap_or_default();
        if status["apiserver"] == "ready" && unit["restarts"] == 1 {
            Ok(())
        } else {
            Err(format!("after the kill: {status}"))
        }
    });
    let (_, text, _) = env.run(&["status", "-p", "e2e-a"]);
    assert!(
        text.contains("restarted:   kube-apiserver 1 time since the node booted; last: ")
            && text.contains("status=9/KILL"),
        "{text}"
    );
    assert_eq!(
        env.restarted_units().len(),
        1,
        "only the API server restarted"
    );

    env.ok(&["stop", "-p", "e2e-a"]);
    let (code, out, _) = env.run(&["status", "-p", "e2e-a", "-o", "json"]);
    assert_eq!(code & 8, 8, "status of a stopped node: {out}");
    assert_eq!(json(&out)["nodes"][0]["container"], "Stopped");
    let (code, _, stderr) = env.run(&["image", "load", "berth.test/busybox:1", "-p", "e2e-a"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("profile e2e-a is not running"), "{stderr}");

    env.ok(&["start", "-p", "e2e-a"]);
    let status = json(&env.ok(&["status", "-p", "e2e-a", "-o", "json"]));
    assert_eq!(status["endpoint"], endpoint.as_str());
    // A new boot counts afresh.
    assert_eq!(env.restarted_units(), Vec::<String>::new());
    // The engine's DNS listens on new ports after a restart: still reached.
    env.kubectl(
        "e2e-a",
        &[
            "wait",
            "--for=condition=Ready",
            "pod/resolver",
            "--timeout=180s",
        ],
    );
    env.assert_resolves("e2e-a", "resolver", &node_container, "172.30.");
    assert_eq!(
        std::fs::read_to_string(&env.kubeconfig).unwrap(),
        kubeconfig_before
    );
    wait_pod_ready(&env, "e2e-a");

    env.ok(&["pause", "-p", "e2e-a"]);
    let (code, out, _) = env.run(&["status", "-p", "e2e-a", "-o", "json"]);
    assert_eq!(code & 8, 8);
    assert_eq!(json(&out)["nodes"][0]["container"], "Paused");
    let listed = json(&env.ok(&["profile", "list", "-o", "json"]));
    assert_eq!(listed[0]["name"], "e2e-a");
    assert_eq!(listed[0]["status"], "Paused");
    assert_eq!(listed[0]["current"], true);
    env.ok(&["unpause", "-p", "e2e-a"]);
    assert_eq!(
        env.kubectl("e2e-a", &["get", "--raw", "/readyz"]).trim(),
        "ok"
    );

    env.ok(&["delete", "-p", "e2e-a"]);
    assert_eq!(env.leftovers("e2e-a"), Vec::<String>::new());
    assert!(!env.home.path().join("berth/profiles/e2e-a").exists());
    assert_eq!(
        yaml(&env.kubeconfig),
        foreign,
        "the kubeconfig is not as it was before start"
    );
    let (code, _, stderr) = env.run(&["delete", "-p", "e2e-a"]);
    assert_eq!(code, 0);
    assert!(stderr.contains("did not exist"), "{stderr}");
}

#[test]
fn two_profiles_run_side_by_side_and_deleting_one_leaves_the_other_untouched() {
    let env = Env::new();
    let presets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    env.ok(&[
        "start",
        "-p",
        "e2e-b",
        "--config",
        presets.join("ci.yaml").to_str().unwrap(),
        "--no-dns",
    ]);
    // The dev preset, with its host ports replaced by flags (flags win).
    let port = common::free_port();
    let ports = format!("{port}:30080");
    env.ok(&[
        "start",
        "-p",
        "e2e-c",
        "--config",
        presets.join("dev.yaml").to_str().unwrap(),
        "--ports",
        &ports,
        "--wait",
        "3m",
        "--keep-context",
    ]);
    // The first start of the version left its RBAC policy in the cache;
    // e2e-c's start made it before the API server's hook, which found the
    // objects and made none, and the aggregated roles got their rules.
    let seed = berth_core::binaries::Cache::new(&berth_core::paths::cache_dir())
        .rbac_seed(&common::k8s_version());
    let seed = json(&std::fs::read_to_string(&seed).expect("the RBAC policy kept"));
    let kept: usize = [
        "cluster_roles",
        "cluster_role_bindings",
        "roles",
        "role_bindings",
    ]
    .iter()
    .map(|kind| seed[*kind].as_array().map_or(0, Vec::len))
    .sum();
    assert!(kept > 100, "{seed}");
    let policy = json(&env.kubectl(
        "e2e-c",
        &[
            "get",
            "clusterroles,clusterrolebindings,roles,rolebindings",
            "-A",
            "-l",
            "kubernetes.io/bootstrapping=rbac-defaults",
            "--show-managed-fields",
            "-o",
            "json",
        ],
    ));
    let objects = policy["items"].as_array().unwrap();
    assert_eq!(objects.len(), kept);
    let by_berth = objects
        .iter()
        .filter(|o| o["metadata"]["managedFields"][0]["manager"] == "berth")
        .count();
    assert!(by_berth > 0, "none of the policy was berth's: {policy}");
    common::eventually(std::time::Duration::from_secs(60), || {
        let rules = env.kubectl(
            "e2e-c",
            &["get", "clusterrole", "admin", "-o", "jsonpath={.rules}"],
        );
        match rules.contains("pods") {
            true => Ok(()),
            false => Err(format!("the admin role has no aggregated rules: {rules}")),
        }
    });
    env.kubectl("e2e-c", &["create", "serviceaccount", "viewer"]);
    env.kubectl(
        "e2e-c",
        &[
            "create",
            "rolebinding",
            "viewer",
            "--clusterrole",
            "view",
            "--serviceaccount",
            "default:viewer",
        ],
    );
    let can_i = |verb: &str| {
        let viewer = "--as=system:serviceaccount:default:viewer";
        let (_, out, _) = env.run(&[
            "kubectl", "-p", "e2e-c", "--", "auth", "can-i", verb, "pods", viewer,
        ]);
        out.trim().to_string()
    };
    assert_eq!(
        (can_i("list").as_str(), can_i("create").as_str()),
        ("yes", "no")
    );
    // dev.yaml's extra config reached kubelet.
    assert_eq!(
        env.kubectl(
            "e2e-c",
            &[
                "get",
                "node",
                "e2e-c",
                "-o",
                "jsonpath={.status.capacity.pods}"
            ]
        ),
        "200"
    );
    let dns = json(&env.ok(&["status", "-p", "e2e-b", "-o", "json"]))["dns"].clone();
    assert_eq!(dns["state"], "off", "{dns}");
    for profile in ["e2e-b", "e2e-c"] {
        assert!(
            env.kubectl(profile, &["get", "nodes", "--no-headers"])
                .contains(" Ready ")
        );
    }
    let (code, _, stderr) = env.run(&["start", "-p", "e2e-b", "--cpus", "1"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("other settings than --cpus 1"), "{stderr}");
    let (code, _, stderr) = env.run(&["start", "-p", "e2e-b", "--keep-context"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("Profile e2e-b is running"), "{stderr}");
    // Images from a `docker save` archive; bad input changes nothing.
    let archive = env.home.path().join("busybox.tar");
    let _image = Guard(Resource::Image("berth.test/busybox:2".into()));
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        busybox_image(&docker, "berth.test/busybox:2", &[], &[]).await;
        let bytes = docker
            .save_images(&["berth.test/busybox:2".to_string()])
            .await
            .unwrap();
        std::fs::write(&archive, bytes).unwrap();
    });
    let before = json(&env.ok(&["image", "ls", "-p", "e2e-b", "-o", "json"]));
    for (args, why) in [
        (
            &["image", "load", "berth.test/none:0", "-p", "e2e-b"][..],
            "is not in the Docker engine",
        ),
        (
            &["image", "load", "--archive", "/etc/hostname", "-p", "e2e-b"][..],
            "is not an image archive",
        ),
    ] {
        let (code, _, stderr) = env.run(args);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    assert_eq!(
        json(&env.ok(&["image", "ls", "-p", "e2e-b", "-o", "json"])),
        before
    );
    env.ok(&[
        "image",
        "load",
        "--archive",
        archive.to_str().unwrap(),
        "-p",
        "e2e-b",
    ]);
    let listed = json(&env.ok(&["image", "ls", "-p", "e2e-b", "-o", "json"]));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "berth.test/busybox:2"
                && i["nodes"] == serde_json::json!(["e2e-b"])),
        "{listed}"
    );

    let (code, stdout, stderr) = env.run(&["-q", "start", "-p", "e2e-b", "--keep-context"]);
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, "", ""));

    // `profile NAME` sets the default for commands without -p; the
    // standalone kubeconfig of that profile reaches its cluster on its own.
    env.ok(&["profile", "e2e-c"]);
    let standalone = env.home.path().join("standalone");
    std::fs::write(&standalone, env.ok(&["kubeconfig"])).unwrap();
    let kubectl = berth_core::binaries::Cache::new(&berth_core::paths::cache_dir())
        .dir(&common::k8s_version())
        .join("kubectl");
    let out = std::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(&standalone)
        .args(["get", "nodes", "--no-headers"])
        .output()
        .unwrap();
    let nodes = String::from_utf8_lossy(&out.stdout);
    assert!(nodes.starts_with("e2e-c "), "{nodes}{:?}", out.stderr);
    let config = yaml(&env.kubeconfig);
    assert_eq!(
        config["current-context"],
        env.names("e2e-b").context().as_str(),
        "--keep-context must not switch"
    );
    let entries = |config: &Value| -> Vec<Value> {
        ["clusters", "users", "contexts"]
            .iter()
            .flat_map(|list| config[*list].as_sequence().unwrap().clone())
            .filter(|item| item["name"] == env.names("e2e-b").context().as_str())
            .collect()
    };
    let b_before = entries(&config);
    assert_eq!(b_before.len(), 3);

    env.ok(&["delete", "-p", "e2e-c"]);
    assert_eq!(env.leftovers("e2e-c"), Vec::<String>::new());
    let b = env.names("e2e-b");
    assert!(
        env.leftovers("e2e-b")
            .contains(&format!("container {}", b.container("e2e-b")))
    );
    assert_eq!(entries(&yaml(&env.kubeconfig)), b_before);
    assert!(
        env.kubectl("e2e-b", &["get", "nodes", "--no-headers"])
            .contains(" Ready ")
    );
    env.ok(&["delete", "-p", "e2e-b"]);
}

#[test]
fn bad_input_is_refused_clearly_and_creates_nothing() {
    let env = Env::new();
    let preset = env.home.path().join("typo.yaml");
    std::fs::write(&preset, "nodes: 1\nnodez: 2\n").unwrap();
    let preset = preset.to_str().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = format!("{}:30080", taken.local_addr().unwrap().port());
    type Case<'a> = (&'a [&'a str], Option<(&'a str, &'a str)>, i32, &'a str);
    let cases: [Case; 17] = [
        (
            &["start", "-p", "e2e-bad", "--image", "berth.test/none:0"],
            None,
            2,
            "the node image berth.test/none:0 is not in the Docker engine",
        ),
        // Low disk, provoked by asking for more than any disk has.
        (
            &["start", "-p", "e2e-bad"],
            Some(("BERTH_MIN_FREE_MIB", "1000000000")),
            1,
            "MiB are free on",
        ),
        (
            &["start", "-p", "e2e-bad", "--config", preset],
            None,
            2,
            "typo.yaml: unknown field `nodez`",
        ),
        (
            &["start", "-p", "e2e-bad", "--ports", &taken],
            None,
            2,
            "on 127.0.0.1 is taken",
        ),
        (
            &["start", "-p", "e2e-bad", "--ports", "8080:81"],
            None,
            2,
            "is not a port mapping",
        ),
        (
            &[
                "start",
                "-p",
                "e2e-bad",
                "--extra-config",
                "kubelet.a=b;reboot",
            ],
            None,
            2,
            "is not an extra config",
        ),
        (
            &["start", "-p", "e2e-bad", "--feature-gates", "Foo=maybe"],
            None,
            2,
            "is not a feature gate list",
        ),
        (
            &["start", "-p", "Bad_Name"],
            None,
            2,
            "not a valid profile name",
        ),
        (
            &["start", "-p", "e2e-bad", "--kubernetes-version", "v1.99.0"],
            None,
            2,
            "is not supported",
        ),
        (
            &[
                "start",
                "-p",
                "e2e-bad",
                "--kubernetes-version",
                "v1.33.4",
                "--binary-mirror",
                "http://127.0.0.1:1/release",
            ],
            None,
            1,
            "berth cache import",
        ),
        (
            &["start", "-p", "e2e-bad"],
            Some(("DOCKER_HOST", "unix:///nonexistent/docker.sock")),
            3,
            "cannot reach the Docker engine",
        ),
        (&["status", "-p", "e2e-bad"], None, 5, "does not exist"),
        (&["stop", "-p", "e2e-bad"], None, 5, "does not exist"),
        (
            &[
                "upgrade",
                "-p",
                "e2e-bad",
                "--kubernetes-version",
                "v1.37.2",
            ],
            None,
            5,
            "does not exist",
        ),
        (
            &["upgrade", "-p", "e2e-bad", "--kubernetes-version", "1.37"],
            None,
            2,
            "is not a Kubernetes version",
        ),
        (
            &[
                "upgrade",
                "-p",
                "e2e-bad",
                "--kubernetes-version",
                "v1.37.2",
                "--wait",
                "0",
            ],
            None,
            2,
            "--wait cannot be 0",
        ),
        // A wait too short for any API server: the start fails as not
        // ready, names the component, shows its log, and leaves nothing.
        (
            &["start", "-p", "e2e-bad", "--wait", "1s"],
            None,
            4,
            "the API server of profile e2e-bad was not ready within 1 s; last lines of kube-apiserver's log",
        ),
    ];
    for (args, var, want_code, want_text) in cases {
        let mut cmd = env.berth();
        if let Some((k, v)) = var {
            cmd.env(k, v);
        }
        let out = cmd.args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(want_code), "{args:?}: {stderr}");
        assert!(
            stderr.contains(want_text) && stderr.contains("hint:"),
            "{args:?}: {stderr}"
        );
        let profiles = std::fs::read_dir(env.home.path().join("berth/profiles"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(profiles, 0, "{args:?} left state");
        let kubeconfig = std::fs::read_to_string(&env.kubeconfig).unwrap_or_default();
        assert!(
            !kubeconfig.contains("e2e-bad"),
            "{args:?} left a kubeconfig entry"
        );
    }
    assert_eq!(env.leftovers("e2e-bad"), Vec::<String>::new());
}
