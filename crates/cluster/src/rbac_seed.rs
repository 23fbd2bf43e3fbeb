//! The RBAC roles and bindings a new cluster's API server makes as it
//! first starts, made by berth instead while the API server waits.
//!
//! The API server's `rbac/bootstrap-roles` post-start hook waits a second
//! after the server starts serving, then makes the bootstrap roles and
//! bindings one at a time (141 in v1.37, about 0.6 s on a 2-core machine),
//! and the server reports ready only once they are in; a node booted again
//! only reads them. berth keeps the objects the first new cluster of each
//! version got in the cache and, for the next new cluster of that version,
//! makes them several at a time as soon as the server answers, inside the
//! hook's second: the hook then finds them and only reads them, as after a
//! restart. They are the objects that version's hook made, and the hook
//! still reconciles each one, so whatever is missing or differs is put
//! right by it as before.

use std::path::Path;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, ObjectList, ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};

use berth_core::error::Result;
use berth_core::profile::Profile;

/// The label the API server puts on every object of its bootstrap policy.
const BOOTSTRAP: &str = "kubernetes.io/bootstrapping=rbac-defaults";

/// How many objects berth makes at once: enough to keep the API server
/// busy on two cores without a queue of its own.
const AT_ONCE: usize = 8;

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Seed {
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
}

/// Whether the profile's API server makes the policy every cluster of its
/// version makes: feature gates and the API server's own flags may change
/// the roles, so such a profile neither takes nor leaves a seed.
pub(crate) fn applies(profile: &Profile) -> bool {
    profile.feature_gates.is_empty()
        && !profile
            .extra_config
            .iter()
            .any(|flag| flag.component == "kube-apiserver")
}

/// The seed kept for a version, if any; one that cannot be read is left
/// out, since the hook makes the objects anyway.
pub(crate) fn read(path: &Path) -> Option<Seed> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Keeps `seed` at `path`, whole or not at all. A cache berth may not
/// write costs only the seconds the seed would save.
pub(crate) fn write(path: &Path, seed: &Seed) {
    let Ok(json) = serde_json::to_vec(seed) else {
        return;
    };
    // Another berth may be leaving the same seed at the same moment.
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    if std::fs::write(&partial, json).is_err() || std::fs::rename(&partial, path).is_err() {
        let _ = std::fs::remove_file(&partial);
    }
}

/// The bootstrap policy a ready API server made, as the objects to make
/// again: names, labels and annotations kept, what the server assigned
/// left out, and the rules of aggregated roles left to the controller that
/// fills them.
pub(crate) async fn capture(client: &kube::Client) -> kube::Result<Seed> {
    let params = ListParams::default().labels(BOOTSTRAP);
    let (cluster_roles, cluster_role_bindings, roles, role_bindings) = (
        Api::<ClusterRole>::all(client.clone()),
        Api::<ClusterRoleBinding>::all(client.clone()),
        Api::<Role>::all(client.clone()),
        Api::<RoleBinding>::all(client.clone()),
    );
    let (cluster_roles, cluster_role_bindings, roles, role_bindings) = futures_util::try_join!(
        cluster_roles.list(&params),
        cluster_role_bindings.list(&params),
        roles.list(&params),
        role_bindings.list(&params),
    )?;
    let seed = Seed {
        cluster_roles: as_made(cluster_roles)
            .into_iter()
            .map(|mut role| {
                if role.aggregation_rule.is_some() {
                    role.rules = None;
                }
                role
            })
            .collect(),
        cluster_role_bindings: as_made(cluster_role_bindings),
        roles: as_made(roles),
        role_bindings: as_made(role_bindings),
    };
    Ok(seed)
}

/// A list's objects with only what of their metadata their maker gave.
fn as_made<K: kube::Resource + Clone>(list: ObjectList<K>) -> Vec<K> {
    list.items
        .into_iter()
        .map(|mut object| {
            let meta = std::mem::take(object.meta_mut());
            *object.meta_mut() = ObjectMeta {
                name: meta.name,
                namespace: meta.namespace,
                labels: meta.labels,
                annotations: meta.annotations,
                ..ObjectMeta::default()
            };
            object
        })
        .collect()
}

