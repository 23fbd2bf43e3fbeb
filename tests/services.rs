//! Service behaviours that Kubernetes' own end-to-end tests exercise:
//! ClientIP session affinity (ClusterIP and NodePort, with and without a
//! timeout), a NodePort reached from a pod on its own node's address, and a
//! Service whose type changes between ClusterIP, NodePort, LoadBalancer (on
//! a profile's `--lb-address`) and ExternalName, with what answers at each.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Env, eventually};

const IMAGE: &str = "berth.test/services:1";

/// Shared by this file's tests, which run at once.
fn image() -> common::SharedImage {
    common::shared_busybox(IMAGE)
}

/// Three web pods answering with their names, and a client pod on each
/// node, all Ready.
fn workload(env: &Env, profile: &str, nodes: &[&str]) {
    let mut manifest = common::web_deployment(IMAGE, 3);
    for node in nodes {
        manifest.push_str(&format!(
            r#"---
apiVersion: v1
kind: Pod
metadata: {{name: client-{node}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {IMAGE}, imagePullPolicy: Never, command: [sleep, "3600"]}}
"#
        ));
    }
    env.apply(profile, &manifest);
    env.kubectl(
        profile,
        &["rollout", "status", "deployment/web", "--timeout=180s"],
    );
    env.kubectl(
        profile,
        &[
            "wait",
            "--for=condition=Ready",
            "pod",
            "--all",
            "--timeout=180s",
        ],
    );
}

fn start(env: &Env, profile: &str, nodes: u32) {
    env.ok(&["start", "-p", profile, "--nodes", &nodes.to_string()]);
    env.ok(&["image", "load", IMAGE, "-p", profile]);
}

#[derive(Clone, Copy)]
enum Affinity {
    None,
    ClientIp,
    /// ClientIP with a timeout in seconds.
    ClientIpFor(u32),
}

fn service(name: &str, kind: &str, node_port: Option<u16>, affinity: Affinity) -> String {
    let node_port = node_port
        .map(|p| format!(", nodePort: {p}"))
        .unwrap_or_default();
    let affinity = match affinity {
        Affinity::None => String::new(),
        Affinity::ClientIp => "  sessionAffinity: ClientIP\n".to_string(),
        Affinity::ClientIpFor(secs) => format!(
            "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {{clientIP: {{timeoutSeconds: {secs}}}}}\n"
        ),
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: {kind}\n  \
         selector: {{app: web}}\n{affinity}  ports: [{{port: 80, targetPort: 8080{node_port}}}]\n"
    )
}

/// A merge patch to the Service `morph`.
fn patch_morph(env: &Env, profile: &str, patch: &str) {
    env.kubectl(
        profile,
        &["patch", "service", "morph", "--type=merge", "-p", patch],
    );
}

/// The address of the node `pod` runs on.
fn host_ip(env: &Env, profile: &str, pod: &str) -> String {
    env.kubectl(
        profile,
        &["get", "pod", pod, "-o", "jsonpath={.status.hostIP}"],
    )
}

