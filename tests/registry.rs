//! A profile's own registry: an image pushed from the host runs in pods on
//! every node of a 3-node cluster, is kept across stop and start, and two
//! profiles each have their own.

mod common;

use std::time::Duration;

use berth_engine::Docker;
use common::{Env, Guard, Resource, block_on, busybox_image, eventually, json};

const IMAGE: &str = "berth.test/registry-app:1";

/// The registry of `profile`, as `localhost:PORT`, from `status`.
fn registry(env: &Env, profile: &str) -> String {
    let status = json(&env.ok(&["status", "-p", profile, "-o", "json"]));
    let registry = status["registry"].as_str().unwrap_or_default().to_string();
    let (host, state) = registry.split_once(' ').expect("a registry in status");
    assert_eq!(state, "(running)", "{status}");
    host.to_string()
}

/// Pushes IMAGE as `<host>/app:1` from the host's engine; the tag is
/// removed when the guard goes.
fn push(host: &str) -> Guard {
    common::push(IMAGE, &format!("{host}/app"))
}

/// A pod on `node` that runs `<host>/app:1`, pulled each time.
fn pulled_pod(env: &Env, profile: &str, pod: &str, node: &str, host: &str) {
    env.apply(
        profile,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}}}\nspec:\n  nodeName: {node}\n  \
             terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {host}/app:1, \
             imagePullPolicy: Always, command: [sleep, \"3600\"]}}\n"
        ),
    );
    env.wait_ready(profile, pod);
}

#[test]
fn an_image_pushed_from_the_host_runs_on_every_node_and_each_profile_has_its_own() {
    let env = Env::new();
    let profile = "e2e-reg";
    let _image = block_on(async {
        let docker = Docker::connect().await.unwrap();
        busybox_image(&docker, IMAGE, &[], &[]).await;
        Guard(Resource::Image(IMAGE.into()))
    });
    env.ok(&[
        "start",
        "-p",
        profile,
        "--nodes",
        "3",
        "--registry",
        "--wait",
        "3m",
    ]);
    let host = registry(&env, profile);
    let _pushed = push(&host);
    let nodes = [
        profile.to_string(),
        format!("{profile}-m02"),
        format!("{profile}-m03"),
    ];
    for (i, node) in nodes.iter().enumerate() {
        pulled_pod(&env, profile, &format!("app-{i}"), node, &host);
    }

    // The registry's images outlive a stop: pulled again after the start.
    env.ok(&["stop", "-p", profile]);
    let (_, stopped, _) = env.run(&["status", "-p", profile, "-o", "json"]);
    let stopped = json(&stopped);
    assert!(
        stopped["registry"].as_str().unwrap().ends_with("(stopped)"),
        "{stopped}"
    );
    env.ok(&["start", "-p", profile, "--wait", "3m"]);
    assert_eq!(registry(&env, profile), host, "the port changed");
    env.kubectl(profile, &["delete", "pod", "--all", "--wait"]);
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        docker.remove_image(&format!("{host}/app:1")).await.unwrap();
    });
    pulled_pod(&env, profile, "again", &nodes[2], &host);

    // A second profile gets its own, also added to it while it runs.
    let second = "e2e-reg2";
    env.ok(&["start", "-p", second, "--wait", "3m"]);
    let (code, _, err) = env.run(&["start", "-p", second, "--registry"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("berth registry enable"), "{err}");
    let enabled = env.ok(&["registry", "enable", "-p", second]);
    let second_host = registry(&env, second);
    assert_eq!(enabled.trim(), second_host);
    assert_ne!(second_host, host);
    let (code, _, err) = env.run(&["registry", "enable", "-p", second]);
    assert_eq!(code, 2, "{err}");
    let _second_pushed = push(&second_host);
    pulled_pod(&env, second, "app", second, &second_host);
    // Not pushed there: the first profile's registry is not the second's.
    env.apply(
        second,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: stranger}}\nspec:\n  containers:\n  - {{name: c, \
             image: {second_host}/other:1, imagePullPolicy: Always, command: [sleep, \"3600\"]}}\n"
        ),
    );
    eventually(Duration::from_secs(60), || {
        let reason = env.kubectl(
            second,
            &[
                "get",
                "pod",
                "stranger",
                "-o",
                "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
            ],
        );
        if reason.contains("ErrImagePull") || reason.contains("ImagePullBackOff") {
            Ok(())
        } else {
            Err(format!("an image never pushed: {reason:?}"))
        }
    });

    env.ok(&["delete", "-p", second]);
    env.ok(&["delete", "-p", profile]);
    assert_eq!(env.leftovers(profile), Vec::<String>::new());
    assert_eq!(env.leftovers(second), Vec::<String>::new());
}
