//! The addons a cluster can have: what each is, the images it runs for
//! each Kubernetes minor (those its upstream documents as supported for
//! that minor), and its manifest. The control plane applies the manifests
//! of the enabled addons itself, at every boot (the `berth-addons` unit),
//! so that they come back after a stop without berth.
//!
//! Images per minor, from each project's own compatibility table:
//! - metrics-server (kubernetes-sigs/metrics-server README, "Compatibility
//!   matrix"): 0.5.x for 1.8+, 0.6.x for 1.25+, 0.7.x for 1.27+, 0.8.x for
//!   1.31+.
//! - dashboard (kubernetes/dashboard release notes, "Compatibility"):
//!   v2.2.0 fully supports 1.20, v2.3.1 1.21, v2.5.1 1.23, v2.6.1 1.24,
//!   v2.7.0 1.25. Later releases (7.x) are Helm charts of five images
//!   behind Kong; the project was retired in January 2026, so v2.7.0 stays
//!   the dashboard of every later minor.
//! - ingress-nginx (kubernetes/ingress-nginx README, "Supported Versions
//!   table"): the newest controller whose row lists the minor; v1.14.0
//!   (1.30-1.34) is the last release before the project's retirement
//!   (March 2026) and serves every later minor.

use std::fmt;
use std::str::FromStr;

use crate::minors::Minor;
use crate::render::NodeSpec;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Addon {
    Coredns,
    Storage,
    MetricsServer,
    Dashboard,
    Ingress,
}

impl Addon {
    pub const ALL: [Addon; 5] = [
        Addon::Coredns,
        Addon::Storage,
        Addon::MetricsServer,
        Addon::Dashboard,
        Addon::Ingress,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Addon::Coredns => "coredns",
            Addon::Storage => "storage",
            Addon::MetricsServer => "metrics-server",
            Addon::Dashboard => "dashboard",
            Addon::Ingress => "ingress",
        }
    }

    /// What it gives, in a few words.
    pub fn about(self) -> &'static str {
        match self {
            Addon::Coredns => "cluster DNS",
            Addon::Storage => "the default StorageClass `standard` and its provisioner",
            Addon::MetricsServer => "resource metrics: `kubectl top`, autoscaling",
            Addon::Dashboard => "the Kubernetes dashboard (`berth dashboard`)",
            Addon::Ingress => "the ingress-nginx controller on ports 80 and 443",
        }
    }

    /// On in a new profile unless turned off.
    pub fn by_default(self) -> bool {
        matches!(self, Addon::Coredns | Addon::Storage)
    }

    /// The images it runs on a cluster of `row`'s minor.
    pub fn images(self, row: &Minor) -> Vec<String> {
        let minor = row.minor;
        match self {
            Addon::Coredns => vec![row.coredns.to_string()],
            // A script over the cluster's own kubectl: no image.
            Addon::Storage => Vec::new(),
            Addon::MetricsServer => vec![format!(
                "registry.k8s.io/metrics-server/metrics-server:{}",
                match minor {
                    ..=24 => "v0.5.2",
                    25 | 26 => "v0.6.4",
                    27..=30 => "v0.7.2",
                    _ => "v0.8.0",
                }
            )],
            Addon::Dashboard => {
                let (dashboard, scraper) = match minor {
                    ..=20 => ("v2.2.0", "v1.0.6"),
                    21 | 22 => ("v2.3.1", "v1.0.6"),
                    23 => ("v2.5.1", "v1.0.8"),
                    24 => ("v2.6.1", "v1.0.8"),
                    _ => ("v2.7.0", "v1.0.8"),
                };
                vec![
                    format!("docker.io/kubernetesui/dashboard:{dashboard}"),
                    format!("docker.io/kubernetesui/metrics-scraper:{scraper}"),
                ]
            }
            Addon::Ingress => vec![format!(
                "registry.k8s.io/ingress-nginx/controller:{}",
                match minor {
                    ..=21 => "v1.3.1",
                    22 => "v1.4.0",
                    23 => "v1.6.4",
                    24 => "v1.8.4",
                    25 => "v1.9.6",
                    26 | 27 => "v1.11.8",
                    28 => "v1.12.8",
                    29 => "v1.13.4",
                    _ => "v1.14.0",
                }
            )],
        }
    }

    /// The namespace and Deployment names whose availability says the
    /// addon is ready.
    pub fn deployments(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Addon::Coredns => &[("kube-system", "coredns")],
            Addon::Storage => &[],
            Addon::MetricsServer => &[("kube-system", "metrics-server")],
            Addon::Dashboard => &[
                (DASHBOARD_NAMESPACE, "kubernetes-dashboard"),
                (DASHBOARD_NAMESPACE, "dashboard-metrics-scraper"),
            ],
            Addon::Ingress => &[(INGRESS_NAMESPACE, INGRESS_CONTROLLER)],
        }
    }

    /// Where the control plane keeps its manifest.
    pub fn manifest_path(self) -> String {
        format!("{}/{}.yaml", super::render::ADDONS_DIR, self.name())
    }

    /// Its manifest, rendered for the control plane of `spec`.
    pub fn manifest(self, spec: &NodeSpec) -> String {
        let row = spec.row;
        match self {
            Addon::Coredns => super::render::coredns_manifest(spec),
            Addon::Storage => super::render::storage_manifest(),
            Addon::MetricsServer => metrics_server(&self.images(row)[0]),
            Addon::Dashboard => {
                let images = self.images(row);
                dashboard(&images[0], &images[1])
            }
            Addon::Ingress => ingress(&self.images(row)[0], &spec.node),
        }
    }
}

