//! Which engine berth talks to, against the real one: found through a
//! Docker context of the test's own, `--engine` and `BERTH_ENGINE`, said by
//! `version` and `status`; an engine that does not answer, one berth cannot
//! talk to yet, and a context that is not there are each named with what to
//! do.

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
