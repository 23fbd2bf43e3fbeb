//! Everything berth writes into a node before it first boots: systemd units
//! with each component's flags for the cluster's Kubernetes minor version,
//! component configs, kubeconfigs, the containerd config and the CNI
//! template. Version differences live here and nowhere else.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use base64::Engine as _;

use berth_engine::{BINARIES_MOUNT, Privilege};
use serde::{Deserialize, Serialize};

use crate::addons::Addon;
use crate::minors::{Minor, Upstream};
use crate::net::Cidr;
use crate::{Runtime, Version};

/// Each node has a /24 of 10.244.0.0/16 and an address on the profile's /24
/// network after the gateway (.1) and from .2: 200 leaves room to spare.
pub const MAX_NODES: u32 = 200;

/// The cluster's pods' addresses; node i has the ith /24 of it. berth gives
/// each node its share in kubelet's configuration instead of having
/// kube-controller-manager allocate it: the allocator starts with a fixed
/// 10 s poll that holds up every controller started after it, the node
/// lifecycle controller that lets pods be scheduled among them.
pub const POD_CIDR: Cidr = Cidr::new(std::net::Ipv4Addr::new(10, 244, 0, 0), 16);
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
pub const CLUSTER_DNS: &str = "10.96.0.10";
pub const API_PORT: u16 = 6443;
/// Where the PKI and kubeconfigs live inside a node.
pub const K8S_DIR: &str = "/etc/kubernetes";
pub const PAUSE_IMAGE: &str = "berth.local/pause:1.0";
/// The registry's port inside its container, where nodes reach it.
pub const REGISTRY_PORT: u16 = 5000;

/// What a node is in its cluster; the first node (index 0) is always a
/// control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

impl Role {
    /// As Kubernetes' node-role labels name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One flag for one component: `--KEY=VALUE` in its unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraFlag {
    /// The unit's name: kube-apiserver, kube-controller-manager,
    /// kube-scheduler, kubelet or etcd.
    pub component: String,
    pub key: String,
    pub value: String,
}

/// `--feature-gates`'s value, as every component takes it.
pub fn feature_gates_flag(gates: &BTreeMap<String, bool>) -> String {
    gates
        .iter()
        .map(|(name, on)| format!("{name}={on}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What a node's files depend on.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub node: String,
    pub role: Role,
    pub node_ip: Ipv4Addr,
    pub version: Version,
    /// The row of `version`'s minor, looked up where the spec is made, so
    /// that a minor berth has no row for is refused there.
    pub row: &'static Minor,
    pub privilege: Privilege,
    /// kubelet's cgroup root; unique per node so nodes never share cgroups.
    pub cgroup_root: String,
    /// The host runs cgroup v2; else v1, which kubelet refuses from v1.35
    /// unless told otherwise.
    pub cgroup_v2: bool,
    /// The node's share of `POD_CIDR`.
    pub pod_cidr: Cidr,
    /// Where the node's components other than the control plane's reach
    /// the API server: the one control plane, or the load balancer.
    pub api_ip: Ipv4Addr,
    /// The etcd cluster of a profile with several control planes, on each
    /// of them; `None` for one, whose etcd is alone and serves only its own
    /// node.
    pub etcd: Option<EtcdCluster>,
    /// `api_ip` is a load balancer's, in front of several control planes.
    pub load_balanced: bool,
    /// `--extra-config`: flags that replace or add to berth's.
    pub extra_config: Vec<ExtraFlag>,
    pub feature_gates: BTreeMap<String, bool>,
    /// The addons on (CoreDNS and storage by default): the first control
    /// plane holds their manifests, every node their files.
    pub addons: Vec<Addon>,
    /// The first control plane: it holds the addons' manifests and applies
    /// them at each boot (others of several would apply what `addons
    /// disable` removed while they were stopped), and the others' API
    /// servers start after its.
    pub first: bool,
    /// LoadBalancer Services are served (the profile's controller), so the
    /// first control plane applies its RBAC.
    pub service_lb: bool,
    /// CA certificates (PEM) the node trusts besides Debian's
    /// (`--ca-cert`): containerd's pulls and every program's TLS.
    pub ca_certs: Vec<String>,
    /// The proxy containerd pulls images through.
    pub proxy: Option<NodeProxy>,
    /// The profile's registry: how images in it are named
    /// (`localhost:<port>`) and its address on the profile's network.
    pub registry: Option<(String, Ipv4Addr)>,
    /// The etcd, containerd and runc in the binaries volume; `None` runs
    /// the node image's own.
    pub runtime: Option<Runtime>,
    /// The MTU of the node's network when below Ethernet's (a Swarm
    /// overlay's), which its pods' interfaces take so that their full
    /// packets cross it.
    pub mtu: Option<u32>,
}

/// The MTU of a Docker Swarm overlay network: Ethernet's less VXLAN's 50
/// bytes.
pub const OVERLAY_MTU: u32 = 1450;

impl NodeSpec {
    fn is_control_plane(&self) -> bool {
        self.role == Role::ControlPlane
    }
}

/// The etcd members of a cluster with several control planes, by node name
/// and address, each talking to the others over peer TLS.
#[derive(Debug, Clone)]
pub struct EtcdCluster {
    pub members: Vec<(String, Ipv4Addr)>,
    /// This member is added to a cluster that runs, rather than one of
    /// those that make a new cluster together.
    pub joining: bool,
}

/// etcd's peer port, on each control plane's address.
pub const ETCD_PEER_PORT: u16 = 2380;
/// The common name of every etcd peer certificate, the only one etcd takes
/// from a peer: other certificates of the cluster's CA are refused.
pub const ETCD_PEER_CN: &str = "etcd-peer";

/// Another node's pod CIDR and the address that reaches it.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub pod_cidr: Cidr,
    pub via: Ipv4Addr,
}

/// A file for the node: path inside it, content, mode; or a symlink.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeFile {
    File {
        path: String,
        content: String,
        mode: u32,
    },
    Link {
        path: String,
        target: String,
    },
}

pub(crate) fn file(path: &str, content: String, mode: u32) -> NodeFile {
    NodeFile::File {
        path: path.into(),
        content,
        mode,
    }
}

/// A systemd unit `name` with `content`, enabled as systemctl would:
/// linked into multi-user.target.wants.
pub(crate) fn enabled_unit(name: &str, content: String) -> [NodeFile; 2] {
    let path = format!("/etc/systemd/system/{name}.service");
    [
        NodeFile::Link {
            path: format!("/etc/systemd/system/multi-user.target.wants/{name}.service"),
            target: path.clone(),
        },
        file(&path, content, 0o644),
    ]
}

/// A component's flags, in the order they are rendered.
type Flags = Vec<(String, String)>;

fn flags(pairs: &[(&str, &str)]) -> Flags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn kube_apiserver_flags(spec: &NodeSpec) -> Flags {
    let pki = |f: &str| format!("{K8S_DIR}/pki/{f}");
    let mut f = flags(&[
        ("advertise-address", &spec.node_ip.to_string()),
        ("allow-privileged", "true"),
        ("anonymous-auth", "false"),
        ("authorization-mode", "Node,RBAC"),
        ("bind-address", "0.0.0.0"),
        ("client-ca-file", &pki("ca.crt")),
        ("enable-admission-plugins", "NodeRestriction"),
        ("etcd-cafile", &pki("ca.crt")),
        ("etcd-certfile", &pki("apiserver-etcd-client.crt")),
        ("etcd-keyfile", &pki("apiserver-etcd-client.key")),
        ("etcd-servers", "https://127.0.0.1:2379"),
        ("kubelet-certificate-authority", &pki("ca.crt")),
        (
            "kubelet-client-certificate",
            &pki("apiserver-kubelet-client.crt"),
        ),
        ("kubelet-client-key", &pki("apiserver-kubelet-client.key")),
        ("kubelet-preferred-address-types", "InternalIP,Hostname"),
        ("profiling", "false"),
        ("secure-port", &API_PORT.to_string()),
        (
            "service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
        ),
        ("service-account-key-file", &pki("sa.pub")),
        ("service-account-signing-key-file", &pki("sa.key")),
        ("service-cluster-ip-range", SERVICE_CIDR),
        ("tls-cert-file", &pki("apiserver.crt")),
        ("tls-private-key-file", &pki("apiserver.key")),
    ]);
    // The insecure port was on by default until 1.20 and its flag went in 1.24.
    if !spec.row.has(Upstream::NoDockershim) {
        f.push(("insecure-port".into(), "0".into()));
    }
    // The aggregation layer, as kubeadm configures it, whatever addons
    // run: any aggregated API server a user installs authenticates the API
    // server's requests by the front-proxy CA and learns the caller from
    // these headers. Only the API server holds the front-proxy client
    // certificate, of a CA of its own, so no other client of the cluster's
    // CA can assert users.
    f.extend(flags(&[
        ("enable-aggregator-routing", "true"),
        ("proxy-client-cert-file", &pki("front-proxy-client.crt")),
        ("proxy-client-key-file", &pki("front-proxy-client.key")),
        ("requestheader-allowed-names", "front-proxy-client"),
        ("requestheader-client-ca-file", &pki("front-proxy-ca.crt")),
        ("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        ("requestheader-group-headers", "X-Remote-Group"),
        ("requestheader-username-headers", "X-Remote-User"),
    ]));
    f
}

pub fn kube_controller_manager_flags(spec: &NodeSpec) -> Flags {
    let conf = format!("{K8S_DIR}/controller-manager.conf");
    let pki = |f: &str| format!("{K8S_DIR}/pki/{f}");
    let mut f = flags(&[
        ("allocate-node-cidrs", "false"),
        ("authentication-kubeconfig", &conf),
        // Started as soon as the API server serves, it may ask for the
        // authentication configmap before RBAC lets it: go on without it,
        // as the scheduler does by default, instead of exiting and being
        // restarted seconds later.
        ("authentication-tolerate-lookup-failure", "true"),
        ("authorization-kubeconfig", &conf),
        ("bind-address", "127.0.0.1"),
        ("cluster-signing-cert-file", &pki("ca.crt")),
        ("cluster-signing-key-file", &pki("ca.key")),
        // Client-side throttling at 20/s held the start of its controllers
        // (discovery by the garbage collector and quota) for seconds; the
        // one API server of a local cluster takes far more.
        ("kube-api-burst", "200"),
        ("kube-api-qps", "100"),
        ("kubeconfig", &conf),
        ("leader-elect", leader_elect(spec)),
        // A node seen NotReady in a pass of the node lifecycle controller
        // (as each is for a moment after registering) gets a NoExecute
        // not-ready taint that only the next pass lifts: 5 s later by
        // default, which held up every fourth start. Passes read the
        // informer's cache, so running them each second costs little.
        ("node-monitor-period", "1s"),
        ("root-ca-file", &pki("ca.crt")),
        ("service-account-private-key-file", &pki("sa.key")),
        ("service-cluster-ip-range", SERVICE_CIDR),
        ("tls-cert-file", &pki("controller-manager-serving.crt")),
        (
            "tls-private-key-file",
            &pki("controller-manager-serving.key"),
        ),
        ("use-service-account-credentials", "true"),
    ]);
    // Switches off the unauthenticated port, where it is on by default.
    if !spec.row.has(Upstream::InsecurePortsOff) {
        f.push(("port".into(), "0".into()));
    }
    f.extend(leader_retry(spec));
    f
}

/// One control plane: electing a leader only costs seconds at start.
/// Several elect one, which another takes over from when its node goes.
fn leader_elect(spec: &NodeSpec) -> &'static str {
    if spec.etcd.is_some() { "true" } else { "false" }
}

