//! LoadBalancer Services, built in: on a 2-node cluster, Services of type
//! LoadBalancer get 127.0.0.1 as their external address and answer there
//! from the host, several at once; a port taken on the host is named on the
//! Service (an event) and in `berth status`, and served once it is free;
//! deleting a Service frees its port; Services of another
//! loadBalancerClass are left alone; all of it survives stop and start,
//! and delete leaves nothing.

mod common;

use std::time::Duration;

use common::{Env, Parts, eventually, free_port, http_get, json};

const IMAGE: &str = "berth.test/load-balancer:1";
const PROFILE: &str = "lb";

/// A LoadBalancer Service `name` on host port `port` in front of the web
/// pods; `class` is its loadBalancerClass.
fn service(name: &str, port: u16, class: Option<&str>) -> String {
    let class = class
        .map(|c| format!("\n  loadBalancerClass: {c}"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: LoadBalancer{class}\n  \
         selector: {{app: web}}\n  ports: [{{name: http, port: {port}, targetPort: 8080}}]\n"
    )
}

/// The Service's external address, empty while it has none.
fn external_ip(env: &Env, name: &str) -> String {
    env.kubectl(
        PROFILE,
        &[
            "get",
            "service",
            name,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ],
    )
}

/// Waits until host port `port` answers with one of the web pods' names.
fn answers(port: u16) {
    eventually(Duration::from_secs(60), || {
        let page = http_get(port, None)?;
        page.starts_with("web-")
            .then_some(())
            .ok_or(format!("127.0.0.1:{port} answered {page:?}"))
    });
}

/// The port `port` of Service `name` as `berth status -o json` lists it.
fn listed(env: &Env, name: &str, port: u16) -> serde_json::Value {
    let status = json(&env.ok(&["status", "-p", PROFILE, "-o", "json"]));
    status["services"]["forwards"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|f| f["service"] == name && f["port"] == port)
                .cloned()
        })
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn load_balancer_services_answer_on_the_host_and_say_why_when_they_cannot() {
    let env = Env::new();
    let _image = common::shared_busybox(IMAGE);
    env.ok(&["start", "-p", PROFILE, "--nodes", "2"]);
    env.ok(&["image", "load", IMAGE, "-p", PROFILE]);
    env.apply(PROFILE, &common::web_deployment(IMAGE, 2));
    env.kubectl(
        PROFILE,
        &["rollout", "status", "deployment/web", "--timeout=180s"],
    );
    let (first, second, taken) = (free_port(), free_port(), free_port());
    let mut parts = Parts::default();

    parts.run("two Services get 127.0.0.1 and answer there", || {
        env.apply(PROFILE, &service("first", first, None));
        env.apply(PROFILE, &service("second", second, None));
        for (name, port) in [("first", first), ("second", second)] {
            eventually(Duration::from_secs(30), || {
                let ip = external_ip(&env, name);
                (ip == "127.0.0.1")
                    .then_some(())
                    .ok_or(format!("{name} has external address {ip:?}"))
            });
            answers(port);
            let forward = listed(&env, name, port);
            assert_eq!(forward["address"], "127.0.0.1", "{forward}");
            assert!(forward["error"].is_null(), "{forward}");
        }
        let text = env.ok(&["status", "-p", PROFILE]);
        assert!(
            text.contains(&format!("  default/first {first}/TCP: 127.0.0.1:{first}")),
            "{text}"
        );
    });

    parts.run(
        "a port taken on the host is named, and served once free",
        || {
            let holder = std::net::TcpListener::bind(("127.0.0.1", taken)).unwrap();
            env.apply(PROFILE, &service("taken", taken, None));
            eventually(Duration::from_secs(30), || {
                let events = env.kubectl(
                    PROFILE,
                    &[
                        "get",
                        "events",
                        "--field-selector",
                        "involvedObject.name=taken,reason=PortNotForwarded",
                        "-o",
                        "jsonpath={.items[*].message}",
                    ],
                );
                events
                    .contains(&format!("cannot listen on 127.0.0.1:{taken} of the host"))
                    .then_some(())
                    .ok_or(format!("events of Service taken: {events:?}"))
            });
            assert_eq!(external_ip(&env, "taken"), "");
            let forward = listed(&env, "taken", taken);
            assert!(forward["address"].is_null(), "{forward}");
            let error = forward["error"].as_str().unwrap_or_default();
            assert!(error.contains("Address already in use"), "{forward}");
            let text = env.ok(&["status", "-p", PROFILE]);
            assert!(
                text.contains(&format!(
                    "  default/taken {taken}/TCP: not forwarded: cannot listen"
                )),
                "{text}"
            );
            drop(holder);
            answers(taken);
            assert_eq!(external_ip(&env, "taken"), "127.0.0.1");
        },
    );

    parts.run("deleting a Service frees its port", || {
        env.kubectl(PROFILE, &["delete", "service", "taken"]);
        eventually(Duration::from_secs(30), || {
            std::net::TcpListener::bind(("127.0.0.1", taken))
                .map(drop)
                .map_err(|e| format!("127.0.0.1:{taken} is still held: {e}"))
        });
        answers(first);
    });

    parts.run(
        "a Service of another loadBalancerClass is left alone",
        || {
            let port = free_port();
            env.apply(PROFILE, &service("other", port, Some("example.com/other")));
            // Its neighbour's change is seen within a second; this one's would be too.
            env.kubectl(PROFILE, &["delete", "service", "second"]);
            eventually(Duration::from_secs(30), || {
                std::net::TcpListener::bind(("127.0.0.1", second))
                    .map(drop)
                    .map_err(|e| format!("127.0.0.1:{second} is still held: {e}"))
            });
            assert_eq!(external_ip(&env, "other"), "");
            assert!(listed(&env, "other", port).is_null());
            assert!(http_get(port, None).is_err());
        },
    );

    parts.run("stop and start keep the Services answering", || {
        env.ok(&["stop", "-p", PROFILE]);
        assert!(http_get(first, None).is_err(), "a stopped profile answers");
        env.ok(&["start", "-p", PROFILE]);
        answers(first);
        assert_eq!(external_ip(&env, "first"), "127.0.0.1");
    });

    parts.run("delete leaves nothing", || {
        env.ok(&["delete", "-p", PROFILE]);
        assert_eq!(env.leftovers(PROFILE), Vec::<String>::new());
        std::net::TcpListener::bind(("127.0.0.1", first)).unwrap();
    });
}

#[test]
fn a_bad_lb_address_is_refused_and_changes_nothing() {
    let env = Env::new();
    for bad in ["0.0.0.0", "example", "224.0.0.1"] {
        let (code, _, stderr) = env.run(&["start", "-p", "bad", "--lb-address", bad]);
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("is not an address LoadBalancer Services can answer on"),
            "{stderr}"
        );
        assert!(stderr.contains("ip -4 addr"), "{stderr}");
    }
    assert_eq!(env.leftovers("bad"), Vec::<String>::new());
}
