//! Which engine berth talks to, against the real one: found through a
//! Docker context of the test's own, `--engine` and `BERTH_ENGINE`, said by
//! `version` and `status`; an engine that does not answer, one berth cannot
//! talk to yet, and a context that is not there are each named with what to
//! do. An engine over TLS (the local one behind a TLS listener of the
//! test's own) runs a cluster, and one whose certificate the CA did not
//! sign is named. An engine as another machine's (a second dockerd in a
//! network namespace of the test's own) has its disk read there, and runs
//! a cluster of three control planes, made over TLS, whose API server,
//! NodePorts and LoadBalancer Services answer at that engine's address;
//! over ssh it gets a worker and is deleted. One stopped mid-start is
//! named, and delete finishes once it is back.

mod common;

use common::ns_engine::NsEngine;
use common::{Env, json};
use sha2::Digest as _;

/// A Docker CLI configuration whose current context `local` points at the
/// engine's local socket, as `docker context create` writes it.
fn docker_config(dir: &std::path::Path) {
    let id = hex::encode(sha2::Sha256::digest(b"local"));
    let meta = dir.join("contexts/meta").join(id);
    std::fs::create_dir_all(&meta).unwrap();
    let context = serde_json::json!({
        "Name": "local",
        "Metadata": {},
        "Endpoints": {"docker": {"Host": "unix:///var/run/docker.sock", "SkipTLSVerify": false}}
    });
    std::fs::write(meta.join("meta.json"), context.to_string()).unwrap();
    let config = serde_json::json!({"currentContext": "local"});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// berth with `vars` set besides the test's environment: (code, stdout, stderr).
fn run(env: &Env, vars: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    env.run_in(vars, args, "")
}

/// `run` with a namespace engine's variables (`NsEngine::vars`).
fn run_on(env: &Env, vars: &[(&str, String)], args: &[&str]) -> (i32, String, String) {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run(env, &vars, args)
}

#[test]
fn the_engine_is_found_as_the_docker_cli_finds_it_and_said_where() {
    if std::env::var_os("DOCKER_HOST").is_some() {
        common::skipped(
            "tests/engines.rs",
            "DOCKER_HOST is set, which comes before a context",
        );
        return;
    }
    let env = Env::new();
    let (_, out, _) = run(&env, &[], &["version", "-o", "json"]);
    let engine = &json(&out)["engine"];
    assert_eq!(engine["host"], "unix:///var/run/docker.sock", "{engine}");
    assert_eq!(engine["found"]["by"], "local_socket", "{engine}");

    // A cluster's whole life through the current Docker context.
    let config = tempfile::tempdir().unwrap();
    docker_config(config.path());
    let dir = config.path().display().to_string();
    let by_context = [("DOCKER_CONFIG", dir.as_str())];
    let (_, out, _) = run(&env, &by_context, &["version", "-o", "json"]);
    let engine = &json(&out)["engine"];
    assert_eq!(
        engine["found"],
        serde_json::json!({"by": "context", "name": "local"})
    );
    let (code, _, stderr) = run(&env, &by_context, &["start", "-p", "eng", "--no-storage"]);
    assert_eq!(code, 0, "{stderr}");
    let (_, out, _) = run(&env, &by_context, &["status", "-p", "eng", "-o", "json"]);
    assert_eq!(json(&out)["engine"]["host"], "unix:///var/run/docker.sock");

    // Its commands use the engine it was made on, whatever is current.
    let (_, out, _) = run(&env, &[], &["status", "-p", "eng"]);
    assert!(
        out.contains("engine:      unix:///var/run/docker.sock (from the profile, made on it)"),
        "{out}"
    );
    // Another engine at that address (the profile's record of its engine
    // changed, as when the engine there was replaced) is not taken for it.
    let file = env.berth_home().join("profiles/eng/profile.json");
    let made = std::fs::read_to_string(&file).unwrap();
    let mut other: serde_json::Value = serde_json::from_str(&made).unwrap();
    other["engine"]["id"] = "ANOTHER:ENGINE".into();
    std::fs::write(&file, other.to_string()).unwrap();
    for args in [
        &["status", "-p", "eng"][..],
        &["stop", "-p", "eng"],
        &["delete", "-p", "eng"],
    ] {
        let (code, _, stderr) = run(&env, &[], args);
        assert_eq!(code, 3, "{args:?}: {stderr}");
        assert!(
            stderr.contains("made on another engine") && stderr.contains("ANOTHER:ENGINE"),
            "{stderr}"
        );
    }
    std::fs::write(&file, made).unwrap();

    // --engine, then BERTH_ENGINE, come before the context.
    let flag = ["--engine", "unix:///var/run/docker.sock"];
    let (_, out, _) = run(
        &env,
        &by_context,
        &[&["status", "-p", "eng"][..], &flag].concat(),
    );
    assert!(out.contains("(from --engine)"), "{out}");
    let both = [
        by_context[0],
        ("BERTH_ENGINE", "unix:///var/run/docker.sock"),
    ];
    let (code, out, _) = run(&env, &both, &["profile", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("eng"), "{out}");
    let (code, _, stderr) = run(&env, &by_context, &["delete", "-p", "eng"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(env.leftovers("eng").is_empty());

    // What cannot be reached says why and what to do; nothing is made.
    let nowhere = [("BERTH_ENGINE", "unix:///nonexistent/docker.sock")];
    let (code, _, stderr) = run(&env, &nowhere, &["start", "-p", "eng"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("/nonexistent/docker.sock") && stderr.contains("--engine"),
        "{stderr}"
    );
    let ssh = [("BERTH_ENGINE", "ssh://me@buildbox.invalid")];
    let (code, _, stderr) = run(&env, &ssh, &["profile", "list"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("ssh to me@buildbox.invalid ended")
            && stderr.contains("buildbox.invalid")
            && stderr.contains("without a prompt"),
        "{stderr}"
    );
    let gone = [("DOCKER_CONFIG", dir.as_str()), ("DOCKER_CONTEXT", "gone")];
    let (code, _, stderr) = run(&env, &gone, &["profile", "list"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("Docker context gone") && stderr.contains("docker context ls"),
        "{stderr}"
    );
    assert!(!env.berth_home().join("profiles/eng").exists());
}

/// The engine's own socket behind a listener on 127.0.0.1 that speaks TLS
/// and asks for a client certificate of its CA, as `dockerd --tlsverify`
/// does (socat, with certificates the test makes); stopped when dropped.
struct TlsEngine {
    certs: tempfile::TempDir,
    port: u16,
    listener: std::process::Child,
}

impl TlsEngine {
    fn start() -> Self {
        let certs = tempfile::tempdir().unwrap();
        let ca = common::TestCa::new();
        let (server, server_key) = ca.server("127.0.0.1");
        let (client, client_key) = ca.client("berth-test");
        let dir = certs.path();
        for (name, pem) in [
            ("ca.pem", &ca.pem),
            ("server.pem", &server),
            ("server-key.pem", &server_key),
            ("cert.pem", &client),
            ("key.pem", &client_key),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        let port = common::free_port();
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={0}/server.pem,key={0}/server-key.pem,cafile={0}/ca.pem,verify=1",
            dir.display()
        );
        // socat's OpenSSL, asking for client certificates, fails a client
        // that resumes a session ("session id context uninitialized"), as
        // berth's second connection does; dockerd's Go TLS does not. So
        // this listener hands out no session to resume.
        std::fs::write(
            dir.join("openssl.cnf"),
            "openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n\
             [sys]\nNumTickets = 0\nOptions = -SessionTicket\n",
        )
        .unwrap();
        let listener = std::process::Command::new("socat")
            .args([&listen, "UNIX-CONNECT:/var/run/docker.sock"])
            .env("OPENSSL_CONF", dir.join("openssl.cnf"))
            // The refused handshake below is logged there; the test says it.
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat is installed by scripts/setup");
        common::eventually(std::time::Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.to_string())
        });
        TlsEngine {
            certs,
            port,
            listener,
        }
    }

    fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsEngine {
    fn drop(&mut self) {
        let _ = self.listener.kill();
        let _ = self.listener.wait();
    }
}

#[test]
fn an_engine_over_tls_runs_a_cluster_and_an_unknown_certificate_is_named() {
    if std::env::var_os("DOCKER_HOST").is_some() {
        common::skipped(
            "tests/engines.rs (TLS)",
            "DOCKER_HOST is set: the test puts the local engine behind TLS",
        );
        return;
    }
    let engine = TlsEngine::start();
    let env = Env::new();
    let host = engine.host();
    let certs = engine.certs.path().display().to_string();
    let by_tls = [
        ("DOCKER_HOST", host.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", certs.as_str()),
    ];
    let (code, out, stderr) = run(&env, &by_tls, &["version", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let found = &json(&out)["engine"];
    assert_eq!(found["host"], host.as_str(), "{found}");
    assert_eq!(found["found"]["by"], "docker_host", "{found}");

    let (code, _, stderr) = run(&env, &by_tls, &["start", "-p", "tls", "--no-storage"]);
    assert_eq!(code, 0, "{stderr}");
    // Later commands reach it through the profile's record, TLS files
    // included, with nothing in the environment.
    let (code, out, stderr) = run(&env, &[], &["status", "-p", "tls"]);
    assert_eq!(code, 0, "{out}{stderr}");
    assert!(
        out.contains(&format!(
            "engine:      {host} (from the profile, made on it)"
        )),
        "{out}"
    );
    let nodes = env.kubectl("tls", &["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.trim(), "node/tls");

    // A CA that did not sign the engine's certificate: the engine is not
    // trusted, said so, and nothing is made.
    let stranger = tempfile::tempdir().unwrap();
    let other = common::TestCa::new();
    let (client, client_key) = other.client("stranger");
    std::fs::write(stranger.path().join("ca.pem"), &other.pem).unwrap();
    std::fs::write(stranger.path().join("cert.pem"), client).unwrap();
    std::fs::write(stranger.path().join("key.pem"), client_key).unwrap();
    let strange = stranger.path().display().to_string();
    let untrusted = [
        ("DOCKER_HOST", host.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", strange.as_str()),
    ];
    let (code, _, stderr) = run(&env, &untrusted, &["start", "-p", "other"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the TLS handshake with the engine at {host} failed"
        )) && stderr.contains("invalid peer certificate")
            && stderr.contains("ca.pem"),
        "{stderr}"
    );
    assert!(!env.berth_home().join("profiles/other").exists());

    let (code, _, stderr) = run(&env, &[], &["delete", "-p", "tls"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(env.leftovers("tls").is_empty());
}

/// Two more Services in front of `web_pod_and_service`'s pod: NodePort
/// 30080 and a LoadBalancer on port 80.
const NODE_PORT_AND_LOAD_BALANCER: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

/// A namespace engine given this machine's node image (a user's engine
/// pulls the image's base; this one can pull nothing), and a test
/// environment; `None`, said, where this machine cannot make one.
fn engine_with_node_image(what: &str) -> Option<(NsEngine, Env)> {
    if let Err(why) = NsEngine::possible() {
        common::skipped(&format!("tests/engines.rs ({what})"), &why);
        return None;
    }
    let engine = NsEngine::start();
    let env = Env::new();
    let image = env.ok(&["node-image", "build"]);
    engine.load(image.trim());
    Some((engine, env))
}

/// A web pod answering `page` behind a NodePort (30080) and a
/// LoadBalancer Service, its image loaded into `profile` from an archive,
/// as a user of an engine elsewhere loads an image of this machine's.
fn web_from_an_archive(env: &Env, profile: &str, page: &str) {
    let tag = "berth-test/busybox:remote";
    let busybox = common::shared_busybox(tag);
    let archive = tempfile::NamedTempFile::new().unwrap();
    let saved = common::block_on(async {
        let docker = berth_engine::Docker::connect().await.unwrap();
        docker.save_images(&[tag.to_string()]).await.unwrap()
    });
    std::fs::write(archive.path(), saved).unwrap();
    let path = archive.path().display().to_string();
    env.ok(&["image", "load", "-p", profile, "--archive", &path]);
    drop(busybox);
    env.apply(profile, &common::web_pod_and_service(tag, page));
    env.apply(profile, NODE_PORT_AND_LOAD_BALANCER);
    env.wait_ready(profile, "web");
}

#[test]
fn an_engine_on_another_host_serves_the_cluster_at_that_hosts_address() {
    let Some((mut engine, env)) = engine_with_node_image("another host") else {
        return;
    };
    let address = engine.address.clone();
    let remote = engine.vars();

    // A host folder is not on the engine's host: refused, nothing made.
    let (code, _, stderr) = run_on(
        &env,
        &remote,
        &["start", "-p", "mnt", "--mount", "/tmp:/data"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("runs on another machine"), "{stderr}");
    assert!(!env.berth_home().join("profiles/mnt").exists());

    // Its disk is read on its host: more than it has free is refused
    // before anything is made.
    let mut greedy = remote.clone();
    greedy.push(("BERTH_MIN_FREE_MIB", "1000000000".into()));
    let (code, _, stderr) = run_on(&env, &greedy, &["start", "-p", "greedy"]);
    assert_eq!(code, 1, "{stderr}");
    let root = engine.data_root();
    assert!(
        stderr.contains(&format!("MiB are free on {root}, where the Docker engine")),
        "{stderr}"
    );
    assert!(!env.berth_home().join("profiles/greedy").exists());
    assert!(engine.leftovers().is_empty(), "{:?}", engine.leftovers());

    let node_port = common::free_port().to_string();
    let ports = format!("{node_port}:30080");
    let start = [
        "start",
        "-p",
        "far",
        "--control-planes",
        "3",
        "--no-storage",
        "--ports",
        &ports,
    ];
    let (code, _, stderr) = run_on(&env, &remote, &start);
    assert_eq!(code, 0, "{stderr}");
    // Nothing of it on this machine's engine; the kubeconfig points at the
    // engine's host, whose address the API server's certificate holds.
    assert!(
        env.leftovers("far").is_empty(),
        "{:?}",
        env.leftovers("far")
    );
    let kubeconfig = std::fs::read_to_string(&env.kubeconfig).unwrap();
    assert!(
        kubeconfig.contains(&format!("server: https://{address}:")),
        "{kubeconfig}"
    );
    let nodes = env.kubectl("far", &["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.split_whitespace().count(), 3, "{nodes}");

    // An image from an archive reaches the remote nodes; a pod of it
    // answers through a NodePort and a LoadBalancer at the engine's address.
    web_from_an_archive(&env, "far", "far-away");
    let port: u16 = node_port.parse().unwrap();
    common::eventually(
        std::time::Duration::from_secs(30),
        || match common::http_get_at(&address, port, None) {
            Ok(page) if page == "far-away" => Ok(()),
            other => Err(format!("NodePort at {address}:{port}: {other:?}")),
        },
    );
    common::eventually(std::time::Duration::from_secs(60), || {
        let ip = env.kubectl(
            "far",
            &[
                "get",
                "svc",
                "web-lb",
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}",
            ],
        );
        match common::http_get_at(&address, 80, None) {
            Ok(page) if page == "far-away" && ip == address => Ok(()),
            other => Err(format!("LoadBalancer at {ip}: {other:?}")),
        }
    });

    // The same engine over ssh: named as the current engine, it is the
    // profile's (the same engine ID), and drives it as TLS did.
    let by_ssh = engine.ssh_vars();
    let (code, out, stderr) = run_on(&env, &by_ssh, &["status", "-p", "far"]);
    assert_eq!(code, 0, "{out}{stderr}");
    assert!(
        out.contains(&format!("ssh://root@{address}/")) && out.contains("container:   Running"),
        "{out}"
    );
    let (code, _, stderr) = run_on(&env, &by_ssh, &["node", "add", "-p", "far"]);
    assert_eq!(code, 0, "{stderr}");
    common::eventually(std::time::Duration::from_secs(120), || {
        let ready = env.kubectl(
            "far",
            &[
                "get",
                "nodes",
                "-o",
                "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}",
            ],
        );
        match ready.split_whitespace().filter(|s| *s == "True").count() {
            4 => Ok(()),
            _ => Err(format!("not 4 nodes Ready: {ready}")),
        }
    });

    // What goes through the engine's API or the API server works over ssh
    // as it does here: a command in a node, the logs' export, a Service
    // served on this machine.
    let in_node = [
        "ssh",
        "-p",
        "far",
        "--node",
        "far-m04",
        "--",
        "cat",
        "/etc/hostname",
    ];
    let (code, out, stderr) = run_on(&env, &by_ssh, &in_node);
    assert_eq!((code, out.trim()), (0, "far-m04"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("far.tar.gz");
    let export = ["logs", "-p", "far", "--export", archive.to_str().unwrap()];
    let (code, _, stderr) = run_on(&env, &by_ssh, &export);
    assert_eq!(code, 0, "{stderr}");
    let files = common::unpack(&archive);
    for part in [
        "far/objects.txt",
        "far/nodes/far-m03/journal/kube-apiserver.log",
        "far/nodes/far-m04/inspect.json",
        "far/nodes/far-m04/journal/kubelet.log",
    ] {
        assert!(
            files.iter().any(|(name, _)| name == part),
            "{part} not exported: {:?}",
            files
                .iter()
                .map(|(name, content)| match name.ends_with("MISSING.txt") {
                    true => format!("{name}: {content}"),
                    false => name.clone(),
                })
                .collect::<Vec<_>>()
        );
    }
    let objects = &files
        .iter()
        .find(|(n, _)| n == "far/objects.txt")
        .unwrap()
        .1;
    assert!(objects.contains("far-m04"), "{objects}");
    let mut service = env.spawn_in(&by_ssh, &["service", "web-lb", "-p", "far", "--url"]);
    let url = service.line();
    let port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a local URL: {url:?}"));
    assert_eq!(common::http_get(port, None).as_deref(), Ok("far-away"));
    drop(service);

    let (code, _, stderr) = run_on(&env, &by_ssh, &["delete", "-p", "far"]);
    assert_eq!(code, 0, "{stderr}");
    let left = engine.leftovers();
    assert!(left.is_empty(), "left on the engine: {left:?}");
}

/// Waits until no `berth ssh-forward-watch -p PROFILE` runs: it ends
/// within seconds of its ssh.
fn no_watcher_of(profile: &str) {
    let wanted = format!("ssh-forward-watch\0-p\0{profile}\0");
    common::eventually(std::time::Duration::from_secs(15), || {
        let running = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .any(|c| String::from_utf8_lossy(&c).contains(&wanted));
        match running {
            false => Ok(()),
            true => Err(format!("the watcher of {profile} still runs")),
        }
    });
}

#[test]
fn an_engine_whose_host_lets_in_only_ssh_has_the_clusters_ports_forwarded_here() {
    let Some((mut engine, env)) = engine_with_node_image("ssh forward") else {
        return;
    };
    let address = engine.address.clone();

    // An engine not reached over ssh: refused, nothing made.
    let (code, _, stderr) = run_on(
        &env,
        &engine.vars(),
        &["start", "-p", "near", "--ssh-forward"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not reached over ssh"), "{stderr}");
    assert!(!env.berth_home().join("profiles/near").exists());

    let by_ssh = engine.ssh_vars();
    env.use_engine(by_ssh.clone());
    let node_port = common::free_port();
    let ports = format!("{node_port}:30080");
    env.ok(&[
        "start",
        "-p",
        "near",
        "--no-storage",
        "--ssh-forward",
        "--ports",
        &ports,
    ]);
    let status = json(&env.ok(&["status", "-p", "near", "-o", "json"]));
    assert_eq!(status["ssh_forward"], "running", "{status}");
    let api_port = common::port_of(status["endpoint"].as_str().unwrap());
    assert_eq!(
        status["endpoint"],
        format!("https://127.0.0.1:{api_port}"),
        "{status}"
    );
    // Published on the engine host's loopback alone: its address does not
    // answer, this machine's loopback does, through ssh.
    let at_host = |port: u16| {
        let to = std::net::SocketAddr::new(address.parse().unwrap(), port);
        std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(2)).is_ok()
    };
    assert!(!at_host(api_port), "the API server answers at {address}");
    let nodes = env.kubectl("near", &["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.trim(), "node/near");
    web_from_an_archive(&env, "near", "near-by");
    let node_port_answers = || {
        common::eventually(
            std::time::Duration::from_secs(30),
            || match common::http_get(node_port, None) {
                Ok(page) if page == "near-by" => Ok(()),
                other => Err(format!("NodePort at 127.0.0.1:{node_port}: {other:?}")),
            },
        )
    };
    node_port_answers();
    assert!(!at_host(node_port), "the NodePort answers at {address}");
    // A LoadBalancer Service answers here on its own port (80), forwarded
    // by the watcher beside the ssh as the Service appears.
    let load_balancer_answers = || {
        common::eventually(
            std::time::Duration::from_secs(60),
            || match common::http_get(80, None) {
                Ok(page) if page == "near-by" => Ok(()),
                other => Err(format!("LoadBalancer at 127.0.0.1:80: {other:?}")),
            },
        )
    };
    load_balancer_answers();

    // The forward runs while the cluster does: stop ends it, start starts
    // it again, and a start of the running cluster replaces a lost one.
    env.ok(&["stop", "-p", "near"]);
    no_watcher_of("near");
    let status = json(&env.run(&["status", "-p", "near", "-o", "json"]).1);
    assert!(
        status["ssh_forward"].as_str().unwrap().starts_with("down"),
        "{status}"
    );
    assert!(common::http_get(api_port, None).is_err(), "still forwarded");
    env.ok(&["start", "-p", "near"]);
    node_port_answers();
    let control = env.berth_home().join("profiles/near/ssh-forward.sock");
    let ssh = &by_ssh.iter().find(|(k, _)| *k == "BERTH_SSH").unwrap().1;
    let ended = std::process::Command::new(ssh)
        .args([
            "-S",
            control.to_str().unwrap(),
            "-O",
            "exit",
            &format!("root@{address}"),
        ])
        .output()
        .unwrap();
    assert!(ended.status.success(), "{ended:?}");
    common::eventually(
        std::time::Duration::from_secs(10),
        || match common::http_get(node_port, None) {
            Err(_) => Ok(()),
            Ok(page) => Err(format!("still forwarded: {page}")),
        },
    );
    env.ok(&["start", "-p", "near"]);
    node_port_answers();
    assert_eq!(
        env.kubectl("near", &["get", "nodes", "-o", "name"]).trim(),
        "node/near"
    );
    load_balancer_answers();
    // A Service deleted: its port is forwarded no more.
    env.kubectl("near", &["delete", "service", "web-lb"]);
    common::eventually(
        std::time::Duration::from_secs(30),
        || match common::http_get(80, None) {
            Err(_) => Ok(()),
            Ok(page) => Err(format!("port 80 still forwarded: {page}")),
        },
    );

    // Delete ends it too, and leaves nothing on the engine.
    env.ok(&["delete", "-p", "near"]);
    assert!(
        common::http_get(node_port, None).is_err(),
        "still forwarded"
    );
    assert!(!control.exists());
    no_watcher_of("near");
    let left = engine.leftovers();
    assert!(left.is_empty(), "left on the engine: {left:?}");
}

#[test]
fn an_engine_that_stops_mid_start_is_named_and_delete_finishes_once_it_is_back() {
    let Some((mut engine, env)) = engine_with_node_image("an engine that stops") else {
        return;
    };
    let start = env
        .command(assert_cmd::cargo::cargo_bin("berth"))
        .envs(engine.vars())
        .args(["start", "-p", "cut", "--no-storage"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stopped as soon as the profile's network is there, before its node
    // is made (once the node runs, a start needs the engine no more: its
    // processes outlive the daemon).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !engine.api("GET", "/networks").unwrap().contains("cut") {
        assert!(std::time::Instant::now() < deadline, "no network made");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    engine.stop_daemon();
    let out = start.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let host = engine.host();
    assert!(
        stderr.contains(&format!("cannot reach the Docker engine at {host}"))
            && stderr.contains("then `berth delete -p cut` removes what is left"),
        "{stderr}"
    );

    // Once it is back, delete (on that engine, as start was) finishes.
    engine.start_daemon();
    let (code, _, deleted) = run_on(&env, &engine.vars(), &["delete", "-p", "cut"]);
    assert_eq!(code, 0, "{deleted}");
    let left = engine.leftovers();
    assert!(
        left.is_empty(),
        "left on the engine: {left:?}\nstart: {stderr}\ndelete: {deleted}"
    );
    assert!(!env.berth_home().join("profiles/cut").exists());
}