/// The first try for the lease comes while RBAC does not yet let the
/// component have it; the next came 2 s later, holding up by seconds the
/// controllers every start waits for. Candidates ask each half second.
fn leader_retry(spec: &NodeSpec) -> Flags {
    match spec.etcd {
        Some(_) => flags(&[("leader-elect-retry-period", "500ms")]),
        None => Vec::new(),
    }
}

pub fn kube_scheduler_flags(spec: &NodeSpec) -> Flags {
    let conf = format!("{K8S_DIR}/scheduler.conf");
    let pki = |f: &str| format!("{K8S_DIR}/pki/{f}");
    let mut f = flags(&[
        ("authentication-kubeconfig", &conf),
        ("authorization-kubeconfig", &conf),
        ("bind-address", "127.0.0.1"),
        ("kubeconfig", &conf),
        ("leader-elect", leader_elect(spec)),
        ("tls-cert-file", &pki("scheduler-serving.crt")),
        ("tls-private-key-file", &pki("scheduler-serving.key")),
    ]);
    if !spec.row.has(Upstream::InsecurePortsOff) {
        f.push(("port".into(), "0".into()));
    }
    f.extend(leader_retry(spec));
    f
}

/// The label a control plane's kubelet registers its node with: what
/// CoreDNS is bound to. The role labels (`node-role.kubernetes.io/`) are
/// not a kubelet's to set (NodeRestriction), so come only once berth's
/// start labels the nodes, and a `start --wait 0` would leave CoreDNS
/// waiting for them.
pub const CONTROL_PLANE_LABEL: &str = "berth.io/control-plane";

pub fn kubelet_flags(spec: &NodeSpec) -> Flags {
    let mut f = flags(&[
        ("config", &format!("{K8S_DIR}/kubelet.yaml")),
        ("hostname-override", &spec.node),
        ("kubeconfig", &format!("{K8S_DIR}/kubelet.conf")),
        ("node-ip", &spec.node_ip.to_string()),
    ]);
    if spec.is_control_plane() {
        f.push(("node-labels".into(), format!("{CONTROL_PLANE_LABEL}=")));
    }
    // Before 1.27 kubelet had to be told it talks to a CRI runtime; from
    // 1.27 the endpoint is a config field and `--container-runtime` is gone.
    if !spec.row.has(Upstream::RuntimeEndpointInConfig) {
        f.push(("container-runtime".into(), "remote".into()));
        f.push((
            "container-runtime-endpoint".into(),
            "unix:///run/containerd/containerd.sock".into(),
        ));
        f.push(("pod-infra-container-image".into(), PAUSE_IMAGE.into()));
    }
    // The dockershim-era network plugin flag.
    if !spec.row.has(Upstream::NoDockershim) {
        f.push(("network-plugin".into(), "cni".into()));
    }
    f
}

pub fn kube_proxy_flags(_spec: &NodeSpec) -> Flags {
    flags(&[("config", &format!("{K8S_DIR}/kube-proxy.yaml"))])
}

fn kubelet_config(spec: &NodeSpec) -> String {
    let mut config = format!(
        "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {K8S_DIR}/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
{cluster_dns}clusterDomain: cluster.local
# The node's disk is the host's: never evict pods for the host's usage.
evictionHard:
  imagefs.available: \"0%\"
  nodefs.available: \"0%\"
  nodefs.inodesFree: \"0%\"
failSwapOn: false
imageGCHighThresholdPercent: 100
# Computed every second, posted only on change (or every minute), so Ready
# shows as soon as it is true without writing more to etcd.
nodeStatusUpdateFrequency: 1s
nodeStatusReportFrequency: 1m
podCIDR: {pod_cidr}
# Written at every boot by the node image's berth-dns unit: the node's
# resolv.conf with Docker's embedded DNS at an address pods can reach.
resolvConf: /etc/berth/resolv.conf
serializeImagePulls: false
tlsCertFile: {K8S_DIR}/pki/kubelet-serving-{node}.crt
tlsPrivateKeyFile: {K8S_DIR}/pki/kubelet-serving-{node}.key
",
        cgroup_root = spec.cgroup_root,
        node = spec.node,
        pod_cidr = spec.pod_cidr,
        cluster_dns = if spec.addons.contains(&Addon::Coredns) {
            format!("clusterDNS:\n- {CLUSTER_DNS}\n")
        } else {
            String::new()
        },
    );
    if spec.row.has(Upstream::RuntimeEndpointInConfig) {
        config.push_str("containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n");
    }
    // kubelet will refuse a cgroup v1 host unless this is false.
    if !spec.cgroup_v2 && spec.row.has(Upstream::FailCgroupV1Field) {
        config.push_str("failCgroupV1: false\n");
    }
    config.push_str(&feature_gates_yaml(spec));
    config
}

fn kube_proxy_config(spec: &NodeSpec) -> String {
    format!(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {K8S_DIR}/kube-proxy.conf
clusterCIDR: {POD_CIDR}
# A container cannot set the conntrack sysctls; leave them as they are.
conntrack:
  maxPerCore: 0
# Quoted: a profile may be named `y`, `no` or `123`, which YAML reads as
# a bool or a number, and kube-proxy then refused its config at each start.
hostnameOverride: \"{node}\"
mode: iptables
{gates}",
        node = spec.node,
        gates = feature_gates_yaml(spec),
    )
}

