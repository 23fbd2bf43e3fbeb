//! What a user can set on a new cluster beyond its size: published ports,
//! extra component flags, feature gates, DNS, and presets that hold any of
//! `start`'s flags in a YAML file. Every value is validated here, before it
//! can become part of a container or a unit's command line.

use std::collections::BTreeMap;
use std::path::Path;

use berth_node::render::ExtraFlag;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("`{0}` is not a port mapping such as 8080:30080 (HOST:NODEPORT)")]
    Port(String),
    #[error(
        "`{0}` is not an extra config such as kubelet.max-pods=150 \
         (COMPONENT.KEY=VALUE; components: {COMPONENTS})"
    )]
    Extra(String),
    #[error(
        "kube-proxy reads its settings from its configuration file, where flags are ignored: \
         `{0}` would have no effect"
    )]
    KubeProxyFlag(String),
    #[error("`{0}` is not a feature gate list such as EphemeralContainers=true,Foo=false")]
    FeatureGates(String),
    #[error("{path}: {reason}")]
    Preset { path: String, reason: String },
    #[error(
        "`{0}` is not a mount such as /home/me/data:/data or /srv/in:/in:ro (HOST_DIR:NODE_DIR[:ro])"
    )]
    Mount(String),
    #[error("--mount {text}: {reason}")]
    MountPath { text: String, reason: String },
    #[error(
        "`{0}` is not an address LoadBalancer Services can answer on: give one IPv4 address \
         of this host, such as 127.0.0.1 or 192.168.1.20"
    )]
    LbAddress(String),
    #[error("--ca-cert {path}: {reason}")]
    CaCert { path: String, reason: String },
    #[error("the proxy `{0}` is not a URL such as http://proxy.example:3128")]
    Proxy(String),
}

/// Components whose flags `--extra-config` reaches, as users name them.
const COMPONENTS: &str = "apiserver, controller-manager, scheduler, kubelet, etcd";

/// A NodePort of the control-plane node published on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub host: u16,
    pub node_port: u16,
}

/// Where NodePorts are allocated by default.
const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;
/// The node ports the ingress controller listens on, which may be
/// published as NodePorts are.
pub const INGRESS_PORTS: [u16; 2] = [80, 443];

pub fn parse_port(text: &str) -> Result<Port, Error> {
    let bad = || Error::Port(text.to_string());
    let (host, node) = text.split_once(':').ok_or_else(bad)?;
    let host: u16 = host.parse().map_err(|_| bad())?;
    let node_port: u16 = node.parse().map_err(|_| bad())?;
    if host == 0 || !(NODE_PORTS.contains(&node_port) || INGRESS_PORTS.contains(&node_port)) {
        return Err(bad());
    }
    Ok(Port { host, node_port })
}

/// `--lb-address`: one address of the host, where every LoadBalancer
/// Service answers (0.0.0.0 would answer on all, but the Services' status
/// could not say where).
pub fn parse_lb_address(text: &str) -> Result<std::net::Ipv4Addr, Error> {
    text.parse::<std::net::Ipv4Addr>()
        .ok()
        .filter(|a| !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()))
        .ok_or_else(|| Error::LbAddress(text.to_string()))
}

