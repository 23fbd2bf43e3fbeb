//! Today's berth meets clusters that the berth of the previous landed stop
//! made (scripts/old-berth builds it from this repository's history): its
//! profile files of the format before today's, its kubeconfig entries and
//! its node containers. Minikube tests its upgrades the same way, with one
//! cluster the old binary left running and one it stopped.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Env, eventually, json};

/// The previous berth, built once per machine.
fn old_berth() -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/old-berth");
    let out = std::process::Command::new(script).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/old-berth failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn contexts(env: &Env) -> String {
    std::fs::read_to_string(&env.kubeconfig).unwrap_or_default()
}

#[test]
fn clusters_of_the_previous_berth_start_stop_and_delete_with_this_one() {
    let env = Env::new();
    let old = old_berth();
    let by_old = |args: &[&str]| {
        let out = env.command(&old).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "the previous berth's {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    by_old(&["start", "-p", "kept", "--ingress", "--addons", "dashboard"]);
    by_old(&["start", "-p", "parked", "--no-storage"]);
    by_old(&["stop", "-p", "parked"]);

    // Their files are of the previous format: no number, addons as they
    // were stored then.
    let file = |name: &str| {
        env.berth_home()
            .join(format!("profiles/{name}/profile.json"))
    };
    let before = std::fs::read(file("parked")).unwrap();
    let parked: serde_json::Value = serde_json::from_slice(&before).unwrap();
    assert!(parked.get("format").is_none(), "{parked}");
    assert!(parked.get("addons_on").is_none(), "{parked}");
    assert_eq!(parked["no_storage"], true, "{parked}");

    let list = json(&env.ok(&["profile", "list", "-o", "json"]));
    let state = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["status"].clone())
    };
    assert_eq!(state("kept"), Some("Running".into()), "{list}");
    assert_eq!(state("parked"), Some("Stopped".into()), "{list}");
    // Reading them changes none of them.
    assert_eq!(std::fs::read(file("parked")).unwrap(), before);

    // The running one answers, through the kubeconfig entry the previous
    // berth wrote, and is stopped and started again by this one.
    env.ok(&["status", "-p", "kept"]);
    assert!(env.kubectl("kept", &["get", "nodes"]).contains("Ready"));
    env.ok(&["stop", "-p", "kept"]);
    // Its ingress and dashboard addons ran projects retired upstream
    // (ingress-nginx, the Kubernetes Dashboard): this berth's start
    // replaces them with what the addons run now, and says so.
    let (code, _, err) = env.run(&["start", "-p", "kept"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ingress-nginx, retired upstream"), "{err}");
    assert!(
        err.contains("the Kubernetes Dashboard, archived upstream"),
        "{err}"
    );
    eventually(Duration::from_secs(120), || {
        let list = json(&env.ok(&["addons", "list", "-p", "kept", "-o", "json"]));
        let state = |name: &str| {
            list.as_array()
                .and_then(|all| all.iter().find(|a| a["name"] == name))
                .map(|a| a["state"].clone())
                .unwrap_or_default()
        };
        // Traefik is built here; Headlamp's image no registry here serves.
        let states = (state("ingress"), state("dashboard"));
        let left: Vec<&str> = ["ingress-nginx", "kubernetes-dashboard"]
            .into_iter()
            .filter(|ns| env.namespace_stays("kept", ns))
            .collect();
        match (states, left.is_empty()) {
            ((ready, unavailable), true) if ready == "ready" && unavailable == "unavailable" => {
                Ok(())
            }
            (states, _) => Err(format!("addons {states:?}, old namespaces left: {left:?}")),
        }
    });
    // Replaced once: the next start has nothing to say of it.
    let (code, _, err) = env.run(&["start", "-p", "kept"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("retired") && !err.contains("archived"),
        "{err}"
    );
    env.ok(&["start", "-p", "parked"]);

    // Each keeps its addons: DNS in both, storage only where it was on.
    for (name, storage) in [("kept", "running"), ("parked", "off")] {
        eventually(Duration::from_secs(90), || {
            let status = json(&env.ok(&["status", "-p", name, "-o", "json"]));
            let states = (&status["dns"]["state"], &status["storage"]["state"]);
            (states == (&"available".into(), &storage.into()))
                .then_some(())
                .ok_or(format!("{name}: {status}"))
        });
        let pods = env.kubectl(name, &["get", "pods", "-n", "kube-system"]);
        assert!(pods.contains("coredns"), "{name}: {pods}");
    }

    // This berth deletes them with everything they had.
    assert!(contexts(&env).contains("kept"));
    env.ok(&["delete", "--all"]);
    for name in ["kept", "parked"] {
        let left = env.leftovers(name);
        assert!(left.is_empty(), "{name} left: {left:?}");
        assert!(!env.berth_home().join("profiles").join(name).exists());
    }
    let kubeconfig = contexts(&env);
    assert!(
        !kubeconfig.contains("kept") && !kubeconfig.contains("parked"),
        "{kubeconfig}"
    );
}