impl fmt::Display for Addon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Addon {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Addon::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| {
                format!(
                    "there is no addon `{name}`; the addons are {}",
                    Addon::ALL.map(Addon::name).join(", ")
                )
            })
    }
}

pub const DASHBOARD_NAMESPACE: &str = "kubernetes-dashboard";
/// The dashboard's Service, which `berth dashboard` forwards to.
pub const DASHBOARD_SERVICE: &str = "kubernetes-dashboard";
/// The service accounts whose tokens `berth dashboard` prints: read-only
/// (the `view` role) and administrator (`cluster-admin`).
pub const DASHBOARD_VIEWER: &str = "berth-dashboard-viewer";
pub const DASHBOARD_ADMIN: &str = "berth-dashboard-admin";
pub const INGRESS_NAMESPACE: &str = "ingress-nginx";
/// The controller's Deployment and Service; `berth tunnel` forwards to the
/// Service.
pub const INGRESS_CONTROLLER: &str = "ingress-nginx-controller";

/// metrics-server, reading each kubelet over TLS verified against the
/// cluster's CA (which signs the kubelets' serving certificates), as an
/// aggregated API the API server reaches through its front-proxy
/// certificate.
fn metrics_server(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: metrics-server, namespace: kube-system, labels: {{k8s-app: metrics-server}}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: "system:aggregated-metrics-reader"
  labels:
    k8s-app: metrics-server
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: [metrics.k8s.io]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "system:metrics-server", labels: {{k8s-app: metrics-server}}}}
rules:
- apiGroups: [""]
  resources: [nodes/metrics, nodes/stats]
  verbs: [get]
- apiGroups: [""]
  resources: [pods, nodes, namespaces, configmaps]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: metrics-server-auth-reader, namespace: kube-system}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}}
