//! Addons on a real cluster: each one's objects applied, removed and applied
//! again; what their service accounts may do; the state `addons list`
//! reports when an image cannot be pulled, with the command that loads it;
//! `berth dashboard` forwarding to a stand-in; the ports `--ingress`
//! publishes; CoreDNS and storage switched off and on again. What berth
//! builds from source where no registry serves it runs for real:
//! metrics-server (`kubectl top`, an autoscaler on CPU load) and Traefik,
//! routing an Ingress, an Ingress written for ingress-nginx and an
//! HTTPRoute by host from 127.0.0.1:80, TLS on 443 from Secrets, and
//! `berth tunnel` to it.

mod common;

use std::time::Duration;

use berth_node::addons::Addon;
use common::{Env, Parts, TestCa, eventually, json, shared_busybox, skipped, tls_secret};

const PROFILE: &str = "e2e-addons";
const BUSYBOX: &str = "berth.test/addons-busybox:1";

/// Each addon's state and reason, from `addons list -o json`.
fn addon(env: &Env, name: &str) -> serde_json::Value {
    let list = json(&env.ok(&["addons", "list", "-p", PROFILE, "-o", "json"]));
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not in {list}"))
        .clone()
}

/// Whether `kubectl get` finds the object.
fn exists(env: &Env, args: &[&str]) -> bool {
    let mut all = vec!["kubectl", "-p", PROFILE, "--", "get"];
    all.extend(args);
    env.run(&all).0 == 0
}

/// `kubectl auth can-i VERB RESOURCE` as a service account.
fn can(env: &Env, account: &str, verb: &str, resource: &str) -> bool {
    let who = format!("--as=system:serviceaccount:{account}");
    let (_, out, _) = env.run(&[
        "kubectl", "-p", PROFILE, "--", "auth", "can-i", verb, resource, "-A", &who,
    ]);
    out.trim() == "yes"
}

/// Whether the engine has `image` (a test that uses an addon's real image
/// runs only where it is).
fn engine_has(image: &str) -> bool {
    common::block_on(async {
        let docker = berth_engine::Docker::connect().await.unwrap();
        docker.image_exists(image).await.unwrap()
    })
}

/// The addon goes unavailable for its image and says how to load it.
fn says_how_to_load(env: &Env, name: &str) {
    let images: Vec<String> = addon(env, name)["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    if images.iter().all(|i| engine_has(i)) {
        return skipped(
            &format!("{name} saying how to load its images"),
            "they are in the engine",
        );
    }
    eventually(Duration::from_secs(120), || {
        let state = addon(env, name);
        let reason = state["reason"].as_str().unwrap_or_default().to_string();
        let loads = images
            .iter()
            .any(|i| reason.contains(&format!("berth image load {i} -p {PROFILE}")));
        match (state["state"].as_str(), loads) {
            (Some("unavailable"), true) => Ok(()),
            _ => Err(format!("{name}: {state}")),
        }
    });
}

