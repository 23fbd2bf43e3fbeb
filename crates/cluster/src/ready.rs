//! Readiness, read through the Kubernetes API: the API server, every node,
//! and what a first pod needs.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node, ServiceAccount};
use kube::api::{Api, Patch, PatchParams};

use super::Ctx;
use berth_core::error::{Error, Result};
use berth_core::pki::Pki;
use berth_core::profile::{self, Profile};
use berth_node::command;

/// A client for the profile's API server, as the admin.
pub async fn client(store: &profile::Store, profile: &Profile) -> Result<kube::Client> {
    let yaml = berth_core::kubeconfig::standalone(&super::admin_entry(store, profile)?);
    let internal =
        |e: String| Error::failure(format!("cannot build a client for {}: {e}", profile.name));
    let config = kube::config::Kubeconfig::from_yaml(&yaml).map_err(|e| internal(e.to_string()))?;
    let mut config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .map_err(|e| internal(e.to_string()))?;
    // The API server is published on this machine's loopback or on the
    // engine's host, reached directly as the engine is: a proxy of the
    // user's (HTTPS_PROXY, which kube-rs takes, unlike Go, also for
    // 127.0.0.1) has no part in reaching it.
    config.proxy_url = None;
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(5));
    kube::Client::try_from(config).map_err(|e| internal(e.to_string()))
}

pub async fn api_ready(client: &kube::Client) -> bool {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .expect("valid request");
    client
        .request_text(request)
        .await
        .is_ok_and(|body| body.trim() == "ok")
}

/// Whether the node reports Ready, in a heartbeat sent at `since` (Unix
/// seconds) or later when given (a node started again still shows its last
/// Ready from before it stopped until its kubelet reports afresh), and takes
/// pods: its not-ready taint is gone, so a first pod is scheduled at once
/// instead of after the scheduler's back-off.
///
/// A new node is tainted not-ready when it registers, and only the node
/// lifecycle controller lifts the taint once it sees the node Ready. That
/// controller starts most of a second after the API server is ready, while
/// the kubelet reports Ready before; berth lifts the taint itself on that
/// report, as the controller would, which takes that second off every
/// start. The patch carries the node's resourceVersion, so a taint changed
/// meanwhile (by the controller, on a newer report) is left to it.
pub async fn node_ready(client: &kube::Client, node: &str, since: Option<i64>) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    let Ok(Some(node)) = nodes.get_opt(node).await else {
        return false;
    };
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.type_ == "Ready"
                    && c.status == "True"
                    && since.is_none_or(|since| {
                        c.last_heartbeat_time
                            .as_ref()
                            .is_some_and(|t| t.0.as_second() >= since)
                    })
            })
        });
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let (not_ready, others): (Vec<_>, Vec<_>) =
        taints.into_iter().partition(|t| t.key == NOT_READY);
    if !ready || not_ready.is_empty() {
        return ready;
    }
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"taints": others},
    });
    let name = node.metadata.name.unwrap_or_default();
    nodes
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .is_ok()
}

