//! Whether the cluster's DNS answers, and why not, read through the API.
//! The control plane applies CoreDNS itself (a unit rendered by berth), so
//! `start` never waits for it: without its image DNS is reported
//! unavailable, and it comes up once the image is loaded.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use serde::Serialize;

use super::addons::Readiness;
use berth_core::profile::Profile;
use berth_node::addons::Addon;

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

/// As an addon's state in `addons list`.
impl From<DnsState> for super::addons::AddonState {
    fn from(state: DnsState) -> Self {
        use super::addons::AddonState;
        match state {
            DnsState::Available => AddonState::Ready,
            DnsState::Starting => AddonState::Starting,
            DnsState::Unavailable => AddonState::Unavailable,
            DnsState::Off => AddonState::Disabled,
            DnsState::Unknown => AddonState::Unknown,
        }
    }
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

pub async fn status(client: &kube::Client, profile: &Profile) -> Dns {
    let dns = |state, reason: Option<String>| Dns { state, reason };
    if !profile.has(Addon::Coredns) {
        return dns(
            DnsState::Off,
            Some("`berth addons enable coredns` turns it on".into()),
        );
    }
    let coredns = Addon::Coredns.deployments()[0];
    match super::addons::deployment_readiness(client, profile, coredns, "CoreDNS").await {
        Readiness::Ready => dns(DnsState::Available, None),
        Readiness::Starting(reason) => dns(DnsState::Starting, Some(reason)),
        Readiness::Unavailable(reason) => dns(DnsState::Unavailable, Some(reason)),
    }
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
    let wanted: Vec<String> = images
        .iter()
        .map(|i| crate::containerd::normalize(i))
        .collect();
    let mut deleted = Vec::new();
    for pod in pods.items {
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
                super::addons::WAITING_FOR_IMAGE.contains(&reason.unwrap_or_default())
                    && wanted.contains(&crate::containerd::normalize(&c.image))
            });
        let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            continue;
        };
        if super::nodes::controlled(&pod) && waits {
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            if api.delete(name, &DeleteParams::default()).await.is_ok() {
                deleted.push(format!("{ns}/{name}"));
            }
        }
    }
    deleted
}
