//! The command line: one file per verb, each with its clap definition beside
//! a thin handler.

mod addons;
mod cache;
mod cache_registry;
mod completion;
mod dashboard;
mod delete;
mod engines;
mod image;
mod kubeconfig;
mod kubectl;
mod logs;
mod node;
mod node_image;
mod pause;
mod profile;
mod registry;
mod service;
mod snapshot;
mod ssh;
mod ssh_forward_watch;
mod start;
mod status;
mod stop;
mod tunnel;
mod upgrade;
mod version;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use berth_core::error::Result;
use berth_core::ui::Ui;

pub use completion::VAR as COMPLETE_VAR;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Real local Kubernetes clusters in Docker containers"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// The profile (cluster) to act on.
    #[arg(short, long, global = true, value_name = "NAME",
          add = clap_complete::engine::ArgValueCandidates::new(completion::profiles))]
    pub profile: Option<String>,
    /// How data is printed on stdout.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// No progress on stderr; errors are still printed.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The kubeconfig file to update, instead of the one kubectl would use.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// How long to wait while another berth command changes the same
    /// profile.
    #[arg(long, global = true, value_name = "DURATION", default_value = "10m", value_parser = start::parse_duration)]
    pub lock_timeout: std::time::Duration,
    /// The engine to use: an address (unix:///path, tcp://host:port) or a
    /// Docker context's name; else BERTH_ENGINE, DOCKER_HOST, the current
    /// Docker context, Docker's local socket, podman's socket. Named
    /// several times, `start` spreads a new cluster's nodes over those
    /// engines, which must be of one Docker Swarm.
    #[arg(long, global = true, value_name = "ADDRESS|CONTEXT")]
    pub engine: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a cluster, or start a stopped one again.
    #[command(
        after_help = "Examples:\n  berth start -p dev\n  berth start -p big --nodes 3 --kubernetes-version v1.36.3\n  berth start -p ci --config profiles/ci.yaml --wait 3m\n  berth start -p db --mount $PWD/data:/data --ports 8080:30080"
    )]
    Start(Box<start::Start>),
    /// Upgrade a running cluster's Kubernetes in place, node by node: the
    /// control planes first, then the workers, each drained, made anew on
    /// the new version with its data, and Ready before the next.
    #[command(
        after_help = "Examples:\n  berth upgrade -p dev --kubernetes-version v1.37.2\n  berth snapshot save -p dev before-upgrade && berth upgrade -p dev --kubernetes-version v1.37.2"
    )]
    Upgrade(upgrade::Upgrade),
    /// Stop a cluster's nodes; their state is kept.
    #[command(after_help = "Examples:\n  berth stop -p dev\n  berth stop --all")]
    Stop(Targets),
    /// Freeze a cluster's nodes.
    #[command(after_help = "Examples:\n  berth pause -p dev")]
    Pause(Targets),
    /// Thaw a paused cluster's nodes.
    #[command(after_help = "Examples:\n  berth unpause -p dev")]
    Unpause(Targets),
    /// Remove a cluster and everything berth made for it.
    #[command(after_help = "Examples:\n  berth delete -p dev\n  berth delete --all")]
    Delete(Targets),
    /// Show the state of a cluster's nodes and components.
    #[command(
        after_help = "Examples:\n  berth status -p dev\n  berth status -p dev -o json | jq .storage"
    )]
    Status(status::Status),
    /// List profiles (`profile list`) or set the default one (`profile NAME`).
    #[command(
        after_help = "Examples:\n  berth profile list\n  berth profile dev            # make dev the default profile"
    )]
    Profile(profile::ProfileCmd),
    /// Run the cluster's own kubectl against it: `berth kubectl -- get pods`.
    #[command(
        after_help = "Examples:\n  berth kubectl -p dev -- get pods -A\n  berth kubectl -p dev -- apply -f k8s/"
    )]
    Kubectl(kubectl::Kubectl),
    /// Print a standalone kubeconfig for the profile.
    #[command(after_help = "Examples:\n  berth kubeconfig -p dev > dev.kubeconfig")]
    Kubeconfig,
    /// Show the journals of berth's units in the nodes, only their
    /// problems, follow them, or export everything into an archive.
    Logs(logs::Logs),
    /// A login shell in a node, or a command there (through the Docker
    /// API, like `docker exec`).
    Ssh(ssh::Ssh),
    /// Add, delete or list a cluster's nodes.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  berth node add -p dev\n  berth node list -p dev\n  berth node delete dev-m02 -p dev"
    )]
    Node(node::NodeCmd),
    /// Reach a Service from the host: a port on 127.0.0.1 forwarded through
    /// the API server, served until interrupted.
    #[command(
        after_help = "Examples:\n  berth service web -p dev          # serves until Ctrl-C\n  berth service web -p dev --url    # prints the URL"
    )]
    Service(service::ServiceCmd),
    /// Build the node image.
    #[command(subcommand)]
    #[command(after_help = "Examples:\n  berth node-image build")]
    NodeImage(node_image::NodeImage),
    /// Load images into a cluster (`image load`), or list them (`image ls`).
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  berth image load my/app:dev -p dev\n  berth image load --archive app.tar -p dev --node dev-m02\n  berth image ls -p dev"
    )]
    Image(image::Image),
    /// Manage the host cache of Kubernetes binaries, and the registry cache
    /// the profiles share.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  berth cache list\n  berth cache build v1.37.2\n  berth cache download v1.36.3\n  berth cache import v1.37.2 ./build/v1.37.2"
    )]
    Cache(cache::Cache),
    /// Save a whole cluster at one point, and bring it back to it.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  berth snapshot save -p dev before-upgrade\n  berth snapshot restore before-upgrade\n  berth snapshot save -p dev ./backups/dev-monday\n  berth snapshot list\n  berth snapshot delete before-upgrade"
    )]
    Snapshot(snapshot::SnapshotCmd),
    /// A registry of the profile's own, reached as localhost:PORT.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  berth registry enable -p dev     # prints localhost:PORT\n  docker push localhost:PORT/app:1  # then image: localhost:PORT/app:1 in a pod"
    )]
    Registry(registry::RegistryCmd),
    /// The cluster's addons: list them with their state, enable or disable
    /// one on a running profile (`start --addons` at creation).
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  berth addons list -p dev\n  berth addons enable metrics-server -p dev\n  berth addons disable dashboard -p dev\n  berth start -p web --addons ingress,metrics-server"
    )]
    Addons(addons::AddonsCmd),
    /// Serve the dashboard on 127.0.0.1 and print a login token (read-only
    /// unless --admin), until interrupted.
    #[command(
        after_help = "Examples:\n  berth addons enable dashboard -p dev\n  berth dashboard -p dev          # serves until Ctrl-C\n  berth dashboard -p dev --url --admin"
    )]
    Dashboard(dashboard::DashboardCmd),
    /// Serve the ingress controller's ports 80 and 443 on 127.0.0.1 (free
    /// ports when those cannot be had) for a profile made without --ingress.
    #[command(
        after_help = "Examples:\n  berth tunnel -p dev              # serves until Ctrl-C\n  curl -H 'Host: app.local' http://127.0.0.1/"
    )]
    Tunnel(tunnel::TunnelCmd),
    /// Make several engines one Docker Swarm, for a cluster over them
    /// (`start --engine A --engine B`).
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  berth engines join --engine tcp://a:2376 --engine tcp://b:2376\n  berth start -p big --engine tcp://a:2376 --engine tcp://b:2376 --nodes 4"
    )]
    Engines(engines::EnginesCmd),
    /// Forwards the LoadBalancer Services of a profile made with
    /// --ssh-forward while its ssh runs; started by `start`.
    #[command(name = berth_cluster::ssh_forward::WATCH_VERB, hide = true)]
    SshForwardWatch,
    /// berth's version and commit, its node image, the Kubernetes versions
    /// it runs and those cached.
    #[command(after_help = "Examples:\n  berth version\n  berth version -o json")]
    Version,
    /// Print the shell completion script for bash, zsh, fish, powershell
    /// or elvish.
    Completion(completion::Completion),
}

