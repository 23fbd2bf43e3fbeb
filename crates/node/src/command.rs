//! Every command berth runs in a node or in one of its helper containers,
//! named by what it does. The tools, paths and flags are the node image's,
//! so they are spelled here, beside the files that put them there, and
//! the operations above say `command::restart(..)`, not an argv.

use berth_engine::{BINARIES_MOUNT, Command};

use crate::render::{K8S_DIR, ROUTES_SCRIPT};

/// The file's content.
pub fn cat(path: &str) -> Command {
    Command::new(["cat", path])
}

/// Removes a file; one that is not there is no error.
pub fn remove(path: &str) -> Command {
    Command::new(["rm", "-f", path])
}

/// Removes a directory with all it holds.
pub fn remove_tree(dir: &str) -> Command {
    Command::new(["rm", "-rf", dir])
}

/// Removes what a directory holds, dot files too, and keeps it.
pub fn empty_dir(dir: &str) -> Command {
    shell(&format!("rm -rf {dir}/* {dir}/.[!.]*"))
}

/// Bytes below `dir`, as `du -sb` prints them (`BYTES\tDIR`).
pub fn size_of(dir: &str) -> Command {
    Command::new(["du", "-sb", dir])
}

/// The free space of the file system at `path`, in POSIX `df` columns.
pub fn free_space(path: &str) -> Command {
    Command::new(["df", "-Pk", path])
}

/// Which of `ports` of the container's loopback take connections, one per
/// line.
pub fn listening(ports: &[u16]) -> Command {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    Command::new([
        "bash".to_string(),
        "-c".into(),
        format!(
            "for port in {}; do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && echo $port; done",
            ports.join(" ")
        ),
    ])
}

fn shell(script: &str) -> Command {
    Command::new(["sh", "-c", script])
}

fn systemctl<'a>(args: impl IntoIterator<Item = &'a str>) -> Command {
    Command::new(std::iter::once("systemctl").chain(args))
}

/// systemd reads the unit files again.
pub fn daemon_reload() -> Command {
    systemctl(["daemon-reload"])
}

pub fn start(unit: &str) -> Command {
    systemctl(["start", unit])
}

/// Starts `unit` without waiting for it to be up: for a unit that takes
/// its time and that nothing waits for.
pub fn start_in_background(unit: &str) -> Command {
    systemctl(["start", "--no-block", unit])
}

pub fn stop(unit: &str) -> Command {
    systemctl(["stop", unit])
}

pub fn restart(units: &[&str]) -> Command {
    systemctl(std::iter::once("restart").chain(units.iter().copied()))
}

/// Stops `unit` and keeps it from starting at the next boot.
pub fn disable_now(unit: &str) -> Command {
    systemctl(["disable", "--now", unit])
}

/// `Id`, `ActiveState` and `NRestarts` of each of `units`, as blocks of
/// `key=value` lines.
pub fn unit_states(units: &[&str]) -> Command {
    systemctl(
        ["show", "-p", "Id,ActiveState,NRestarts"]
            .into_iter()
            .chain(units.iter().copied()),
    )
}

/// The units systemd gave up on, a line each without a header.
pub fn failed_units() -> Command {
    systemctl([
        "list-units",
        "--failed",
        "--plain",
        "--no-legend",
        "--no-pager",
    ])
}

/// Every unit (or the failed ones), as a table to read.
pub fn unit_table(failed_only: bool) -> Command {
    let which = if failed_only { "--failed" } else { "--all" };
    systemctl(["list-units", which, "--no-pager", "--plain"])
}

/// What `berth stop` runs in a control plane before its container goes:
/// `units` stopped at once. The API server is killed rather than asked: its
/// graceful shutdown waits for the watches of clients that still run (a
/// pod's, another node's), which do not end, and took 5 s of every stop of
/// a cluster in use; it keeps nothing etcd does not hold. systemd counts
/// that kill as a clean end for this stop alone (a drop-in under /run,
/// gone at the next boot), so that a kill at any other time, the OOM
/// killer's, still shows in `status` and `logs --problems`.
pub fn stop_control_plane(units: &[&str]) -> Command {
    shell(&format!(
        "d=/run/systemd/system/kube-apiserver.service.d && mkdir -p $d && \
         printf '[Service]\\nKillSignal=SIGKILL\\nSuccessExitStatus=SIGKILL\\n' >$d/50-berth-stop.conf && \
         systemctl daemon-reload; systemctl stop {}",
        units.join(" ")
    ))
}

