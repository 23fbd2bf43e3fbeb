//! What the plans' unit tests share.

/// Runs `f` to its end on a runtime of its own, with time and I/O.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A signal that never comes.
pub(crate) async fn never() -> &'static str {
    std::future::pending().await
}

/// A running profile `dev` with `workers`, made by an earlier start: its
/// state, network and node containers.
pub(crate) fn running(
    workers: Vec<u32>,
) -> (
    tempfile::TempDir,
    std::sync::Arc<berth_engine::fake::FakeEngine>,
    crate::Ctx,
    berth_core::profile::Profile,
) {
    use berth_engine::Kind;
    let (dir, engine, ctx) = crate::Ctx::with_fake_engine();
    let mut profile = berth_core::profile::Profile {
        workers,
        ..berth_core::profile::Profile::example("dev")
    };
    let names = ctx.names(&profile);
    let labels = names.labels_created_by("earlier-start");
    let network = engine.add(Kind::Network, &names.network(), &labels);
    profile.network_id = Some(network.id);
    ctx.store.save(&profile).unwrap();
    for node in profile.nodes() {
        engine.add(Kind::Container, &node.container, &labels);
    }
    (dir, engine, ctx, profile)
}

/// An in-memory Kubernetes API server for the plans' unit tests, behind a
/// real `kube::Client`: the code under test sends the requests it sends
/// to a cluster. It keeps objects as JSON, lists them (field and label
/// selectors of `a.b=value` terms), gets, creates, merge-patches, deletes
/// and evicts them, records each request, and answers a scripted error
/// code where a test asks for one.
#[derive(Default)]
pub(crate) struct FakeApi {
    /// (plural, namespace, object)
    objects: std::sync::Mutex<Vec<(String, Option<String>, serde_json::Value)>>,
    requests: std::sync::Mutex<Vec<String>>,
    /// (`METHOD path`, code): requests that fail with code.
    faults: std::sync::Mutex<Vec<(String, u16)>>,
}

impl FakeApi {
    /// A client whose every request this API answers, on the runtime it
    /// is made on.
    pub fn client(self: &std::sync::Arc<Self>) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            let api = api.clone();
            async move {
                use http_body_util::BodyExt;
                let (parts, body) = request.into_parts();
                let body = body.collect().await?.to_bytes();
                let (code, answer) = api.answer(&parts.method, &parts.uri, &body);
                let response = http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(answer.to_string().into_bytes()))
                    .unwrap();
                Ok::<_, kube::Error>(response)
            }
        });
        kube::Client::new(service, "default")
    }

    /// Adds an object of resource `plural` (`nodes`, `pods`, ...), in its
    /// `metadata.namespace` if it has one.
    pub fn add(&self, plural: &str, object: serde_json::Value) {
        let namespace = object["metadata"]["namespace"].as_str().map(String::from);
        self.objects
            .lock()
            .unwrap()
            .push((plural.into(), namespace, object));
    }

    /// The object `plural/name` (in any namespace), as it is now.
    pub fn get(&self, plural: &str, name: &str) -> Option<serde_json::Value> {
        self.objects
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _, o)| p == plural && o["metadata"]["name"] == name)
            .map(|(_, _, o)| o.clone())
    }

    /// Requests of `method` to a path starting with `path` fail with `code`.
    pub fn fail(&self, method: &str, path: &str, code: u16) {
        self.faults
            .lock()
            .unwrap()
            .push((format!("{method} {path}"), code));
    }

    /// Each request so far, as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn answer(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        use serde_json::json;
        let path = uri.path();
        let request = format!("{method} {path}");
        self.requests.lock().unwrap().push(request.clone());
        let fault = self
            .faults
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(f, _)| request.starts_with(f.as_str()))
            .map(|(_, code)| *code);
        let status = |code: u16, reason: &str| {
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": if code < 300 { "Success" } else { "Failure" },
                "message": format!("{reason}: {request}"), "reason": reason, "code": code});
            (code, status)
        };
        if let Some(code) = fault {
            return status(code, "Scripted");
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest = match segments.as_slice() {
            ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
            _ => return (200, json!("ok")),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let (plural, name, sub) = (rest[0], rest.get(1).copied(), rest.get(2).copied());
        let query = query_terms(uri.query().unwrap_or(""));
        let mut objects = self.objects.lock().unwrap();
        let found = objects.iter().position(|(p, ns, o)| {
            p == plural
                && (namespace.is_none() || *ns == namespace)
                && Some(o["metadata"]["name"].as_str().unwrap_or("")) == name
        });
        match (method.as_str(), name, sub, found) {
            ("GET", None, _, _) => {
                let selected = |o: &serde_json::Value| {
                    query.iter().all(|(key, terms)| match key.as_str() {
                        "fieldSelector" => terms.iter().all(|(path, value)| {
                            path.split('.').fold(o, |v, part| &v[part]).as_str() == Some(value)
                        }),
                        "labelSelector" => terms
                            .iter()
                            .all(|(label, value)| o["metadata"]["labels"][label] == value.as_str()),
                        _ => true,
                    })
                };
                let items: Vec<_> = objects
                    .iter()
                    .filter(|(p, ns, o)| {
                        p == plural && (namespace.is_none() || *ns == namespace) && selected(o)
                    })
                    .map(|(_, _, o)| o.clone())
                    .collect();
                (
                    200,
                    json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            ("POST", None, _, _) => {
                let mut object: serde_json::Value = serde_json::from_slice(body).unwrap();
                if let Some(ns) = &namespace {
                    object["metadata"]["namespace"] = json!(ns);
                }
                objects.push((plural.into(), namespace, object.clone()));
                (201, object)
            }
            (_, Some(_), _, None) => status(404, "NotFound"),
            ("GET", Some(_), None, Some(i)) => (200, objects[i].2.clone()),
            ("PATCH", Some(_), None, Some(i)) => {
                let patch: serde_json::Value = serde_json::from_slice(body).unwrap();
                merge(&mut objects[i].2, &patch);
                (200, objects[i].2.clone())
            }
            ("DELETE", Some(_), None, Some(i)) => (200, objects.remove(i).2),
            ("POST", Some(_), Some("eviction"), Some(i)) => {
                objects.remove(i);
                status(201, "Evicted")
            }
            _ => status(405, "MethodNotAllowed"),
        }
    }
}

/// The query's selectors as `(parameter, [(key, value)])`, percent-decoded.
fn query_terms(query: &str) -> Vec<(String, Vec<(String, String)>)> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| {
            let value = decode(value);
            let terms = value
                .split(',')
                .filter_map(|t| t.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (key.to_string(), terms)
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// A JSON merge patch (RFC 7386): `null` removes a key.
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::json!({});
    }
    let target = target.as_object_mut().unwrap();
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(
                target.entry(key.clone()).or_insert(serde_json::Value::Null),
                value,
            );
        }
    }
}