/// Runs a command; `Ok` holds the exit code of a command that ran to its
/// end: 0, or the bits `status` reports.
pub async fn run(cli: Cli) -> Result<u8> {
    let ui = Ui::new(cli.global.quiet);
    let done = match cli.command {
        Command::Status(cmd) => return status::run(cmd, &cli.global, ui).await,
        Command::Ssh(cmd) => return ssh::run(cmd, &cli.global, ui).await,
        Command::Start(cmd) => start::run(*cmd, &cli.global, ui).await,
        Command::Stop(cmd) => stop::run(cmd, &cli.global, ui).await,
        Command::Upgrade(cmd) => upgrade::run(cmd, &cli.global, ui).await,
        Command::Pause(cmd) => pause::run(cmd, &cli.global, ui, true).await,
        Command::Unpause(cmd) => pause::run(cmd, &cli.global, ui, false).await,
        Command::Delete(cmd) => delete::run(cmd, &cli.global, ui).await,
        Command::Profile(cmd) => profile::run(cmd, &cli.global, ui).await,
        Command::Kubectl(cmd) => kubectl::run(cmd, &cli.global),
        Command::Kubeconfig => kubeconfig::run(&cli.global),
        Command::Service(cmd) => service::run(cmd, &cli.global, ui).await,
        Command::Node(cmd) => node::run(cmd, &cli.global, ui).await,
        Command::NodeImage(cmd) => node_image::run(cmd, &cli.global, ui).await,
        Command::Image(cmd) => image::run(cmd, &cli.global, ui).await,
        Command::Cache(cmd) => cache::run(cmd, &cli.global, ui).await,
        Command::Version => version::run(&cli.global),
        Command::Logs(cmd) => logs::run(cmd, &cli.global, ui).await,
        Command::Registry(cmd) => registry::run(cmd, &cli.global, ui).await,
        Command::Snapshot(cmd) => snapshot::run(cmd, &cli.global, ui).await,
        Command::Addons(cmd) => addons::run(cmd, &cli.global, ui).await,
        Command::Dashboard(cmd) => dashboard::run(cmd, &cli.global, ui).await,
        Command::Tunnel(cmd) => tunnel::run(cmd, &cli.global, ui).await,
        Command::Engines(cmd) => engines::run(cmd, &cli.global, ui).await,
        Command::SshForwardWatch => ssh_forward_watch::run(&cli.global).await,
        Command::Completion(cmd) => completion::run(cmd),
    };
    done.map(|()| 0)
}

