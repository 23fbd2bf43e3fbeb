//! The pull-through registry cache every profile of a home shares, in
//! front of an upstream registry of the test's own (Debian's
//! docker-registry in a container on the cache's network, pushed to from
//! the host through 127.0.0.1): a profile made before the cache and one
//! made after it pull the same image, and the upstream serves it once.

mod common;

use std::time::Duration;

use common::{Env, Guard, Resource, block_on, eventually, json};

/// A pod of `image` that sleeps, pulled whenever it is not on the node.
fn sleeper(image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: cached}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         containers:\n  - {{name: c, image: {image}, imagePullPolicy: Always, command: [sleep, \"3600\"]}}\n"
    )
}

/// The upstream's access log lines that fetched content (GET of a
/// manifest or a blob); a HEAD, which only asks whether a tag moved, is
/// not a pull (nor is it one to Docker Hub's limits).
fn pulls(upstream: &str) -> Vec<String> {
    common::container_logs(upstream)
        .lines()
        .filter(|l| l.contains("\"GET /v2/web/"))
        .map(str::to_string)
        .collect()
}

fn status(env: &Env) -> serde_json::Value {
    json(&env.ok(&["cache", "registry", "status", "-o", "json"]))
}

#[test]
fn profiles_share_one_pull_through_cache_that_outlives_them() {
    let env = Env::new();
    env.ok(&["start", "-p", "early", "--no-storage"]);

    let tag = std::process::id();
    let upstream = format!("berth-test-upstream-{tag}");
    let image = "registry.test/web:1";
    let up = format!("registry.test=http://{upstream}:5000");
    env.ok(&["cache", "registry", "enable", "--upstream", &up]);
    let on = status(&env);
    assert_eq!(on["state"], "running", "{on}");
    assert_eq!(on["profiles"], serde_json::json!(["early"]), "{on}");
    let network = on["network"].as_str().unwrap().to_string();
    let subnet: berth_node::net::Cidr = on["subnet"].as_str().unwrap().parse().unwrap();

    // The upstream, on the cache's network only, and published on the
    // loopback for the host's engine to push to.
    let volume = format!("berth-test-upstream-{tag}");
    let _volume = Guard(Resource::Volume(volume.clone()));
    let _upstream = Guard(Resource::Container(upstream.clone()));
    let port = common::free_port();
    let address = subnet.host(10).to_string();
    common::test_registry(
        &upstream,
        &volume,
        Some((network, address)),
        Some(port),
        None,
    );
    let local = format!("berth-test/cache-web-{tag}:1");
    block_on(async {
        let docker = berth_engine::Docker::connect().await.unwrap();
        common::busybox_image(&docker, &local, &[], &[]).await;
    });
    let _local = Guard(Resource::Image(local.clone()));
    let _pushed = common::push(&local, &format!("127.0.0.1:{port}/web"));
    // The cache's mirror of an upstream it could not reach tries again.
    eventually(Duration::from_secs(60), || {
        let up = status(&env)["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["host"] == "registry.test")
            .cloned()
            .unwrap();
        (up["serving"] == true).then_some(()).ok_or(up.to_string())
    });
    let before = pulls(&upstream).len();

    // A profile made before the cache pulls through it: the name
    // registry.test resolves nowhere but on the cache's network.
    env.apply("early", &sleeper(image));
    env.wait_ready("early", "cached");
    let first = pulls(&upstream);
    assert!(
        first.len() > before,
        "the upstream served nothing:\n{first:?}"
    );

    // One made after it pulls the same image without the upstream serving
    // any of it again.
    env.ok(&["start", "-p", "late", "--no-storage"]);
    env.apply("late", &sleeper(image));
    env.wait_ready("late", "cached");
    let second = pulls(&upstream);
    assert_eq!(second, first, "the upstream served the image twice");
    let on = status(&env);
    assert_eq!(on["profiles"], serde_json::json!(["early", "late"]), "{on}");
    assert!(on["bytes"].as_u64().unwrap() > 500_000, "{on}");
    let text = env.ok(&["cache", "registry", "status"]);
    assert!(
        text.contains("registry.test") && text.contains("serving"),
        "{text}"
    );

    // Deleting every profile leaves the cache and its images.
    env.ok(&["delete", "--all"]);
    let on = status(&env);
    assert_eq!(on["state"], "running", "{on}");
    assert_eq!(on["profiles"], serde_json::json!([]), "{on}");
    assert!(on["bytes"].as_u64().unwrap() > 500_000, "{on}");

    // Pruning empties it and keeps it on.
    let pruned = json(&env.ok(&["cache", "registry", "prune", "-o", "json"]));
    assert!(
        pruned["freed_bytes"].as_u64().unwrap() > 500_000,
        "{pruned}"
    );
    let on = status(&env);
    assert_eq!(on["state"], "running", "{on}");
    assert!(on["bytes"].as_u64().unwrap() < 100_000, "{on}");

    // Enabling it with other upstreams is refused and changes nothing.
    let (code, _, stderr) = env.run(&["cache", "registry", "enable"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("disable"), "{stderr}");
    assert_eq!(status(&env)["state"], "running");
    let (code, _, stderr) = env.run(&["cache", "registry", "enable", "--upstream", "nonsense"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("HOST=URL"), "{stderr}");

    // Disabled, nothing of it is left.
    drop(_upstream);
    env.ok(&["cache", "registry", "disable"]);
    assert_eq!(status(&env)["enabled"], false);
    let left = common::resources(&berth_core::names::registry_cache_filter(&env.berth_home()));
    assert!(left.is_empty(), "left behind: {left:?}");
}
