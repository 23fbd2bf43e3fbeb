//! Services reached from the host at run time: a port on 127.0.0.1 per
//! TCP port of the Service, each connection forwarded through the API
//! server to a ready pod behind it, as `kubectl port-forward svc/NAME`
//! does. Nothing in the cluster changes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::Api;
use tokio::net::{TcpListener, TcpStream};

use berth_core::error::{Error, Result};

/// One forwarded port: the Service's port and where it is on the host.
pub struct Forward {
    pub service_port: u16,
    pub listener: TcpListener,
}

impl Forward {
    pub fn url(&self) -> String {
        let port = self.listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let scheme = if self.service_port == 443 {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{port}")
    }
}

fn not_found(what: String, hint: String) -> Error {
    Error::failure(what).with_hint(hint)
}

/// Which ports on 127.0.0.1 the forwards of a Service listen on.
#[derive(Debug, Clone, Copy)]
pub enum HostPorts {
    /// Free ones.
    Free,
    /// This one for the Service's first port, free ones for the others.
    First(u16),
    /// Each the Service's own port where it can be had (80 and 443 need
    /// root, or a capability), else a free one.
    SameOrFree,
}

/// Listens on 127.0.0.1 for each TCP port of the Service, on `ports`.
pub async fn listen(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    ports: HostPorts,
) -> Result<Vec<Forward>> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let service = services
        .get_opt(name)
        .await
        .map_err(|e| {
            Error::failure(format!("cannot read service {namespace}/{name}: {e}"))
                .with_hint("`berth status` shows whether the API server is ready")
        })?
        .ok_or_else(|| {
            not_found(
                format!("service {namespace}/{name} does not exist"),
                "`berth kubectl -- get services -A` lists them; -n picks the namespace".into(),
            )
        })?;
    let service_ports: Vec<u16> = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .iter()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .map(|p| p.port as u16)
        .collect();
    if service_ports.is_empty() {
        return Err(not_found(
            format!("service {namespace}/{name} has no TCP port"),
            "only TCP ports can be forwarded".into(),
        ));
    }
    let mut forwards = Vec::new();
    for (i, service_port) in service_ports.into_iter().enumerate() {
        let wanted = match ports {
            HostPorts::First(port) if i == 0 => Some(port),
            HostPorts::SameOrFree => Some(service_port),
            _ => None,
        };
        let same = match wanted {
            Some(port) => TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|e| (port, e)),
            None => Err((0, std::io::Error::other("any port will do"))),
        };
        let listener = match (same, ports) {
            (Ok(listener), _) => listener,
            (Err(_), HostPorts::SameOrFree) | (Err((0, _)), _) => {
                TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
                    Error::failure(format!("cannot listen on 127.0.0.1: {e}"))
                        .with_hint("check the machine's open files and ports")
                })?
            }
            (Err((port, e)), _) => {
                return Err(
                    Error::usage(format!("cannot listen on 127.0.0.1:{port}: {e}"))
                        .with_hint("pick another --port, or leave it out for a free one"),
                );
            }
        };
        forwards.push(Forward {
            service_port,
            listener,
        });
    }
    Ok(forwards)
}

/// Serves every forward until the future is dropped.
pub async fn serve(client: kube::Client, namespace: String, name: String, forwards: Vec<Forward>) {
    let tasks = forwards.into_iter().map(|forward| {
        let (client, namespace, name) = (client.clone(), namespace.clone(), name.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = forward.listener.accept().await {
                let (client, namespace, name) = (client.clone(), namespace.clone(), name.clone());
                let port = forward.service_port;
                tokio::spawn(async move {
                    if let Err(e) = connect(&client, &namespace, &name, port, conn).await {
                        eprintln!("berth: {namespace}/{name}:{port}: {e}");
                    }
                });
            }
        })
    });
    futures_util::future::join_all(tasks).await;
}