fn containerd_config(spec: &NodeSpec) -> String {
    // Without CAP_SYS_RESOURCE nothing in the node may lower its OOM score,
    // which kubelet asks for on every sandbox; only there is it restricted.
    let restrict = spec.privilege == Privilege::Capabilities;
    // containerd renders the CNI template once kubelet learns the node's
    // pod CIDR from the controller manager.
    let template = "/etc/containerd/cni.template";
    let runc = match &spec.runtime {
        Some(_) => format!("\n        BinaryName = \"{BINARIES_MOUNT}/runc\""),
        None => String::new(),
    };
    // The runtime's own CNI plugins where it brought them, else the node
    // image's.
    let cni_bin = match spec.runtime.as_ref().and_then(|r| r.cni.as_ref()) {
        Some(_) => format!("{BINARIES_MOUNT}/{}", crate::minors::CNI_DIR),
        None => "/usr/lib/cni".to_string(),
    };
    if spec
        .runtime
        .as_ref()
        .is_some_and(|r| r.containerd_major() >= 2)
    {
        // containerd 2 splits the CRI plugin in two and reads version 3
        // (docs/cri/config.md); version 2 is only migrated in memory.
        let runtime = "plugins.'io.containerd.cri.v1.runtime'";
        let images = "plugins.'io.containerd.cri.v1.images'";
        return format!(
            "version = 3

[{images}]
  snapshotter = \"overlayfs\"

  [{images}.pinned_images]
    sandbox = \"{PAUSE_IMAGE}\"

  [{images}.registry]
    config_path = \"{REGISTRY_HOSTS}\"

[{runtime}]
  restrict_oom_score_adj = {restrict}

  [{runtime}.containerd]
    default_runtime_name = \"runc\"

    [{runtime}.containerd.runtimes.runc]
      runtime_type = \"io.containerd.runc.v2\"

      [{runtime}.containerd.runtimes.runc.options]{runc}

  [{runtime}.cni]
    bin_dirs = [\"{cni_bin}\"]
    conf_dir = \"/etc/cni/net.d\"
    conf_template = \"{template}\"
"
        );
    }
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    format!(
        "version = 2

[{cri}]
  sandbox_image = \"{PAUSE_IMAGE}\"
  restrict_oom_score_adj = {restrict}

  [{cri}.containerd]
    snapshotter = \"overlayfs\"
    default_runtime_name = \"runc\"

    [{cri}.containerd.runtimes.runc]
      runtime_type = \"io.containerd.runc.v2\"

      [{cri}.containerd.runtimes.runc.options]{runc}

  [{cri}.cni]
    bin_dir = \"{cni_bin}\"
    conf_dir = \"/etc/cni/net.d\"
    conf_template = \"{template}\"

  [{cri}.registry]
    config_path = \"{REGISTRY_HOSTS}\"
"
    )
}

/// Where containerd looks for how to reach each registry host (a folder
/// per host, read at every pull, so a registry added later needs no
/// restart).
const REGISTRY_HOSTS: &str = "/etc/containerd/certs.d";

/// The folder of a node's containerd that says how to reach `host`.
pub fn registry_hosts_dir(host: &str) -> String {
    format!("{REGISTRY_HOSTS}/{host}")
}

/// Images named `<host>/...` come from the registry at `ip`, over plain
/// HTTP on the profile's network.
fn registry_hosts(host: &str, ip: Ipv4Addr) -> NodeFile {
    let server = format!("http://{ip}:{}", REGISTRY_PORT);
    file(
        &format!("{}/hosts.toml", registry_hosts_dir(host)),
        format!(
            "# Rendered by berth: the profile's registry.\nserver = \"{server}\"\n\n[host.\"{server}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ),
        0o644,
    )
}

/// Images named `<host>/...` come from the home's registry cache at
/// `mirror` (plain HTTP on the profile's network) and from `server`, the
/// registry itself, when the cache cannot serve them; without a mirror,
/// from `server` alone, as on a node without the file.
pub fn mirror_hosts(host: &str, server: &str, mirror: Option<&str>) -> NodeFile {
    let mut content =
        format!("# Rendered by berth: the home's registry cache.\nserver = \"{server}\"\n");
    if let Some(mirror) = mirror {
        content.push_str(&format!(
            "\n[host.\"{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ));
    }
    file(
        &format!("{}/hosts.toml", registry_hosts_dir(host)),
        content,
        0o644,
    )
}

/// The files that point a node's containerd at the profile's registry.
pub fn registry_files(spec: &NodeSpec) -> Vec<NodeFile> {
    spec.registry
        .iter()
        .map(|(host, ip)| registry_hosts(host, *ip))
        .collect()
}

/// The CA certificates of `--ca-cert`, added to the node's system store at
/// each boot before containerd and kubelet start (Debian's
/// update-ca-certificates, so that openssl's hashed names and the bundle Go
/// programs read both have them).
pub fn ca_cert_files(spec: &NodeSpec) -> Vec<NodeFile> {
    if spec.ca_certs.is_empty() {
        return Vec::new();
    }
    let mut files: Vec<NodeFile> = spec
        .ca_certs
        .iter()
        .enumerate()
        .map(|(i, pem)| {
            file(
                &format!("{CA_CERTS_DIR}/berth-{}.crt", i + 1),
                pem.clone(),
                0o644,
            )
        })
        .collect();
    files.extend(enabled_unit(
        "berth-ca-certs",
        "# Rendered by berth.
[Unit]
Description=The CA certificates berth was given (--ca-cert), trusted system-wide
Before=containerd.service kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/update-ca-certificates

[Install]
WantedBy=multi-user.target
"
        .into(),
    ));
    files
}

/// The proxy a node's containerd pulls through.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeProxy {
    pub http: Option<String>,
    pub https: Option<String>,
    /// The user's exceptions and the cluster's own addresses.
    pub no_proxy: Vec<String>,
}

impl NodeProxy {
    /// The user's proxy, with what the cluster reaches directly added to
    /// `no_proxy`: the loopback, the profile's network `subnet` (nodes,
    /// registry, load balancer), pods, Services and their names.
    pub fn new(
        http: Option<String>,
        https: Option<String>,
        user_no_proxy: &[String],
        subnet: Cidr,
    ) -> Self {
        let mut no_proxy = user_no_proxy.to_vec();
        for own in [
            "localhost".to_string(),
            "127.0.0.1".into(),
            "::1".into(),
            subnet.to_string(),
            POD_CIDR.to_string(),
            SERVICE_CIDR.into(),
            ".svc".into(),
            ".cluster.local".into(),
        ] {
            if !no_proxy.contains(&own) {
                no_proxy.push(own);
            }
        }
        NodeProxy {
            http,
            https,
            no_proxy,
        }
    }
}

/// containerd's environment for the profile's proxy, when it has one.
fn proxy_files(spec: &NodeSpec) -> Vec<NodeFile> {
    let Some(proxy) = &spec.proxy else {
        return Vec::new();
    };
    let mut vars = Vec::new();
    if let Some(http) = &proxy.http {
        vars.push(format!("\"HTTP_PROXY={http}\""));
    }
    if let Some(https) = &proxy.https {
        vars.push(format!("\"HTTPS_PROXY={https}\""));
    }
    vars.push(format!("\"NO_PROXY={}\"", proxy.no_proxy.join(",")));
    vec![file(
        "/etc/systemd/system/containerd.service.d/20-proxy.conf",
        format!(
            "# Rendered by berth: image pulls go through the profile's proxy.\n[Service]\nEnvironment={}\n",
            vars.join(" ")
        ),
        0o644,
    )]
}

/// Where Debian's update-ca-certificates takes local CA certificates from.
pub const CA_CERTS_DIR: &str = "/usr/local/share/ca-certificates";

/// The node image's containerd unit, pointed at the volume's containerd;
/// its shim and runc are found beside it.
fn containerd_dropin() -> String {
    format!(
        "[Service]
ExecStart=
ExecStart={BINARIES_MOUNT}/containerd
Environment=PATH={BINARIES_MOUNT}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
"
    )
}

/// containerd's template of the pods' network: a bridge on the node, with
/// `mtu` when its network's is below Ethernet's.
fn cni_template(mtu: Option<u32>) -> String {
    let mtu = mtu.map_or(String::new(), |m| format!("\n      \"mtu\": {m},"));
    CNI_TEMPLATE.replace(
        "\"hairpinMode\": true,",
        &format!("\"hairpinMode\": true,{mtu}"),
    )
}

const CNI_TEMPLATE: &str = r#"{
  "cniVersion": "0.4.0",
  "name": "berth",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [{{range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$range}}"}]{{end}}],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
"#;

/// etcd serves its clients (the API server) on the node's loopback only;
/// alone, its peer port too. Members of several control planes talk to
/// each other over TLS with peer certificates of the cluster's CA.
fn etcd_flags(spec: &NodeSpec) -> Flags {
    let pki = |f: &str| format!("{K8S_DIR}/pki/{f}");
    let mut f = flags(&[
        ("advertise-client-urls", "https://127.0.0.1:2379"),
        ("cert-file", &pki("etcd-server.crt")),
        ("client-cert-auth", "true"),
        ("data-dir", "/var/lib/etcd/berth"),
        ("key-file", &pki("etcd-server.key")),
        ("listen-client-urls", "https://127.0.0.1:2379"),
        ("listen-metrics-urls", "http://127.0.0.1:2381"),
        ("trusted-ca-file", &pki("ca.crt")),
    ]);
    match &spec.etcd {
        None => f.extend(flags(&[
            ("initial-advertise-peer-urls", "http://127.0.0.1:2380"),
            ("initial-cluster", "berth=http://127.0.0.1:2380"),
            ("listen-peer-urls", "http://127.0.0.1:2380"),
            ("name", "berth"),
        ])),
        Some(cluster) => {
            let peer = |ip: &Ipv4Addr| format!("https://{ip}:{ETCD_PEER_PORT}");
            let initial: Vec<String> = cluster
                .members
                .iter()
                .map(|(name, ip)| format!("{name}={}", peer(ip)))
                .collect();
            let state = if cluster.joining { "existing" } else { "new" };
            f.extend(flags(&[
                ("initial-advertise-peer-urls", &peer(&spec.node_ip)),
                ("initial-cluster", &initial.join(",")),
                ("initial-cluster-state", state),
                ("listen-peer-urls", &peer(&spec.node_ip)),
                ("name", &spec.node),
                ("peer-cert-allowed-cn", ETCD_PEER_CN),
                ("peer-cert-file", &pki("etcd-peer.crt")),
                ("peer-client-cert-auth", "true"),
                ("peer-key-file", &pki("etcd-peer.key")),
                ("peer-trusted-ca-file", &pki("ca.crt")),
            ]));
        }
    }
    f.sort();
    f
}

struct Unit<'a> {
    name: &'a str,
    description: &'a str,
    binary: String,
    flags: Flags,
    after: &'a str,
    /// Type=notify for daemons that tell systemd when they serve.
    notify: bool,
    /// Waits for other nodes before it tells systemd it serves: however
    /// long they take to start, it must not be killed and restarted.
    waits_for_peers: bool,
    pre: Vec<String>,
}

fn render_unit(unit: &Unit) -> String {
    let mut out = format!(
        "# Rendered by berth.\n[Unit]\nDescription={}\nAfter={}\nWants={}\n\n[Service]\n",
        unit.description, unit.after, unit.after
    );
    if unit.notify {
        out.push_str("Type=notify\n");
    }
    if unit.waits_for_peers {
        out.push_str("TimeoutStartSec=infinity\n");
    }
    for pre in &unit.pre {
        out.push_str(&format!("ExecStartPre={pre}\n"));
    }
    out.push_str(&format!("ExecStart={}", unit.binary));
    for (key, value) in &unit.flags {
        out.push_str(&format!(" \\\n    --{key}={value}"));
    }
    // The API server holds most of a node's memory, in a Go heap that may
    // double before it is collected; collected at half that growth the node
    // idles at about a fifth less. The controllers' start-up burst is
    // slowed by it, so they keep the default.
    if unit.name == "kube-apiserver" {
        out.push_str("\nEnvironment=GOGC=50");
        // It waits up to a minute for the watches of clients that still
        // run before it exits (the grace period for them came in v1.27);
        // a restart for new flags (`addons enable metrics-server`) need
        // not: killed after 5 s, it loses nothing, etcd holds the state.
        // `berth stop` ends it at once (`command::stop_control_plane`).
        out.push_str("\nTimeoutStopSec=5");
    }
    // A start waits on these two alone, while containerd, the image import
    // and kubelet start beside them on the same few cores: first in line
    // for CPU, the API server is ready sooner, and takes little once it is.
    if matches!(unit.name, "etcd" | "kube-apiserver") {
        out.push_str("\nCPUWeight=1000");
    }
    out.push_str("\nRestart=always\nRestartSec=1\nLimitNOFILE=1048576\n\n[Install]\nWantedBy=multi-user.target\n");
    out
}

/// What a user of a cgroup v1 host should know, for the minors whose
/// kubelet refuses such a host by default (v1.35 on, KEP-5573).
pub fn cgroup_v1_note(version: &Version, cgroup_v2: bool) -> Option<&'static str> {
    (!cgroup_v2 && version.minor >= Upstream::CgroupV1Refused.since()).then_some(
        "deprecated by Kubernetes: from v1.35 kubelet refuses it unless told otherwise, as berth \
         does (failCgroupV1: false); a later release removes it, so move the host to cgroup v2",
    )
}

/// A kubeconfig for a component inside the node, reaching the API server
/// on the node's loopback, with its certificate embedded.
pub fn kubeconfig(server: &str, user: &str, ca: &str, cert: &str, key: &str) -> String {
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: berth
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: berth
  context:
    cluster: berth
    user: {user}
current-context: berth
",
        ca = b64(ca),
        cert = b64(cert),
        key = b64(key),
    )
}

/// Adds the user's feature gates and `--extra-config` flags to a
/// component's; a flag berth sets is replaced, not repeated. kubelet and
/// kube-proxy take feature gates in their configuration files.
fn user_flags(component: &str, flags: &mut Flags, spec: &NodeSpec) {
    let mut set = |key: &str, value: &str| match flags.iter_mut().find(|(k, _)| k == key) {
        Some(flag) => flag.1 = value.to_string(),
        None => flags.push((key.to_string(), value.to_string())),
    };
    let takes_gates = matches!(
        component,
        "kube-apiserver" | "kube-controller-manager" | "kube-scheduler"
    );
    if takes_gates && !spec.feature_gates.is_empty() {
        set("feature-gates", &feature_gates_flag(&spec.feature_gates));
    }
    for extra in spec
        .extra_config
        .iter()
        .filter(|e| e.component == component)
    {
        set(&extra.key, &extra.value);
    }
}

fn feature_gates_yaml(spec: &NodeSpec) -> String {
    if spec.feature_gates.is_empty() {
        return String::new();
    }
    let mut out = String::from("featureGates:\n");
    for (name, on) in &spec.feature_gates {
        out.push_str(&format!("  {name}: {on}\n"));
    }
    out
}

/// kubelet before v1.24 carries cAdvisor's Docker plugin, which asks the
/// Docker socket for its root directory five times, a second apart, before
/// it gives up: 5 s of every node start. A socket answering with the
/// default root directory, and a version cAdvisor refuses (so that it never
/// takes the node's containers for Docker's), ends that wait at once.
fn docker_probe_answer() -> Vec<NodeFile> {
    let script = r#"#!/bin/sh
# Rendered by berth: see berth-docker-info.socket.
body='{"DockerRootDir":"/var/lib/docker","Version":"0.0.0","ApiVersion":"1.24"}'
printf 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' "${#body}" "$body"
"#;
    let socket = "# Rendered by berth: answers kubelet's cAdvisor where no Docker runs.
[Unit]
Description=Docker API stand-in for kubelet's cAdvisor

[Socket]
ListenStream=/run/docker.sock
Accept=yes

[Install]
WantedBy=sockets.target
";
    let service = "# Rendered by berth.
[Unit]
Description=Docker API stand-in for kubelet's cAdvisor

[Service]
ExecStart=/usr/local/lib/berth/docker-info
StandardInput=socket
StandardOutput=socket
";
    vec![
        file("/usr/local/lib/berth/docker-info", script.into(), 0o755),
        file(
            "/etc/systemd/system/berth-docker-info.socket",
            socket.into(),
            0o644,
        ),
        file(
            "/etc/systemd/system/berth-docker-info@.service",
            service.into(),
            0o644,
        ),
        NodeFile::Link {
            path: "/etc/systemd/system/sockets.target.wants/berth-docker-info.socket".into(),
            target: "/etc/systemd/system/berth-docker-info.socket".into(),
        },
    ]
}

/// Where a node keeps its routes to the other nodes' pods.
pub const ROUTES_SCRIPT: &str = "/etc/berth/routes.sh";

/// The node's routes to the other nodes' pod CIDRs through their addresses
/// on the profile's network (host-gateway style: no overlay, no encap), and
/// masquerading for what leaves the pod network, which the CNI bridge no
/// longer does so that pods see each other's own addresses. Routes of nodes
/// that are gone are removed. Idempotent: run at every boot and whenever the
/// nodes change.
///
/// A Service address that kube-proxy did not translate (a port the Service
/// does not have, an address no Service has) is refused in the node: left
/// to the default route it would reach whatever the host's network answers
/// with, such as a transparent proxy that accepts every port 80, and a
/// removed port would seem to work.
pub fn routes_script(routes: &[Route]) -> String {
    let mut out = String::from("#!/bin/sh\n# Rendered by berth.\nset -e\n");
    let wanted: Vec<String> = routes.iter().map(|r| r.pod_cidr.to_string()).collect();
    for r in routes {
        out.push_str(&format!("ip route replace {} via {}\n", r.pod_cidr, r.via));
    }
    out.push_str(&format!(
        "for r in $(ip -4 route show | awk '$2 == \"via\" && $1 ~ /^10\\.244\\./ {{print $1}}'); do
    case \" {wanted} \" in *\" $r \"*) ;; *) ip route del \"$r\" ;; esac
done
masq=\"POSTROUTING -s {POD_CIDR} ! -d {POD_CIDR} -m comment --comment berth -j MASQUERADE\"
iptables -t nat -C $masq 2>/dev/null || iptables -t nat -A $masq
for chain in FORWARD OUTPUT; do
    refuse=\"$chain -d {SERVICE_CIDR} -m comment --comment berth -j REJECT\"
    iptables -C $refuse 2>/dev/null || iptables -I $refuse
done
",
        wanted = wanted.join(" ")
    ));
    out
}

const ROUTES_UNIT: &str = "# Rendered by berth.
[Unit]
Description=Routes to the other nodes' pods
After=network-online.target
Before=kubelet.service kube-proxy.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /etc/berth/routes.sh

[Install]
WantedBy=multi-user.target
";

/// Several API servers starting at once share the CPU, and the first is
/// ready only when they all are; the first controller manager, starting its
/// controllers beside them, lifted the nodes' not-ready taints seconds
/// later. So the first control plane's API server starts at once and every
/// other's once its own node takes pods (Ready, taint lifted), asked
/// through the load balancer: what a start waits for is done before they
/// take the CPU. A first control plane that never comes (its node lost)
/// holds the others back 30 s at most.
fn has_head_start(spec: &NodeSpec) -> bool {
    spec.etcd.is_some() && !spec.first
}

const HEAD_START_SCRIPT: &str = "/etc/berth/wait-for-node.sh";

/// Waits until this node takes pods, SECONDS at most, asking as its
/// kubelet through openssl: a kubectl per try cost a tenth of a
/// core-second, on every node, while the first API server started.
fn head_start_script(spec: &NodeSpec) -> String {
    let pki = |f: &str| format!("{K8S_DIR}/pki/{f}");
    let node = &spec.node;
    format!(
        r#"#!/bin/sh
# Rendered by berth: usage: wait-for-node.sh SECONDS
taking_pods() {{
    answer=$(printf 'GET /api/v1/nodes/{node} HTTP/1.1\r\nHost: kubernetes\r\nConnection: close\r\n\r\n' |
        timeout 2 openssl s_client -quiet -verify_return_error -connect {api}:{API_PORT} \
            -CAfile {ca} -cert {cert} -key {key} 2>/dev/null) &&
        case $answer in *'"type":"Ready","status":"True"'*) ;; *) false ;; esac &&
        case $answer in *'"key":"node.kubernetes.io/not-ready"'*) false ;; esac
}}
end=$(($(date +%s) + $1))
until taking_pods || [ "$(date +%s)" -ge "$end" ]; do sleep 0.5; done
"#,
        api = spec.api_ip,
        ca = pki("ca.crt"),
        cert = pki(&format!("kubelet-{node}.crt")),
        key = pki(&format!("kubelet-{node}.key")),
    )
}