/// `--ca-cert FILE`: the PEM certificates in FILE, each checked to be one
/// (a file may hold several, as a bundle does; keys and text around them
/// are left out).
pub fn read_ca_cert(path: &std::path::Path) -> Result<String, Error> {
    let bad = |reason: String| Error::CaCert {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut certs = String::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let pem = pem.map_err(|e| bad(format!("not PEM: {e}")))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        pem.parse_x509()
            .map_err(|e| bad(format!("a certificate that cannot be read: {e}")))?;
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(&pem.contents);
        certs.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            certs.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            certs.push('\n');
        }
        certs.push_str("-----END CERTIFICATE-----\n");
    }
    if certs.is_empty() {
        return Err(bad(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// The proxy the nodes' image pulls go through: the user's `HTTP_PROXY`,
/// `HTTPS_PROXY` and `NO_PROXY` when the profile was made, or `--proxy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proxy {
    pub http: Option<String>,
    pub https: Option<String>,
    /// The user's exceptions; the cluster's own addresses are added to
    /// them in each node.
    pub no_proxy: Vec<String>,
}

impl Proxy {
    /// `--proxy URL`: for HTTP and HTTPS alike.
    pub fn from_flag(url: &str) -> Result<Proxy, Error> {
        let url = proxy_url(url)?;
        Ok(Proxy {
            http: Some(url.clone()),
            https: Some(url),
            no_proxy: Vec::new(),
        })
    }

    /// From variables as curl and Go read them (upper case first, then
    /// lower case); `None` when neither proxy is set.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Proxy>, Error> {
        let read = |name: &str| {
            var(&name.to_uppercase())
                .or_else(|| var(name))
                .filter(|v| !v.trim().is_empty())
        };
        let http = read("http_proxy").map(|u| proxy_url(&u)).transpose()?;
        let https = read("https_proxy").map(|u| proxy_url(&u)).transpose()?;
        if http.is_none() && https.is_none() {
            return Ok(None);
        }
        let no_proxy = read("no_proxy")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| proxy_safe(entry).map(|_| entry.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Some(Proxy {
            http,
            https,
            no_proxy,
        }))
    }
}

/// A value that goes into a systemd unit's `Environment=` as it is: no
/// space, quote, backslash or control character can end it early.
fn proxy_safe(text: &str) -> Result<(), Error> {
    match text
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\'))
    {
        true => Ok(()),
        false => Err(Error::Proxy(text.to_string())),
    }
}

/// A proxy URL: http:// or https://, a host, and nothing a unit could not
/// hold; a bare host:port is taken as http://, as Go takes it.
fn proxy_url(text: &str) -> Result<String, Error> {
    let text = text.trim();
    proxy_safe(text)?;
    let url = match text.split_once("://") {
        Some(("http" | "https", rest)) if !rest.is_empty() => text.to_string(),
        Some(_) => return Err(Error::Proxy(text.to_string())),
        None if !text.is_empty() => format!("http://{text}"),
        None => return Err(Error::Proxy(text.to_string())),
    };
    Ok(url)
}

pub use berth_engine::Mount;

/// Folders of the node that a mount must neither be nor lie in: what the
/// node's systemd, Kubernetes and berth need.
const NODE_OWN: [&str; 8] = [
    "/var",
    "/etc",
    "/usr",
    "/opt/berth",
    "/run",
    "/sys",
    "/proc",
    "/dev",
];

/// `HOST_DIR:NODE_DIR[:ro]`: an absolute host folder that exists, at an
/// absolute node path that shadows nothing the node needs.
pub fn parse_mount(text: &str) -> Result<Mount, Error> {
    let refuse = |reason: &str| Error::MountPath {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = text.split(':').collect();
    let (host, node, read_only) = match parts[..] {
        [host, node] => (host, node, false),
        [host, node, "ro"] => (host, node, true),
        [host, node, "rw"] => (host, node, false),
        _ => return Err(Error::Mount(text.to_string())),
    };
    // Docker's bind syntax splits on ',' too; nothing may end a field early.
    let plain = |p: &str| !p.is_empty() && !p.contains([',', '\n', '\0']);
    if !plain(host) || !plain(node) {
        return Err(Error::Mount(text.to_string()));
    }
    let host_path = std::path::Path::new(host);
    if !host_path.is_absolute() {
        return Err(refuse("the host folder must be an absolute path"));
    }
    if !host_path.is_dir() {
        return Err(refuse(
            "the host folder does not exist (or is not a folder)",
        ));
    }
    let node_path = std::path::Path::new(node);
    if !node_path.is_absolute()
        || node_path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(refuse(
            "the node folder must be an absolute path without `..`",
        ));
    }
    let node = node.trim_end_matches('/');
    if node.is_empty() {
        return Err(refuse("the node folder cannot be the node's root"));
    }
    if let Some(own) = NODE_OWN.iter().find(|own| {
        node == **own
            || node.starts_with(&format!("{own}/"))
            || own.starts_with(&format!("{node}/"))
    }) {
        return Err(refuse(&format!(
            "{node} would shadow the node's own {own}; pick another node folder, such as /mnt/data"
        )));
    }
    Ok(Mount {
        host: host_path.to_path_buf(),
        node: node.to_string(),
        read_only,
    })
}

/// Values go into a systemd ExecStart line: nothing that could split an
/// argument, start a new line, quote, escape or expand (`%` is systemd's
/// specifier, `$` its variable).
fn safe_value(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._,:=/@+-*[]".contains(c))
}

pub fn parse_extra(text: &str) -> Result<ExtraFlag, Error> {
    let bad = || Error::Extra(text.to_string());
    let (path, value) = text.split_once('=').ok_or_else(bad)?;
    let (component, key) = path.split_once('.').ok_or_else(bad)?;
    let component = match component {
        "apiserver" | "kube-apiserver" => "kube-apiserver",
        "controller-manager" | "kube-controller-manager" => "kube-controller-manager",
        "scheduler" | "kube-scheduler" => "kube-scheduler",
        "kubelet" => "kubelet",
        "etcd" => "etcd",
        "kube-proxy" | "proxy" => return Err(Error::KubeProxyFlag(text.to_string())),
        _ => return Err(bad()),
    };
    let key_ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !key.starts_with('-');
    if !key_ok || !safe_value(value) {
        return Err(bad());
    }
    Ok(ExtraFlag {
        component: component.into(),
        key: key.into(),
        value: value.into(),
    })
}

pub fn parse_feature_gates(text: &str) -> Result<BTreeMap<String, bool>, Error> {
    let bad = || Error::FeatureGates(text.to_string());
    text.split(',')
        .map(|gate| {
            let (name, on) = gate.split_once('=').ok_or_else(bad)?;
            let on = on.parse::<bool>().map_err(|_| bad())?;
            let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_alphanumeric());
            if name_ok {
                Ok((name.into(), on))
            } else {
                Err(bad())
            }
        })
        .collect()
}