/// A ready pod behind the Service and the container port its
/// `service_port` leads to, found again for every connection so that a
/// replaced pod is followed.
async fn backend(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    service_port: u16,
) -> std::result::Result<(String, u16), String> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let service = services.get(name).await.map_err(|e| e.to_string())?;
    let port = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.port as u16 == service_port)
        .ok_or("the service's port is gone")?;
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), namespace);
    let endpoints = endpoints.get(name).await.map_err(|e| e.to_string())?;
    let pod = endpoints
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter_map(|a| a.target_ref.as_ref())
        .find(|r| r.kind.as_deref() == Some("Pod"))
        .and_then(|r| r.name.clone())
        .ok_or("no ready pod behind the service")?;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let target = match port.target_port {
        None => service_port,
        Some(IntOrString::Int(n)) => n as u16,
        Some(IntOrString::String(named)) => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let pod = pods.get(&pod).await.map_err(|e| e.to_string())?;
            pod.spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(named.as_str()))
                .map(|p| p.container_port as u16)
                .ok_or(format!("no container port named {named}"))?
        }
    };
    Ok((pod, target))
}

/// How long a connection waits for a pod to forward to. One made while
/// the pods behind the Service roll over (a Deployment scaled or
/// replaced, the endpoints not yet caught up with a pod just Ready, a pod
/// gone between the endpoints and the forward) is held until a pod
/// answers, where `kubectl port-forward` would reset it.
const BACKEND_WAIT: Duration = Duration::from_secs(15);
const BACKEND_POLL: Duration = Duration::from_millis(250);

async fn connect(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    service_port: u16,
    mut conn: TcpStream,
) -> std::result::Result<(), String> {
    let deadline = tokio::time::Instant::now() + BACKEND_WAIT;
    let (mut forwarder, port) = until(deadline, || {
        forwarder_to(client, namespace, name, service_port)
    })
    .await
    .map_err(|e| {
        format!(
            "{e} after {} s; `berth kubectl -- -n {namespace} get pods` shows why",
            BACKEND_WAIT.as_secs()
        )
    })?;
    let mut upstream = forwarder
        .take_stream(port)
        .ok_or("the forward has no stream")?;
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    drop(upstream);
    forwarder.abort();
    Ok(())
}

async fn forwarder_to(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    service_port: u16,
) -> std::result::Result<(kube::api::Portforwarder, u16), String> {
    let (pod, port) = backend(client, namespace, name, service_port).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let forwarder = tokio::time::timeout(Duration::from_secs(10), pods.portforward(&pod, &[port]))
        .await
        .map_err(|_| format!("pod {pod} did not answer in 10 s"))?
        .map_err(|e| format!("cannot forward to pod {pod}: {e}"))?;
    Ok((forwarder, port))
}

/// `attempt`, made again every `BACKEND_POLL` while it fails, until
/// `deadline`: its last answer.
async fn until<T, F, Fut>(
    deadline: tokio::time::Instant,
    mut attempt: F,
) -> std::result::Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, String>>,
{
    loop {
        match attempt().await {
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(BACKEND_POLL).await
            }
            answer => return answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeApi, block_on};
    use serde_json::json;
    use std::sync::Arc;

    fn service(api: &FakeApi) {
        api.add(
            "services",
            json!({"metadata": {"name": "web", "namespace": "ns"},
                   "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
        );
    }

    fn endpoints(pods: &[&str]) -> serde_json::Value {
        let addresses: Vec<_> = pods
            .iter()
            .map(|p| json!({"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": p}}))
            .collect();
        json!({"metadata": {"name": "web", "namespace": "ns"},
               "subsets": [{"addresses": addresses}]})
    }

    #[test]
    fn a_connection_waits_for_endpoints_not_made_yet() {
        let api = Arc::new(FakeApi::default());
        service(&api);
        let found = block_on(async {
            let client = api.client();
            let later = api.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(600)).await;
                later.add("endpoints", endpoints(&["web-1"]));
            });
            let deadline = tokio::time::Instant::now() + BACKEND_WAIT;
            until(deadline, || backend(&client, "ns", "web", 80)).await
        });
        assert_eq!(found, Ok(("web-1".to_string(), 8080)));
    }

    #[test]
    fn without_a_pod_by_the_deadline_it_says_so() {
        let api = Arc::new(FakeApi::default());
        service(&api);
        api.add(
            "endpoints",
            json!({"metadata": {"name": "web", "namespace": "ns"}}),
        );
        let found = block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
            let client = api.client();
            until(deadline, || backend(&client, "ns", "web", 80)).await
        });
        assert_eq!(found, Err("no ready pod behind the service".to_string()));
    }
}