subjects: [{{kind: ServiceAccount, name: metrics-server, namespace: kube-system}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "metrics-server:system:auth-delegator"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}}
subjects: [{{kind: ServiceAccount, name: metrics-server, namespace: kube-system}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "system:metrics-server"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:metrics-server"}}
subjects: [{{kind: ServiceAccount, name: metrics-server, namespace: kube-system}}]
---
apiVersion: v1
kind: Service
metadata: {{name: metrics-server, namespace: kube-system, labels: {{k8s-app: metrics-server}}}}
spec:
  selector: {{k8s-app: metrics-server}}
  ports: [{{name: https, port: 443, protocol: TCP, targetPort: https}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: metrics-server, namespace: kube-system, labels: {{k8s-app: metrics-server}}}}
spec:
  selector:
    matchLabels: {{k8s-app: metrics-server}}
  template:
    metadata:
      labels: {{k8s-app: metrics-server}}
    spec:
      serviceAccountName: metrics-server
      priorityClassName: system-cluster-critical
      tolerations:
      - {{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}}
      containers:
      - name: metrics-server
        image: {image}
        imagePullPolicy: IfNotPresent
        args:
        - --cert-dir=/tmp
        - --secure-port=10250
        - --kubelet-preferred-address-types=InternalIP
        - --kubelet-use-node-status-port
        - --metric-resolution=15s
        # The kubelets' serving certificates are berth's, signed by the
        # cluster's CA: verified, never skipped.
        - --kubelet-certificate-authority=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt
        ports: [{{name: https, containerPort: 10250, protocol: TCP}}]
        readinessProbe:
          httpGet: {{path: /readyz, port: https, scheme: HTTPS}}
          periodSeconds: 5
        livenessProbe:
          httpGet: {{path: /livez, port: https, scheme: HTTPS}}
        resources:
          requests: {{cpu: 50m, memory: 100Mi}}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {{drop: [ALL]}}
          readOnlyRootFilesystem: true
          runAsNonRoot: true
          runAsUser: 1000
        volumeMounts: [{{name: tmp, mountPath: /tmp}}]
      volumes: [{{name: tmp, emptyDir: {{}}}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1beta1.metrics.k8s.io, labels: {{k8s-app: metrics-server}}}}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  # metrics-server serves a certificate it makes itself.
  insecureSkipTLSVerify: true
  service: {{name: metrics-server, namespace: kube-system}}
"#
    )
}

/// The dashboard with its metrics scraper, and the two service accounts
/// whose tokens log in to it.
fn dashboard(image: &str, scraper: &str) -> String {
    let ns = DASHBOARD_NAMESPACE;
    // Both containers run as the dashboard's own user, read-only.
    let unprivileged = "        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          runAsUser: 1001
          runAsGroup: 2001";
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: kubernetes-dashboard, namespace: {ns}, labels: {{k8s-app: kubernetes-dashboard}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {DASHBOARD_SERVICE}, namespace: {ns}, labels: {{k8s-app: kubernetes-dashboard}}}}
spec:
  selector: {{k8s-app: kubernetes-dashboard}}
  ports: [{{port: 443, targetPort: 8443}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: kubernetes-dashboard-certs, namespace: {ns}, labels: {{k8s-app: kubernetes-dashboard}}}}
type: Opaque
---
apiVersion: v1
kind: Secret
metadata: {{name: kubernetes-dashboard-csrf, namespace: {ns}, labels: {{k8s-app: kubernetes-dashboard}}}}
type: Opaque
data: {{csrf: ""}}
---
apiVersion: v1
kind: Secret
metadata: {{name: kubernetes-dashboard-key-holder, namespace: {ns}, labels: {{k8s-app: kubernetes-dashboard}}}}
type: Opaque
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: kubernetes-dashboard-settings, namespace: {ns}, labels: {{k8s-app: kubernetes-dashboard}}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: kubernetes-dashboard, namespace: {ns}}}
rules:
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [kubernetes-dashboard-key-holder, kubernetes-dashboard-certs, kubernetes-dashboard-csrf]
  verbs: [get, update, delete]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [kubernetes-dashboard-settings]
  verbs: [get, update]
- apiGroups: [""]
  resources: [services]
  resourceNames: [heapster, dashboard-metrics-scraper]
  verbs: [proxy]
- apiGroups: [""]
  resources: [services/proxy]
  resourceNames: [heapster, "http:heapster:", "https:heapster:", dashboard-metrics-scraper, "http:dashboard-metrics-scraper"]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: kubernetes-dashboard}}