#[test]
fn addons_are_applied_removed_and_applied_again_and_say_what_they_lack() {
    let env = Env::new();
    let _busybox = shared_busybox(BUSYBOX);

    // Refused before anything is made: an unknown addon, named with the list.
    // A retired project's name points to the addon in its place.
    let (code, _, err) = env.run(&["start", "-p", PROFILE, "--addons", "ingress-nginx"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("coredns, storage, metrics-server, dashboard, ingress"),
        "{err}"
    );
    assert!(
        err.contains("the addon `ingress` runs traefik/traefik"),
        "{err}"
    );
    assert!(env.leftovers(PROFILE).is_empty());

    // --ingress publishes the controller's ports on 127.0.0.1.
    env.ok(&[
        "start",
        "-p",
        PROFILE,
        "--ingress",
        "--addons",
        "metrics-server",
        "--wait",
        "5m",
    ]);
    env.ok(&["image", "load", "-p", PROFILE, BUSYBOX]);
    let container = env.names(PROFILE).container(PROFILE);
    let inspect = common::block_on(async {
        let docker = berth_engine::Docker::connect().await.unwrap();
        docker.inspect_json(&container).await.unwrap()
    });
    for port in ["80", "443"] {
        let binding = &inspect["HostConfig"]["PortBindings"][format!("{port}/tcp")][0];
        assert_eq!(binding["HostIp"], "127.0.0.1", "{port}: {binding}");
        assert_eq!(binding["HostPort"], port, "{binding}");
    }
    for (name, enabled) in [
        ("coredns", true),
        ("storage", true),
        ("metrics-server", true),
        ("dashboard", false),
        ("ingress", true),
    ] {
        assert_eq!(addon(&env, name)["enabled"], enabled, "{name}");
    }
    assert_eq!(addon(&env, "dashboard")["state"], "disabled");

    let mut parts = Parts::default();

    // metrics-server: its API, and what it may read and not change.
    parts.run("metrics-server's API and what it may do", || {
        assert!(exists(&env, &["apiservice", "v1beta1.metrics.k8s.io"]));
        assert!(exists(
            &env,
            &["-n", "kube-system", "deployment", "metrics-server"]
        ));
        let metrics = "kube-system:metrics-server";
        assert!(can(&env, metrics, "get", "nodes/metrics"));
        assert!(can(&env, metrics, "list", "pods"));
        assert!(!can(&env, metrics, "delete", "pods"));
        if Addon::MetricsServer
            .built_from_source(common::k8s_row())
            .is_empty()
        {
            says_how_to_load(&env, "metrics-server");
        }
    });

    // Where berth builds its image, metrics-server runs for real: `kubectl
    // top` shows numbers read from the kubelets (verified against the
    // cluster's CA), and an autoscaler scales a Deployment on CPU load.
    if !Addon::MetricsServer
        .built_from_source(common::k8s_row())
        .is_empty()
    {
        parts.run("kubectl top and an autoscaler on CPU", || {
            top_and_autoscaling(&env);
        });
    }

    // The dashboard, enabled on the running profile: a read-only account
    // and an admin one.
    parts.run(
        "the dashboard enabled on a running profile, and berth dashboard",
        || {
            env.ok(&["addons", "enable", "dashboard", "-p", PROFILE]);
            assert!(exists(&env, &["-n", "headlamp", "deployment", "headlamp"]));
            let viewer = "headlamp:berth-dashboard-viewer";
            let admin = "headlamp:berth-dashboard-admin";
            assert!(can(&env, viewer, "list", "pods"));
            assert!(!can(&env, viewer, "delete", "pods"));
            assert!(can(&env, admin, "delete", "pods"));
            says_how_to_load(&env, "dashboard");
        },
    );

    // Each addon's project, release, and where its images came from, in
    // columns that line up whatever the states.
    parts.run("addons list says where each image came from", || {
        let coredns = addon(&env, "coredns");
        assert_eq!(coredns["project"], "coredns/coredns", "{coredns}");
        assert_eq!(coredns["image_origin"], "built", "{coredns}");
        let dashboard = addon(&env, "dashboard");
        assert_eq!(
            dashboard["project"], "kubernetes-sigs/headlamp",
            "{dashboard}"
        );
        assert_eq!(dashboard["version"], "v0.44.0", "{dashboard}");
        assert_eq!(dashboard["image_origin"], "missing", "{dashboard}");
        assert!(addon(&env, "storage")["image_origin"].is_null());
        let ingress = addon(&env, "ingress");
        assert_eq!(ingress["project"], "traefik/traefik", "{ingress}");
        assert_eq!(ingress["image_origin"], "built", "{ingress}");
        if !Addon::MetricsServer
            .built_from_source(common::k8s_row())
            .is_empty()
        {
            assert_eq!(addon(&env, "metrics-server")["image_origin"], "built");
        }
        let table = env.ok(&["addons", "list", "-p", PROFILE]);
        let rows: Vec<&str> = table.lines().filter(|l| !l.starts_with(' ')).collect();
        for column in ["STATE", "PROJECT", "IMAGE "] {
            let at = rows[0].find(column).unwrap();
            for row in &rows[1..] {
                let before = &row[..at];
                assert!(
                    before.ends_with("  ") && !row[at..].starts_with(' '),
                    "{column} does not line up:\n{table}"
                );
            }
        }
    });

    // The ingress controller's account: it reads routes and updates their
    // status, and changes nothing else.
    parts.run("the ingress controller's account", || {
        let traefik = "traefik:traefik";
        assert!(can(&env, traefik, "list", "ingresses.networking.k8s.io"));
        assert!(can(
            &env,
            traefik,
            "list",
            "httproutes.gateway.networking.k8s.io"
        ));
        assert!(can(
            &env,
            traefik,
            "watch",
            "gateways.gateway.networking.k8s.io"
        ));
        assert!(!can(&env, traefik, "delete", "pods"));
        assert!(!can(&env, traefik, "create", "secrets"));
    });

    parts.run("Ingress, the Gateway API and TLS through Traefik", || {
        ingress_and_gateway(&env);
    });

    // `berth dashboard --url` forwards to a ready pod behind Headlamp's
    // Service (whose image no registry here serves): a stand-in serving
    // its port.
    parts.run("berth dashboard", || {
        env.apply(
            PROFILE,
            &stand_in(
                "dashboard-stand-in",
                "headlamp",
                "app.kubernetes.io/name: headlamp",
                &[("", 4466)],
                "the-dashboard",
            ),
        );
        env.wait_ready_in(PROFILE, "headlamp", "dashboard-stand-in");
        let mut dashboard = env.spawn(&["dashboard", "-p", PROFILE, "--url"]);
        let url = dashboard.line();
        let token = dashboard.line();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let page = common::http_get(common::port_of(&url), None);
        assert!(
            page.as_deref()
                .unwrap_or_default()
                .contains("the-dashboard"),
            "{page:?}"
        );
        // The token is the read-only account's: it reads, and may not delete.
        assert_eq!(
            env.api_as(PROFILE, &token, "GET", "/api/v1/namespaces/default/pods"),
            200
        );
        assert_eq!(
            env.api_as(
                PROFILE,
                &token,
                "DELETE",
                "/api/v1/namespaces/default/pods/x"
            ),
            403
        );
        drop(dashboard);
    });

    // `berth tunnel` serves Traefik's ports; 80 and 443 are the node's
    // here, so it falls back to free ones and prints them, and the routes
    // answer there too.
    parts.run("berth tunnel", || {
        let mut tunnel = env.spawn(&["tunnel", "-p", PROFILE]);
        let http = tunnel.line();
        assert!(
            http.starts_with("http://127.0.0.1:") && http != "http://127.0.0.1:80",
            "{http}"
        );
        let page = common::http_get(common::port_of(&http), Some("web.local"));
        assert!(
            page.as_deref().unwrap_or_default().contains(PAGE),
            "{page:?}"
        );
        drop(tunnel);
    });

    // Disabled: their objects go, the control plane no longer holds them.
    // metrics-server first: while its API is registered and does not
    // answer, the namespace controller cannot finish deleting a namespace.
    // The aggregation layer is on in every cluster, so neither disabling
    // nor enabling it again restarts the API server.
    parts.run("disabled and enabled again", || {
        let api_server_run = || {
            env.ok(&[
                "ssh",
                "-p",
                PROFILE,
                "--",
                "systemctl",
                "show",
                "-p",
                "InvocationID",
                "kube-apiserver",
            ])
        };
        let before = api_server_run();
        for name in ["metrics-server", "dashboard", "ingress"] {
            env.ok(&["addons", "disable", name, "-p", PROFILE]);
            assert_eq!(addon(&env, name)["state"], "disabled");
            let manifest = format!("/etc/kubernetes/addons/{name}.yaml");
            let (code, _, _) = env.run(&["ssh", "-p", PROFILE, "--", "test", "-e", &manifest]);
            assert_ne!(code, 0, "{manifest} is still in the node");
        }
        eventually(Duration::from_secs(90), || {
            // A namespace is deleted by Kubernetes' namespace controller, which
            // backs off for minutes after a moment when an aggregated API did
            // not answer: being deleted (Terminating) is what `disable` does.
            let mut left: Vec<&str> = ["headlamp", "traefik"]
                .into_iter()
                .filter(|ns| env.namespace_stays(PROFILE, ns))
                .collect();
            let objects: [&[&str]; 3] = [
                &["apiservice", "v1beta1.metrics.k8s.io"],
                &["clusterrolebinding", "berth-dashboard-admin"],
                &["-n", "kube-system", "deployment", "metrics-server"],
            ];
            left.extend(
                objects
                    .into_iter()
                    .filter(|args| exists(&env, args))
                    .map(|args| args[args.len() - 1]),
            );
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {left:?}"))
            }
        });
        // And applied again. Where berth builds metrics-server's image, its
        // image is taken out of the node first: enabling loads it again.
        let built = Addon::MetricsServer.built_from_source(common::k8s_row());
        for image in &built {
            let name = berth_cluster::containerd::normalize(&image.image);
            env.ok(&[
                "ssh", "-p", PROFILE, "--", "ctr", "-n", "k8s.io", "images", "rm", &name,
            ]);
        }
        env.ok(&["addons", "enable", "metrics-server", "-p", PROFILE]);
        assert!(exists(&env, &["apiservice", "v1beta1.metrics.k8s.io"]));
        assert_eq!(api_server_run(), before, "the API server was restarted");
        if !built.is_empty() {
            eventually(Duration::from_secs(120), || {
                let state = addon(&env, "metrics-server");
                match (state["state"].as_str(), state["image_origin"].as_str()) {
                    (Some("ready"), Some("built")) => Ok(()),
                    _ => Err(format!("metrics-server after enable: {state}")),
                }
            });
        }
        // A second enable changes nothing and says so.
        let (code, _, err) = env.run(&["addons", "enable", "metrics-server", "-p", PROFILE]);
        assert_eq!(code, 0);
        assert!(err.contains("it was enabled"), "{err}");

        // The ingress controller's CRDs stayed, with the routes users made
        // of them; enabled again, it routes them again.
        assert!(exists(
            &env,
            &["crd", "httproutes.gateway.networking.k8s.io"]
        ));
        assert!(exists(&env, &["httproute", "web"]));
        env.ok(&["addons", "enable", "ingress", "-p", PROFILE]);
        answers_on_80(&["route.local"]);
    });

    // CoreDNS and storage are addons too.
    parts.run("CoreDNS and storage switched off and on", || {
        env.ok(&["addons", "disable", "storage", "-p", PROFILE]);
        assert!(!exists(&env, &["storageclass", "standard"]));
        env.ok(&["addons", "disable", "coredns", "-p", PROFILE]);
        eventually(Duration::from_secs(60), || {
            match exists(&env, &["-n", "kube-system", "service", "kube-dns"]) {
                false => Ok(()),
                true => Err("kube-dns is still there".into()),
            }
        });
        let kubelet_config = || {
            env.ok(&[
                "ssh",
                "-p",
                PROFILE,
                "--",
                "cat",
                "/etc/kubernetes/kubelet.yaml",
            ])
        };
        let kubelet = kubelet_config();
        assert!(!kubelet.contains("clusterDNS"), "{kubelet}");
        env.ok(&["addons", "enable", "coredns", "-p", PROFILE]);
        env.ok(&["addons", "enable", "storage", "-p", PROFILE]);
        assert!(exists(&env, &["storageclass", "standard"]));
        assert!(exists(&env, &["-n", "kube-system", "service", "kube-dns"]));
        let kubelet = kubelet_config();
        assert!(kubelet.contains("clusterDNS"), "{kubelet}");
        env.kubectl(
            PROFILE,
            &[
                "wait",
                "--for=condition=Ready",
                "node",
                "--all",
                "--timeout=90s",
            ],
        );
    });

    // A stopped profile's addons are not changed: it says what to do.
    parts.run("a stopped profile's addons are left as they are", || {
        env.ok(&["stop", "-p", PROFILE]);
        let (code, _, err) = env.run(&["addons", "enable", "dashboard", "-p", PROFILE]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("not running") && err.contains("berth start -p e2e-addons"),
            "{err}"
        );
        let (code, _, err) = env.run(&["addons", "enable", "nope", "-p", PROFILE]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("metrics-server, dashboard, ingress"), "{err}");
    });
}

