//! Whether the cluster's DNS answers, and why not, read through the API.
//! The control plane applies CoreDNS itself (a unit rendered by berth), so
//! `start` never waits for it: without its image DNS is reported
//! unavailable, and it comes up once the image is loaded.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use serde::Serialize;

use crate::profile::Profile;

#[derive(Debug, Serialize, PartialEq)]
pub struct Dns {
    pub state: DnsState,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DnsState {
    Available,
    Starting,
    Unavailable,
    /// The profile runs without cluster DNS (`--no-dns`).
    Off,
    /// Not known: the API server does not answer.
    Unknown,
}

impl std::fmt::Display for DnsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DnsState::Available => "available",
            DnsState::Starting => "starting",
            DnsState::Unavailable => "unavailable",
            DnsState::Off => "off",
            DnsState::Unknown => "unknown",
        })
    }
}

const WAITING_FOR_IMAGE: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"];

pub async fn status(client: &kube::Client, profile: &Profile) -> Dns {
    let dns = |state, reason: Option<String>| Dns { state, reason };
    if profile.no_dns {
        return dns(
            DnsState::Off,
            Some("the profile was created with --no-dns".into()),
        );
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    let Ok(Some(deployment)) = deployments.get_opt("coredns").await else {
        return dns(
            DnsState::Starting,
            Some("CoreDNS is not deployed yet; the control plane applies it once its API server answers".into()),
        );
    };
    let available = deployment
        .status
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    if available > 0 {
        return dns(DnsState::Available, None);
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let pods = pods
        .list(&ListParams::default().labels("k8s-app=kube-dns"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    for pod in &pods {
        for container in pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
            if let Some(w) = waiting
                && WAITING_FOR_IMAGE.contains(&w.reason.as_deref().unwrap_or_default())
            {
                return dns(
                    DnsState::Unavailable,
                    Some(format!(
                        "the image {image} cannot be pulled ({reason}); where no registry is reachable, \
                         `docker pull` or `docker load` it on a machine that can, then `berth image load {image} -p {profile}`",
                        image = container.image,
                        reason = w.reason.as_deref().unwrap_or_default(),
                        profile = profile.name,
                    )),
                );
            }
        }
    }
    dns(
        DnsState::Starting,
        Some("the CoreDNS pod is not ready yet".into()),
    )
}

/// Deletes the controlled pods that wait for one of `images` to be pulled,
/// so that their controllers make new ones at once with the image now in
/// the nodes, instead of after the pull back-off (up to five minutes).
/// Returns the pods it deleted.
pub async fn retry_image_pulls(client: &kube::Client, images: &[String]) -> Vec<String> {
    let all: Api<Pod> = Api::all(client.clone());
    let Ok(pods) = all.list(&ListParams::default()).await else {
        return Vec::new();
    };
    let wanted: Vec<String> = images.iter().map(|i| crate::images::normalize(i)).collect();
    let mut deleted = Vec::new();
    for pod in pods.items {
        let controlled = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true));
        let waits = pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .any(|c| {
                let reason = c
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref());
                WAITING_FOR_IMAGE.contains(&reason.unwrap_or_default())
                    && wanted.contains(&crate::images::normalize(&c.image))
            });
        let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            continue;
        };
        if controlled && waits {
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            if api.delete(name, &DeleteParams::default()).await.is_ok() {
                deleted.push(format!("{ns}/{name}"));
            }
        }
    }
    deleted
}
