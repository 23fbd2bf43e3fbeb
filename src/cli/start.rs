use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Global;
use berth_cluster::{self as cluster, StartOptions};
use berth_core::error::{Error, Result};
use berth_core::settings::{self, Preset};
use berth_core::ui::Ui;
use berth_node::addons::Addon;

#[derive(Args)]
pub struct Start {
    /// A profile preset (YAML) holding any of these flags by name, such as
    /// profiles/ci.yaml; flags given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Kubernetes version (default: the newest cached one).
    #[arg(long, value_name = "V", env = "BERTH_KUBERNETES_VERSION")]
    kubernetes_version: Option<String>,
    /// Nodes of a new cluster, control planes included: the control planes
    /// and N minus them workers (default: as many as the control planes).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=berth_core::profile::MAX_NODES as i64))]
    nodes: Option<u32>,
    /// Control planes of a new cluster: 1, or 3 or 5 behind a load
    /// balancer, each with an etcd member, and counted in --nodes
    /// (`--control-planes 3 --nodes 5` is 3 control planes and 2 workers).
    #[arg(long, value_name = "N")]
    control_planes: Option<u32>,
    /// How long to wait for the API server and the nodes to be ready
    /// (default 5m); 0 returns once the node containers run.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    wait: Option<Duration>,
    /// Leave the kubeconfig's current context as it is.
    #[arg(long)]
    keep_context: bool,
    /// When a new cluster's start fails or is interrupted, keep what it
    /// made (to look into it) instead of removing it.
    #[arg(long)]
    keep_on_failure: bool,
    /// CPUs for each node (may be fractional).
    #[arg(long)]
    cpus: Option<f64>,
    /// Memory for each node, such as 4g or 2048m.
    #[arg(long, value_parser = parse_memory_mib)]
    memory: Option<u64>,
    /// Publish NodePorts of the control-plane node on 127.0.0.1, at creation.
    #[arg(long, value_name = "HOST:NODEPORT", value_delimiter = ',')]
    ports: Vec<String>,
    /// No cluster DNS (CoreDNS).
    #[arg(long)]
    no_dns: bool,
    /// No default StorageClass `standard` and no storage provisioner.
    #[arg(long)]
    no_storage: bool,
    /// Addons to enable besides CoreDNS and storage, such as
    /// metrics-server,dashboard (`berth addons list` shows them all).
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    addons: Vec<String>,
    /// The ingress addon, with the control-plane node's ports 80 and 443
    /// published on 127.0.0.1 (`--ports 8080:80,8443:443` picks others).
    #[arg(long)]
    ingress: bool,
    /// A registry of the profile's own, published on 127.0.0.1 at a port
    /// kept for the profile: `docker push localhost:PORT/app:1` on the host,
    /// `image: localhost:PORT/app:1` in a pod (`berth status` shows PORT).
    #[arg(long)]
    registry: bool,
    /// A CA certificate file (PEM) every node trusts, for pulls from a
    /// registry with a private CA, or a proxy that re-signs TLS
    /// (repeatable).
    #[arg(long, value_name = "FILE")]
    ca_cert: Vec<std::path::PathBuf>,
    /// The proxy the nodes pull images through, for HTTP and HTTPS (default:
    /// HTTP_PROXY, HTTPS_PROXY and NO_PROXY as set when the profile is
    /// made; the cluster's own addresses never go through it).
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// With an ssh:// engine whose host lets in only ssh: publish the
    /// cluster on that host's loopback and forward the API server, --ports
    /// and LoadBalancer Services to 127.0.0.1 here over ssh, for as long as
    /// the cluster runs.
    #[arg(long)]
    ssh_forward: bool,
    /// The host address LoadBalancer Services answer on, such as a LAN
    /// address to reach them from other machines (default 127.0.0.1).
    #[arg(long, value_name = "IPV4")]
    lb_address: Option<String>,
    /// A host folder in every node, at creation, such as
    /// $HOME/data:/data or /srv/in:/in:ro (repeatable). HOST_DIR must be
    /// an absolute path of a folder that exists; NODE_DIR may not shadow
    /// the node's own folders (/var, /etc, /usr, /opt/berth, /run, /sys,
    /// /proc, /dev).
    #[arg(long, value_name = "HOST_DIR:NODE_DIR[:ro]")]
    mount: Vec<String>,
    /// A flag for a component on every node, such as kubelet.max-pods=150
    /// (components: apiserver, controller-manager, scheduler, kubelet, etcd).
    #[arg(long, value_name = "COMPONENT.KEY=VALUE")]
    extra_config: Vec<String>,
    /// Feature gates for every component, such as Foo=true,Bar=false.
    #[arg(long, value_name = "NAME=BOOL,...")]
    feature_gates: Option<String>,
    /// Node image to use instead of the one built into berth.
    #[arg(long)]
    image: Option<String>,
    /// Download missing Kubernetes binaries from this URL instead of
    /// https://dl.k8s.io/release (same layout: VERSION/bin/linux/ARCH/NAME
    /// with NAME.sha256 beside each).
    #[arg(long, value_name = "URL")]
    binary_mirror: Option<String>,
}