/// Which profiles a command acts on: `-p NAME` (or the default), or all.
#[derive(Args)]
pub struct Targets {
    /// Every profile.
    #[arg(long, conflicts_with = "profile")]
    pub all: bool,
}

impl Targets {
    fn names(&self, global: &Global) -> Result<Vec<String>> {
        if self.all {
            Ok(global.store().names())
        } else {
            Ok(vec![global.profile_name()?])
        }
    }
}

impl Global {
    fn store(&self) -> berth_core::profile::Store {
        berth_core::profile::Store::new(&berth_core::paths::home_dir())
    }

    /// The profile named with `-p`, else the default one; validated before
    /// anything uses it.
    fn profile_name(&self) -> Result<String> {
        let name = self
            .profile
            .clone()
            .unwrap_or_else(|| self.store().default_name());
        berth_core::profile::validate_name(&name)?;
        Ok(name)
    }

    /// Holds the profile's lock while the caller changes it.
    fn lock(&self, name: &str, ui: Ui) -> Result<berth_core::lock::Held> {
        berth_core::lock::profile(&berth_core::paths::home_dir(), name, self.lock_timeout, ui)
    }

    /// The profile's lock for a command that may change it; none for one
    /// that only reads, so reading never waits.
    fn lock_if(&self, changes: bool, name: &str, ui: Ui) -> Result<Option<berth_core::lock::Held>> {
        changes.then(|| self.lock(name, ui)).transpose()
    }

    /// The engine this command talks to, and how it was found.
    fn endpoint(&self) -> Result<berth_engine::discover::Endpoint> {
        match self.engine.as_slice() {
            [_, _, ..] => Err(berth_core::error::Error::usage(
                "several engines (--engine) are for `berth start` of a new cluster, which spreads its nodes over them",
            )
            .with_hint("name one engine, or none for the profile's own")),
            named => Ok(berth_engine::discover::from_process(
                named.first().map(String::as_str),
            )?),
        }
    }

    async fn ctx(&self, ui: Ui) -> Result<berth_cluster::Ctx> {
        self.ctx_for(ui, None).await
    }

    /// The engine a command on `profile` talks to: the one the profile was
    /// made on, unless --engine or BERTH_ENGINE names one.
    fn endpoint_for(
        &self,
        profile: Option<&berth_core::profile::Profile>,
    ) -> Result<berth_engine::discover::Endpoint> {
        let named = !self.engine.is_empty()
            || std::env::var_os("BERTH_ENGINE").is_some_and(|v| !v.is_empty());
        match profile.and_then(|p| p.engine.as_ref()) {
            Some(made_on) if !named => Ok(berth_engine::discover::Endpoint {
                host: made_on.host.clone(),
                found: berth_engine::discover::Found::Profile,
                tls: made_on.tls.clone(),
            }),
            _ => self.endpoint(),
        }
    }