/// A profile preset: every flag of `start`, by the flag's name.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Preset {
    pub nodes: Option<u32>,
    pub control_planes: Option<u32>,
    pub kubernetes_version: Option<String>,
    pub cpus: Option<f64>,
    pub memory: Option<String>,
    #[serde(default)]
    pub ports: Vec<String>,
    pub dns: Option<bool>,
    pub storage: Option<bool>,
    pub registry: Option<bool>,
    #[serde(default)]
    pub addons: Vec<String>,
    pub ingress: Option<bool>,
    #[serde(default)]
    pub mounts: Vec<String>,
    #[serde(default)]
    pub extra_config: Vec<String>,
    #[serde(default)]
    pub feature_gates: BTreeMap<String, bool>,
    pub wait: Option<String>,
    pub keep_context: Option<bool>,
    pub keep_on_failure: Option<bool>,
    pub image: Option<String>,
    pub binary_mirror: Option<String>,
    pub lb_address: Option<String>,
    #[serde(default)]
    pub ca_certs: Vec<String>,
    pub proxy: Option<String>,
}

impl Preset {
    pub fn read(path: &Path) -> Result<Self, Error> {
        let error = |reason: String| Error::Preset {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        Self::parse(&text).map_err(error)
    }

    fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        yaml_serde::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_comes_from_the_flag_or_the_environment_and_goes_safely_into_a_unit() {
        let proxy = Proxy::from_flag("proxy.corp:3128").unwrap();
        assert_eq!(proxy.https.as_deref(), Some("http://proxy.corp:3128"));
        assert_eq!(proxy.http, proxy.https);
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Proxy::from_env(env(&[("NO_PROXY", "x")])).unwrap(), None);
        let read = Proxy::from_env(env(&[
            ("https_proxy", "https://lower.corp:8443"),
            ("HTTPS_PROXY", "http://upper.corp:3128"),
            ("no_proxy", " .corp.example, 10.0.0.0/8 ,"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(read.https.as_deref(), Some("http://upper.corp:3128"));
        assert_eq!(read.http, None);
        assert_eq!(read.no_proxy, [".corp.example", "10.0.0.0/8"]);
        for bad in [
            "ftp://x:21",
            "http://x\" y",
            "http://a b",
            "",
            "socks5://x:1080",
        ] {
            assert!(Proxy::from_flag(bad).is_err(), "{bad}");
        }
        let quoted = Proxy::from_env(env(&[("HTTP_PROXY", "http://x:1"), ("NO_PROXY", "a\"b")]));
        assert!(quoted.is_err());
    }

    #[test]
    fn a_ca_cert_file_gives_its_certificates_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ca.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let file = dir.path().join("bundle.pem");
        // Text, a key and two certificates, as a bundle may hold.
        std::fs::write(
            &file,
            format!("corp CA\n{cert}{}{cert}", key.serialize_pem()),
        )
        .unwrap();
        let read = read_ca_cert(&file).unwrap();
        assert_eq!(read, format!("{cert}{cert}").replace("\r", ""));
        for (content, why) in [
            ("hello\n", "holds no PEM certificate"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "cannot be read",
            ),
        ] {
            std::fs::write(&file, content).unwrap();
            let error = read_ca_cert(&file).unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn ports_map_a_host_port_to_a_node_port() {
        assert_eq!(
            parse_port("8080:30080").unwrap(),
            Port {
                host: 8080,
                node_port: 30080
            }
        );
        // The ingress controller's node ports may be published too.
        assert_eq!(parse_port("8080:80").unwrap().node_port, 80);
        for bad in [
            "8080",
            "8080:81",
            "0:30080",
            "x:30080",
            "8080:30080:1",
            "70000:30080",
        ] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn extra_config_reaches_known_components_with_safe_values_only() {
        assert_eq!(
            parse_extra("kubelet.max-pods=150").unwrap(),
            ExtraFlag {
                component: "kubelet".into(),
                key: "max-pods".into(),
                value: "150".into()
            }
        );
        assert_eq!(
            parse_extra("apiserver.service-node-port-range=1-65535")
                .unwrap()
                .component,
            "kube-apiserver"
        );
        assert!(matches!(
            parse_extra("kube-proxy.v=2"),
            Err(Error::KubeProxyFlag(_))
        ));
        for bad in [
            "kubelet",
            "kubelet.max-pods",
            "nginx.a=b",
            "kubelet.--config=x",
            "kubelet.a=b c",
            "kubelet.a=b\nExecStartPre=/bin/evil",
            "kubelet.a=%h",
            "kubelet.a=$HOME",
            "kubelet.A=1",
        ] {
            assert!(parse_extra(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn feature_gates_are_names_and_booleans() {
        let gates = parse_feature_gates("B=false,A=true").unwrap();
        assert_eq!(
            berth_node::render::feature_gates_flag(&gates),
            "A=true,B=false"
        );
        for bad in ["A", "A=yes", "a=true", "A=true,,B=false", "A-B=true"] {
            assert!(parse_feature_gates(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts_are_absolute_existing_folders_that_shadow_nothing_of_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().display().to_string();
        let mount = parse_mount(&format!("{host}:/data:ro")).unwrap();
        assert_eq!(mount.node, "/data");
        assert!(mount.read_only);
        assert_eq!(mount.to_string(), format!("{host}:/data:ro"));
        assert!(!parse_mount(&format!("{host}:/mnt/x/")).unwrap().read_only);
        for (bad, why) in [
            ("data:/data".to_string(), "absolute"),
            (format!("{host}/missing:/data"), "does not exist"),
            (format!("{host}:data"), "absolute"),
            (format!("{host}:/mnt/../var"), "absolute"),
            (format!("{host}:/"), "root"),
            (format!("{host}:/var"), "shadow"),
            (format!("{host}:/var/lib/kubelet"), "shadow"),
            (format!("{host}:/opt"), "shadow"),
            (format!("{host}:/opt/berth/kubernetes"), "shadow"),
            (format!("{host}:/etc"), "shadow"),
            (format!("{host}:/dev/x"), "shadow"),
        ] {
            let error = parse_mount(&bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
        for malformed in [
            host.clone(),
            format!("{host}:/data:rx"),
            format!("{host}:/data,ro"),
            format!("{host}:/a:ro:x"),
        ] {
            assert!(
                matches!(parse_mount(&malformed), Err(Error::Mount(_))),
                "{malformed}"
            );
        }
    }

    #[test]
    fn presets_name_an_unknown_field() {
        let preset =
            Preset::parse("nodes: 3\nfeature-gates: {A: true}\nports: ['8080:30080']\n").unwrap();
        assert_eq!(preset.nodes, Some(3));
        assert!(preset.feature_gates["A"]);
        let error = Preset::parse("nodes: 1\nnodez: 2\n").unwrap_err();
        assert!(error.contains("unknown field `nodez`"), "{error}");
    }

    #[test]
    fn the_shipped_presets_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let preset = Preset::read(&path).unwrap();
                for port in &preset.ports {
                    parse_port(port).unwrap();
                }
                for extra in &preset.extra_config {
                    parse_extra(extra).unwrap();
                }
                for addon in &preset.addons {
                    addon.parse::<berth_node::addons::Addon>().unwrap();
                }
                seen += 1;
            }
        }
        assert!(seen >= 3, "profiles/ holds {seen} presets");
    }
}
