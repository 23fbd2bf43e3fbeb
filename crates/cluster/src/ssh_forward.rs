//! The ports of a cluster made with `--ssh-forward`: published on the
//! loopback of its ssh:// engine's host, which this machine may not reach
//! otherwise (a host behind a firewall that lets in only ssh), and
//! forwarded to this machine's loopback by an ssh that runs while the
//! cluster does. `start` starts it (again, when it has gone), `stop` and
//! `delete` end it; it is the master of a control socket in the profile's
//! directory, through which it is asked whether it runs and told to end.

use std::path::PathBuf;

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

/// Starts the profile's forward unless it runs.
pub(super) async fn ensure(store: &Store, profile: &Profile) -> Result<()> {
    let Some(endpoint) = forwarded(profile).map(str::to_string) else {
        return Ok(());
    };
    let control = control(store, profile);
    let log = store.dir(&profile.name).join("ssh-forward.log");
    let ports = ports(profile);
    let listed = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let started = tokio::task::spawn_blocking(move || {
        if ssh::forwarding(&endpoint, &control) {
            return Ok(());
        }
        ssh::stop_forwarding(&endpoint, &control);
        ssh::forward_ports(&endpoint, &ports, &control, &log)
    })
    .await
    .map_err(|e| Error::failure(format!("the ssh forward's thread failed: {e}")))?;
    started.map_err(|e| {
        Error::from(e).with_hint(format!(
            "berth forwards ports {listed} of 127.0.0.1 here: stop what listens on one of them, \
             or see that `ssh` logs in without a prompt; then `berth start -p {}` forwards again",
            profile.name
        ))
    })
}

/// Whether the profile's forward runs; `None` where it has none.
pub(super) async fn running(store: &Store, profile: &Profile) -> Option<bool> {
    let endpoint = forwarded(profile)?.to_string();
    let control = control(store, profile);
    tokio::task::spawn_blocking(move || ssh::forwarding(&endpoint, &control))
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
