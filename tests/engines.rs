//! Which engine berth talks to, against the real one: found through a
//! Docker context of the test's own, `--engine` and `BERTH_ENGINE`, said by
//! `version` and `status`; an engine that does not answer, one berth cannot
//! talk to yet, and a context that is not there are each named with what to
//! do. An engine over TLS (the local one behind a TLS listener of the
//! test's own) runs a cluster, and one whose certificate the CA did not
//! sign is named.

mod common;

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
    let ssh = [("BERTH_ENGINE", "ssh://me@buildbox")];
    let (code, _, stderr) = run(&env, &ssh, &["profile", "list"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("over ssh are not supported yet"),
        "{stderr}"
    );
    assert!(stderr.contains("ssh -nNT -L"), "{stderr}");
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