const HEALTHY_API_SCRIPT: &str = "/etc/berth/wait-for-api.sh";

/// Waits until the local API server's /healthz is ok, SECONDS at most.
/// kube-controller-manager exits when it is not ok within 10 s of its own
/// start (`WaitForAPIServer`), and the API server notifies systemd before
/// its post-start hooks are done: on a loaded machine that took longer,
/// and the controller manager restarted once. The scheduler waits too
/// (its reason is at its unit). Asked as the API server's
/// kubelet client (system:masters), through openssl as the head start is.
fn healthy_api_script() -> String {
    let pki = |f: &str| format!("{K8S_DIR}/pki/{f}");
    format!(
        r#"#!/bin/sh
# Rendered by berth: usage: wait-for-api.sh SECONDS
healthy() {{
    answer=$(printf 'GET /healthz HTTP/1.1\r\nHost: kubernetes\r\nConnection: close\r\n\r\n' |
        timeout 2 openssl s_client -quiet -verify_return_error -connect 127.0.0.1:{API_PORT} \
            -CAfile {ca} -cert {cert} -key {key} 2>/dev/null) &&
        case $answer in 'HTTP/1.1 200 '*) ;; *) false ;; esac
}}
end=$(($(date +%s) + $1))
until healthy || [ "$(date +%s)" -ge "$end" ]; do sleep 0.2; done
"#,
        ca = pki("ca.crt"),
        cert = pki("apiserver-kubelet-client.crt"),
        key = pki("apiserver-kubelet-client.key"),
    )
}