/// The last `lines` lines `unit` wrote, without timestamps.
pub fn journal_tail(unit: &str, lines: u32) -> Command {
    let lines = lines.to_string();
    Command::new([
        "journalctl",
        "-u",
        unit,
        "-n",
        &lines,
        "--no-pager",
        "-o",
        "cat",
    ])
}

/// All `unit.service` wrote, with precise times, for an archive.
pub fn journal_of(unit: &str) -> Command {
    let unit = format!("{unit}.service");
    Command::new([
        "journalctl",
        "--no-pager",
        "-o",
        "short-iso-precise",
        "-u",
        &unit,
    ])
}

/// Where a journal read by `journal_json` begins.
pub enum JournalStart {
    /// After the line of this cursor, which an earlier read returned.
    Cursor(String),
    /// The last `seconds` seconds, at most the last `lines` lines.
    Recent {
        seconds: Option<u64>,
        lines: Option<usize>,
    },
}

/// What `units` (each `NAME.service`) wrote from `from`, a JSON object per
/// line with the message, the unit, the priority and the cursor.
pub fn journal_json(units: &[&str], from: &JournalStart) -> Command {
    let mut cmd: Vec<String> = [
        "journalctl",
        "--no-pager",
        "--quiet",
        "-o",
        "json",
        "--output-fields=MESSAGE,_SYSTEMD_UNIT,UNIT,PRIORITY",
    ]
    .map(String::from)
    .to_vec();
    cmd.extend(units.iter().map(|unit| format!("--unit={unit}.service")));
    match from {
        JournalStart::Cursor(cursor) => cmd.push(format!("--after-cursor={cursor}")),
        JournalStart::Recent { seconds, lines } => {
            if let Some(seconds) = seconds {
                cmd.push(format!("--since=-{}s", seconds.max(&1)));
            }
            if let Some(lines) = lines {
                cmd.push(format!("--lines={lines}"));
            }
        }
    }
    Command::new(cmd)
}

/// Lines that tell why a Go component died, in the order they are tried.
const FATAL_PATTERN: &str = "^(fatal error:|panic:|F[0-9]{4} )";
const EXIT_PATTERN: &str = "Main process exited";

/// The last line `unit`'s process wrote when it died in this boot (a Go
/// fatal error or panic, a klog fatal line), else systemd's note of its
/// exit; nothing when there is neither.
pub fn last_fatal(unit: &str) -> Command {
    shell(&format!(
        "log=$(journalctl -b -u {unit} -o cat --no-pager); \
         line=$(printf '%s\\n' \"$log\" | grep -E '{FATAL_PATTERN}' | tail -n 1); \
         [ -n \"$line\" ] || line=$(printf '%s\\n' \"$log\" | grep -F '{EXIT_PATTERN}' | tail -n 1); \
         printf '%s' \"$line\""
    ))
}

/// The rendered files worth reading, each after a `==> PATH <==` line,
/// without the PKI and the kubeconfigs (which embed keys); any file that
/// holds a private key is left out too.
pub fn rendered_files() -> Command {
    shell(
        r#"find /etc/systemd/system /etc/kubernetes /etc/containerd /etc/berth /usr/local/lib/berth \
    -type f ! -path '*/pki/*' ! -path '/etc/kubernetes/*.conf' 2>/dev/null | sort |
while read -r f; do
    grep -q 'PRIVATE KEY' "$f" && continue
    printf '==> %s <==\n' "$f"; cat "$f"; echo
done"#,
    )
}

/// Applies the node's pod routes as its routes script (rendered with its
/// files) has them now.
pub fn apply_routes() -> Command {
    Command::new(["sh", ROUTES_SCRIPT])
}

/// The cluster's own kubectl in a control plane, as the cluster's admin.
pub fn kubectl(args: &[&str]) -> Command {
    let kubectl = format!("{BINARIES_MOUNT}/kubectl");
    let kubeconfig = format!("--kubeconfig={K8S_DIR}/admin.conf");
    Command::new(
        [kubectl.as_str(), &kubeconfig]
            .into_iter()
            .chain(args.iter().copied()),
    )
}

/// Whether the API server on this control plane's loopback is ready: exit
/// 0 when it is.
pub fn api_server_ready() -> Command {
    kubectl(&["get", "--raw=/readyz", "--request-timeout=3s"])
}

