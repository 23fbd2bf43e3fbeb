//! A second Docker engine on this machine that berth meets as it meets
//! another machine's: in a network namespace of the test's own, reached
//! over a veth pair at an address inside that namespace, over TLS with
//! certificates the test makes, and over ssh through an sshd in that
//! namespace with keys the test makes. Its own data root, exec root and
//! socket; its containers, data and namespace go when it is dropped, also
//! when the test failed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where the engines keep their data: on the root disk, where overlay2
/// works (the tests' temporary directories may not be).
const ROOT: &str = "/var/lib/berth-test-engines";

pub struct NsEngine {
    /// The namespace's name under /var/run/netns.
    netns: String,
    dir: PathBuf,
    /// The engine's address, in the namespace.
    pub address: String,
    /// ca.pem, cert.pem and key.pem of a client the engine trusts.
    pub certs: tempfile::TempDir,
    dockerd: Option<Child>,
    sshd: Option<Child>,
}

/// Runs `program args`, failing the test with its output when it fails.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NsEngine {
    /// Whether this machine can make one: only root makes namespaces and
    /// runs dockerd.
    pub fn possible() -> Result<(), String> {
        let uid = Command::new("id").arg("-u").output().unwrap().stdout;
        if String::from_utf8_lossy(&uid).trim() != "0" {
            return Err("a second engine in a network namespace needs root".into());
        }
        if std::env::var_os("DOCKER_HOST").is_some() {
            return Err("DOCKER_HOST is set: the node image comes from the local engine".into());
        }
        Ok(())
    }

    /// Starts the engine and waits until it answers.
    pub fn start() -> Self {
        let taken = String::from_utf8(
            Command::new("ip")
                .args(["-4", "-o", "addr"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        // 10.251.N.0/30 per engine: N from the process and a count of the
        // engines it made, so that tests running at once take different ones.
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let n = (20..250)
            .cycle()
            .skip(((std::process::id() + made * 7) % 230) as usize)
            .take(230)
            .find(|n| !taken.contains(&format!(" 10.251.{n}.")))
            .expect("a free 10.251.N.0/30");
        let netns = format!("berth-test-{n}");
        let dir = Path::new(ROOT).join(n.to_string());
        let certs = tempfile::tempdir().unwrap();
        let mut engine = NsEngine {
            netns: netns.clone(),
            dir: dir.clone(),
            address: format!("10.251.{n}.2"),
            certs,
            dockerd: None,
            sshd: None,
        };
        // Left by an earlier run that was killed.
        engine.clean();
        std::fs::create_dir_all(&dir).unwrap();
        let (host_end, ns_end) = (format!("bt{n}h"), format!("bt{n}n"));
        run("ip", &["netns", "add", &netns]);
        run(
            "ip",
            &[
                "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
            ],
        );
        run("ip", &["link", "set", &ns_end, "netns", &netns]);
        run(
            "ip",
            &["addr", "add", &format!("10.251.{n}.1/30"), "dev", &host_end],
        );
        run("ip", &["link", "set", &host_end, "up"]);
        let inside = format!("--net=/var/run/netns/{netns}");
        let address = format!("{}/30", engine.address);
        run(
            "nsenter",
            &[&inside, "ip", "addr", "add", &address, "dev", &ns_end],
        );
        run("nsenter", &[&inside, "ip", "link", "set", &ns_end, "up"]);
        run("nsenter", &[&inside, "ip", "link", "set", "lo", "up"]);
        // The engines of a test reach each other through this machine,
        // as a Swarm's need to: only from veth to veth of the tests'.
        let gateway = format!("10.251.{n}.1");
        run(
            "nsenter",
            &[&inside, "ip", "route", "add", "default", "via", &gateway],
        );
        for rule in engine.forward_rules() {
            let mut insert = vec!["-I"];
            insert.extend(rule.iter().map(String::as_str));
            run("iptables", &insert);
        }

        // One CA and one client for every engine of the process, so that
        // DOCKER_CERT_PATH serves each of several named with --engine.
        static CA: std::sync::OnceLock<(super::TestCa, String, String)> =
            std::sync::OnceLock::new();
        let (ca, client, client_key) = CA.get_or_init(|| {
            let ca = super::TestCa::new();
            let (client, key) = ca.client("berth-test");
            (ca, client, key)
        });
        let (server, server_key) = ca.server(&engine.address);
        for (folder, name, pem) in [
            (engine.certs.path(), "ca.pem", &ca.pem),
            (engine.certs.path(), "cert.pem", client),
            (engine.certs.path(), "key.pem", client_key),
            (dir.as_path(), "server.pem", &server),
            (dir.as_path(), "server-key.pem", &server_key),
        ] {
            std::fs::write(folder.join(name), pem).unwrap();
        }
        engine.start_daemon();
        engine
    }

    /// Starts dockerd in the namespace (again, after `kill_daemon`) and
    /// waits until it answers.
    pub fn start_daemon(&mut self) {
        let dir = self.dir.clone();
        let path = |name: &str| dir.join(name).display().to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("dockerd.log"))
            .unwrap();
        // `nsenter --net`, not `ip netns exec`, which remounts /sys, where
        // dockerd then finds no devices cgroup (../shared/node-facts.md).
        // Docker before 23 takes its ID from /etc/docker/key.json, which
        // every dockerd of this machine would share; an ID of its own makes
        // it another engine to berth, as another machine's is.
        let version = Command::new("dockerd").arg("--version").output().unwrap();
        let config = dir.join("daemon.json");
        let own_key = match String::from_utf8_lossy(&version.stdout).contains("version 20.") {
            true => format!(r#"{{"deprecated-key-path": "{}"}}"#, path("key.json")),
            false => "{}".to_string(),
        };
        std::fs::write(&config, own_key).unwrap();
        let dockerd = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .args([
                "dockerd",
                "--tlsverify",
                "--config-file",
                &path("daemon.json"),
            ])
            .args([
                "--data-root",
                &self.data_root(),
                "--exec-root",
                &path("exec"),
            ])
            .args(["--pidfile", &path("dockerd.pid")])
            .args(["-H", &format!("unix://{}", path("docker.sock"))])
            .args(["-H", &format!("tcp://{}:2376", self.address)])
            .args([
                "--tlscacert",
                &self.certs.path().join("ca.pem").display().to_string(),
            ])
            .args([
                "--tlscert",
                &path("server.pem"),
                "--tlskey",
                &path("server-key.pem"),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd is installed by scripts/setup");
        self.dockerd = Some(dockerd);
        super::eventually(Duration::from_secs(60), || {
            match self.api("GET", "/_ping") {
                Ok(body) if body == "OK" => Ok(()),
                other => Err(format!(
                    "{other:?}; dockerd.log: {}",
                    std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
                )),
            }
        });
    }

    /// Stops dockerd as its host's service manager does (SIGTERM, then
    /// SIGKILL after 30 s), its containers with it. (A daemon killed
    /// outright leaves its containerd unreaped here, where nothing reaps
    /// orphans, and a new daemon then waits on it for ever.)
    pub fn stop_daemon(&mut self) {
        if let Some(mut dockerd) = self.dockerd.take() {
            let _ = Command::new("kill").arg(dockerd.id().to_string()).status();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while dockerd.try_wait().ok().flatten().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = dockerd.kill();
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Where it keeps its data.
    pub fn data_root(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `tcp://ADDRESS:2376`, as a user names the engine.
    pub fn host(&self) -> String {
        format!("tcp://{}:2376", self.address)
    }

    /// The environment that points berth at it, as DOCKER_HOST with TLS.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DOCKER_HOST", self.host()),
            ("DOCKER_TLS_VERIFY", "1".into()),
            ("DOCKER_CERT_PATH", self.certs.path().display().to_string()),
        ]
    }

    /// Starts an sshd in the namespace that lets in a key the test makes,
    /// and returns the environment that points berth at the engine
    /// through it: `ssh://root@ADDRESS/SOCKET`, with `BERTH_SSH` an ssh that uses
    /// the test's key and knows the sshd's host key.
    pub fn ssh_vars(&mut self) -> Vec<(&'static str, String)> {
        let dir = self.dir.clone();
        let path = |name: &str| dir.join(name).display().to_string();
        for key in ["host_key", "id_ed25519"] {
            run(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-f", &path(key)],
            );
        }
        std::fs::copy(dir.join("id_ed25519.pub"), dir.join("authorized_keys")).unwrap();
        let host_key = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        std::fs::write(
            dir.join("known_hosts"),
            format!("{} {}\n", self.address, host_key.join(" ")),
        )
        .unwrap();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "ListenAddress {}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 PermitRootLogin prohibit-password\nAllowStreamLocalForwarding yes\n",
                self.address,
                path("host_key"),
                path("authorized_keys"),
                path("sshd.pid")
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("ssh_config"),
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
                 StrictHostKeyChecking yes\n",
                path("id_ed25519"),
                path("known_hosts")
            ),
        )
        .unwrap();
        let wrapper = dir.join("ssh");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec ssh -F {} \"$@\"\n", path("ssh_config")),
        )
        .unwrap();
        run("chmod", &["755", &path("ssh")]);
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let sshd = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .args(["/usr/sbin/sshd", "-D", "-e", "-f", &path("sshd_config")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd (openssh-server) is installed by scripts/setup");
        self.sshd = Some(sshd);
        super::eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect((self.address.as_str(), 22))
                .map(drop)
                .map_err(|e| {
                    format!(
                        "sshd: {e}; {}",
                        std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
                    )
                })
        });
        vec![
            // The engine's own socket: the sshd shares this machine's files,
            // where /var/run/docker.sock is the other engine's.
            (
                "BERTH_ENGINE",
                format!("ssh://root@{}{}", self.address, path("docker.sock")),
            ),
            ("BERTH_SSH", path("ssh")),
        ]
    }

    /// The engine's API through its socket (the test's way in, not berth's).
    pub fn api(&self, method: &str, path: &str) -> Result<String, String> {
        let socket = self.dir.join("docker.sock");
        let out = Command::new("curl")
            .args(["-sf", "-X", method, "--unix-socket"])
            .arg(socket)
            .arg(format!("http://engine{path}"))
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(format!("curl exit {:?}", out.status.code())),
        }
    }

    /// Copies `image` from the engine of this machine into this one, as a
    /// user's engine would pull it.
    pub fn load(&self, image: &str) {
        let script = format!(
            "set -o pipefail; curl -sf --unix-socket /var/run/docker.sock \
             'http://engine/images/get?names={image}' | curl -sf -T - -X POST \
             -H 'Content-Type: application/x-tar' --unix-socket {} http://engine/images/load",
            self.dir.join("docker.sock").display()
        );
        run("bash", &["-c", &script]);
    }

    /// The names of the containers, volumes and networks it holds, besides
    /// the networks every engine (and every Swarm member) has.
    pub fn resources(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (kind, path, key) in [
            ("container", "/containers/json?all=1", "Names"),
            ("volume", "/volumes", "Name"),
            ("network", "/networks", "Name"),
        ] {
            let body = super::json(&self.api("GET", path).unwrap());
            let list = match kind {
                "volume" => body["Volumes"].clone(),
                _ => body,
            };
            for item in list.as_array().into_iter().flatten() {
                let name = match &item[key] {
                    serde_json::Value::Array(names) => names[0].as_str().unwrap_or_default(),
                    other => other.as_str().unwrap_or_default(),
                };
                // Those every engine has, and a Swarm member's own.
                let engines_own = ["bridge", "host", "none", "ingress", "docker_gwbridge"];
                if !(kind == "network" && engines_own.contains(&name)) {
                    found.push(format!("{kind} {}", name.trim_start_matches('/')));
                }
            }
        }
        found
    }

    /// What a deleted profile left there: everything but the version's
    /// binaries volume, which stays for the next profile, as on every
    /// engine.
    pub fn leftovers(&self) -> Vec<String> {
        self.resources()
            .into_iter()
            .filter(|r| !r.starts_with("volume berth-kubernetes-"))
            .collect()
    }

    /// The rules of the host's DOCKER-USER chain that let this engine's
    /// traffic through to the other test engines' (the FORWARD chain drops
    /// bridged and routed traffic otherwise), without `-I`/`-D`.
    fn forward_rules(&self) -> Vec<Vec<String>> {
        let veth = self.netns.replace("berth-test-", "bt") + "h";
        [["-i", &veth, "-o", "bt+"], ["-i", "bt+", "-o", &veth]]
            .iter()
            .map(|r| {
                std::iter::once("DOCKER-USER")
                    .chain(r.iter().copied())
                    .chain(["-j", "ACCEPT"])
                    .map(String::from)
                    .collect()
            })
            .collect()
    }

    /// Makes `engines` one Docker Swarm: the first its manager (the
    /// others too when there are three or more, so that the Swarm keeps
    /// a majority of managers when one engine is lost).
    pub fn swarm(engines: &[&NsEngine]) {
        let first = engines[0];
        first
            .api_json(
                "POST",
                "/swarm/init",
                &serde_json::json!({"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": first.address}),
            )
            .unwrap();
        let tokens = super::json(&first.api("GET", "/swarm").unwrap())["JoinTokens"].clone();
        let role = if engines.len() >= 3 {
            "Manager"
        } else {
            "Worker"
        };
        for engine in &engines[1..] {
            engine
                .api_json(
                    "POST",
                    "/swarm/join",
                    &serde_json::json!({
                        "ListenAddr": "0.0.0.0:2377",
                        "AdvertiseAddr": engine.address,
                        "RemoteAddrs": [format!("{}:2377", first.address)],
                        "JoinToken": tokens[role],
                    }),
                )
                .unwrap();
        }
    }

    /// The engine's API through its socket with a JSON body.
    pub fn api_json(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<String, String> {
        let socket = self.dir.join("docker.sock");
        let out = Command::new("curl")
            .args([
                "-s",
                "-X",
                method,
                "-H",
                "Content-Type: application/json",
                "--unix-socket",
            ])
            .arg(socket)
            .args(["-d", &body.to_string(), "-w", "\n%{http_code}"])
            .arg(format!("http://engine{path}"))
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match text.rsplit_once('\n') {
            Some((body, code)) if code.starts_with('2') => Ok(body.to_string()),
            _ => Err(format!("{method} {path}: {text}")),
        }
    }

    /// Stops the engine and removes what it held, the namespace and the
    /// veth pair with it; quiet about what is already gone.
    fn clean(&mut self) {
        for rule in self.forward_rules() {
            while Command::new("iptables")
                .arg("-D")
                .args(&rule)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {}
        }
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        // Its containers first, so that none outlives the daemon.
        if self.dockerd.is_some()
            && let Ok(list) = self.api("GET", "/containers/json?all=1")
        {
            for c in super::json(&list).as_array().into_iter().flatten() {
                let id = c["Id"].as_str().unwrap_or_default();
                let _ = self.api("DELETE", &format!("/containers/{id}?force=1&v=1"));
            }
        }
        self.stop_daemon();
        // Mounts under the data root that a killed daemon left.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let dir = self.dir.display().to_string();
        let mut left: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&dir))
            .collect();
        left.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in left {
            let _ = Command::new("umount").args(["-l", mount]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for NsEngine {
    fn drop(&mut self) {
        self.clean();
    }
}