    /// A context on the engine of `profile` (see `endpoint_for`), refused
    /// when the engine there is not the one the profile was made on: the
    /// same profile name on a different engine is another cluster.
    async fn ctx_for(
        &self,
        ui: Ui,
        profile: Option<&berth_core::profile::Profile>,
    ) -> Result<berth_cluster::Ctx> {
        let docker: std::sync::Arc<dyn berth_engine::Engine> = match profile {
            Some(spread) if !spread.engines.is_empty() => {
                std::sync::Arc::new(self.spread_of(spread, &self.engine).await?)
            }
            _ => {
                let endpoint = self.endpoint_for(profile)?;
                let docker = berth_engine::Docker::connect_to(&endpoint).await?;
                if let Some(profile) = profile
                    && let Some(made_on) = &profile.engine
                {
                    check_made_on(profile, &endpoint, made_on, &docker).await?;
                }
                std::sync::Arc::new(docker)
            }
        };
        Ok(self.ctx_on(ui, docker))
    }

    /// A context over the engines a profile spread over several was made
    /// on, whatever --engine names (`node add` names where its node goes).
    async fn ctx_as_made(
        &self,
        ui: Ui,
        profile: &berth_core::profile::Profile,
    ) -> Result<berth_cluster::Ctx> {
        let spread = self.spread_of(profile, &[]).await?;
        Ok(self.ctx_on(ui, std::sync::Arc::new(spread)))
    }