/// etcdctl against this control plane's own member (etcd serves clients
/// on the loopback only), as the API server's etcd client.
pub fn etcdctl(args: &[&str]) -> Command {
    let pki = |flag: &str, file: &str| format!("--{flag}={K8S_DIR}/pki/{file}");
    let head = [
        "/usr/bin/etcdctl".to_string(),
        "--endpoints=https://127.0.0.1:2379".into(),
        pki("cacert", "ca.crt"),
        pki("cert", "apiserver-etcd-client.crt"),
        pki("key", "apiserver-etcd-client.key"),
        "--command-timeout=3s".into(),
    ];
    Command::new(head.into_iter().chain(args.iter().map(|a| a.to_string())))
}

/// containerd takes the images of the archive at `path` in, for Kubernetes.
pub fn import_images(path: &str) -> Command {
    Command::new(["ctr", "--namespace", "k8s.io", "images", "import", path])
}

/// The images containerd holds for Kubernetes: names and digests alone
/// (`quiet`), else a table.
pub fn images(quiet: bool) -> Command {
    let mut cmd = vec!["ctr", "--namespace", "k8s.io", "images"];
    cmd.extend(if quiet {
        ["ls", "-q"].as_slice()
    } else {
        ["list"].as_slice()
    });
    Command::new(cmd)
}

/// haproxy's master process, the container's first, loads its
/// configuration again.
pub fn reload_haproxy() -> Command {
    Command::new(["kill", "-USR2", "1"])
}

/// haproxy's `show stat` CSV, asked on its admin socket.
pub fn haproxy_stat(socket: &str) -> Command {
    shell(&format!(
        "echo 'show stat' | socat stdio unix-connect:{socket}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_command_is_the_argv_the_node_image_runs() {
        assert_eq!(
            restart(&["kubelet", "kube-apiserver"]).to_string(),
            "systemctl restart kubelet kube-apiserver"
        );
        assert_eq!(
            unit_states(&["etcd"]).argv(),
            [
                "systemctl",
                "show",
                "-p",
                "Id,ActiveState,NRestarts",
                "etcd"
            ]
        );
        assert_eq!(
            kubectl(&["apply", "-f", "/x.yaml"]).argv(),
            [
                "/opt/berth/kubernetes/bin/kubectl",
                "--kubeconfig=/etc/kubernetes/admin.conf",
                "apply",
                "-f",
                "/x.yaml"
            ]
        );
        // etcd serves clients on the loopback alone, to the API server's
        // client certificate.
        let etcdctl = etcdctl(&["member", "list"]);
        assert_eq!(
            etcdctl.argv()[1..5],
            [
                "--endpoints=https://127.0.0.1:2379",
                "--cacert=/etc/kubernetes/pki/ca.crt",
                "--cert=/etc/kubernetes/pki/apiserver-etcd-client.crt",
                "--key=/etc/kubernetes/pki/apiserver-etcd-client.key"
            ]
        );
        assert!(etcdctl.to_string().ends_with(" member list"));
        assert_eq!(
            images(true).to_string(),
            "ctr --namespace k8s.io images ls -q"
        );
        assert_eq!(
            images(false).to_string(),
            "ctr --namespace k8s.io images list"
        );
        assert_eq!(
            journal_tail("etcd", 15).to_string(),
            "journalctl -u etcd -n 15 --no-pager -o cat"
        );
    }

    #[test]
    fn a_journal_goes_on_from_its_cursor_or_takes_the_recent_lines() {
        let after = journal_json(&["etcd"], &JournalStart::Cursor("s=1".into()));
        assert_eq!(
            after.argv()[6..],
            ["--unit=etcd.service", "--after-cursor=s=1"]
        );
        let recent = journal_json(
            &["etcd", "kubelet"],
            &JournalStart::Recent {
                seconds: Some(0),
                lines: Some(20),
            },
        );
        assert_eq!(
            recent.argv()[6..],
            [
                "--unit=etcd.service",
                "--unit=kubelet.service",
                "--since=-1s",
                "--lines=20"
            ]
        );
        let all = journal_json(
            &["etcd"],
            &JournalStart::Recent {
                seconds: None,
                lines: None,
            },
        );
        assert_eq!(all.argv().len(), 7);
    }

    #[test]
    fn the_ports_asked_are_in_the_probe() {
        let probe = listening(&[5000, 5001]).to_string();
        assert!(
            probe.starts_with("bash -c for port in 5000 5001; do"),
            "{probe}"
        );
    }
}