rules:
- apiGroups: [metrics.k8s.io]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: kubernetes-dashboard, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: kubernetes-dashboard}}
subjects: [{{kind: ServiceAccount, name: kubernetes-dashboard, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: kubernetes-dashboard}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubernetes-dashboard}}
subjects: [{{kind: ServiceAccount, name: kubernetes-dashboard, namespace: {ns}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: kubernetes-dashboard, namespace: {ns}, labels: {{k8s-app: kubernetes-dashboard}}}}
spec:
  selector:
    matchLabels: {{k8s-app: kubernetes-dashboard}}
  template:
    metadata:
      labels: {{k8s-app: kubernetes-dashboard}}
    spec:
      serviceAccountName: kubernetes-dashboard
      securityContext: {{seccompProfile: {{type: RuntimeDefault}}}}
      tolerations:
      - {{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}}
      containers:
      - name: kubernetes-dashboard
        image: {image}
        imagePullPolicy: IfNotPresent
        args: [--auto-generate-certificates, --namespace={ns}]
        ports: [{{containerPort: 8443, protocol: TCP}}]
        livenessProbe:
          httpGet: {{path: /, port: 8443, scheme: HTTPS}}
          initialDelaySeconds: 30
          timeoutSeconds: 30
{unprivileged}
        volumeMounts:
        - {{name: kubernetes-dashboard-certs, mountPath: /certs}}
        - {{name: tmp-volume, mountPath: /tmp}}
      volumes:
      - {{name: kubernetes-dashboard-certs, secret: {{secretName: kubernetes-dashboard-certs}}}}
      - {{name: tmp-volume, emptyDir: {{}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: dashboard-metrics-scraper, namespace: {ns}, labels: {{k8s-app: dashboard-metrics-scraper}}}}
spec:
  selector: {{k8s-app: dashboard-metrics-scraper}}
  ports: [{{port: 8000, targetPort: 8000}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: dashboard-metrics-scraper, namespace: {ns}, labels: {{k8s-app: dashboard-metrics-scraper}}}}
spec:
  selector:
    matchLabels: {{k8s-app: dashboard-metrics-scraper}}
  template:
    metadata:
      labels: {{k8s-app: dashboard-metrics-scraper}}
    spec:
      serviceAccountName: kubernetes-dashboard
      securityContext: {{seccompProfile: {{type: RuntimeDefault}}}}
      tolerations:
      - {{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}}
      containers:
      - name: dashboard-metrics-scraper
        image: {scraper}
        imagePullPolicy: IfNotPresent
        ports: [{{containerPort: 8000, protocol: TCP}}]
        livenessProbe:
          httpGet: {{path: /, port: 8000, scheme: HTTP}}
          initialDelaySeconds: 30
          timeoutSeconds: 30
{unprivileged}
        volumeMounts: [{{name: tmp-volume, mountPath: /tmp}}]
      volumes: [{{name: tmp-volume, emptyDir: {{}}}}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {DASHBOARD_VIEWER}, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {DASHBOARD_VIEWER}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}
subjects: [{{kind: ServiceAccount, name: {DASHBOARD_VIEWER}, namespace: {ns}}}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {DASHBOARD_ADMIN}, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {DASHBOARD_ADMIN}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: {DASHBOARD_ADMIN}, namespace: {ns}}}]
"#
    )
}

/// The ingress-nginx controller on the control-plane node, bound to the
/// node's ports 80 and 443 (which `--ingress` publishes on 127.0.0.1), and
/// the default IngressClass `nginx`. Without its admission webhook: that
/// needs a second image and jobs to make its certificate, and an Ingress
/// with a mistake shows in the controller's log instead.
fn ingress(image: &str, control_plane: &str) -> String {
    let ns = INGRESS_NAMESPACE;
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {ns}, labels: {{app.kubernetes.io/name: ingress-nginx}}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: ingress-nginx, namespace: {ns}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {INGRESS_CONTROLLER}, namespace: {ns}}}
data: {{allow-snippet-annotations: "false"}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: ingress-nginx}}
rules:
- apiGroups: [""]
  resources: [configmaps, endpoints, nodes, pods, secrets, namespaces]
  verbs: [list, watch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [nodes]
  verbs: [get]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, ingressclasses]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [update]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: ingress-nginx}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ingress-nginx}}
subjects: [{{kind: ServiceAccount, name: ingress-nginx, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: ingress-nginx, namespace: {ns}}}
rules:
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get]
- apiGroups: [""]
  resources: [configmaps, pods, secrets, endpoints, services]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [ingress-nginx-leader]
  verbs: [get, update]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [ingress-nginx-leader]
  verbs: [get, update]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: ingress-nginx, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: ingress-nginx}}
subjects: [{{kind: ServiceAccount, name: ingress-nginx, namespace: {ns}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {INGRESS_CONTROLLER}, namespace: {ns}}}
spec:
  selector: {{app.kubernetes.io/name: ingress-nginx}}
  ports:
  - {{name: http, port: 80, targetPort: http, protocol: TCP}}
  - {{name: https, port: 443, targetPort: https, protocol: TCP}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {INGRESS_CONTROLLER}, namespace: {ns}, labels: {{app.kubernetes.io/name: ingress-nginx}}}}
