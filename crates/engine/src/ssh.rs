//! Engines reached over ssh, `ssh://[USER@]HOST[:PORT][/SOCKET]`: berth
//! runs the user's ssh client (`BERTH_SSH`, default `ssh`, so the user's
//! keys, agent and ~/.ssh/config apply) to forward a private socket of
//! this machine to the engine's socket there (default
//! /var/run/docker.sock), for as long as berth talks to the engine. ssh
//! runs in batch mode: a host it does not know, or a key it needs a
//! passphrase for, fails with ssh's own words instead of a prompt.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// The engine's socket on its host when the address names none.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long ssh may take to log in and forward.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// An ssh:// address taken apart.
#[derive(Debug, PartialEq)]
struct Address<'a> {
    /// `USER@HOST` or `HOST`, as ssh takes it.
    destination: &'a str,
    port: Option<&'a str>,
    socket: &'a str,
}

fn parse(endpoint: &str) -> Option<Address<'_>> {
    let rest = endpoint.strip_prefix("ssh://")?;
    let (authority, socket) = match rest.find('/') {
        Some(i) if i + 1 < rest.len() => (&rest[..i], &rest[i..]),
        Some(i) => (&rest[..i], DEFAULT_SOCKET),
        None => (rest, DEFAULT_SOCKET),
    };
    let (destination, port) = match authority.rsplit_once(':') {
        Some((destination, port)) => (destination, Some(port)),
        None => (authority, None),
    };
    (!destination.is_empty()).then_some(Address {
        destination,
        port,
        socket,
    })
}

fn ssh_program() -> String {
    std::env::var("BERTH_SSH").unwrap_or_else(|_| "ssh".into())
}

fn ssh(program: &str, address: &Address) -> Command {
    let mut command = Command::new(program);
    command.args(["-o", "BatchMode=yes"]);
    if let Some(port) = address.port {
        command.args(["-p", port]);
    }
    command
}

fn unusable(endpoint: &str, why: String) -> Error {
    Error::Unsupported {
        endpoint: endpoint.to_string(),
        why,
        fix: "name the engine as ssh://USER@HOST[:PORT][/PATH/OF/SOCKET]".into(),
    }
}

/// The host name ssh connects to for `endpoint`, after the user's ssh
/// configuration (a `Host` alias's `HostName`).
pub(crate) fn host_name(endpoint: &str) -> Result<String> {
    let address = parse(endpoint).ok_or_else(|| unusable(endpoint, "it names no host".into()))?;
    let program = ssh_program();
    let out = ssh(&program, &address)
        .arg("-G")
        .arg(address.destination)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| unreachable(endpoint, format!("cannot run {program}: {e}")))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("hostname ").map(str::to_string))
        .ok_or_else(|| {
            unreachable(
                endpoint,
                format!(
                    "`{program} -G` names no host: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            )
        })
}

fn unreachable(endpoint: &str, reason: String) -> Error {
    Error::Unreachable {
        engine: crate::Flavour::Docker,
        endpoint: endpoint.to_string(),
        reason,
    }
}

/// A running ssh that forwards `socket` to the engine's; stopped, and its
/// directory removed, when dropped. ssh is started, and waited for, by a
/// thread of its own that lives as long as it does: the kernel ends ssh
/// when that thread ends (`PR_SET_PDEATHSIG`), so a berth that is killed
/// leaves no ssh behind.
#[derive(Debug)]
pub struct Tunnel {
    pid: u32,
    /// How ssh ended, once it has.
    ended: std::sync::Arc<std::sync::Mutex<Option<std::process::ExitStatus>>>,
    waiter: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
    pub socket: PathBuf,
}

/// Starts `command` from a thread that then waits for it; its pid.
fn spawn_watched(
    mut command: Command,
    ended: std::sync::Arc<std::sync::Mutex<Option<std::process::ExitStatus>>>,
) -> std::io::Result<(u32, std::thread::JoinHandle<()>)> {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || match command.spawn() {
        Ok(mut child) => {
            let _ = sender.send(Ok(child.id()));
            let status = child.wait();
            *ended.lock().unwrap_or_else(|e| e.into_inner()) = status.ok();
        }
        Err(e) => {
            let _ = sender.send(Err(e));
        }
    });
    let pid = receiver
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the ssh thread ended")))?;
    Ok((pid, waiter))
}

impl Tunnel {
    pub fn open(endpoint: &str) -> Result<Self> {
        Self::open_with(&ssh_program(), endpoint)
    }

