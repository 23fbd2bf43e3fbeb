//! What the API server does with unstructured objects, on the binaries
//! berth's set-up builds: custom resources with a structural schema
//! (pruning, defaulting, OpenAPI), admission webhooks and a conversion
//! webhook served by a pod, and no control-plane component crashing
//! meanwhile. v1.20.2 built from Debian's source with the vendored reflect2
//! 1.0.1 crashed ("fatal error: fault") on exactly these; so may binaries
//! imported from elsewhere.

mod common;

use std::time::Duration;

use common::{Env, Parts, eventually, json};

const PROFILE: &str = "e2e-ext";
const IMAGE: &str = "berth.test/webhook:1";

const SERVICE_NAME: &str = "webhook.hooks.svc";

fn webhook_manifests(cert: &str, key: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: hooks}}
---
{secret}---
apiVersion: v1
kind: Pod
metadata: {{name: webhook, namespace: hooks, labels: {{app: webhook}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: webhook
    image: {IMAGE}
    imagePullPolicy: Never
    volumeMounts: [{{name: tls, mountPath: /tls}}]
    readinessProbe:
      tcpSocket: {{port: 8443}}
      periodSeconds: 1
  volumes:
  - name: tls
    secret: {{secretName: webhook-tls}}
---
apiVersion: v1
kind: Service
metadata: {{name: webhook, namespace: hooks}}
spec:
  selector: {{app: webhook}}
  ports: [{{port: 443, targetPort: 8443}}]
"#,
        secret = common::tls_secret("hooks", "webhook-tls", cert, key),
    )
}

fn crd(ca: &str) -> String {
    let schema = |size: &str| {
        format!(
            r#"
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: What a widget is.
            properties:
              {size}: {{type: integer, description: How big the widget is.}}
              color: {{type: string, default: blue, description: Its colour.}}"#
        )
    };
    format!(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.berth.test}}
spec:
  group: berth.test
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:{v1}
  - name: v2
    served: true
    storage: false
    schema:{v2}
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: [v1]
      clientConfig:
        caBundle: {ca}
        service: {{name: webhook, namespace: hooks, path: /convert}}
"#,
        v1 = schema("size"),
        v2 = schema("length"),
    )
}

fn admission_webhooks(ca: &str) -> String {
    let hook = |kind: &str, path: &str| {
        format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: {kind}WebhookConfiguration
metadata: {{name: widgets-{path}}}
webhooks:
- name: {path}.widgets.berth.test
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 10
  clientConfig:
    caBundle: {ca}
    service: {{name: webhook, namespace: hooks, path: /{path}}}
  rules:
  - apiGroups: [berth.test]
    apiVersions: ["*"]
    operations: [CREATE, UPDATE]
    resources: [widgets]
"#
        )
    };
    format!(
        "{}---{}",
        hook("Mutating", "mutate"),
        hook("Validating", "validate")
    )
}

/// Client-side validation would refuse the unknown field before the API
/// server could prune it.
const CREATE: [&str; 8] = [
    "kubectl",
    "-p",
    PROFILE,
    "--",
    "create",
    "--validate=false",
    "-f",
    "-",
];

fn widget(name: &str, version: &str, field: &str, size: u32) -> String {
    format!(
        "apiVersion: berth.test/{version}\nkind: Widget\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{{field}: {size}, unknownField: dropped}}\n"
    )
}

