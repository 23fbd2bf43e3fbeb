//! The ports of a cluster made with `--ssh-forward`: published on the
//! loopback of its ssh:// engine's host, which this machine may not reach
//! otherwise (a host behind a firewall that lets in only ssh), and
//! forwarded to this machine's loopback by an ssh that runs while the
//! cluster does. `start` starts it (again, when it has gone), `stop` and
//! `delete` end it; it is the master of a control socket in the profile's
//! directory, through which it is asked whether it runs and told to end.
//! LoadBalancer Services come and go while no berth command runs, so a
//! watcher berth starts beside that ssh (`berth ssh-forward-watch`, in
//! the background) adds and cancels their ports through the same socket,
//! and ends once the ssh has.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use berth_core::error::{Error, Result};
use berth_core::profile::{Profile, Store};
use berth_engine::ssh;

/// The ports forwarded: the API server's and each of `--ports`.
fn ports(profile: &Profile) -> Vec<u16> {
    std::iter::once(profile.api_port)
        .chain(profile.ports.iter().map(|p| p.host))
        .collect()
}

fn control(store: &Store, profile: &Profile) -> PathBuf {
    store.dir(&profile.name).join("ssh-forward.sock")
}

/// The ssh:// address of the engine of a profile whose ports are forwarded.
fn forwarded(profile: &Profile) -> Option<&str> {
    profile
        .engine
        .as_ref()
        .filter(|e| e.ssh_forward)
        .map(|e| e.host.as_str())
}

/// The hidden verb of the LoadBalancer Services' watcher.
pub const WATCH_VERB: &str = "ssh-forward-watch";

/// How often the watcher looks at the Services.
const WATCH_EVERY: Duration = Duration::from_secs(2);

fn log(store: &Store, profile: &Profile) -> PathBuf {
    store.dir(&profile.name).join("ssh-forward.log")
}

/// Starts the profile's forward, and its watcher, unless it runs.
pub(super) async fn ensure(store: &Store, profile: &Profile) -> Result<()> {
    let Some(endpoint) = forwarded(profile).map(str::to_string) else {
        return Ok(());
    };
    let control = control(store, profile);
    let log = log(store, profile);
    let ports = ports(profile);
    let listed = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let started = tokio::task::spawn_blocking(move || {
        if ssh::forwarding(&endpoint, &control).is_some() {
            return Ok(false);
        }
        ssh::stop_forwarding(&endpoint, &control);
        ssh::forward_ports(&endpoint, &ports, &control, &log).map(|()| true)
    })
    .await
    .map_err(|e| Error::failure(format!("the ssh forward's thread failed: {e}")))?;
    let started = started.map_err(|e| {
        Error::from(e).with_hint(format!(
            "berth forwards ports {listed} of 127.0.0.1 here: stop what listens on one of them, \
             or see that `ssh` logs in without a prompt; then `berth start -p {}` forwards again",
            profile.name
        ))
    })?;
    if started {
        start_watcher(store, profile)?;
    }
    Ok(())
}

/// `berth ssh-forward-watch -p NAME` in the background, outliving this
/// berth, with what it says added to the forward's log.
fn start_watcher(store: &Store, profile: &Profile) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let cannot = |e: std::io::Error| {
        Error::failure(format!(
            "cannot start the watcher of profile {}'s LoadBalancer Services: {e}",
            profile.name
        ))
    };
    let berth = std::env::current_exe().map_err(cannot)?;
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log(store, profile))
        .map_err(cannot)?;
    let mut command = std::process::Command::new(berth);
    command
        .args([WATCH_VERB, "-p", &profile.name])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // A process group of its own: a Ctrl-C of the terminal does not reach it.
    command.process_group(0).spawn().map_err(cannot)?;
    Ok(())
}

/// Forwards the ports of the profile's LoadBalancer Services, as they
/// come and go, for as long as the ssh it was started beside runs: one
/// that ends, even if another takes its place (a `stop` and `start` within
/// seconds), ends it, and the other has a watcher of its own.
pub async fn watch(store: &Store, profile: &Profile) -> Result<()> {
    let Some(endpoint) = forwarded(profile).map(str::to_string) else {
        return Ok(());
    };
    let control = control(store, profile);
    let master = |endpoint: String, control: PathBuf| async move {
        tokio::task::spawn_blocking(move || ssh::forwarding(&endpoint, &control))
            .await
            .ok()
            .flatten()
    };
    let Some(beside) = master(endpoint.clone(), control.clone()).await else {
        return Ok(());
    };
    let client = super::client(store, profile).await?;
    let fixed = ports(profile);
    let mut forwarded = BTreeSet::new();
    let mut refused = BTreeSet::new();
    loop {
        if master(endpoint.clone(), control.clone()).await != Some(beside) {
            return Ok(());
        }
        // An API server that does not answer now may later.
        if let Ok(services) = super::service_lb::forwards(&client).await {
            let wanted: BTreeSet<u16> = services
                .iter()
                .filter(|f| f.protocol == "TCP" && f.address.is_some())
                .filter_map(|f| u16::try_from(f.port).ok())
                .filter(|p| !fixed.contains(p))
                .collect();
            let changes: Vec<(u16, bool)> = wanted
                .difference(&forwarded)
                .map(|p| (*p, true))
                .chain(forwarded.difference(&wanted).map(|p| (*p, false)))
                .collect();
            for (port, add) in changes {
                let (endpoint, control) = (endpoint.clone(), control.clone());
                let done = tokio::task::spawn_blocking(move || {
                    ssh::change_forward(&endpoint, &control, port, add)
                })
                .await
                .unwrap_or(false);
                match (add, done) {
                    (true, true) => {
                        forwarded.insert(port);
                        refused.remove(&port);
                    }
                    (false, _) => {
                        forwarded.remove(&port);
                    }
                    // Said once in the log; asked again every round.
                    (true, false) if refused.insert(port) => eprintln!(
                        "berth: port {port} of a LoadBalancer Service cannot be forwarded to \
                         127.0.0.1 here (taken?); tried again every {} s",
                        WATCH_EVERY.as_secs()
                    ),
                    (true, false) => {}
                }
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// Whether the profile's forward runs; `None` where it has none.
pub(super) async fn running(store: &Store, profile: &Profile) -> Option<bool> {
    let endpoint = forwarded(profile)?.to_string();
    let control = control(store, profile);
    tokio::task::spawn_blocking(move || ssh::forwarding(&endpoint, &control).is_some())
        .await
        .ok()
}

/// Ends the profile's forward, if one runs.
pub(super) async fn end(store: &Store, profile: &Profile) {
    let Some(endpoint) = forwarded(profile).map(str::to_string) else {
        return;
    };
    let control = control(store, profile);
    let _ = tokio::task::spawn_blocking(move || ssh::stop_forwarding(&endpoint, &control)).await;
}