impl Start {
    /// The options of this start: the flags, over the preset's fields.
    fn options(self) -> Result<StartOptions> {
        let preset = match &self.config {
            Some(path) => Preset::read(path)?,
            None => Preset::default(),
        };
        let flag_or_preset = |flag: Vec<String>, preset: Vec<String>| {
            if flag.is_empty() { preset } else { flag }
        };
        let version = self
            .kubernetes_version
            .or(preset.kubernetes_version)
            .as_deref()
            .map(str::parse)
            .transpose()?;
        let nodes = self.nodes.or(preset.nodes);
        if nodes.is_some_and(|n| !(1..=berth_core::profile::MAX_NODES).contains(&n)) {
            return Err(Error::usage(format!(
                "nodes must be 1 to {}",
                berth_core::profile::MAX_NODES
            )));
        }
        let mut addons: Vec<Addon> = flag_or_preset(self.addons, preset.addons)
            .iter()
            .map(|a| a.parse())
            .collect::<Result<_, String>>()
            .map_err(|e| Error::usage(e).with_hint("`berth addons list` shows every addon"))?;
        let mut ports = flag_or_preset(self.ports, preset.ports)
            .iter()
            .map(|p| settings::parse_port(p))
            .collect::<Result<Vec<_>, _>>()?;
        if self.ingress || preset.ingress.unwrap_or(false) {
            addons.push(Addon::Ingress);
            // Unless the flags publish the controller's ports elsewhere.
            for port in settings::INGRESS_PORTS {
                if !ports.iter().any(|p| p.node_port == port) {
                    ports.push(settings::Port {
                        host: port,
                        node_port: port,
                    });
                }
            }
        }
        // CoreDNS and storage are on unless turned off.
        addons.retain(|a| !a.by_default());
        addons.sort();
        addons.dedup();
        let wait = match (self.wait, preset.wait) {
            (Some(wait), _) => wait,
            (None, Some(text)) => parse_duration(&text).map_err(Error::usage)?,
            (None, None) => berth_cluster::DEFAULT_WAIT,
        };
        let memory_mib = match (self.memory, preset.memory) {
            (Some(mib), _) => Some(mib),
            (None, Some(text)) => Some(parse_memory_mib(&text).map_err(Error::usage)?),
            (None, None) => None,
        };
        let cpus = self.cpus.or(preset.cpus);
        if cpus.is_some_and(|c| !(c > 0.0 && c <= 1024.0)) {
            return Err(Error::usage("--cpus must be a number above 0"));
        }
        let feature_gates = match self.feature_gates {
            Some(text) => settings::parse_feature_gates(&text)?,
            None => preset.feature_gates,
        };
        Ok(StartOptions {
            version,
            wait: (!wait.is_zero()).then_some(wait),
            keep_context: self.keep_context || preset.keep_context.unwrap_or(false),
            keep_on_failure: self.keep_on_failure || preset.keep_on_failure.unwrap_or(false),
            cpus,
            memory_mib,
            image: self.image.or(preset.image),
            binary_mirror: self.binary_mirror.or(preset.binary_mirror),
            nodes,
            control_planes: self.control_planes.or(preset.control_planes),
            ports,
            extra_config: flag_or_preset(self.extra_config, preset.extra_config)
                .iter()
                .map(|e| settings::parse_extra(e))
                .collect::<Result<_, _>>()?,
            feature_gates,
            addons_off: [
                (Addon::Coredns, self.no_dns || preset.dns == Some(false)),
                (
                    Addon::Storage,
                    self.no_storage || preset.storage == Some(false),
                ),
            ]
            .into_iter()
            .filter_map(|(addon, off)| off.then_some(addon))
            .collect(),
            registry: self.registry || preset.registry.unwrap_or(false),
            addons,
            lb_address: self
                .lb_address
                .or(preset.lb_address)
                .map(|a| settings::parse_lb_address(&a))
                .transpose()?,
            proxy_flag: self.proxy.is_some() || preset.proxy.is_some(),
            ssh_forward: self.ssh_forward,
            proxy: match self.proxy.or(preset.proxy) {
                Some(url) => Some(settings::Proxy::from_flag(&url)?),
                None => settings::Proxy::from_env(|name| std::env::var(name).ok())?,
            },
            ca_certs: match self.ca_cert.is_empty() {
                true => preset
                    .ca_certs
                    .iter()
                    .map(std::path::PathBuf::from)
                    .collect(),
                false => self.ca_cert,
            }
            .iter()
            .map(|path| settings::read_ca_cert(path))
            .collect::<Result<_, _>>()?,
            mounts: flag_or_preset(self.mount, preset.mounts)
                .iter()
                .map(|m| settings::parse_mount(m))
                .collect::<Result<_, _>>()?,
            engines: Vec::new(),
            node_engines: Default::default(),
        })
    }
}