#[test]
fn custom_resources_admission_and_conversion_webhooks_work_and_nothing_crashes() {
    let env = Env::new();
    env.ok(&["start", "-p", PROFILE]);
    let _image = common::go_image("tests/webhook/main.go", IMAGE);
    env.ok(&["image", "load", IMAGE, "-p", PROFILE]);

    let certified = rcgen::generate_simple_self_signed(vec![SERVICE_NAME.to_string()]).unwrap();
    let cert = certified.cert.pem();
    let key = certified.signing_key.serialize_pem();
    let ca = common::b64(&cert);
    env.apply(PROFILE, &webhook_manifests(&cert, &key));
    env.kubectl(
        PROFILE,
        &[
            "wait",
            "-n",
            "hooks",
            "--for=condition=Ready",
            "pod/webhook",
            "--timeout=120s",
        ],
    );
    env.apply(PROFILE, &crd(&ca));
    env.kubectl(
        PROFILE,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.berth.test",
            "--timeout=60s",
        ],
    );
    env.apply(PROFILE, &admission_webhooks(&ca));

    // A watch started before the objects exist sees each of them come.
    let mut watch = env.spawn(&[
        "kubectl", "-p", PROFILE, "--", "get", "widgets", "--watch", "-o", "name",
    ]);

    let mut parts = Parts::default();

    // Admission webhooks are registered asynchronously: the first objects
    // may pass before they are called.
    parts.run("validating and mutating admission webhooks", || {
        eventually(Duration::from_secs(60), || {
            let _ = env.run(&["kubectl", "-p", PROFILE, "--", "delete", "widget", "probe"]);
            let (code, _, err) = env.run_stdin(&CREATE, &widget("probe", "v1", "size", 1000));
            if code != 0 && err.contains("size 1000 is more than 100") {
                Ok(())
            } else {
                Err(format!("the validating webhook refused nothing: {err}"))
            }
        });
        eventually(Duration::from_secs(60), || {
            let _ = env.run(&["kubectl", "-p", PROFILE, "--", "delete", "widget", "first"]);
            env.run_stdin(&CREATE, &widget("first", "v1", "size", 3));
            let labels = env.kubectl(
                PROFILE,
                &[
                    "get",
                    "widget",
                    "first",
                    "-o",
                    "jsonpath={.metadata.labels}",
                ],
            );
            if labels.contains("mutated") {
                Ok(())
            } else {
                Err(format!("the mutating webhook did not label it: {labels}"))
            }
        });
    });

    // Pruning and defaulting by the structural schema. (kubectl's plain
    // `widget` is v2, the version Kubernetes ranks first.)
    parts.run("pruning and defaulting by the schema", || {
        let first = json(&env.kubectl(
            PROFILE,
            &["get", "widgets.v1.berth.test", "first", "-o", "json"],
        ));
        assert_eq!(first["spec"]["size"], 3, "{first}");
        assert_eq!(first["spec"]["color"], "blue", "defaulted: {first}");
        assert!(
            first["spec"].get("unknownField").is_none(),
            "pruned: {first}"
        );
        assert_eq!(first["metadata"]["labels"]["mutated"], "true");
    });

    // Created through v2, stored as v1, read back through both.
    parts.run("conversion between versions by the webhook", || {
        let (code, _, err) = env.run_stdin(&CREATE, &widget("second", "v2", "length", 7));
        assert_eq!(code, 0, "{err}");
        let v1 = json(&env.kubectl(
            PROFILE,
            &["get", "widgets.v1.berth.test", "second", "-o", "json"],
        ));
        assert_eq!(v1["apiVersion"], "berth.test/v1");
        assert_eq!(v1["spec"]["size"], 7, "converted to v1: {v1}");
        let v2 = json(&env.kubectl(
            PROFILE,
            &["get", "widgets.v2.berth.test", "first", "-o", "json"],
        ));
        assert_eq!(v2["apiVersion"], "berth.test/v2");
        assert_eq!(v2["spec"]["length"], 3, "converted to v2: {v2}");
        assert!(v2["spec"].get("size").is_none(), "{v2}");
    });

    // Patch, list and the watch.
    parts.run("patch, list and watch", || {
        env.kubectl(
            PROFILE,
            &[
                "patch",
                "widgets.v1.berth.test",
                "first",
                "--type=merge",
                "-p",
                r#"{"spec":{"size":50,"color":"red"}}"#,
            ],
        );
        let patched = json(&env.kubectl(
            PROFILE,
            &["get", "widgets.v1.berth.test", "first", "-o", "json"],
        ));
        assert_eq!(
            (&patched["spec"]["size"], &patched["spec"]["color"]),
            (&json("50"), &json("\"red\""))
        );
        let (code, _, err) = env.run(&[
            "kubectl",
            "-p",
            PROFILE,
            "--",
            "patch",
            "widgets.v1.berth.test",
            "first",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":500}}"#,
        ]);
        assert!(
            code != 0 && err.contains("size 500 is more than 100"),
            "{err}"
        );
        let listed = json(&env.kubectl(PROFILE, &["get", "widgets", "-o", "json"]));
        let mut names: Vec<&str> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["metadata"]["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["first", "second"]);
        let mut seen = std::collections::BTreeSet::new();
        while !(seen.contains("widget.berth.test/first")
            && seen.contains("widget.berth.test/second"))
        {
            seen.insert(watch.line());
        }
    });

    // The CRD's schema is published in the API server's OpenAPI.
    // (The aggregated OpenAPI document is rebuilt some seconds after a
    // CRD changes.)
    parts.run("the schema in the API server's OpenAPI", || {
        eventually(Duration::from_secs(60), || {
            let (code, out, err) = env.run(&[
                "kubectl",
                "-p",
                PROFILE,
                "--",
                "explain",
                "--api-version=berth.test/v1",
                "widget.spec.size",
            ]);
            if code == 0 && out.contains("How big the widget is") {
                Ok(())
            } else {
                Err(format!("kubectl explain: {out}{err}"))
            }
        });
    });

    // Nothing of the control plane crashed on the way.
    parts.run("nothing of the control plane crashed", || {
        let status = json(&env.ok(&["status", "-p", PROFILE, "-o", "json"]));
        let units = status["nodes"][0]["units"].as_array().unwrap();
        // The control plane's six, containerd, and the storage provisioner.
        assert_eq!(units.len(), 8, "{status}");
        for unit in units {
            assert_eq!(unit["restarts"], 0, "{unit}");
        }
    });
}