/// metrics-server, built by berth: ready, `kubectl top` with numbers for
/// the node and a pod, and a HorizontalPodAutoscaler that scales a busy
/// Deployment out.
fn top_and_autoscaling(env: &Env) {
    eventually(Duration::from_secs(120), || {
        let state = addon(env, "metrics-server");
        match state["state"].as_str() {
            Some("ready") => Ok(()),
            _ => Err(format!("metrics-server: {state}")),
        }
    });
    // `NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%`: numbers, not <unknown>.
    eventually(Duration::from_secs(120), || {
        let (code, out, err) = env.run(&["kubectl", "-p", PROFILE, "--", "top", "nodes"]);
        let line = out
            .lines()
            .find(|l| l.starts_with(PROFILE))
            .unwrap_or_default();
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, cpu, _, memory, _] if cpu.ends_with('m') && memory.ends_with("Mi") => Ok(()),
            _ => Err(format!("kubectl top nodes ({code}): {out}{err}")),
        }
    });
    // Busy, with a limit so that it takes no more than a fifth of a core.
    env.apply(
        PROFILE,
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: busy}}
spec:
  selector: {{matchLabels: {{app: busy}}}}
  template:
    metadata: {{labels: {{app: busy}}}}
    spec:
      containers:
      - name: busy
        image: {BUSYBOX}
        command: [sh, -c, 'while :; do :; done']
        resources:
          requests: {{cpu: 50m}}
          limits: {{cpu: 200m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: busy}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: busy}}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}