/// Waits for a new cluster with `ready`, planting the seed kept at `path`
/// meanwhile; without one, the cluster once ready leaves its policy there
/// for the next (its API server is ready only once the hook has made every
/// object).
pub(crate) async fn around<T>(
    client: kube::Client,
    path: &Path,
    wait: Duration,
    ready: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let Some(kept) = read(path) else {
        let ready = ready.await?;
        if let Ok(made) = capture(&client).await {
            write(path, &made);
        }
        return Ok(ready);
    };
    let planting = tokio::spawn(plant(client, kept, wait));
    let ready = ready.await;
    planting.abort();
    ready
}

/// Makes the seed's objects once the API server answers, `AT_ONCE` at a
/// time, and gives up after `patience`. Each object is tried once: one
/// the hook made first, or in a namespace not made yet, is left to the
/// hook.
pub(crate) async fn plant(client: kube::Client, seed: Seed, patience: Duration) {
    let answers = async {
        let roles = Api::<ClusterRole>::all(client.clone());
        while roles.list(&ListParams::default().limit(1)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(patience, answers).await.is_err() {
        return;
    }
    let params = PostParams {
        field_manager: Some("berth".into()),
        ..PostParams::default()
    };
    let creates: Vec<Created> = seed
        .cluster_roles
        .iter()
        .map(|o| create(Api::all(client.clone()), o, &params))
        .chain(
            seed.cluster_role_bindings
                .iter()
                .map(|o| create(Api::all(client.clone()), o, &params)),
        )
        .chain(seed.roles.iter().map(|o| {
            let namespace = o.metadata.namespace.as_deref().unwrap_or_default();
            create(Api::namespaced(client.clone(), namespace), o, &params)
        }))
        .chain(seed.role_bindings.iter().map(|o| {
            let namespace = o.metadata.namespace.as_deref().unwrap_or_default();
            create(Api::namespaced(client.clone(), namespace), o, &params)
        }))
        .collect();
    let _ = tokio::time::timeout(
        patience,
        stream::iter(creates)
            .buffer_unordered(AT_ONCE)
            .for_each(|_| async {}),
    )
    .await;
}

type Created = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn create<K>(api: Api<K>, object: &K, params: &PostParams) -> Created
where
    K: kube::Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    K: Send + Sync + 'static,
{
    let (object, params) = (object.clone(), params.clone());
    Box::pin(async move {
        let _ = api.create(&params, &object).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeApi, block_on};
    use serde_json::json;
    use std::sync::Arc;

    fn policy(api: &FakeApi) {
        let labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
        let assigned = |name: &str, namespace: Option<&str>| {
            let mut meta = json!({"name": name, "labels": labels,
                "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
                "uid": "u-1", "resourceVersion": "7", "creationTimestamp": "2026-12-07T00:00:00Z",
                "managedFields": [{"manager": "kube-apiserver"}]});
            if let Some(ns) = namespace {
                meta["namespace"] = json!(ns);
            }
            meta
        };
        let rules = json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]);
        api.add(
            "clusterroles",
            json!({"metadata": assigned("view", None), "rules": rules,
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}}),
        );
        api.add(
            "clusterroles",
            json!({"metadata": assigned("system:basic-user", None), "rules": rules}),
        );
        api.add(
            "clusterroles",
            json!({"metadata": {"name": "users-own"}, "rules": rules}),
        );
        api.add("clusterrolebindings", json!({"metadata": assigned("cluster-admin", None),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "name": "system:masters"}]}));
        api.add("roles", json!({"metadata": assigned("extension-apiserver-authentication-reader", Some("kube-system")),
            "rules": rules}));
        api.add("rolebindings", json!({"metadata": assigned("system:controller:bootstrap-signer", Some("kube-public")),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "system:controller:bootstrap-signer"},
            "subjects": [{"kind": "ServiceAccount", "name": "bootstrap-signer", "namespace": "kube-system"}]}));
    }

    #[test]
    fn a_seed_holds_the_bootstrap_policy_as_made_not_as_assigned() {
        let api = Arc::new(FakeApi::default());
        policy(&api);
        let seed = block_on(async { capture(&api.client()).await.unwrap() });
        let names: Vec<_> = seed
            .cluster_roles
            .iter()
            .map(|r| r.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            ["view", "system:basic-user"],
            "a role of the user's is no part of it"
        );
        let view = &seed.cluster_roles[0];
        assert!(
            view.rules.is_none(),
            "the aggregated role's rules are the controller's"
        );
        assert!(view.aggregation_rule.is_some());
        assert!(seed.cluster_roles[1].rules.is_some());
        for meta in [
            &view.metadata,
            &seed.roles[0].metadata,
            &seed.role_bindings[0].metadata,
        ] {
            assert!(meta.uid.is_none() && meta.resource_version.is_none());
            assert!(meta.creation_timestamp.is_none() && meta.managed_fields.is_none());
            assert!(meta.labels.is_some() && meta.annotations.is_some());
        }
        assert_eq!(
            seed.roles[0].metadata.namespace.as_deref(),
            Some("kube-system")
        );
        assert_eq!(seed.cluster_role_bindings.len(), 1);
    }

    #[test]
    fn a_seed_is_kept_whole_and_planted_where_each_object_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap-rbac.json");
        let made = Arc::new(FakeApi::default());
        policy(&made);
        let seed = block_on(async { capture(&made.client()).await.unwrap() });
        write(&path, &seed);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("bootstrap-rbac.json")]);
        let kept = read(&path).expect("the seed written");
        assert_eq!(kept, seed);

        let new = Arc::new(FakeApi::default());
        block_on(async { plant(new.client(), kept, Duration::from_secs(5)).await });
        let mut posts: Vec<_> = new
            .requests()
            .into_iter()
            .filter(|r| r.starts_with("POST"))
            .collect();
        posts.sort();
        let rbac = "/apis/rbac.authorization.k8s.io/v1";
        assert_eq!(
            posts,
            [
                format!("POST {rbac}/clusterrolebindings"),
                format!("POST {rbac}/clusterroles"),
                format!("POST {rbac}/clusterroles"),
                format!("POST {rbac}/namespaces/kube-public/rolebindings"),
                format!("POST {rbac}/namespaces/kube-system/roles"),
            ]
        );
        assert!(new.get("clusterroles", "view").unwrap()["rules"].is_null());
    }

    #[test]
    fn nothing_is_planted_while_the_api_server_does_not_answer_and_a_refusal_is_left_to_the_hook() {
        let made = Arc::new(FakeApi::default());
        policy(&made);
        let seed = block_on(async { capture(&made.client()).await.unwrap() });

        let down = Arc::new(FakeApi::default());
        down.fail(
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            503,
        );
        block_on(async { plant(down.client(), Seed::default(), Duration::from_millis(200)).await });
        assert!(down.requests().iter().all(|r| r.starts_with("GET")));

        let refusing = Arc::new(FakeApi::default());
        refusing.fail(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            409,
        );
        block_on(async { plant(refusing.client(), seed, Duration::from_secs(5)).await });
        let posts = refusing
            .requests()
            .into_iter()
            .filter(|r| r.starts_with("POST"))
            .count();
        assert_eq!(
            posts, 5,
            "every object is tried once, whatever the others' answers"
        );
    }

    #[test]
    fn a_profile_whose_api_server_differs_neither_takes_nor_leaves_a_seed() {
        let plain = Profile::example("dev");
        assert!(applies(&plain));
        let mut gated = Profile::example("dev");
        gated.feature_gates.insert("SomeGate".into(), true);
        assert!(!applies(&gated));
        let mut flagged = Profile::example("dev");
        flagged.extra_config.push(berth_node::render::ExtraFlag {
            component: "kube-apiserver".into(),
            key: "v".into(),
            value: "2".into(),
        });
        assert!(!applies(&flagged));
        flagged.extra_config[0].component = "kubelet".into();
        assert!(applies(&flagged));
    }
}