pub async fn run(cmd: Start, global: &Global, ui: Ui) -> Result<()> {
    let name = global.profile_name()?;
    let mut opts = cmd.options()?;
    let _lock = global.lock(&name, ui)?;
    let existing = global.store().load(&name).ok().flatten();
    let ctx = match (&existing, global.engine.len()) {
        (None, 2..) => global.spread_ctx(ui, &name, &mut opts).await?,
        _ => global.ctx_for(ui, existing.as_ref()).await?,
    };
    let profile = cluster::start(&ctx, &name, &opts, super::interrupted).await?;
    if existing.is_some() && opts.wait != Some(Duration::ZERO) {
        let notes = cluster::addons::replace_retired(&ctx, &profile, super::interrupted).await?;
        for note in notes {
            ui.info(note);
        }
    }
    let nodes = match profile.nodes().len() {
        1 => String::new(),
        n => format!(" on {n} nodes"),
    };
    ui.info(format!(
        "Profile {} is up: Kubernetes {}{nodes} at {} (context {})",
        profile.name,
        profile.kubernetes_version,
        profile.server(),
        profile.context()
    ));
    Ok(())
}

/// `0`, `90` (seconds), `90s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90s or 5m"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{text}` is not a duration such as 90s or 5m")),
    };
    Ok(Duration::from_secs(secs))
}

/// `4g`, `2048m`, `2048` (MiB).
pub fn parse_memory_mib(text: &str) -> Result<u64, String> {
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = lower.split_at(
        lower
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(lower.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 4g or 2048m"))?;
    let mib = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" | "m" => n,
        "g" => n * 1024,
        _ => return Err(format!("`{text}` is not a size such as 4g or 2048m")),
    };
    if mib < 512 {
        return Err(format!(
            "{text} is too little memory for a node: give at least 512m"
        ));
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse_as_users_write_them() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5 minutes").is_err());
        assert_eq!(parse_memory_mib("4g").unwrap(), 4096);
        assert_eq!(parse_memory_mib("2048MiB").unwrap(), 2048);
        assert!(parse_memory_mib("100m").is_err());
        assert!(parse_memory_mib("lots").is_err());
    }
}
