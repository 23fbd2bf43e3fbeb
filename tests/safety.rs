//! What CI pipelines need of a throwaway cluster tool, against the real
//! engine: interrupted and killed starts leave nothing (or nothing that
//! `delete` does not remove), parallel commands keep the kubeconfig right,
//! bad files are refused and left alone, and the defaults are private.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use berth_engine::{Command, Docker};
use common::{Env, block_on, json};

const FOREIGN: &str = "apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: 'https://prod.example:6443'}
users:
- name: prod
  user: {token: secret}
contexts:
- name: prod
  context: {cluster: prod, user: prod}
current-context: prod
";

fn with_foreign_kubeconfig() -> Env {
    let env = Env::new();
    std::fs::create_dir_all(env.kubeconfig.parent().unwrap()).unwrap();
    std::fs::write(&env.kubeconfig, FOREIGN).unwrap();
    env
}

fn kubeconfig(env: &Env) -> yaml_serde::Value {
    yaml_serde::from_str(&std::fs::read_to_string(&env.kubeconfig).unwrap()).unwrap()
}

fn context_names(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = kubeconfig(env)["contexts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Nothing of the profile is left: no labelled resource, no state, no
/// kubeconfig entry, and the current context is the user's again.
fn nothing_left(env: &Env, profile: &str, when: &str) {
    assert_eq!(env.leftovers(profile), Vec::<String>::new(), "{when}");
    let state = env.home.path().join("berth/profiles").join(profile);
    assert!(!state.exists(), "{when}: state {} is left", state.display());
    assert_eq!(context_names(env), ["prod"], "{when}");
    assert_eq!(kubeconfig(env)["current-context"], "prod", "{when}");
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Steps of a start to cut in, as its plain progress lines name them:
/// while the node container is made, while it boots, and while berth
/// waits for readiness.
const STEPS: [&str; 3] = [
    "Creating the node",
    "Waiting for the API server",
    "Waiting for node",
];

/// Sends `sig` to a `start` of `profile` as soon as it begins `step`, and
/// checks from its progress that this is the step it was cut in (begun,
/// never finished); its exit code.
fn cut_start(env: &Env, profile: &str, step: &str, sig: &str) -> Option<i32> {
    use std::io::{BufRead, Read};
    let mut start = env
        .command(assert_cmd::cargo::cargo_bin("berth"))
        .args(["start", "-p", profile])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut progress = std::io::BufReader::new(start.stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        if progress.read_line(&mut line).unwrap() == 0 {
            let _ = start.kill();
            panic!("the start ended before {step:?}:\n{said}");
        }
        said.push_str(&line);
        if line.starts_with(&format!("- {step}")) {
            break;
        }
    }
    signal(start.id(), sig);
    let code = start.wait().unwrap().code();
    progress.read_to_string(&mut said).unwrap();
    let unfinished = said
        .lines()
        .filter_map(|l| l.strip_prefix("- ")?.strip_suffix(" ..."))
        .find(|title| !said.lines().any(|l| l.starts_with(&format!("ok {title} "))));
    assert!(
        unfinished.is_some_and(|title| title.starts_with(step)),
        "SIG{sig} meant for {step:?} cut {unfinished:?}:\n{said}"
    );
    code
}

#[test]
fn an_interrupted_start_removes_all_it_made_and_restores_the_context() {
    let env = with_foreign_kubeconfig();
    // SIGTERM, as CI runners send it, is handled as SIGINT is.
    let cuts = STEPS
        .map(|step| (step, "INT"))
        .into_iter()
        .chain([(STEPS[1], "TERM")]);
    for (step, sig) in cuts {
        let code = cut_start(&env, "e2e-int", step, sig);
        let when = format!("SIG{sig} in {step:?}");
        assert_eq!(code, Some(130), "{when}");
        nothing_left(&env, "e2e-int", &when);
    }

    // --keep-on-failure keeps a failed start's cluster to look into; delete
    // then removes it and gives the context back.
    let (code, _, stderr) = env.run(&[
        "start",
        "-p",
        "e2e-int",
        "--wait",
        "1s",
        "--keep-on-failure",
    ]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("--keep-on-failure"), "{stderr}");
    let container = format!("container {}", env.names("e2e-int").container("e2e-int"));
    assert!(env.leftovers("e2e-int").contains(&container));
    assert!(env.home.path().join("berth/profiles/e2e-int").exists());
    env.ok(&["delete", "-p", "e2e-int"]);
    nothing_left(&env, "e2e-int", "delete after --keep-on-failure");
}

#[test]
fn after_a_killed_start_delete_removes_everything_and_a_new_start_works() {
    let env = with_foreign_kubeconfig();
    for step in STEPS {
        cut_start(&env, "e2e-kill", step, "KILL");
        // A profile cut off halfway is listed as Broken with the reason,
        // Stopped when its node was made but not yet started (a `start`
        // then carries on), Running when it was up before the kill, or not
        // at all.
        let listed = json(&env.ok(&["profile", "list", "-o", "json"]));
        let rows = listed.as_array().unwrap();
        assert!(rows.len() <= 1, "{listed}");
        for row in rows {
            assert_eq!(row["name"], "e2e-kill", "{row}");
            match row["status"].as_str() {
                Some("Broken") => assert!(row["reason"].is_string(), "{row}"),
                Some("Running") | Some("Stopped") => {
                    assert!(row["reason"].is_null(), "{row}");
                    let node = env.names("e2e-kill").container("e2e-kill");
                    assert!(
                        env.leftovers("e2e-kill")
                            .contains(&format!("container {node}")),
                        "{row}"
                    );
                }
                _ => panic!("a cut-off start listed as neither Broken, Stopped nor Running: {row}"),
            }
        }
        // The killed start's requests may still be carried out by the
        // engine after it has gone: delete waits for them first.
        let (code, _, stderr) = env.run(&["delete", "-p", "e2e-kill"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("was killed"), "{stderr}");
        nothing_left(&env, "e2e-kill", &format!("kill -9 in {step:?}"));
    }
    env.ok(&["start", "-p", "e2e-kill", "--wait", "3m"]);

    // Private by default: state 0700, keys and kubeconfigs 0600, the API
    // server published on the loopback only.
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let state = env.home.path().join("berth/profiles/e2e-kill");
    for dir in [state.clone(), state.join("pki")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    assert_eq!(mode(&state.join("profile.json")), 0o600);
    assert_eq!(mode(&env.kubeconfig), 0o600);
    for key in std::fs::read_dir(state.join("pki")).unwrap() {
        let key = key.unwrap().path();
        if key.extension().is_some_and(|e| e == "key") {
            assert_eq!(mode(&key), 0o600, "{}", key.display());
        }
    }
    let addresses = block_on(async {
        let docker = Docker::connect().await.unwrap();
        docker
            .published_addresses(&env.names("e2e-kill").container("e2e-kill"))
            .await
            .unwrap()
    });
    assert_eq!(addresses, ["127.0.0.1"]);
    env.ok(&["delete", "-p", "e2e-kill"]);
    nothing_left(&env, "e2e-kill", "delete");
}

#[test]
fn eight_profiles_start_and_delete_at_once_and_the_kubeconfig_stays_right() {
    let env = with_foreign_kubeconfig();
    let names: Vec<String> = (1..=8).map(|i| format!("e2e-par-{i}")).collect();
    let run_all = |verb: &[&str]| {
        let mut running: Vec<_> = names
            .iter()
            .map(|n| {
                let mut args = verb.to_vec();
                args.extend(["-p", n.as_str()]);
                (n.clone(), env.spawn(&args))
            })
            .collect();
        for (name, process) in &mut running {
            let code = process.0.wait().unwrap().code();
            assert_eq!(code, Some(0), "{verb:?} {name}");
        }
    };
    run_all(&["start", "--wait", "0", "--keep-context"]);
    let mut want: Vec<String> = names.iter().map(|n| env.names(n).context()).collect();
    want.push("prod".into());
    want.sort();
    assert_eq!(context_names(&env), want);
    let listed = json(&env.ok(&["profile", "list", "-o", "json"]));
    assert_eq!(listed.as_array().unwrap().len(), 8, "{listed}");
    run_all(&["delete"]);
    for name in &names {
        nothing_left(&env, name, "parallel delete");
    }

    // Two starts of one profile at once: one creates, the other waits for
    // it and finds it running. Never two clusters.
    let mut first = env.spawn(&["start", "-p", "e2e-same", "--wait", "0"]);
    let mut second = env.spawn(&["start", "-p", "e2e-same", "--wait", "0"]);
    assert_eq!(first.0.wait().unwrap().code(), Some(0));
    assert_eq!(second.0.wait().unwrap().code(), Some(0));
    let names = env.names("e2e-same");
    let containers: Vec<String> = env
        .leftovers("e2e-same")
        .into_iter()
        .filter(|r| r.starts_with("container "))
        .collect();
    // One node, and the one LoadBalancer controller beside it.
    assert_eq!(
        containers,
        [
            format!("container {}", names.container("e2e-same")),
            format!("container {}", names.service_lb()),
        ],
    );
    env.ok(&["delete", "-p", "e2e-same"]);
}

#[test]
fn unreadable_files_are_refused_with_their_exit_code_and_left_as_they_are() {
    let env = Env::new();
    // A kubeconfig that is not YAML: nothing is made, the file is untouched.
    std::fs::create_dir_all(env.kubeconfig.parent().unwrap()).unwrap();
    let broken = "clusters: [unclosed\n";
    std::fs::write(&env.kubeconfig, broken).unwrap();
    let started = Instant::now();
    let (code, _, stderr) = env.run(&["start", "-p", "e2e-files"]);
    assert_eq!(code, 2, "{stderr}");
    let what = format!(
        "the kubeconfig {} cannot be parsed",
        env.kubeconfig.display()
    );
    assert!(
        stderr.contains(&what) && stderr.contains("hint: fix the file"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "refused late");
    assert_eq!(std::fs::read_to_string(&env.kubeconfig).unwrap(), broken);
    assert_eq!(env.leftovers("e2e-files"), Vec::<String>::new());
    std::fs::remove_file(&env.kubeconfig).unwrap();

    // A profile file cut in half: every command says so and leaves it.
    env.ok(&["start", "-p", "e2e-files", "--wait", "0"]);
    let file = env
        .home
        .path()
        .join("berth/profiles/e2e-files/profile.json");
    let whole = std::fs::read_to_string(&file).unwrap();
    let half = &whole[..whole.len() / 2];
    std::fs::write(&file, half).unwrap();
    for args in [
        &["status", "-p", "e2e-files"][..],
        &["start", "-p", "e2e-files"],
        &["stop", "-p", "e2e-files"],
    ] {
        let (code, _, stderr) = env.run(args);
        assert_eq!(code, 5, "{args:?}: {stderr}");
        assert!(
            stderr.contains("profile.json cannot be read: ")
                && stderr.contains("it was left as it is")
                && stderr.contains("berth delete -p e2e-files"),
            "{args:?}: {stderr}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), half, "{args:?}");
    }
    let listed = json(&env.ok(&["profile", "list", "-o", "json"]));
    assert_eq!(listed[0]["status"], "Broken", "{listed}");
    assert!(
        listed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be read"),
        "{listed}"
    );
    // delete repairs it by removing what is left.
    env.ok(&["delete", "-p", "e2e-files"]);
    assert_eq!(env.leftovers("e2e-files"), Vec::<String>::new());
}

#[test]
fn a_node_left_without_its_files_is_filled_again_by_start() {
    // What a start killed between creating a node and filling it leaves.
    let env = Env::new();
    env.ok(&["start", "-p", "e2e-empty", "--wait", "0"]);
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let rm = ["rm", "-f", "/etc/kubernetes/kubelet.yaml"];
        let out = docker
            .exec(
                &env.names("e2e-empty").container("e2e-empty"),
                &Command::new(rm),
            )
            .await
            .unwrap();
        assert_eq!(out.code, 0, "{}", out.stderr);
    });
    env.ok(&["stop", "-p", "e2e-empty"]);
    env.ok(&["start", "-p", "e2e-empty", "--wait", "3m"]);
    let nodes = env.kubectl("e2e-empty", &["get", "nodes", "--no-headers"]);
    assert!(nodes.contains(" Ready "), "{nodes}");
    env.ok(&["delete", "-p", "e2e-empty"]);
}

#[test]
fn a_docker_socket_the_user_may_not_open_is_said_so() {
    // Only root can become another user to provoke it.
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        common::skipped(
            "safety: a Docker socket the user may not open",
            "needs root to run berth as nobody",
        );
        return;
    }
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("berth"))
        .args(["start", "-p", "e2e-perm"])
        .env("BERTH_HOME", home.path().join("berth"))
        .env("KUBECONFIG", home.path().join("kubeconfig"))
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("permission denied on the Docker engine's socket")
            && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!home.path().join("berth/profiles/e2e-perm").exists());
    let names = berth_core::names::Names::new("e2e-perm", &home.path().join("berth"), None);
    assert_eq!(common::resources(&names.filter()), Vec::<String>::new());
}