fn cluster_ip(env: &Env, profile: &str, service: &str) -> String {
    env.kubectl(
        profile,
        &[
            "get",
            "service",
            service,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    )
}

/// The web pods that answer `n` requests from `client` to `address`; the
/// first attempts are retried while kube-proxy catches up.
fn backends(env: &Env, profile: &str, client: &str, address: &str, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    eventually(Duration::from_secs(60), || {
        seen.insert(env.get_from_pod(profile, client, address)?);
        Ok(())
    });
    for _ in 1..n {
        seen.insert(env.get_from_pod(profile, client, address).unwrap());
    }
    seen
}

#[test]
fn client_ip_session_affinity_holds_on_cluster_ip_and_node_port_services() {
    let env = Env::new();
    let profile = "e2e-affinity";
    let _image = image();
    start(&env, profile, 1);
    env.apply(
        profile,
        &service("sticky", "ClusterIP", None, Affinity::ClientIp),
    );
    env.apply(
        profile,
        &service("sticky-np", "NodePort", Some(30081), Affinity::ClientIp),
    );
    env.apply(
        profile,
        &service(
            "sticky-timeout",
            "ClusterIP",
            None,
            Affinity::ClientIpFor(3),
        ),
    );
    env.apply(
        profile,
        &service(
            "sticky-np-timeout",
            "NodePort",
            Some(30082),
            Affinity::ClientIpFor(3),
        ),
    );
    env.apply(
        profile,
        &service("spread", "ClusterIP", None, Affinity::None),
    );
    workload(&env, profile, &[profile]);
    let client = format!("client-{profile}");
    let node_ip = host_ip(&env, profile, &client);
    let node_address = |port: u16| format!("{node_ip} {port}");

    // Without affinity the three pods share the requests; with it, one
    // pod gets them all.
    let spread = format!("{} 80", cluster_ip(&env, profile, "spread"));
    assert!(backends(&env, profile, &client, &spread, 30).len() > 1);
    for address in [
        format!("{} 80", cluster_ip(&env, profile, "sticky")),
        node_address(30081),
    ] {
        let seen = backends(&env, profile, &client, &address, 15);
        assert_eq!(seen.len(), 1, "{address}: {seen:?}");
    }
    // With a timeout of 3 s: one pod while requests come within it, and
    // others once it has passed.
    for address in [
        format!("{} 80", cluster_ip(&env, profile, "sticky-timeout")),
        node_address(30082),
    ] {
        let seen = backends(&env, profile, &client, &address, 10);
        assert_eq!(seen.len(), 1, "{address}: {seen:?}");
        let first = seen.into_iter().next().unwrap();
        let mut later = BTreeSet::new();
        for _ in 0..15 {
            std::thread::sleep(Duration::from_secs(4));
            later.insert(env.get_from_pod(profile, &client, &address).unwrap());
            if later.iter().any(|b| *b != first) {
                break;
            }
        }
        assert!(
            later.iter().any(|b| *b != first),
            "{address}: still {first} after the timeout"
        );
    }
}

#[test]
fn a_node_port_answers_pods_on_their_own_nodes_address_and_on_the_others() {
    let env = Env::new();
    let profile = "e2e-nodeport";
    let _image = image();
    start(&env, profile, 2);
    let worker = format!("{profile}-m02");
    env.apply(
        profile,
        &service("web", "NodePort", Some(30083), Affinity::None),
    );
    workload(&env, profile, &[profile, &worker]);
    let control_plane_ip = host_ip(&env, profile, &format!("client-{profile}"));
    let worker_ip = host_ip(&env, profile, &format!("client-{worker}"));
    assert_ne!(control_plane_ip, worker_ip);
    for node in [profile, worker.as_str()] {
        let client = format!("client-{node}");
        for ip in [&control_plane_ip, &worker_ip] {
            let address = format!("{ip} 30083");
            // Every pod behind the Service answers, wherever it runs.
            let seen = backends(&env, profile, &client, &address, 30);
            assert_eq!(seen.len(), 3, "{client} -> {address}: {seen:?}");
        }
    }
}

#[test]
fn a_service_changes_type_between_cluster_ip_node_port_load_balancer_and_external_name() {
    let env = Env::new();
    let profile = "e2e-svctype";
    let _image = image();
    // Its LoadBalancer Services answer on another address than the default.
    env.ok(&["start", "-p", profile, "--lb-address", "127.0.0.2"]);
    env.ok(&["image", "load", IMAGE, "-p", profile]);
    let plain = |kind: &str, port: Option<u16>| service("morph", kind, port, Affinity::None);
    env.apply(profile, &plain("ClusterIP", None));
    workload(&env, profile, &[profile]);
    let client = format!("client-{profile}");
    let node_ip = host_ip(&env, profile, &client);
    let first_ip = cluster_ip(&env, profile, "morph");
    backends(&env, profile, &client, &format!("{first_ip} 80"), 1);

    // ClusterIP -> NodePort: the same cluster IP, and the node port.
    env.apply(profile, &plain("NodePort", Some(30084)));
    assert_eq!(cluster_ip(&env, profile, "morph"), first_ip);
    backends(&env, profile, &client, &format!("{node_ip} 30084"), 1);
    backends(&env, profile, &client, &format!("{first_ip} 80"), 1);

    // NodePort -> LoadBalancer: the profile's --lb-address, port 80, from
    // the host, and not the default address.
    patch_morph(&env, profile, r#"{"spec":{"type":"LoadBalancer"}}"#);
    eventually(Duration::from_secs(60), || {
        let page = common::http_get_at("127.0.0.2", 80, None)?;
        page.starts_with("web-")
            .then_some(())
            .ok_or(format!("127.0.0.2:80 answered {page:?}"))
    });
    let ingress = env.kubectl(
        profile,
        &[
            "get",
            "service",
            "morph",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ],
    );
    assert_eq!(ingress, "127.0.0.2");
    assert!(!common::http_get(80, None).is_ok_and(|p| p.starts_with("web-")));

    // LoadBalancer -> ExternalName: a name, no address, nothing answers on
    // the old ones, nor on the host.
    patch_morph(
        &env,
        profile,
        r#"{"spec":{"type":"ExternalName","externalName":"web.example.test","clusterIP":null,"ports":null,"selector":null}}"#,
    );
    let spec = common::json(&env.kubectl(
        profile,
        &["get", "service", "morph", "-o", "jsonpath={.spec}"],
    ));
    assert_eq!(spec["type"], "ExternalName");
    assert_eq!(spec["externalName"], "web.example.test");
    assert!(spec.get("clusterIP").is_none(), "{spec}");
    let morph = "morph.default.svc.cluster.local";
    let lookup = |want: &str| {
        eventually(Duration::from_secs(60), || {
            let (_, out, err) = env.run(&[
                "kubectl", "-p", profile, "--", "exec", &client, "--", "nslookup", morph,
            ]);
            if out.contains(want) {
                Ok(())
            } else {
                Err(format!("{morph} is not {want}: {out}{err}"))
            }
        })
    };
    lookup("canonical name = web.example.test");
    eventually(Duration::from_secs(30), || {
        match common::http_get_at("127.0.0.2", 80, None) {
            Ok(answer) => Err(format!("127.0.0.2:80 still answers: {answer}")),
            Err(_) => Ok(()),
        }
    });
    for address in [format!("{first_ip} 80"), format!("{node_ip} 30084")] {
        eventually(Duration::from_secs(30), || {
            match env.get_from_pod(profile, &client, &address) {
                Ok(answer) => Err(format!("{address} still answers: {answer}")),
                Err(_) => Ok(()),
            }
        });
    }

    // ExternalName -> ClusterIP: a new address that answers.
    patch_morph(
        &env,
        profile,
        r#"{"spec":{"type":"ClusterIP","externalName":null,"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}}"#,
    );
    let new_ip = cluster_ip(&env, profile, "morph");
    assert!(!new_ip.is_empty());
    backends(&env, profile, &client, &format!("{new_ip} 80"), 1);
    lookup(&format!("Address: {new_ip}"));
}