"
        ),
    );
    eventually(Duration::from_secs(120), || {
        let (code, out, err) = env.run(&[
            "kubectl", "-p", PROFILE, "--", "top", "pods", "-l", "app=busy",
        ]);
        match out.lines().find(|l| l.starts_with("busy-")) {
            Some(line)
                if code == 0
                    && line
                        .split_whitespace()
                        .nth(1)
                        .is_some_and(|c| c.ends_with('m')) =>
            {
                Ok(())
            }
            _ => Err(format!("kubectl top pods ({code}): {out}{err}")),
        }
    });
    eventually(Duration::from_secs(180), || {
        let hpa = json(&env.kubectl(PROFILE, &["get", "hpa", "busy", "-o", "json"]));
        match hpa["status"]["desiredReplicas"].as_i64() {
            Some(n) if n >= 2 => Ok(()),
            _ => Err(format!(
                "the autoscaler did not scale out: {}",
                hpa["status"]
            )),
        }
    });
    env.kubectl(
        PROFILE,
        &["delete", "hpa,deployment", "busy", "--wait=false"],
    );
}

/// The page the routed pod serves.
const PAGE: &str = "routed-by-host";

/// An Ingress (class traefik, the default), an Ingress written for
/// ingress-nginx (class nginx) and an HTTPRoute on the addon's Gateway,
/// each for its host, to the Service `web`; TLS for two hosts from
/// Secrets, one through the Ingress, one through a Gateway of the test's
/// own.
const ROUTES: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  tls: [{hosts: [web.local], secretName: web-tls}]
  rules:
  - host: web.local
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: written-for-nginx, annotations: {nginx.ingress.kubernetes.io/ssl-redirect: \"false\"}}
spec:
  ingressClassName: nginx
  rules:
  - host: nginx.local
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: traefik, namespace: traefik}, {name: tls}]
  hostnames: [route.local]
  rules:
  - backendRefs: [{name: web, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls}
spec:
  gatewayClassName: traefik
  listeners:
  - name: https
    protocol: HTTPS
    port: 443
    hostname: route.local
    tls:
      certificateRefs: [{name: route-tls}]
";

/// Traefik, built by berth, routes by host from 127.0.0.1:80 and serves
/// TLS on 443 with the certificates of the Secrets the routes name.
fn ingress_and_gateway(env: &Env) {
    eventually(Duration::from_secs(120), || {
        let state = addon(env, "ingress");
        match (state["state"].as_str(), state["image_origin"].as_str()) {
            (Some("ready"), Some("built")) => Ok(()),
            _ => Err(format!("the ingress addon: {state}")),
        }
    });
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let mut objects = vec![stand_in("web", "default", "app: web", &[("", 8080)], PAGE)];
    for (secret, host) in [("web-tls", "web.local"), ("route-tls", "route.local")] {
        let (cert, key) = ca.server(host);
        objects.push(tls_secret("default", secret, &cert, &key));
    }
    objects.push(common::WEB_SERVICE.to_string());
    objects.push(ROUTES.to_string());
    env.apply(PROFILE, &objects.join("---\n"));
    env.wait_ready_in(PROFILE, "default", "web");

    answers_on_80(&["web.local", "nginx.local", "route.local"]);
    let elsewhere = common::http_get(80, Some("nobody.local")).unwrap_or_default();
    assert!(
        !elsewhere.contains(PAGE),
        "an unknown host was routed: {elsewhere}"
    );
    for host in ["web.local", "route.local"] {
        eventually(Duration::from_secs(60), || {
            let page = https_get(host, &ca_file)?;
            page.contains(PAGE).then_some(()).ok_or(page)
        });
    }

    // Their status names where they answer.
    let address = env.kubectl(
        PROFILE,
        &[
            "get",
            "ingress",
            "web",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ],
    );
    assert_eq!(address.trim(), "127.0.0.1");
    let programmed = env.kubectl(
        PROFILE,
        &[
            "get",
            "gateway",
            "tls",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Programmed\")].status}",
        ],
    );
    assert_eq!(programmed.trim(), "True");
}

/// Each of `hosts` is routed to the page from 127.0.0.1:80.
fn answers_on_80(hosts: &[&str]) {
    for host in hosts {
        eventually(Duration::from_secs(90), || {
            let page = common::http_get(80, Some(host))?;
            match page.contains(PAGE) {
                true => Ok(()),
                false => Err(format!("{host}: {page}")),
            }
        });
    }
}

/// `https://HOST/` from 127.0.0.1:443, its certificate verified against
/// the CA in `ca_file` and for `host` (curl, which scripts/setup installs).
fn https_get(host: &str, ca_file: &std::path::Path) -> Result<String, String> {
    let resolve = format!("{host}:443:127.0.0.1");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(ca_file)
        .args(["--resolve", &resolve, &format!("https://{host}/")])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(format!("{host}: {}", String::from_utf8_lossy(&out.stderr))),
    }
}

/// A busybox pod `name` in `namespace` with `labels`, serving `page` over
/// HTTP on each of `ports` (named when the name is not empty).
fn stand_in(
    name: &str,
    namespace: &str,
    labels: &str,
    ports: &[(&str, u16)],
    page: &str,
) -> String {
    let listen: Vec<String> = ports
        .iter()
        .map(|(_, port)| format!("httpd -p {port} -h /www"))
        .collect();
    let declared: Vec<String> = ports
        .iter()
        .map(|(port_name, port)| match *port_name {
            "" => format!("{{containerPort: {port}}}"),
            named => format!("{{name: {named}, containerPort: {port}}}"),
        })
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}, labels: {{{labels}}}}}\n\
         spec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: {BUSYBOX}\n    \
         imagePullPolicy: Never\n    ports: [{}]\n    command: [sh, -c, \"mkdir -p /www && echo {page} > /www/index.html && {} && sleep 3600\"]\n    \
         readinessProbe: {{tcpSocket: {{port: {}}}, periodSeconds: 1}}\n",
        declared.join(", "),
        listen.join(" && "),
        ports[0].1,
    )
}