const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// Polls `ready` every 100 ms until it holds or `deadline` passes: each
/// try is one small request, and each period is time a start may wait for
/// nothing.
async fn poll<F, Fut>(deadline: Instant, mut ready: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if ready().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the API server, then for `nodes` (all of the profile's when
/// `None`) to be Ready (in a heartbeat sent at `since` or later, when
/// given), through the Kubernetes API, and gives the nodes their roles.
pub async fn wait_ready(
    ctx: &Ctx,
    profile: &Profile,
    nodes: Option<&[profile::Node]>,
    since: Option<i64>,
    wait: Option<Duration>,
) -> Result<()> {
    let Some(wait) = wait else { return Ok(()) };
    let deadline = Instant::now() + wait;
    let client = ctx.client(profile).await?;
    let control_plane = profile.control_plane();
    let step = ctx.ui.step("Waiting for the API server");
    if !poll(deadline, || api_ready(&client)).await {
        drop(step);
        let what = "the API server";
        return Err(not_ready(ctx, profile, &control_plane, what, "kube-apiserver", wait).await);
    }
    step.done();
    let all = profile.nodes();
    let nodes = nodes.unwrap_or(&all);
    let step = ctx.ui.step(if nodes.len() == 1 {
        format!("Waiting for node {} to be Ready", nodes[0].name)
    } else {
        format!("Waiting for {} nodes to be Ready", nodes.len())
    });
    for node in nodes {
        if !poll(deadline, || node_ready(&client, &node.name, since)).await {
            drop(step);
            let what = format!("node {}", node.name);
            return Err(not_ready(ctx, profile, node, &what, "kubelet", wait).await);
        }
    }
    if nodes.iter().any(|n| n.is_control_plane()) {
        let ca = Pki::new(&ctx.store.pki_dir(&profile.name)).read("ca.crt")?;
        let first_pod =
            || async { root_ca(&client, &ca).await & default_account(&client, profile).await };
        if !poll(deadline, first_pod).await {
            drop(step);
            let what = "the default service account and the root CA's ConfigMap";
            let unit = "kube-controller-manager";
            return Err(not_ready(ctx, profile, &control_plane, what, unit, wait).await);
        }
    }
    label_roles(&client, nodes).await?;
    step.done();
    Ok(())
}

/// A pod's service-account volume holds the cluster's CA from the
/// `kube-root-ca.crt` ConfigMap of its namespace, which the controller
/// manager publishes a moment after it starts: a first pod made before
/// that waited half a second more for its volume (kubelet's back-off, seen
/// in the journal of a new profile). berth publishes the same CA in
/// `default` at once; the controller finds it as it would have made it.
async fn root_ca(client: &kube::Client, ca_pem: &str) -> bool {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    match maps.get_opt(ROOT_CA).await {
        Ok(Some(_)) => true,
        Ok(None) => {
            let map: ConfigMap = serde_json::from_value(serde_json::json!({
                "metadata": {"name": ROOT_CA},
                "data": {"ca.crt": ca_pem},
            }))
            .expect("a valid ConfigMap");
            maps.create(&Default::default(), &map).await.is_ok()
        }
        Err(_) => false,
    }
}

const ROOT_CA: &str = "kube-root-ca.crt";

/// Pods cannot be created in a namespace before its default service account
/// exists (before v1.24: with its token), which may come after the node is
/// Ready. berth makes the account the controller would make, so the user's
/// first pod is not refused.
async fn default_account(client: &kube::Client, profile: &Profile) -> bool {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let needs_token = berth_node::supported(&profile.kubernetes_version)
        .is_ok_and(|row| !row.has(berth_node::minors::Upstream::NoTokenSecrets));
    match accounts.get_opt("default").await {
        Ok(Some(sa)) => !needs_token || sa.secrets.as_ref().is_some_and(|s| !s.is_empty()),
        Ok(None) => {
            let account: ServiceAccount =
                serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}}))
                    .expect("a valid ServiceAccount");
            // Another creator winning the race is as good, but then its
            // token is for the next look to see.
            accounts.create(&Default::default(), &account).await.is_ok() && !needs_token
        }
        Err(_) => false,
    }
}

/// Roles are labels kubelet may not set on itself (NodeRestriction). The
/// control plane stays schedulable: a local cluster uses all its nodes.
/// Control planes get CoreDNS's label too, which their kubelets register
/// with: a node registered by an older berth has none.
async fn label_roles(client: &kube::Client, nodes: &[profile::Node]) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    for node in nodes {
        let mut labels = serde_json::Map::new();
        labels.insert(
            format!("node-role.kubernetes.io/{}", node.role()),
            "".into(),
        );
        if node.is_control_plane() {
            labels.insert(berth_node::render::CONTROL_PLANE_LABEL.into(), "".into());
        }
        let patch = serde_json::json!({"metadata": {"labels": labels}});
        api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                Error::failure(format!("cannot label node {}: {e}", node.name))
                    .with_hint("the cluster runs; `berth start` again labels its nodes")
            })?;
    }
    Ok(())
}