    /// The engines of a profile spread over several: those it was made
    /// on, or as many `named` (with --engine), in its order.
    async fn spread_of(
        &self,
        profile: &berth_core::profile::Profile,
        named: &[String],
    ) -> Result<berth_engine::Spread> {
        use berth_engine::discover::{Endpoint, Found, from_process};
        let made_on = profile.all_engines();
        let endpoints: Vec<Endpoint> = match named.len() {
            0 => made_on
                .iter()
                .map(|e| Endpoint {
                    host: e.host.clone(),
                    found: Found::Profile,
                    tls: e.tls.clone(),
                })
                .collect(),
            n if n == made_on.len() => named
                .iter()
                .map(|e| from_process(Some(e)))
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(berth_core::error::Error::usage(format!(
                    "profile {} is spread over {} engines",
                    profile.name,
                    made_on.len()
                ))
                .with_hint("name all of them with --engine, in the profile's order, or none"));
            }
        };
        // An engine that cannot be reached is named, and the others' nodes
        // are still seen and deleted.
        let mut members: Vec<std::sync::Arc<dyn berth_engine::Engine>> = Vec::new();
        let mut manager = None;
        for (endpoint, made_on) in endpoints.iter().zip(made_on) {
            match berth_engine::Docker::connect_to(endpoint).await {
                Ok(engine) => {
                    check_made_on(profile, endpoint, made_on, &engine).await?;
                    let swarm = engine.facts().await?.swarm;
                    if manager.is_none() && swarm.is_some_and(|s| s.manager_of.is_some()) {
                        manager = Some(members.len());
                    }
                    members.push(std::sync::Arc::new(engine));
                }
                Err(e @ berth_engine::Error::Unreachable { .. }) => {
                    let lost = berth_engine::Lost::new(&endpoint.host, &e);
                    members.push(std::sync::Arc::new(lost));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // A Swarm that lost its manager still stops and deletes; only a new
        // network needs one.
        let manager = manager.unwrap_or(0);
        Ok(berth_engine::Spread::new(
            members,
            manager,
            profile.placed(),
        ))
    }

    /// A context over the engines named with --engine, for a new cluster
    /// that `opts` spreads over them: they must be of one Swarm; `opts`
    /// gets the engines and where each node goes.
    async fn spread_ctx(
        &self,
        ui: Ui,
        name: &str,
        opts: &mut berth_cluster::StartOptions,
    ) -> Result<berth_cluster::Ctx> {
        use berth_core::profile;
        if opts.ssh_forward {
            return Err(berth_core::error::Error::usage(
                "--ssh-forward is for a cluster on one engine",
            )
            .with_hint("name one engine with --engine, or leave out --ssh-forward"));
        }
        let endpoints = self
            .engine
            .iter()
            .map(|e| berth_engine::discover::from_process(Some(e)))
            .collect::<Result<Vec<_>, _>>()?;
        let members = connect_all(&endpoints).await?;
        let facts = futures_util::future::try_join_all(members.iter().map(|m| m.facts())).await?;
        let manager = berth_engine::manager_of(&facts)?;
        opts.engines = facts[1..].iter().map(profile::EngineRef::of).collect();
        opts.node_engines =
            profile::spread(opts.control_plane_count(), opts.node_count(), members.len());
        let home_id = berth_core::names::home_id(&berth_core::paths::home_dir());
        let placed = profile::placed(name, home_id.as_deref(), &opts.node_engines);
        let spread = berth_engine::Spread::new(members, manager, placed);
        Ok(self.ctx_on(ui, std::sync::Arc::new(spread)))
    }

    /// A context on `docker`.
    fn ctx_on(
        &self,
        ui: Ui,
        docker: std::sync::Arc<dyn berth_engine::Engine>,
    ) -> berth_cluster::Ctx {
        berth_cluster::Ctx {
            home: berth_core::paths::home_dir(),
            lock_timeout: self.lock_timeout,
            docker,
            store: self.store(),
            cache: berth_core::binaries::Cache::new(&berth_core::paths::cache_dir()),
            ui,
            kubeconfig: berth_core::kubeconfig::resolve(self.kubeconfig.as_deref()),
            token: berth_core::names::new_token(),
        }
    }

    /// The profile's saved state; an error when it does not exist.
    fn load(&self, name: &str) -> Result<berth_core::profile::Profile> {
        self.store().load(name)?.ok_or_else(|| {
            berth_core::error::Error::profile(format!("profile {name} does not exist")).with_hint(
                "`berth profile list` shows the profiles; `berth start -p NAME` creates one",
            )
        })
    }
}

/// Connects to each of `endpoints`, at once.
async fn connect_all(
    endpoints: &[berth_engine::discover::Endpoint],
) -> Result<Vec<std::sync::Arc<dyn berth_engine::Engine>>> {
    let members =
        futures_util::future::try_join_all(endpoints.iter().map(berth_engine::Docker::connect_to))
            .await?;
    Ok(members
        .into_iter()
        .map(|m| std::sync::Arc::new(m) as std::sync::Arc<dyn berth_engine::Engine>)
        .collect())
}

/// Refused when the engine at `endpoint` is not the one `profile` was made
/// on (`made_on`): the same profile name on a different engine is another
/// cluster.
async fn check_made_on(
    profile: &berth_core::profile::Profile,
    endpoint: &berth_engine::discover::Endpoint,
    made_on: &berth_core::profile::EngineRef,
    engine: &dyn berth_engine::Engine,
) -> Result<()> {
    if made_on.id.is_empty() {
        return Ok(());
    }
    let here = engine.facts().await?.id;
    if here == made_on.id {
        return Ok(());
    }
    let home = berth_core::paths::home_dir();
    Err(berth_core::error::Error::engine(format!(
        "profile {} was made on another engine than the one at {} (engine {} made it, at {}; this one is {here})",
        profile.name, endpoint.host, made_on.id, made_on.host
    ))
    .with_hint(format!(
        "pass --engine with the address of the engine that holds it; if that engine is gone for good, \
         `rm -r {}` forgets the profile",
        home.join("profiles").join(&profile.name).display()
    )))
}

/// A size for people, in MiB.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Prints a value as JSON on stdout.
fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("output serialises")
    );
}

/// `header` and `rows` as lines whose columns line up, each as wide as its
/// widest cell; the last column is not padded.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> Vec<String> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 < N {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            } else {
                text.push_str(cell);
            }
        }
        text
    };
    std::iter::once(line(header))
        .chain(
            rows.iter()
                .map(|row| line(row.each_ref().map(String::as_str))),
        )
        .collect()
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM after it is first
/// polled, naming it.
pub(crate) async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn table_columns_line_up_whatever_the_cells() {
        let rows = [
            [
                "metrics-server".to_string(),
                "unavailable".into(),
                "a b".into(),
            ],
            ["dns".to_string(), "ready".into(), "c".into()],
        ];
        let lines = super::table(["NAME", "STATE", "IMAGES"], &rows);
        assert_eq!(
            lines,
            [
                "NAME            STATE        IMAGES",
                "metrics-server  unavailable  a b",
                "dns             ready        c",
            ]
        );
    }

    #[test]
    fn every_command_shows_an_example_in_its_help() {
        // A hidden command is berth's own, not a user's.
        for command in super::Cli::command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
        {
            let help = command
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains("Examples:")
                    && help.contains(&format!("berth {}", command.get_name())),
                "`berth {} --help` shows no example",
                command.get_name()
            );
        }
    }
}