spec:
  selector:
    matchLabels: {{app.kubernetes.io/name: ingress-nginx}}
  # The node's ports are held by one controller at a time.
  strategy: {{type: Recreate}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: ingress-nginx}}
    spec:
      serviceAccountName: ingress-nginx
      nodeSelector: {{kubernetes.io/hostname: "{control_plane}"}}
      tolerations:
      - {{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}}
      terminationGracePeriodSeconds: 0
      containers:
      - name: controller
        image: {image}
        imagePullPolicy: IfNotPresent
        args:
        - /nginx-ingress-controller
        - --election-id=ingress-nginx-leader
        - --controller-class=k8s.io/ingress-nginx
        - --ingress-class=nginx
        - --configmap=$(POD_NAMESPACE)/{INGRESS_CONTROLLER}
        - --watch-ingress-without-class=true
        - --publish-status-address=localhost
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        - {{name: POD_NAMESPACE, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
        - {{name: LD_PRELOAD, value: /usr/local/lib/libmimalloc.so}}
        ports:
        - {{name: http, containerPort: 80, hostPort: 80, protocol: TCP}}
        - {{name: https, containerPort: 443, hostPort: 443, protocol: TCP}}
        readinessProbe:
          httpGet: {{path: /healthz, port: 10254, scheme: HTTP}}
          periodSeconds: 5
        livenessProbe:
          httpGet: {{path: /healthz, port: 10254, scheme: HTTP}}
          initialDelaySeconds: 10
        securityContext:
          allowPrivilegeEscalation: true
          capabilities: {{add: [NET_BIND_SERVICE], drop: [ALL]}}
          runAsNonRoot: true
          runAsUser: 101
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {{ingressclass.kubernetes.io/is-default-class: "true"}}
spec:
  controller: k8s.io/ingress-nginx
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_an_unknown_one_lists_them_all() {
        for addon in Addon::ALL {
            assert_eq!(addon.name().parse::<Addon>(), Ok(addon));
            let json = serde_json::to_string(&addon).unwrap();
            assert_eq!(json, format!("\"{}\"", addon.name()));
        }
        let error = "traefik".parse::<Addon>().unwrap_err();
        assert!(
            error.contains("coredns, storage, metrics-server, dashboard, ingress"),
            "{error}"
        );
    }

    #[test]
    fn every_minor_has_images_of_a_release_that_supports_it() {
        use crate::minors::MINORS;
        let row = |minor: u32| MINORS.iter().find(|r| r.minor == minor).unwrap();
        let tag = |addon: Addon, minor: u32| -> Vec<String> {
            addon
                .images(row(minor))
                .iter()
                .map(|i| i.rsplit(':').next().unwrap().to_string())
                .collect()
        };
        // Spot checks against the upstream tables named in the module's
        // documentation.
        assert_eq!(tag(Addon::MetricsServer, 20), ["v0.5.2"]);
        assert_eq!(tag(Addon::MetricsServer, 27), ["v0.7.2"]);
        assert_eq!(tag(Addon::MetricsServer, 34), ["v0.8.0"]);
        assert_eq!(tag(Addon::Dashboard, 20), ["v2.2.0", "v1.0.6"]);
        assert_eq!(tag(Addon::Dashboard, 34), ["v2.7.0", "v1.0.8"]);
        assert_eq!(tag(Addon::Ingress, 20), ["v1.3.1"]);
        assert_eq!(tag(Addon::Ingress, 28), ["v1.12.8"]);
        assert_eq!(tag(Addon::Ingress, 34), ["v1.14.0"]);
        for row in MINORS {
            let minor = row.minor;
            for addon in Addon::ALL {
                for image in addon.images(row) {
                    let tag = image.rsplit(':').next().unwrap();
                    assert!(
                        image.contains('/')
                            && tag
                                .trim_start_matches('v')
                                .starts_with(|c: char| c.is_ascii_digit()),
                        "{addon} on 1.{minor}: {image}"
                    );
                }
            }
        }
    }
}
