//! The commands people reach for every day, against a real cluster: logs
//! (components, --since, --tail, --follow, --problems, --export), ssh, and
//! shell completions with live profile and node names.

mod common;

use std::time::{Duration, Instant};

use common::{Env, Parts, eventually};

/// The components every control plane runs, as berth's logs name them.
const COMPONENTS: &[(&str, &[&str])] = &berth_cluster::logs::COMPONENTS;

/// `berth logs` of one component of a single-node profile's node, and `more`.
fn node_logs<'a>(profile: &'a str, component: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "logs",
        "-p",
        profile,
        "--node",
        profile,
        "--component",
        component,
    ];
    args.extend_from_slice(more);
    args
}

#[test]
fn logs_ssh_export_and_completions_on_a_real_cluster() {
    let env = Env::new();
    env.allow_restarts(); // the scheduler is killed below, on purpose
    let profile = "e2e-daily";
    env.ok(&["start", "-p", profile, "--nodes", "2", "--wait", "3m"]);
    let worker = format!("{profile}-m02");

    let dir = tempfile::tempdir().unwrap();
    let mut parts = Parts::default();

    // Each component's journal, cut by --tail, and by --since.
    parts.run(
        "logs of each component, --tail, --since, names it refuses",
        || {
            for (component, _) in &COMPONENTS[..7] {
                // `start` returns once the API server and nodes are ready,
                // when the controller manager may have just been started,
                // with only systemd's two lines in its journal so far.
                eventually(Duration::from_secs(30), || {
                    let out = env.ok(&node_logs(profile, component, &["--tail", "3"]));
                    assert!(!out.contains(" | "), "one source needs no prefix: {out}");
                    match out.lines().count() {
                        3 => Ok(()),
                        n => Err(format!("{component}: {n} lines, not 3:\n{out}")),
                    }
                });
            }
            let both = env.ok(&[
                "logs",
                "-p",
                profile,
                "--component",
                "kubelet",
                "--tail",
                "4",
            ]);
            assert_eq!(both.lines().count(), 4, "{both}");
            assert!(
                both.lines()
                    .all(|l| l.starts_with(profile) && l.contains(" | ")),
                "{both}"
            );
            let recent = env.ok(&[
                "logs",
                "-p",
                profile,
                "--component",
                "apiserver",
                "--since",
                "1h",
            ]);
            assert!(recent.lines().count() > 3, "{recent}");
            std::thread::sleep(Duration::from_secs(2));
            let boot_only = env.ok(&[
                "logs",
                "-p",
                profile,
                "--component",
                "routes",
                "--since",
                "1s",
            ]);
            assert_eq!(boot_only, "", "berth-routes only logs at boot");
            let (code, _, err) = env.run(&["logs", "-p", profile, "--component", "nginx"]);
            assert_eq!(code, 2, "{err}");
            assert!(err.contains("components: etcd, kube-apiserver"), "{err}");
            let (code, _, err) = env.run(&["logs", "-p", profile, "--node", "nope"]);
            assert_eq!(code, 2, "{err}");
            assert!(err.contains("berth node list"), "{err}");
        },
    );

    // --follow shows what happens after it started, until SIGINT: exit 0.
    parts.run("logs --follow until Ctrl-C", || {
        let mut follow = env.spawn(&node_logs(profile, "routes", &["-f"]));
        let lines = {
            use std::io::BufRead as _;
            let stdout = follow.0.stdout.take().unwrap();
            let (send, receive) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    let _ = send.send(line);
                }
            });
            receive
        };
        let mut first = Vec::new();
        while let Ok(line) = lines.recv_timeout(Duration::from_secs(3)) {
            first.push(line);
        }
        assert!(!first.is_empty(), "-f shows the last lines first");
        env.ok(&[
            "ssh",
            "-p",
            profile,
            "--",
            "systemctl",
            "restart",
            "berth-routes",
        ]);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut followed = Vec::new();
        while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            followed.push(line);
            if followed
                .last()
                .is_some_and(|l| l.contains("Finished") || l.contains("Started"))
            {
                break;
            }
        }
        assert!(
            followed.iter().any(|l| l.contains("Routes")),
            "the restart was not followed: {followed:?}"
        );
        unsafe { libc::kill(follow.0.id() as i32, libc::SIGINT) };
        let status = follow.0.wait().unwrap();
        assert_eq!(status.code(), Some(0), "a followed log stopped by Ctrl-C");
    });

    // A component killed: --problems shows it, newest last.
    parts.run("logs --problems shows a killed component", || {
        env.ok(&[
            "ssh",
            "-p",
            profile,
            "--",
            "systemctl",
            "kill",
            "-s",
            "KILL",
            "kube-scheduler",
        ]);
        eventually(Duration::from_secs(30), || {
            let problems = env.ok(&["logs", "-p", profile, "--problems", "--since", "5m"]);
            let last = problems.lines().rfind(|l| l.contains("kube-scheduler"));
            match last {
                Some(l) if l.contains("systemd: kube-scheduler.service") => Ok(()),
                _ => Err(format!(
                    "the killed scheduler is not among the problems:\n{problems}"
                )),
            }
        });
    });

    // ssh: a command's status, stdin and output pass through.
    parts.run("ssh passes status, stdin and output through", || {
        let (code, _, _) = env.run(&["ssh", "-p", profile, "--", "sh", "-c", "exit 7"]);
        assert_eq!(code, 7);
        let (code, out, _) = env.run_stdin(
            &[
                "ssh",
                "-p",
                profile,
                "--node",
                &worker,
                "--",
                "sh",
                "-c",
                "cat; hostname",
            ],
            "from stdin\n",
        );
        assert_eq!(
            (code, out.as_str()),
            (0, format!("from stdin\n{worker}\n").as_str())
        );
        let (code, _, err) = env.run(&[
            "ssh",
            "-p",
            profile,
            "--",
            "sh",
            "-c",
            "echo oops >&2; exit 3",
        ]);
        assert_eq!((code, err.as_str()), (3, "oops\n"));
    });

    // On a terminal (util-linux's `script` gives berth one): a real TTY in
    // the node whose size follows this one's, and Ctrl-C goes to what runs
    // there, not to berth.
    parts.run("ssh on a terminal", || {
        let berth = assert_cmd::cargo::cargo_bin("berth");
        let on_terminal = |input: &str, command: &str| {
            let script =
                format!("({input}) | script -qefc \"stty rows 40 cols 100; {command}\" /dev/null");
            let started = Instant::now();
            let out = env.command("sh").arg("-c").arg(&script).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
            (out.status.code(), text, started.elapsed())
        };
        let ssh = format!("{} ssh -p {profile}", berth.display());
        let (code, out, _) = on_terminal(
            "sleep 3",
            &format!("{ssh} -- sh -c 'tty; sleep 1; stty size; exit 4'"),
        );
        assert_eq!(code, Some(4), "{out}");
        assert!(out.contains("/dev/pts/"), "no terminal in the node: {out}");
        assert!(out.contains("40 100"), "the size did not follow: {out}");
        let (code, out, took) = on_terminal(
            "printf 'sleep 30\\n'; sleep 2; printf '\\003'; sleep 1; printf 'exit 5\\n'; sleep 2",
            &ssh,
        );
        assert_eq!(code, Some(5), "{out}");
        assert!(
            took < Duration::from_secs(20),
            "Ctrl-C did not reach the sleep: {took:?} {out}"
        );
    });

    // --export: every part, and not one private key.
    parts.run("logs --export", || {
        let archive = dir.path().join("logs.tar.gz");
        env.ok(&["logs", "-p", profile, "--export", archive.to_str().unwrap()]);
        let files = common::unpack(&archive);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        for part in [
            "logs/versions.txt".to_string(),
            "logs/profile.json".into(),
            "logs/engine.json".into(),
            "logs/objects.txt".into(),
            format!("logs/nodes/{profile}/inspect.json"),
            format!("logs/nodes/{profile}/files.txt"),
            format!("logs/nodes/{profile}/journal/kube-apiserver.log"),
            format!("logs/nodes/{worker}/journal/kubelet.log"),
        ] {
            assert!(names.contains(&part.as_str()), "{part} is not in {names:?}");
        }
        for (name, content) in &files {
            assert!(
                !content.contains("PRIVATE KEY"),
                "{name} holds a private key"
            );
            assert!(
                !content.contains("client-key-data"),
                "{name} holds a credential"
            );
        }
        let file = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(file("logs/objects.txt").contains(&worker));
        assert!(
            file(&format!("logs/nodes/{profile}/files.txt"))
                .contains("==> /etc/kubernetes/kubelet.yaml <==")
        );
    });

    // Completions: a script for each shell; bash's completes live names.
    parts.run("completions", || {
        for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
            let script = env.ok(&["completion", shell]);
            assert!(script.contains("berth"), "{shell}: {script}");
        }
        let bin_dir = assert_cmd::cargo::cargo_bin("berth")
            .parent()
            .unwrap()
            .to_path_buf();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let complete = |words: &str| {
            let script = format!(
                r#"source <(berth completion bash)
    f=$(complete -p berth | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
    COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_LINE="{words}"; COMP_POINT=${{#COMP_LINE}}; COMP_TYPE=9
    "$f" berth "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
    printf '%s\n' "${{COMPREPLY[@]}}""#
            );
            let out = env
                .command("bash")
                .env("PATH", &path)
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
        };
        let profiles = complete("berth status -p e2e-");
        assert!(profiles.lines().any(|l| l.trim() == profile), "{profiles}");
        let nodes = complete("berth ssh -p e2e-daily --node e2e-daily-");
        assert!(nodes.lines().any(|l| l.trim() == worker), "{nodes}");
    });

    // A stopped profile: ssh and logs say so (exit 2); an export still
    // works and says what it lacks.
    parts.run("a stopped profile", || {
        env.ok(&["stop", "-p", profile]);
        let (code, _, err) = env.run(&["ssh", "-p", profile]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("is not running"), "{err}");
        let (code, _, err) = env.run(&["logs", "-p", profile]);
        assert_eq!(code, 2, "{err}");
        let stopped = dir.path().join("stopped.tar.gz");
        let (code, _, err) =
            env.run(&["logs", "-p", profile, "--export", stopped.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("missing from the archive"), "{err}");
        let files = common::unpack(&stopped);
        let missing = &files
            .iter()
            .find(|(n, _)| n == "stopped/MISSING.txt")
            .expect("MISSING.txt")
            .1;
        assert!(
            missing.contains("objects.txt: the control-plane node does not run"),
            "{missing}"
        );
        assert!(
            files
                .iter()
                .any(|(n, _)| n == &format!("stopped/nodes/{profile}/inspect.json"))
        );
    });

    env.ok(&["delete", "-p", profile]);
}