async fn not_ready(
    ctx: &Ctx,
    profile: &Profile,
    node: &profile::Node,
    what: &str,
    unit: &str,
    wait: Duration,
) -> Error {
    let journal = command::journal_tail(unit, 15);
    let logs = ctx
        .docker
        .exec(&node.container, &journal)
        .await
        .map(|o| o.stdout)
        .unwrap_or_else(|e| format!("(no log: {e})"));
    Error::not_ready(format!(
            "{what} of profile {} was not ready within {} s; last lines of {unit}'s log on {}:\n{logs}",
            profile.name,
            wait.as_secs(),
            node.name
        ),
    )
    .with_hint(format!(
        "`berth status -p {name}` shows each component, `berth logs --problems -p {name}` what went wrong \
         (with --keep-on-failure for a new profile); start again with a longer --wait",
        name = profile.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A node whose Ready is `ready` at `heartbeat`, with `taints` (keys).
    fn node(name: &str, ready: &str, heartbeat: &str, taints: &[&str]) -> serde_json::Value {
        let taints: Vec<_> = taints
            .iter()
            .map(|key| json!({"key": key, "effect": "NoSchedule"}))
            .collect();
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "resourceVersion": "7"},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat}]}})
    }

    #[test]
    fn a_node_is_ready_once_ready_in_a_heartbeat_since_the_start() {
        let api = std::sync::Arc::new(crate::testing::FakeApi::default());
        api.add("nodes", node("ready", "True", "2026-12-07T10:00:00Z", &[]));
        api.add(
            "nodes",
            node("not-ready", "False", "2026-12-07T10:00:00Z", &[]),
        );
        // 2026-12-07T10:00:00Z, and a second after.
        let (heartbeat, after) = (1_796_637_600, 1_796_637_601);
        crate::testing::block_on(async {
            let client = api.client();
            assert!(node_ready(&client, "ready", None).await);
            assert!(node_ready(&client, "ready", Some(heartbeat)).await);
            // Its Ready was said before this start: a stopped node's old word.
            assert!(!node_ready(&client, "ready", Some(after)).await);
            assert!(!node_ready(&client, "not-ready", None).await);
            assert!(!node_ready(&client, "absent", None).await);
        });
        assert!(!api.requests().iter().any(|r| r.starts_with("PATCH")));
    }

    #[test]
    fn the_not_ready_taint_of_a_ready_node_is_lifted_and_only_that() {
        let api = std::sync::Arc::new(crate::testing::FakeApi::default());
        let taints = [NOT_READY, "example.com/mine"];
        api.add(
            "nodes",
            node("ready", "True", "2026-12-07T10:00:00Z", &taints),
        );
        api.add(
            "nodes",
            node("not-ready", "False", "2026-12-07T10:00:00Z", &taints),
        );
        api.add(
            "nodes",
            node("raced", "True", "2026-12-07T10:00:00Z", &taints),
        );
        // The taint changed under berth (a stale resourceVersion).
        api.fail("PATCH", "/api/v1/nodes/raced", 409);
        crate::testing::block_on(async {
            let client = api.client();
            assert!(node_ready(&client, "ready", None).await);
            assert!(!node_ready(&client, "not-ready", None).await);
            assert!(!node_ready(&client, "raced", None).await);
        });
        let keys = |name: &str| -> Vec<String> {
            api.get("nodes", name).unwrap()["spec"]["taints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["key"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(keys("ready"), ["example.com/mine"]);
        assert_eq!(keys("not-ready"), taints);
        assert_eq!(keys("raced"), taints);
        let patches: Vec<_> = api
            .requests()
            .into_iter()
            .filter(|r| r.starts_with("PATCH"))
            .collect();
        assert_eq!(
            patches,
            ["PATCH /api/v1/nodes/ready", "PATCH /api/v1/nodes/raced"]
        );
    }

    #[test]
    fn the_default_account_is_made_and_counts_once_made_where_no_token_is_due() {
        let current = Profile {
            kubernetes_version: "v1.37.2".parse().unwrap(),
            ..Profile::example("dev")
        };
        // Before v1.24 the controller must still add its token.
        let old = Profile::example("old");
        for (profile, ready) in [(&current, true), (&old, false)] {
            let api = std::sync::Arc::new(crate::testing::FakeApi::default());
            crate::testing::block_on(async {
                assert_eq!(default_account(&api.client(), profile).await, ready);
            });
            assert!(api.get("serviceaccounts", "default").is_some());
        }
    }

    #[test]
    fn the_root_ca_is_published_in_default_unless_it_is_there() {
        let api = std::sync::Arc::new(crate::testing::FakeApi::default());
        crate::testing::block_on(async {
            assert!(root_ca(&api.client(), "PEM").await);
            assert!(root_ca(&api.client(), "PEM").await);
        });
        let map = api.get("configmaps", ROOT_CA).unwrap();
        assert_eq!(map["data"]["ca.crt"], "PEM");
        let posts = api
            .requests()
            .iter()
            .filter(|r| r.starts_with("POST"))
            .count();
        assert_eq!(posts, 1, "{:?}", api.requests());
    }

    #[test]
    fn each_node_is_labelled_with_its_role() {
        let api = std::sync::Arc::new(crate::testing::FakeApi::default());
        let profile = Profile {
            workers: vec![1],
            ..Profile::example("dev")
        };
        for node in profile.nodes() {
            api.add(
                "nodes",
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node.name}}),
            );
        }
        crate::testing::block_on(async { label_roles(&api.client(), &profile.nodes()).await })
            .unwrap();
        let labels = |name: &str| api.get("nodes", name).unwrap()["metadata"]["labels"].clone();
        assert_eq!(
            labels("dev"),
            json!({"node-role.kubernetes.io/control-plane": "", "berth.io/control-plane": ""})
        );
        assert_eq!(
            labels(&profile.nodes()[1].name),
            json!({"node-role.kubernetes.io/worker": ""})
        );
        api.fail("PATCH", "/api/v1/nodes/dev", 403);
        let error =
            crate::testing::block_on(async { label_roles(&api.client(), &profile.nodes()).await })
                .unwrap_err();
        assert!(
            error.to_string().contains("cannot label node dev"),
            "{error}"
        );
    }
}