/// A node's units and configs: the whole control plane on the control-plane
/// node, kubelet and kube-proxy on the others. PKI and kubeconfigs are added
/// by the caller, which holds the keys.
pub fn node_files(spec: &NodeSpec, routes: &[Route]) -> Vec<NodeFile> {
    let bin = |name: &str| format!("{BINARIES_MOUNT}/{name}");
    let mut kubelet_pre = vec![format!(
        "/usr/local/bin/berth-cgroup-root {}",
        spec.cgroup_root
    )];
    // Registration backs off up to 7 s while the API server is not there;
    // a worker booting beside a new control plane waits for its port
    // instead and registers at once. Behind a load balancer, which holds
    // connections on the first API server while none is ready, every
    // kubelet starts at once and registers the moment one is.
    if !spec.load_balanced && !spec.is_control_plane() {
        kubelet_pre.push(format!(
            "/bin/bash -c 'until echo >/dev/tcp/{}/{API_PORT}; do sleep 0.2; done 2>/dev/null'",
            spec.api_ip
        ));
    }
    let mut control_plane = [
        Unit {
            name: "etcd",
            description: "etcd, the cluster's store (rendered by berth)",
            binary: match spec.runtime {
                Some(_) => bin("etcd"),
                None => "/usr/bin/etcd".into(),
            },
            flags: etcd_flags(spec),
            after: "network-online.target",
            notify: true,
            waits_for_peers: spec.etcd.is_some(),
            pre: Vec::new(),
        },
        Unit {
            name: "kube-apiserver",
            description: "Kubernetes API server",
            binary: bin("kube-apiserver"),
            flags: kube_apiserver_flags(spec),
            after: "etcd.service",
            notify: true,
            waits_for_peers: false,
            pre: if has_head_start(spec) {
                vec![format!("/bin/sh {HEAD_START_SCRIPT} 30")]
            } else {
                Vec::new()
            },
        },
        Unit {
            name: "kube-controller-manager",
            description: "Kubernetes controller manager",
            binary: bin("kube-controller-manager"),
            flags: kube_controller_manager_flags(spec),
            after: "kube-apiserver.service",
            notify: false,
            waits_for_peers: false,
            // Within systemd's default 90 s start timeout.
            pre: vec![format!("/bin/sh {HEALTHY_API_SCRIPT} 60")],
        },
        Unit {
            name: "kube-scheduler",
            description: "Kubernetes scheduler",
            binary: bin("kube-scheduler"),
            flags: kube_scheduler_flags(spec),
            after: "kube-apiserver.service",
            notify: false,
            waits_for_peers: false,
            // Started with the API server, its lists were refused until the
            // RBAC roles were in, and its informers backed off: it synced
            // 3 s after its start, a second after the API server was
            // ready, and a first pod waited that long to be scheduled
            // (journal of a new profile).
            pre: vec![format!("/bin/sh {HEALTHY_API_SCRIPT} 60")],
        },
        Unit {
            name: "kubelet",
            description: "Kubernetes node agent",
            binary: bin("kubelet"),
            flags: kubelet_flags(spec),
            after: "containerd.service berth-pause-import.service berth-dns.service",
            notify: false,
            waits_for_peers: false,
            pre: kubelet_pre,
        },
        Unit {
            name: "kube-proxy",
            description: "Kubernetes service proxy",
            binary: bin("kube-proxy"),
            flags: kube_proxy_flags(spec),
            after: "network-online.target",
            notify: false,
            waits_for_peers: false,
            pre: Vec::new(),
        },
    ];
    for unit in &mut control_plane {
        user_flags(unit.name, &mut unit.flags, spec);
    }
    let units: Vec<&Unit> = control_plane
        .iter()
        .filter(|u| spec.is_control_plane() || matches!(u.name, "kubelet" | "kube-proxy"))
        .collect();
    let mut files = Vec::new();
    for unit in units {
        files.extend(enabled_unit(unit.name, render_unit(unit)));
    }
    files.push(file(
        &format!("{K8S_DIR}/kubelet.yaml"),
        kubelet_config(spec),
        0o644,
    ));
    files.push(file(
        &format!("{K8S_DIR}/kube-proxy.yaml"),
        kube_proxy_config(spec),
        0o644,
    ));
    files.push(file(
        "/etc/containerd/config.toml",
        containerd_config(spec),
        0o644,
    ));
    files.push(file(
        "/etc/containerd/cni.template",
        cni_template(spec.mtu),
        0o644,
    ));
    if spec.runtime.is_some() {
        files.push(file(
            "/etc/systemd/system/containerd.service.d/10-berth.conf",
            containerd_dropin(),
            0o644,
        ));
    }
    files.extend(enabled_unit("berth-routes", ROUTES_UNIT.into()));
    if has_head_start(spec) {
        files.push(file(HEAD_START_SCRIPT, head_start_script(spec), 0o755));
    }
    if spec.is_control_plane() {
        files.push(file(HEALTHY_API_SCRIPT, healthy_api_script(), 0o755));
    } else {
        // The version's images are CoreDNS's, which runs on control planes.
        files.push(file(
            "/etc/systemd/system/berth-pause-import.service.d/10-berth.conf",
            "# Rendered by berth.\n[Service]\nEnvironment=BERTH_VERSION_IMAGES=skip\n".into(),
            0o644,
        ));
    }
    files.push(file(ROUTES_SCRIPT, routes_script(routes), 0o755));
    if !spec.row.has(Upstream::NoDockershim) {
        files.extend(docker_probe_answer());
    }
    files.extend(registry_files(spec));
    files.extend(ca_cert_files(spec));
    files.extend(proxy_files(spec));
    files.extend(crate::addons::files(spec));
    files
}

/// A tar stream of `files`, as an engine's upload into a node takes it.
pub fn tar_of(files: &[NodeFile]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for f in files {
        match f {
            NodeFile::File {
                path,
                content,
                mode,
            } => crate::append_file(
                &mut builder,
                path.trim_start_matches('/'),
                content.as_bytes(),
                *mode,
            ),
            NodeFile::Link { path, target } => {
                let mut header = tar::Header::new_gnu();
                header.set_mtime(crate::now());
                header.set_size(0);
                header.set_mode(0o777);
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, path.trim_start_matches('/'), target)
            }
        }
        .expect("writing a tar to memory cannot fail");
    }
    builder
        .into_inner()
        .expect("writing a tar to memory cannot fail")
}

