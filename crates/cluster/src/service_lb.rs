//! The container of a profile's LoadBalancer controller (what runs in it:
//! berth-node's `service_lb`): the node image on the host's network,
//! unprivileged, with the cluster's kubectl from the binaries volume. It
//! starts and stops with the nodes, and goes with the profile.

use k8s_openapi::api::core::v1::{Event, Service};
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::Ctx;
use berth_core::error::{Error, Result};
use berth_core::pki::Pki;
use berth_core::profile::Profile;
use berth_engine::{BinariesVolume, NodeContainer};
use berth_node::render;

/// Makes and starts the controller of `profile`, when it serves
/// LoadBalancer Services.
pub async fn create(ctx: &Ctx, profile: &Profile, binaries: String) -> Result<()> {
    let Some(address) = profile.lb_address else {
        return Ok(());
    };
    let name = ctx.names(profile).service_lb();
    let container = NodeContainer {
        hostname: "services".into(),
        privilege: None,
        cgroup_v2: true,
        entrypoint: Some(
            berth_node::service_lb::entrypoint()
                .map(String::from)
                .to_vec(),
        ),
        host_network: true,
        binaries: Some(BinariesVolume {
            name: binaries,
            writable: false,
        }),
        ..NodeContainer::helper(
            name,
            &profile.node_image,
            ctx.names(profile).labels_created_by(&ctx.token),
        )
    };
    let pki = Pki::new(&ctx.store.pki_dir(&profile.name));
    let files = berth_node::service_lb::files(
        address,
        profile.node_ip,
        profile.api_ip(),
        &pki.read("ca.crt")?,
        &pki.read("service-lb.crt")?,
        &pki.read("service-lb.key")?,
    );
    let id = ctx.docker.create_container(&container).await?;
    ctx.docker.upload(&id, render::tar_of(&files)).await?;
    Ok(ctx.docker.start_container(&id).await?)
}

/// One port of a LoadBalancer Service, as its controller left it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Forward {
    pub namespace: String,
    pub service: String,
    pub port: i32,
    pub protocol: String,
    /// Where it answers on the host; `None` while it does not.
    pub address: Option<String>,
    /// Why it does not answer, as the controller wrote it.
    pub error: Option<String>,
}

fn unreadable(e: kube::Error) -> Error {
    Error::failure(format!(
        "cannot list the cluster's Services and their events: {e}"
    ))
    .with_hint("`berth status` again once the API server is ready")
}

/// Every port of the cluster's LoadBalancer Services that berth serves
/// (those of another loadBalancerClass are not listed). A port that does
/// not answer has the controller's reason: from the Service's status, or,
/// when none of its ports answers, from its newest event.
pub async fn forwards(client: &kube::Client) -> Result<Vec<Forward>> {
    let services: Api<Service> = Api::all(client.clone());
    let list = services
        .list(&ListParams::default())
        .await
        .map_err(unreadable)?;
    let events: Api<Event> = Api::all(client.clone());
    let mut warnings = events
        .list(&ListParams::default().fields("reason=PortNotForwarded,involvedObject.kind=Service"))
        .await
        .map_err(unreadable)?
        .items;
    warnings.sort_by(|a, b| {
        b.metadata
            .creation_timestamp
            .cmp(&a.metadata.creation_timestamp)
    });
    let mut out = Vec::new();
    for service in list.items {
        let spec = service.spec.unwrap_or_default();
        if spec.type_.as_deref() != Some("LoadBalancer") || spec.load_balancer_class.is_some() {
            continue;
        }
        let ingress = service
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .and_then(|i| i.into_iter().next());
        for port in spec.ports.unwrap_or_default() {
            let protocol = port.protocol.unwrap_or_else(|| "TCP".into());
            let status = ingress.as_ref().and_then(|i| {
                i.ports
                    .iter()
                    .flatten()
                    .find(|p| p.port == port.port && p.protocol == protocol)
            });
            let namespace = service.metadata.namespace.clone().unwrap_or_default();
            let name = service.metadata.name.clone().unwrap_or_default();
            let address = ingress
                .as_ref()
                .and_then(|i| i.ip.clone())
                .filter(|_| status.is_some_and(|s| s.error.is_none()));
            // The status holds a code; the controller's event says why.
            let named = format!("{}/{protocol}: ", port.port);
            let said = warnings.iter().find_map(|e| {
                let object = &e.involved_object;
                (object.namespace.as_deref() == Some(&namespace)
                    && object.name.as_deref() == Some(&name))
                .then_some(())?;
                e.message.as_deref()?.strip_prefix(&named).map(String::from)
            });
            let error = match address {
                Some(_) => None,
                None => said.or_else(|| status.and_then(|s| s.error.clone())),
            };
            out.push(Forward {
                namespace,
                service: name,
                port: port.port,
                protocol,
                address,
                error,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(
        name: &str,
        class: Option<&str>,
        ports: &[i32],
        answered: &[(i32, Option<&str>)],
    ) -> serde_json::Value {
        let ports: Vec<_> = ports
            .iter()
            .map(|p| json!({"port": p, "protocol": "TCP"}))
            .collect();
        let answered: Vec<_> = answered
            .iter()
            .map(|(port, error)| json!({"port": port, "protocol": "TCP", "error": error}))
            .collect();
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": class, "ports": ports},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ports": answered}]}}})
    }

    #[test]
    fn each_port_of_berths_load_balancers_is_listed_with_why_it_does_not_answer() {
        let api = std::sync::Arc::new(crate::testing::FakeApi::default());
        api.add(
            "services",
            service(
                "web",
                None,
                &[80, 443],
                &[(80, None), (443, Some("AddressInUse"))],
            ),
        );
        api.add(
            "services",
            service("other", Some("example.com/lb"), &[81], &[]),
        );
        api.add("services", json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "inside", "namespace": "default"}, "spec": {"type": "ClusterIP", "ports": [{"port": 82}]}}));
        for (name, reason, message, at, object) in [
            (
                "older",
                "PortNotForwarded",
                "443/TCP: port 443 was taken",
                "2026-12-01T00:00:00Z",
                "web",
            ),
            (
                "newer",
                "PortNotForwarded",
                "443/TCP: port 443 of 127.0.0.1 is taken by another program",
                "2026-12-02T00:00:00Z",
                "web",
            ),
            (
                "elsewhere",
                "PortNotForwarded",
                "443/TCP: another Service's",
                "2026-12-03T00:00:00Z",
                "api",
            ),
            (
                "other-reason",
                "Updated",
                "443/TCP: not why",
                "2026-12-04T00:00:00Z",
                "web",
            ),
        ] {
            api.add(
                "events",
                json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": "default", "creationTimestamp": at},
                "reason": reason, "message": message,
                "involvedObject": {"kind": "Service", "namespace": "default", "name": object}}),
            );
        }
        let forwards = crate::testing::block_on(async { forwards(&api.client()).await }).unwrap();
        let seen: Vec<_> = forwards
            .iter()
            .map(|f| {
                (
                    f.service.as_str(),
                    f.port,
                    f.address.as_deref(),
                    f.error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("web", 80, Some("127.0.0.1"), None),
                (
                    "web",
                    443,
                    None,
                    Some("port 443 of 127.0.0.1 is taken by another program")
                ),
            ]
        );
    }
}
