//! The aggregation layer is configured in every cluster, as in every
//! conformant one: an aggregated API server of the test's own
//! (tests/aggregated/main.go), registered with an APIService, becomes
//! Available, and requests through the main API server reach it with the
//! caller's identity, which it trusts only from the front-proxy client.

mod common;

use std::time::Duration;

use berth_engine::{Command, Docker};
use common::{Env, block_on, eventually, json};

const PROFILE: &str = "e2e-agg";
const IMAGE: &str = "berth.test/aggregated:1";

fn manifests(cert: &str, key: &str, request_header_ca: &str, allowed: &str) -> String {
    let ca_lines: String = request_header_ca
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: agg}}
---
{secret}---
apiVersion: v1
kind: ConfigMap
metadata: {{name: request-header-ca, namespace: agg}}
data:
  ca.crt: |
{ca_lines}---
apiVersion: v1
kind: Pod
metadata: {{name: whoami, namespace: agg, labels: {{app: whoami}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: whoami
    image: {IMAGE}
    imagePullPolicy: Never
    env: [{{name: ALLOWED_NAMES, value: "{allowed}"}}]
    volumeMounts:
    - {{name: tls, mountPath: /tls}}
    - {{name: ca, mountPath: /ca}}
    readinessProbe:
      tcpSocket: {{port: 8443}}
      periodSeconds: 1
  volumes:
  - {{name: tls, secret: {{secretName: whoami-tls}}}}
  - {{name: ca, configMap: {{name: request-header-ca}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: whoami, namespace: agg}}
spec:
  selector: {{app: whoami}}
  ports: [{{port: 443, targetPort: 8443}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: berth-test-whoami}}
rules: [{{apiGroups: [berth.test], resources: [whoamis], verbs: [list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: berth-test-whoami}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: berth-test-whoami}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1.berth.test}}
spec:
  group: berth.test
  version: v1
  groupPriorityMinimum: 1000
  versionPriority: 15
  caBundle: {crt}
  service: {{name: whoami, namespace: agg, port: 443}}
"#,
        secret = common::tls_secret("agg", "whoami-tls", cert, key),
        crt = common::b64(cert),
    )
}

#[test]
fn an_aggregated_api_server_is_available_and_learns_who_calls() {
    let env = Env::new();
    env.ok(&["start", "-p", PROFILE, "--wait", "3m"]);
    let _image = common::go_image("tests/aggregated/main.go", IMAGE);
    env.ok(&["image", "load", IMAGE, "-p", PROFILE]);

    // What the API server tells extension API servers about itself: with no
    // addon enabled, the request-header CA and the front proxy's name.
    let published = json(&env.kubectl(
        PROFILE,
        &[
            "get",
            "configmap",
            "-n",
            "kube-system",
            "extension-apiserver-authentication",
            "-o",
            "json",
        ],
    ));
    let data = &published["data"];
    let request_header_ca = data["requestheader-client-ca-file"]
        .as_str()
        .unwrap_or_else(|| panic!("no request-header CA published: {data}"));
    let allowed: Vec<String> =
        serde_json::from_str(data["requestheader-allowed-names"].as_str().unwrap()).unwrap();
    assert_eq!(allowed, ["front-proxy-client"]);
    assert_ne!(
        request_header_ca.trim(),
        data["client-ca-file"].as_str().unwrap().trim(),
        "the request-header CA must not be the cluster's CA, which every client has certificates of"
    );

    let certified = rcgen::generate_simple_self_signed(vec!["whoami.agg.svc".into()]).unwrap();
    env.apply(
        PROFILE,
        &manifests(
            &certified.cert.pem(),
            &certified.signing_key.serialize_pem(),
            request_header_ca,
            &allowed.join(","),
        ),
    );
    env.wait_ready_in(PROFILE, "agg", "whoami");
    eventually(Duration::from_secs(90), || {
        let available = env.kubectl(
            PROFILE,
            &[
                "get",
                "apiservice",
                "v1.berth.test",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Available\")]}",
            ],
        );
        if available.contains("\"status\":\"True\"") {
            Ok(())
        } else {
            Err(format!("v1.berth.test is not Available: {available}"))
        }
    });

    // The caller's identity arrives in the headers: the admin's, and an
    // impersonated user's (whom RBAC lets list them through the group).
    let whoami = |extra: &[&str]| {
        let mut args = vec!["get", "--raw", "/apis/berth.test/v1/whoamis"];
        args.extend_from_slice(extra);
        let list = json(&env.kubectl(PROFILE, &args));
        list["items"][0].clone()
    };
    let admin = whoami(&[]);
    assert_eq!(admin["user"], "kubernetes-admin", "{admin}");
    assert!(
        admin["groups"]
            .as_array()
            .unwrap()
            .contains(&"system:masters".into()),
        "{admin}"
    );
    let alice = whoami(&["--as=alice", "--as-group=devs"]);
    assert_eq!(alice["user"], "alice", "{alice}");
    assert!(
        alice["groups"].as_array().unwrap().contains(&"devs".into()),
        "{alice}"
    );
    // kubectl discovers the group like any built-in one.
    let resources = env.kubectl(PROFILE, &["api-resources", "--api-group=berth.test"]);
    assert!(resources.contains("whoamis"), "{resources}");

    // Anyone else, without the front proxy's certificate, is refused.
    let pod_ip = env.kubectl(
        PROFILE,
        &[
            "get",
            "pod",
            "-n",
            "agg",
            "whoami",
            "-o",
            "jsonpath={.status.podIP}",
        ],
    );
    let node = env.names(PROFILE).container(PROFILE);
    let answer = block_on(async {
        let docker = Docker::connect().await.unwrap();
        let request = format!(
            "printf 'GET /apis/berth.test/v1/whoamis HTTP/1.0\\r\\nX-Remote-User: mallory\\r\\n\\r\\n' \
             | openssl s_client -quiet -connect {pod_ip}:8443 2>/dev/null | head -n 1"
        );
        docker
            .exec(&node, &Command::new(["sh", "-c", request.as_str()]))
            .await
            .unwrap()
            .stdout
    });
    assert!(answer.contains("401"), "{answer:?}");
}