    fn open_with(program: &str, endpoint: &str) -> Result<Self> {
        let address =
            parse(endpoint).ok_or_else(|| unusable(endpoint, "it names no host".into()))?;
        let dir = private_dir()
            .map_err(|e| unreachable(endpoint, format!("cannot make a private directory: {e}")))?;
        let socket = dir.join("engine.sock");
        let log = dir.join("ssh.log");
        let mut command = ssh(program, &address);
        command
            .args([
                "-o",
                "ExitOnForwardFailure=yes",
                "-o",
                "ServerAliveInterval=15",
            ])
            .args(["-nNT", "-L"])
            .arg(format!("{}:{}", socket.display(), address.socket))
            .arg(address.destination)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let ended = std::sync::Arc::default();
        let spawned = std::fs::File::create(&log)
            .map_err(|e| e.to_string())
            .and_then(|file| {
                command.stderr(file);
                spawn_watched(command, std::sync::Arc::clone(&ended))
                    .map_err(|e| format!("cannot run {program}: {e}"))
            });
        let (pid, waiter) = match spawned {
            Ok(spawned) => spawned,
            Err(why) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(unreachable(endpoint, why));
            }
        };
        let tunnel = Tunnel {
            pid,
            ended,
            waiter: Some(waiter),
            dir,
            socket,
        };
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while !tunnel.socket.exists() {
            let said = || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                text.lines().last().unwrap_or_default().trim().to_string()
            };
            if let Some(status) = *tunnel.ended.lock().unwrap_or_else(|e| e.into_inner()) {
                return Err(unreachable(
                    endpoint,
                    format!(
                        "ssh to {} ended ({status}): {}",
                        address.destination,
                        said()
                    ),
                ));
            }
            if Instant::now() > deadline {
                return Err(unreachable(
                    endpoint,
                    format!(
                        "ssh to {} did not forward the engine's socket within {} s: {}",
                        address.destination,
                        CONNECT_TIMEOUT.as_secs(),
                        said()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(tunnel)
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        // Only while it runs: once waited for, its pid may be another's.
        let running = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if running.is_none() {
            // SAFETY: a signal to our own child, not yet recorded as ended
            // (its pid is free for reuse only in the instant between its
            // reaping and that record).
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        }
        drop(running);
        if let Some(waiter) = self.waiter.take() {
            let _ = waiter.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Forwards each of `ports` on this machine's loopback to the same port on
/// the loopback of the engine's host, with an ssh that outlives berth: a
/// master of the control socket `control`, which `forwarding` and
/// `stop_forwarding` ask it through. ssh goes to the background once it is
/// logged in and every port is bound here (`-f` with
/// ExitOnForwardFailure), so a port taken here or a refused login fails
/// this call with ssh's own words, which it writes to `log`.
pub fn forward_ports(endpoint: &str, ports: &[u16], control: &Path, log: &Path) -> Result<()> {
    forward_ports_with(&ssh_program(), endpoint, ports, control, log)
}

fn forward_ports_with(
    program: &str,
    endpoint: &str,
    ports: &[u16],
    control: &Path,
    log: &Path,
) -> Result<()> {
    let address = parse(endpoint).ok_or_else(|| unusable(endpoint, "it names no host".into()))?;
    let mut command = ssh(program, &address);
    command.args([
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        &format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs()),
        "-fnNT",
        "-M",
        "-S",
    ]);
    command.arg(control);
    for port in ports {
        command
            .arg("-L")
            .arg(format!("127.0.0.1:{port}:127.0.0.1:{port}"));
    }
    let file = std::fs::File::create(log)
        .map_err(|e| unreachable(endpoint, format!("cannot write {}: {e}", log.display())))?;
    let status = command
        .arg(address.destination)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .map_err(|e| unreachable(endpoint, format!("cannot run {program}: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let said = std::fs::read_to_string(log).unwrap_or_default();
    Err(unreachable(
        endpoint,
        format!(
            "ssh to {} did not forward the cluster's ports ({status}): {}",
            address.destination,
            // ssh says which port it could not bind, then that it could not
            // forward.
            said.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    ))
}

/// The pid of the ssh that `forward_ports` started with `control`, while
/// it runs: another pid later is another ssh, started since.
pub fn forwarding(endpoint: &str, control: &Path) -> Option<u32> {
    if !control.exists() {
        return None;
    }
    master_pid(&control_request(endpoint, control, "check")?)
}

/// The pid in ssh's answer to a check, "Master running (pid=N)".
fn master_pid(said: &str) -> Option<u32> {
    said.split("pid=")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Ends the ssh that `forward_ports` started with `control`, if it runs.
pub fn stop_forwarding(endpoint: &str, control: &Path) {
    if control.exists() && control_request(endpoint, control, "exit").is_none() {
        // Its master is gone and left the socket.
        let _ = std::fs::remove_file(control);
    }
}

/// Adds (or with `add` false, cancels) the forward of `port` to the ssh
/// that `forward_ports` started with `control`; whether it did.
pub fn change_forward(endpoint: &str, control: &Path, port: u16, add: bool) -> bool {
    let forward = format!("127.0.0.1:{port}:127.0.0.1:{port}");
    let request = if add { "forward" } else { "cancel" };
    control_request_with(endpoint, control, request, &["-L", &forward]).is_some()
}

fn control_request(endpoint: &str, control: &Path, request: &str) -> Option<String> {
    control_request_with(endpoint, control, request, &[])
}

/// What the master said to `request`, when it did it.
fn control_request_with(
    endpoint: &str,
    control: &Path,
    request: &str,
    args: &[&str],
) -> Option<String> {
    let address = parse(endpoint)?;
    let out = ssh(&ssh_program(), &address)
        .arg("-S")
        .arg(control)
        .args(["-O", request])
        .args(args)
        .arg(address.destination)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A new directory only this user can enter, for the forwarded socket
/// (short: a socket's path has at most 107 bytes).
fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let dir: PathBuf = Path::new(&base).join(format!("berth-ssh-{}-{nanos:x}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_names_the_destination_port_and_socket() {
        let address = |destination, port, socket| Address {
            destination,
            port,
            socket,
        };
        for (endpoint, want) in [
            ("ssh://box", address("box", None, DEFAULT_SOCKET)),
            ("ssh://me@box", address("me@box", None, DEFAULT_SOCKET)),
            (
                "ssh://me@box:2222",
                address("me@box", Some("2222"), DEFAULT_SOCKET),
            ),
            ("ssh://me@box/", address("me@box", None, DEFAULT_SOCKET)),
            (
                "ssh://me@box:22/run/podman/podman.sock",
                address("me@box", Some("22"), "/run/podman/podman.sock"),
            ),
        ] {
            assert_eq!(parse(endpoint), Some(want), "{endpoint}");
        }
        assert_eq!(parse("ssh://"), None);
        assert_eq!(parse("tcp://box"), None);
    }

    /// An executable shell script `ssh` in `dir` that runs `body`.
    fn fake_ssh(dir: &Path, body: &str) -> String {
        let fake = dir.join("ssh");
        std::fs::write(&fake, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        fake.display().to_string()
    }

    #[test]
    fn a_check_names_the_masters_pid() {
        assert_eq!(master_pid("Master running (pid=4242)\r\n"), Some(4242));
        assert_eq!(master_pid("Control socket connect: No such file"), None);
    }

    /// ssh is asked for each port on both loopbacks, in the background
    /// once forwarding, and a refusal is told in ssh's own words.
    #[test]
    fn ports_are_forwarded_loopback_to_loopback_and_a_refusal_names_why() {
        let dir = tempfile::tempdir().unwrap();
        let (control, log) = (dir.path().join("c.sock"), dir.path().join("log"));
        let args = dir.path().join("args");
        let fake = fake_ssh(dir.path(), &format!("echo \"$*\" >{}", args.display()));
        forward_ports_with(&fake, "ssh://me@box:2222", &[6443, 8080], &control, &log).unwrap();
        let asked = std::fs::read_to_string(&args).unwrap();
        for part in [
            "-p 2222",
            "ExitOnForwardFailure=yes",
            "-fnNT -M -S",
            "-L 127.0.0.1:6443:127.0.0.1:6443 -L 127.0.0.1:8080:127.0.0.1:8080 me@box",
        ] {
            assert!(asked.contains(part), "{part} not in: {asked}");
        }
        let refusing = fake_ssh(
            dir.path(),
            "echo 'bind [127.0.0.1]:6443: Address already in use' >&2\n\
             echo 'Could not request local forwarding.' >&2\nexit 255",
        );
        match forward_ports_with(&refusing, "ssh://me@box", &[6443], &control, &log) {
            Err(Error::Unreachable { reason, .. }) => {
                assert!(
                    reason.contains("Could not request local forwarding"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_forwarding_ssh_runs_while_the_tunnel_is_held_and_no_longer() {
        let dir = tempfile::tempdir().unwrap();
        // Makes the local end of -L, then forwards until it is stopped.
        let fake = fake_ssh(
            dir.path(),
            "for a; do case $a in *engine.sock:*) touch \"${a%%:*}\";; esac; done; exec sleep 60",
        );
        let tunnel = Tunnel::open_with(&fake, "ssh://me@box").unwrap();
        let proc = PathBuf::from(format!("/proc/{}", tunnel.pid));
        assert!(proc.exists());
        let socket_dir = tunnel.dir.clone();
        drop(tunnel);
        assert!(!proc.exists(), "ssh still runs");
        assert!(!socket_dir.exists());
    }

    #[test]
    fn an_ssh_that_fails_is_named_with_what_it_said() {
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_ssh(
            dir.path(),
            "echo 'Permission denied (publickey).' >&2; exit 255",
        );
        match Tunnel::open_with(&fake, "ssh://me@box") {
            Err(Error::Unreachable { reason, .. }) => {
                assert!(reason.contains("Permission denied (publickey)"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