/// Every rendered file of a node, keyed by path, for golden tests.
pub fn render_all(spec: &NodeSpec, routes: &[Route]) -> BTreeMap<String, String> {
    node_files(spec, routes)
        .into_iter()
        .map(|f| match f {
            NodeFile::File { path, content, .. } => (path, content),
            NodeFile::Link { path, target } => (path, format!("-> {target}")),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::addons::{STORAGE_PROVISIONER, STORAGE_SCRIPT};
    use crate::minors::{MINORS, NEWEST_MINOR, OLDEST_MINOR};

    fn row(minor: u32) -> &'static Minor {
        MINORS.iter().find(|r| r.minor == minor).unwrap()
    }

    pub(crate) fn spec(minor: u32) -> NodeSpec {
        NodeSpec {
            node: "dev".into(),
            role: Role::ControlPlane,
            node_ip: "172.30.0.2".parse().unwrap(),
            version: Version {
                major: 1,
                minor,
                patch: 0,
            },
            row: row(minor),
            privilege: Privilege::Capabilities,
            pod_cidr: POD_CIDR.nth_slash24(0),
            cgroup_root: "/berth-dev".into(),
            cgroup_v2: false,
            api_ip: "172.30.0.2".parse().unwrap(),
            etcd: None,
            load_balanced: false,
            extra_config: Vec::new(),
            feature_gates: BTreeMap::new(),
            // Every addon: the golden files show each one's manifest and
            // images per minor.
            addons: Addon::ALL.to_vec(),
            first: true,
            service_lb: true,
            ca_certs: Vec::new(),
            proxy: None,
            registry: Some(("localhost:5001".into(), "172.30.0.254".parse().unwrap())),
            // An imported version runs the node image's; downloaded and
            // built ones bring theirs.
            runtime: (minor > OLDEST_MINOR).then(|| row(minor).runtime()),
            mtu: None,
        }
    }

    fn worker(minor: u32) -> NodeSpec {
        NodeSpec {
            node: "dev-m02".into(),
            role: Role::Worker,
            node_ip: "172.30.0.3".parse().unwrap(),
            pod_cidr: POD_CIDR.nth_slash24(1),
            cgroup_root: "/berth-dev-m02".into(),
            first: false,
            ..spec(minor)
        }
    }

    #[test]
    fn node_names_yaml_would_read_as_bools_or_numbers_stay_strings() {
        for name in ["y", "no", "on", "123", "1e3"] {
            let spec = NodeSpec {
                node: name.into(),
                ..spec(37)
            };
            let files = render_all(&spec, &[]);
            let text = &files["/etc/kubernetes/kube-proxy.yaml"];
            let yaml: yaml_serde::Value = yaml_serde::from_str(text).unwrap();
            assert_eq!(yaml["hostnameOverride"].as_str(), Some(name), "{text}");
        }
    }

    fn route(pod_cidr: &str, via: &str) -> Route {
        Route {
            pod_cidr: pod_cidr.parse().unwrap(),
            via: via.parse().unwrap(),
        }
    }

    /// One golden file per supported minor version holds every rendered
    /// file. `BERTH_UPDATE_GOLDEN=1 cargo test` rewrites them after a
    /// deliberate change; review the diff.
    #[test]
    fn a_cached_registry_is_pulled_from_the_mirror_first_and_the_server_after() {
        let on = mirror_hosts(
            "docker.io",
            "https://registry-1.docker.io",
            Some("http://172.30.7.252:5003"),
        );
        let NodeFile::File { path, content, .. } = on else {
            panic!("a file")
        };
        assert_eq!(path, "/etc/containerd/certs.d/docker.io/hosts.toml");
        assert!(
            content.contains(
                "server = \"https://registry-1.docker.io\"\n\n\
                 [host.\"http://172.30.7.252:5003\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
            "{content}"
        );
        let NodeFile::File { content, .. } = mirror_hosts("quay.io", "https://quay.io", None)
        else {
            panic!("a file")
        };
        assert!(
            content.ends_with("server = \"https://quay.io\"\n"),
            "{content}"
        );
        assert!(!content.contains("[host"), "{content}");
    }

    #[test]
    fn pods_on_an_overlay_take_its_mtu_and_others_ethernets() {
        let template = cni_template(Some(OVERLAY_MTU));
        let json: serde_json::Value =
            serde_json::from_str(&template.replace("{{range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}[{\"subnet\": \"{{$range}}\"}]{{end}}", "")).unwrap();
        assert_eq!(json["plugins"][0]["mtu"], 1450);
        assert!(!cni_template(None).contains("mtu"));
    }

    #[test]
    fn the_pod_network_is_a_network_and_holds_every_nodes_share() {
        assert!(POD_CIDR.is_aligned());
        let last = POD_CIDR.nth_slash24((MAX_NODES - 1) as u8);
        assert!(last.is_aligned());
        assert!(last.last_host() <= POD_CIDR.last_host());
    }

    #[test]
    fn rendered_files_match_the_golden_file_of_every_minor_version() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/golden");
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            let mut text = String::new();
            let cp_routes = [route("10.244.1.0/24", "172.30.0.3")];
            for (path, content) in render_all(&spec(minor), &cp_routes) {
                text.push_str(&format!("==> {path} <==\n{content}\n"));
            }
            let worker_routes = [route("10.244.0.0/24", "172.30.0.2")];
            for (path, content) in render_all(&worker(minor), &worker_routes) {
                text.push_str(&format!("==> worker: {path} <==\n{content}\n"));
            }
            // The first of three control planes: only what differs.
            let single = render_all(&spec(minor), &cp_routes);
            for (path, content) in render_all(&ha(minor, false), &cp_routes) {
                if single.get(&path) != Some(&content) {
                    text.push_str(&format!("==> ha control plane: {path} <==\n{content}\n"));
                }
            }
            let golden = dir.join(format!("v1.{minor}.txt"));
            if std::env::var_os("BERTH_UPDATE_GOLDEN").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&golden, &text).unwrap();
            }
            let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
                panic!(
                    "{} missing; run with BERTH_UPDATE_GOLDEN=1",
                    golden.display()
                )
            });
            assert!(want == text, "v1.{minor} differs from {}", golden.display());
        }
    }

    fn has(flags: &Flags, key: &str) -> bool {
        flags.iter().any(|(k, _)| k == key)
    }

    /// Every cluster trusts aggregated API servers the way kubeadm's do,
    /// whatever addons it runs: through a CA of its own.
    #[test]
    fn the_aggregation_layer_is_configured_with_no_addon_on_every_minor() {
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            let bare = NodeSpec {
                addons: Vec::new(),
                ..spec(minor)
            };
            let api = kube_apiserver_flags(&bare);
            let value = |key: &str| {
                api.iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_else(|| panic!("v1.{minor} has no --{key}"))
            };
            assert_eq!(
                value("requestheader-client-ca-file"),
                "/etc/kubernetes/pki/front-proxy-ca.crt"
            );
            assert_eq!(value("requestheader-allowed-names"), "front-proxy-client");
            assert_eq!(value("requestheader-username-headers"), "X-Remote-User");
            assert!(value("proxy-client-cert-file").ends_with("front-proxy-client.crt"));
            assert_eq!(value("enable-aggregator-routing"), "true");
            assert_ne!(
                value("requestheader-client-ca-file"),
                value("client-ca-file")
            );
        }
    }

    #[test]
    fn removed_flags_are_only_passed_to_versions_that_have_them() {
        assert!(has(&kubelet_flags(&spec(23)), "network-plugin"));
        assert!(!has(&kubelet_flags(&spec(24)), "network-plugin"));
        assert!(has(&kubelet_flags(&spec(26)), "container-runtime"));
        assert!(!has(&kubelet_flags(&spec(27)), "container-runtime"));
        assert!(kubelet_config(&spec(27)).contains("containerRuntimeEndpoint"));
        assert!(!kubelet_config(&spec(26)).contains("containerRuntimeEndpoint"));
        assert!(has(&kube_apiserver_flags(&spec(23)), "insecure-port"));
        assert!(!has(&kube_apiserver_flags(&spec(24)), "insecure-port"));
        assert!(has(&kube_scheduler_flags(&spec(22)), "port"));
        // cAdvisor's Docker plugin left kubelet with dockershim in v1.24.
        let socket = "/etc/systemd/system/berth-docker-info.socket";
        assert!(render_all(&spec(23), &[]).contains_key(socket));
        assert!(!render_all(&spec(24), &[]).contains_key(socket));
        assert!(!has(&kube_controller_manager_flags(&spec(23)), "port"));
    }

    #[test]
    fn secure_defaults_hold_for_every_version() {
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            let api = kube_apiserver_flags(&spec(minor));
            for want in [
                ("anonymous-auth", "false"),
                ("authorization-mode", "Node,RBAC"),
            ] {
                assert!(
                    api.contains(&(want.0.into(), want.1.into())),
                    "v1.{minor} {want:?}"
                );
            }
            let etcd = etcd_flags(&spec(minor));
            assert!(etcd.contains(&("client-cert-auth".into(), "true".into())));
            assert!(
                etcd.iter()
                    .filter(|(k, _)| k.starts_with("listen-"))
                    .all(|(_, v)| v.contains("127.0.0.1"))
            );
            // Several members: clients still on the loopback only, peers
            // only over TLS with a peer certificate.
            let etcd = etcd_flags(&ha(minor, false));
            for want in [
                ("listen-client-urls", "https://127.0.0.1:2379"),
                ("listen-peer-urls", "https://172.30.0.2:2380"),
                ("peer-client-cert-auth", "true"),
                ("peer-cert-allowed-cn", ETCD_PEER_CN),
            ] {
                assert!(etcd.contains(&(want.0.into(), want.1.into())), "{want:?}");
            }
        }
    }

    /// The first of three control planes, or the one joining when `joining`.
    fn ha(minor: u32, joining: bool) -> NodeSpec {
        let members = ["dev", "dev-m02", "dev-m03"]
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), Ipv4Addr::new(172, 30, 0, 2 + i as u8)))
            .collect();
        NodeSpec {
            api_ip: "172.30.0.253".parse().unwrap(),
            etcd: Some(EtcdCluster { members, joining }),
            load_balanced: true,
            ..spec(minor)
        }
    }

    #[test]
    fn several_control_planes_form_one_etcd_cluster_and_elect_leaders() {
        let first = etcd_flags(&ha(20, false));
        let flag = |flags: &Flags, key: &str| {
            flags
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(
            flag(&first, "initial-cluster"),
            "dev=https://172.30.0.2:2380,dev-m02=https://172.30.0.3:2380,dev-m03=https://172.30.0.4:2380"
        );
        assert_eq!(flag(&first, "initial-cluster-state"), "new");
        assert_eq!(flag(&first, "name"), "dev");
        assert_eq!(
            flag(&etcd_flags(&ha(20, true)), "initial-cluster-state"),
            "existing"
        );
        for flags in [
            kube_controller_manager_flags(&ha(20, false)),
            kube_scheduler_flags(&ha(20, false)),
        ] {
            assert_eq!(flag(&flags, "leader-elect"), "true");
        }
        assert_eq!(
            flag(&kube_scheduler_flags(&spec(20)), "leader-elect"),
            "false"
        );
        assert_eq!(
            flag(
                &kube_scheduler_flags(&ha(20, false)),
                "leader-elect-retry-period"
            ),
            "500ms"
        );
        // The others' API servers start once their node takes pods, asked
        // through the load balancer, the first's at once.
        let unit = "/etc/systemd/system/kube-apiserver.service";
        let files = render_all(&second_control_plane(20), &[]);
        assert!(files[unit].contains("ExecStartPre=/bin/sh /etc/berth/wait-for-node.sh 30"));
        let script = &files[HEAD_START_SCRIPT];
        assert!(script.contains("-connect 172.30.0.253:6443"), "{script}");
        assert!(script.contains("/pki/kubelet-dev-m02.crt"), "{script}");
        assert!(script.contains("GET /api/v1/nodes/dev-m02 "), "{script}");
        assert!(!render_all(&ha(20, false), &[])[unit].contains("ExecStartPre"));
        // Kubelets behind the load balancer start at once.
        let worker = NodeSpec {
            api_ip: "172.30.0.253".parse().unwrap(),
            load_balanced: true,
            ..worker(20)
        };
        let files = render_all(&worker, &[]);
        assert!(!files["/etc/systemd/system/kubelet.service"].contains("6443"));
        assert!(!files.contains_key(HEAD_START_SCRIPT));
    }

    fn second_control_plane(minor: u32) -> NodeSpec {
        NodeSpec {
            node: "dev-m02".into(),
            node_ip: "172.30.0.3".parse().unwrap(),
            first: false,
            ..ha(minor, false)
        }
    }

    /// How many times `script`, told to wait 2 s at most and polling every
    /// 0.5 s, asks an openssl that answers `answer` as the API server
    /// would. Waiting is asking again, which holds however busy the
    /// machine is (a time threshold did not): at least a second passes
    /// before the deadline, so a wait asks twice or more.
    fn questions_asked(script: &str, answer: &str) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wait.sh");
        std::fs::write(&path, script).unwrap();
        let openssl = dir.path().join("openssl");
        std::fs::write(
            &openssl,
            "#!/bin/sh\necho asked >>\"$ASKED\"\ncat \"$ANSWER\"\n",
        )
        .unwrap();
        std::fs::set_permissions(
            &openssl,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let file = dir.path().join("answer");
        std::fs::write(&file, answer).unwrap();
        let asked = dir.path().join("asked");
        let search = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap()
        );
        let status = std::process::Command::new("sh")
            .arg(&path)
            .arg("2")
            .env("PATH", search)
            .env("ANSWER", &file)
            .env("ASKED", &asked)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(&asked).unwrap().lines().count()
    }

    /// The head start's script ends at once for a node that takes pods,
    /// and waits out its seconds for one that is not Ready or still
    /// tainted.
    #[test]
    fn the_head_start_waits_for_a_ready_untainted_node_and_no_longer_than_told() {
        let script = &render_all(&second_control_plane(34), &[])[HEAD_START_SCRIPT];
        let ready = r#"{"type":"Ready","status":"True","lastHeartbeatTime":"x"}"#;
        let tainted = r#""taints":[{"key":"node.kubernetes.io/not-ready","effect":"NoSchedule"}]"#;
        let not_ready = r#"{"type":"Ready","status":"False"}"#;
        for (answer, waits) in [
            (format!("HTTP/1.1 200 OK\r\n\r\n{{{ready}}}"), false),
            (
                format!("HTTP/1.1 200 OK\r\n\r\n{{{tainted},{ready}}}"),
                true,
            ),
            (format!("HTTP/1.1 200 OK\r\n\r\n{{{not_ready}}}"), true),
        ] {
            let questions = questions_asked(script, &answer);
            assert_eq!(questions > 1, waits, "{answer}: asked {questions} times");
        }
    }

    /// The controller manager and the scheduler start once the API server
    /// is healthy, or after the wait they are told, whichever comes first.
    #[test]
    fn the_controllers_wait_for_a_healthy_api_server() {
        let files = render_all(&ha(34, false), &[]);
        for unit in ["kube-controller-manager", "kube-scheduler"] {
            let unit = &files[&format!("/etc/systemd/system/{unit}.service")];
            assert!(unit.contains("ExecStartPre=/bin/sh /etc/berth/wait-for-api.sh 60"));
        }
        let script = &files[HEALTHY_API_SCRIPT];
        assert!(script.contains("-connect 127.0.0.1:6443"), "{script}");
        assert!(!render_all(&worker(34), &[]).contains_key(HEALTHY_API_SCRIPT));
        for (answer, waits) in [
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
            (
                "HTTP/1.1 500 Internal Server Error\r\n\r\n[-]poststarthook/rbac/bootstrap-roles failed",
                true,
            ),
            ("HTTP/1.1 403 Forbidden\r\n\r\n{}", true),
            ("", true),
        ] {
            let questions = questions_asked(script, answer);
            assert_eq!(questions > 1, waits, "{answer}: asked {questions} times");
        }
    }

    #[test]
    fn workers_run_only_kubelet_kube_proxy_and_the_provisioner_and_wait_for_the_api_server() {
        let files = render_all(&worker(20), &[]);
        let units: Vec<&String> = files
            .keys()
            .filter(|p| p.starts_with("/etc/systemd/system/multi-user.target.wants/"))
            .collect();
        assert_eq!(
            units,
            [
                "/etc/systemd/system/multi-user.target.wants/berth-routes.service",
                "/etc/systemd/system/multi-user.target.wants/berth-storage.service",
                "/etc/systemd/system/multi-user.target.wants/kube-proxy.service",
                "/etc/systemd/system/multi-user.target.wants/kubelet.service",
            ]
        );
        assert!(files["/etc/systemd/system/kubelet.service"].contains("/dev/tcp/172.30.0.2/6443"));
        let cp = render_all(&spec(20), &[]);
        assert!(!cp["/etc/systemd/system/kubelet.service"].contains("/dev/tcp"));
        assert!(cp.contains_key("/etc/systemd/system/etcd.service"));
        // CoreDNS is bound to control planes, and only they import its image.
        let import = "/etc/systemd/system/berth-pause-import.service.d/10-berth.conf";
        assert!(files[import].contains("Environment=BERTH_VERSION_IMAGES=skip"));
        assert!(!cp.contains_key(import));
        let label = "--node-labels=berth.io/control-plane=";
        assert!(cp["/etc/systemd/system/kubelet.service"].contains(label));
        assert!(!files["/etc/systemd/system/kubelet.service"].contains(label));
    }

    #[test]
    fn extra_config_replaces_or_adds_flags_and_feature_gates_reach_every_component() {
        let mut with = spec(30);
        let flag = |component: &str, key: &str, value: &str| ExtraFlag {
            component: component.into(),
            key: key.into(),
            value: value.into(),
        };
        with.extra_config = vec![
            flag("kubelet", "max-pods", "150"),
            flag("kube-apiserver", "profiling", "true"),
        ];
        with.feature_gates = [("Foo".to_string(), true)].into();
        let files = render_all(&with, &[]);
        let kubelet = &files["/etc/systemd/system/kubelet.service"];
        assert!(kubelet.contains("--max-pods=150"), "{kubelet}");
        let api = &files["/etc/systemd/system/kube-apiserver.service"];
        assert!(api.contains("--profiling=true") && !api.contains("--profiling=false"));
        assert!(api.contains("--feature-gates=Foo=true"));
        assert!(
            files["/etc/systemd/system/kube-scheduler.service"]
                .contains("--feature-gates=Foo=true")
        );
        assert!(!files["/etc/systemd/system/etcd.service"].contains("feature-gates"));
        for config in ["kubelet.yaml", "kube-proxy.yaml"] {
            assert!(
                files[&format!("{K8S_DIR}/{config}")].contains("featureGates:\n  Foo: true\n"),
                "{config}"
            );
        }
    }

    #[test]
    fn coredns_matches_the_minor_version_and_can_be_left_out() {
        let on = render_all(&spec(20), &[]);
        assert!(
            on["/etc/kubernetes/addons/coredns.yaml"]
                .contains("image: registry.k8s.io/coredns:1.7.0")
        );
        assert!(on["/etc/kubernetes/kubelet.yaml"].contains("clusterDNS:\n- 10.96.0.10\n"));
        assert!(!render_all(&worker(20), &[]).contains_key("/etc/kubernetes/addons/coredns.yaml"));
        let mut off = spec(20);
        off.addons.retain(|a| *a != Addon::Coredns);
        let off = render_all(&off, &[]);
        assert!(!off.contains_key("/etc/kubernetes/addons/coredns.yaml"));
        assert!(!off["/etc/kubernetes/kubelet.yaml"].contains("clusterDNS"));
    }

    #[test]
    fn routes_go_to_each_other_node_and_stale_ones_are_removed() {
        let script = routes_script(&[
            route("10.244.1.0/24", "172.30.0.3"),
            route("10.244.2.0/24", "172.30.0.4"),
        ]);
        assert!(script.contains("ip route replace 10.244.1.0/24 via 172.30.0.3\n"));
        assert!(script.contains("ip route replace 10.244.2.0/24 via 172.30.0.4\n"));
        assert!(script.contains("case \" 10.244.1.0/24 10.244.2.0/24 \" in"));
        assert!(!routes_script(&[]).contains("ip route replace"));
        assert!(
            script
                .contains("refuse=\"$chain -d 10.96.0.0/12 -m comment --comment berth -j REJECT\"")
        );
    }

    #[test]
    fn kubelet_is_told_to_run_on_cgroup_v1_by_every_minor_that_knows_the_field() {
        assert!(!kubelet_config(&spec(30)).contains("failCgroupV1"));
        for minor in [31, 35, NEWEST_MINOR] {
            assert!(kubelet_config(&spec(minor)).contains("failCgroupV1: false\n"));
            let v2 = NodeSpec {
                cgroup_v2: true,
                ..spec(minor)
            };
            assert!(!kubelet_config(&v2).contains("failCgroupV1"));
        }
    }

    /// What upstream changed for a minor, as it shows in what berth renders.
    enum Change {
        /// The text must be gone from this minor on.
        Removed(u32),
        /// The text must be there from this minor on.
        Required(u32),
        /// The text must not be there before this minor.
        Introduced(u32),
    }

    /// Upstream's changes that berth's files must follow, each with its
    /// source; a new Kubernetes minor is a row here. Rendered for a cgroup v1
    /// host (this project's CI) with every minor berth supports.
    const UPSTREAM: &[(&str, &str, Change, &str)] = &[
        (
            "/etc/systemd/system/kubelet.service",
            "--network-plugin=",
            Change::Removed(24),
            "CHANGELOG-1.24: dockershim and kubelet's --network-plugin flag removed",
        ),
        (
            "/etc/systemd/system/kubelet.service",
            "--container-runtime=",
            Change::Removed(27),
            "CHANGELOG-1.27: kubelet's --container-runtime flag removed",
        ),
        (
            "/etc/kubernetes/kubelet.yaml",
            "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock",
            Change::Required(27),
            "CHANGELOG-1.27: with the flag gone, the endpoint is a KubeletConfiguration field",
        ),
        (
            "/etc/systemd/system/kube-apiserver.service",
            "--insecure-port=",
            Change::Removed(24),
            "CHANGELOG-1.24: kube-apiserver's --insecure-port flag removed",
        ),
        (
            "/etc/systemd/system/kube-controller-manager.service",
            "--port=",
            Change::Removed(24),
            "CHANGELOG-1.23: --port of kube-controller-manager and kube-scheduler only 0, removed in v1.24",
        ),
        (
            "/etc/systemd/system/kube-scheduler.service",
            "--port=",
            Change::Removed(24),
            "CHANGELOG-1.23: --port of kube-controller-manager and kube-scheduler only 0, removed in v1.24",
        ),
        (
            "/etc/systemd/system/berth-docker-info.socket",
            "ListenStream=/run/docker.sock",
            Change::Removed(24),
            "CHANGELOG-1.24: with dockershim, cAdvisor's Docker probe left kubelet",
        ),
        (
            "/etc/kubernetes/kubelet.yaml",
            "failCgroupV1: false",
            Change::Required(35),
            "KEP-5573 (v1.35): kubelet refuses a cgroup v1 host unless failCgroupV1 is false",
        ),
        (
            "/etc/kubernetes/kubelet.yaml",
            "failCgroupV1",
            Change::Introduced(31),
            "KEP-4569 (v1.31): the failCgroupV1 field of KubeletConfiguration",
        ),
    ];

    #[test]
    fn what_berth_renders_follows_upstream_for_every_supported_minor() {
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            let files = render_all(&spec(minor), &[]);
            for (path, text, change, source) in UPSTREAM {
                let has = files.get(*path).is_some_and(|f| f.contains(text));
                let (ok, want) = match change {
                    Change::Removed(from) => (minor < *from || !has, "gone"),
                    Change::Required(from) => (minor < *from || has, "there"),
                    Change::Introduced(from) => (minor >= *from || !has, "not yet there"),
                };
                assert!(
                    ok,
                    "v1.{minor}: `{text}` in {path} must be {want} ({source})"
                );
            }
        }
    }

    #[test]
    fn users_of_cgroup_v1_are_told_once_kubernetes_refuses_it_by_default() {
        let v = |minor| Version {
            major: 1,
            minor,
            patch: 0,
        };
        assert!(cgroup_v1_note(&v(34), false).is_none());
        assert!(
            cgroup_v1_note(&v(35), false)
                .unwrap()
                .contains("failCgroupV1: false")
        );
        assert!(cgroup_v1_note(&v(35), true).is_none());
    }

    #[test]
    fn every_node_runs_the_provisioner_and_the_control_plane_applies_its_class() {
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            let control_plane = render_all(&spec(minor), &[]);
            let manifest = &control_plane["/etc/kubernetes/addons/storage.yaml"];
            assert!(manifest.contains("storageclass.kubernetes.io/is-default-class: \"true\""));
            assert!(manifest.contains("volumeBindingMode: WaitForFirstConsumer"));
            assert!(manifest.contains(&format!("provisioner: {STORAGE_PROVISIONER}")));
            for files in [&control_plane, &render_all(&worker(minor), &[])] {
                let script = &files[STORAGE_SCRIPT];
                for placeholder in [
                    "@PROVISIONER@",
                    "@ROOT@",
                    "@KUBECTL@",
                    "@KUBECONFIG@",
                    "@FOLLOW@",
                ] {
                    assert!(!script.contains(placeholder), "{placeholder} is left");
                }
                assert!(script.contains(&format!(
                    "{BINARIES_MOUNT}/kubectl --kubeconfig {K8S_DIR}/storage.conf"
                )));
                assert!(files.contains_key(
                    "/etc/systemd/system/multi-user.target.wants/berth-storage.service"
                ));
            }
        }
        // Without storage, no provisioner; the addons unit stays for DNS.
        let mut off = spec(34);
        off.addons.retain(|a| *a != Addon::Storage);
        let off = render_all(&off, &[]);
        assert!(!off.contains_key(STORAGE_SCRIPT));
        assert!(!off.contains_key("/etc/kubernetes/addons/storage.yaml"));
        assert!(off.contains_key("/etc/systemd/system/berth-addons.service"));
        // With no addon, it applies the LoadBalancer controller's RBAC
        // alone, unless the profile has no controller either.
        let only_lb = render_all(
            &NodeSpec {
                addons: Vec::new(),
                ..spec(34)
            },
            &[],
        );
        assert!(only_lb.contains_key("/etc/systemd/system/berth-addons.service"));
        assert!(only_lb.contains_key(&crate::service_lb::manifest_path()));
        let bare = render_all(
            &NodeSpec {
                addons: Vec::new(),
                service_lb: false,
                ..spec(34)
            },
            &[],
        );
        assert!(!bare.contains_key("/etc/systemd/system/berth-addons.service"));
    }

    #[test]
    fn a_proxy_reaches_containerd_and_the_cluster_is_reached_without_it() {
        assert!(
            !render_all(&spec(37), &[])
                .keys()
                .any(|k| k.contains("20-proxy"))
        );
        let proxy = NodeProxy::new(
            None,
            Some("http://proxy.corp:3128".into()),
            &["corp.example".into(), "localhost".into()],
            "172.30.4.0/24".parse().unwrap(),
        );
        let files = render_all(
            &NodeSpec {
                proxy: Some(proxy),
                ..spec(37)
            },
            &[],
        );
        assert_eq!(
            files["/etc/systemd/system/containerd.service.d/20-proxy.conf"],
            "# Rendered by berth: image pulls go through the profile's proxy.\n[Service]\n\
             Environment=\"HTTPS_PROXY=http://proxy.corp:3128\" \"NO_PROXY=corp.example,localhost,\
             127.0.0.1,::1,172.30.4.0/24,10.244.0.0/16,10.96.0.0/12,.svc,.cluster.local\"\n"
        );
    }

    #[test]
    fn ca_certs_given_are_trusted_before_containerd_starts() {
        assert!(
            !render_all(&spec(37), &[])
                .keys()
                .any(|k| k.contains("ca-cert"))
        );
        let files = render_all(
            &NodeSpec {
                ca_certs: vec!["ONE".into(), "TWO".into()],
                ..spec(37)
            },
            &[],
        );
        assert_eq!(files[&format!("{CA_CERTS_DIR}/berth-2.crt")], "TWO");
        let unit = &files["/etc/systemd/system/berth-ca-certs.service"];
        assert!(
            unit.contains("Before=containerd.service kubelet.service"),
            "{unit}"
        );
        assert!(
            unit.contains("ExecStart=/usr/sbin/update-ca-certificates"),
            "{unit}"
        );
        assert!(
            files
                .contains_key("/etc/systemd/system/multi-user.target.wants/berth-ca-certs.service")
        );
    }

    #[test]
    fn the_provisioner_and_api_wait_scripts_are_valid_for_their_shells() {
        let storage = render_all(&spec(34), &[]).remove(STORAGE_SCRIPT).unwrap();
        let wait = render_all(&second_control_plane(34), &[])
            .remove(HEAD_START_SCRIPT)
            .unwrap();
        for (shell, script) in [("bash", storage), ("sh", wait)] {
            let path =
                std::env::temp_dir().join(format!("berth-{shell}-{}.sh", std::process::id()));
            std::fs::write(&path, script).unwrap();
            let out = std::process::Command::new(shell)
                .arg("-n")
                .arg(&path)
                .output()
                .unwrap();
            std::fs::remove_file(&path).unwrap();
            assert!(
                out.status.success(),
                "{shell}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn oom_score_restriction_only_where_the_engine_forces_it() {
        let mut privileged = spec(20);
        privileged.privilege = Privilege::Privileged;
        assert!(containerd_config(&privileged).contains("restrict_oom_score_adj = false"));
        assert!(containerd_config(&spec(20)).contains("restrict_oom_score_adj = true"));
    }
}
