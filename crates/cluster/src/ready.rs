//! Readiness, read through the Kubernetes API: the API server, every node,
//! and what a first pod needs.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, Patch, PatchParams};

use super::Ctx;
use berth_core::error::{Error, Result};
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
/// pods: its not-ready taint, which the node lifecycle controller lifts
/// some time after Ready, is gone, so a first pod is scheduled at once
/// instead of after the scheduler's back-off.
pub async fn node_ready(client: &kube::Client, node: &str, since: Option<i64>) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    let Ok(Some(node)) = nodes.get_opt(node).await else {
        return false;
    };
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|taints| {
            taints
                .iter()
                .any(|t| t.key == "node.kubernetes.io/not-ready")
        });
    !tainted
        && node
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| {
                c.type_ == "Ready"
                    && c.status == "True"
                    && since.is_none_or(|since| {
                        c.last_heartbeat_time
                            .as_ref()
                            .is_some_and(|t| t.0.as_second() >= since)
                    })
            })
}

/// Polls `ready` every 200 ms until it holds or `deadline` passes.
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
        tokio::time::sleep(Duration::from_millis(200)).await;
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
    if nodes.iter().any(|n| n.is_control_plane())
        && !poll(deadline, || default_account(&client, profile)).await
    {
        drop(step);
        let what = "the default service account";
        let unit = "kube-controller-manager";
        return Err(not_ready(ctx, profile, &control_plane, what, unit, wait).await);
    }
    label_roles(&client, nodes).await?;
    step.done();
    Ok(())
}

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
            // Another creator winning the race is as good.
            let _ = accounts.create(&Default::default(), &account).await;
            false
        }
        Err(_) => false,
    }
}

/// Roles are labels kubelet may not set on itself (NodeRestriction). The
/// control plane stays schedulable: a local cluster uses all its nodes.
async fn label_roles(client: &kube::Client, nodes: &[profile::Node]) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    for node in nodes {
        let label = format!("node-role.kubernetes.io/{}", node.role());
        let patch = serde_json::json!({"metadata": {"labels": {label: ""}}});
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

    #[test]
    fn a_node_is_ready_once_untainted_and_ready_in_a_heartbeat_since_the_start() {
        let api = std::sync::Arc::new(crate::testing::FakeApi::default());
        let node = |name: &str, ready: &str, heartbeat: &str, taint: bool| {
            let taints: Vec<_> = taint
                .then(|| json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}))
                .into_iter()
                .collect();
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "spec": {"taints": taints},
                "status": {"conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat}]}})
        };
        api.add(
            "nodes",
            node("ready", "True", "2026-12-07T10:00:00Z", false),
        );
        api.add(
            "nodes",
            node("not-ready", "False", "2026-12-07T10:00:00Z", false),
        );
        api.add(
            "nodes",
            node("tainted", "True", "2026-12-07T10:00:00Z", true),
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
            assert!(!node_ready(&client, "tainted", None).await);
            assert!(!node_ready(&client, "absent", None).await);
        });
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
            json!({"node-role.kubernetes.io/control-plane": ""})
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
