//! `snapshot save` and `restore` against the real engine: a two-node
//! cluster with a Deployment of an image only its nodes hold and a pod
//! with 100 MiB on a persistent volume comes back to its snapshot (objects,
//! volume data, images); a damaged or foreign snapshot is refused and
//! changes nothing; a stopped cluster's snapshot brings back a profile that
//! was deleted since; a snapshot in one `.tar` file does all the same.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Env, eventually, json, shared_busybox};

/// A claim, a pod that fills it once (100 MiB and their SHA-256, and a
/// marker; ready once the SHA-256 is whole, moved into place) and then
/// sleeps, and a Deployment `web` of two replicas; all of the image
/// `image`, which no registry serves.
fn workloads(image: &str) -> String {
    let script = "if [ ! -f /data/blob.sha ]; then echo before > /data/marker && \
                  busybox dd if=/dev/urandom of=/data/blob bs=1M count=100 && \
                  busybox sha256sum /data/blob > /data/blob.tmp && \
                  busybox mv /data/blob.tmp /data/blob.sha; fi; sleep 3600";
    format!(
        "{}---\n{}",
        common::claim_and_writer(image, "200Mi", script, Some("[cat, /data/blob.sha]")),
        common::web_deployment(image, 2)
    )
}

fn in_writer(env: &Env, script: &str) -> String {
    in_writer_of(env, "snap", script)
}

/// Runs `script` in the writer, asked again while its container is not
/// there yet: right after a restore the pod's status is the snapshot's
/// (Ready) until its kubelet reports anew.
fn in_writer_of(env: &Env, profile: &str, script: &str) -> String {
    let mut out = String::new();
    eventually(Duration::from_secs(90), || {
        let args = [
            "kubectl", "-p", profile, "--", "exec", "writer", "--", "sh", "-c", script,
        ];
        let (code, stdout, stderr) = env.run(&args);
        if code == 0 {
            out = stdout;
            Ok(())
        } else {
            Err(format!("{script}: {stderr}"))
        }
    });
    out
}

/// Waits until the Deployment's replicas and the writer are ready.
fn wait_workloads(env: &Env) {
    wait_workloads_of(env, "snap")
}

fn wait_workloads_of(env: &Env, profile: &str) {
    env.wait_ready(profile, "writer");
    eventually(Duration::from_secs(120), || {
        let ready = env.kubectl(
            profile,
            &[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.status.readyReplicas}",
            ],
        );
        (ready == "2")
            .then_some(())
            .ok_or(format!("ready replicas: {ready:?}"))
    });
}

#[test]
fn a_cluster_comes_back_to_its_snapshot_with_its_objects_volumes_and_images() {
    let env = Env::new();
    let image = shared_busybox("berth-test/snapshot:1");
    env.ok(&["start", "-p", "snap", "--nodes", "2"]);
    env.ok(&["image", "load", "berth-test/snapshot:1", "-p", "snap"]);
    env.apply("snap", &workloads("berth-test/snapshot:1"));
    wait_workloads(&env);
    let sum = in_writer(&env, "cat /data/blob.sha");
    assert!(sum.ends_with("  /data/blob\n"), "{sum:?}");

    // Saved while it runs.
    let started = Instant::now();
    let saved = json(&env.ok(&["snapshot", "save", "-p", "snap", "first", "-o", "json"]));
    eprintln!(
        "snapshot save of a running 2-node cluster: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(saved["snapshot"]["profile"], "snap", "{saved}");
    assert_eq!(saved["snapshot"]["running"], true, "{saved}");
    assert_eq!(saved["snapshot"]["nodes"].as_array().unwrap().len(), 2);
    let profiles = json(&env.ok(&["profile", "list", "-o", "json"]));
    assert_eq!(profiles[0]["status"], "Running", "left frozen: {profiles}");
    let listed = env.ok(&["snapshot", "list"]);
    assert!(
        listed.contains("first") && listed.contains("snap"),
        "{listed}"
    );
    // A second save of that name is refused.
    let (code, _, stderr) = env.run(&["snapshot", "save", "-p", "snap", "first"]);
    assert_eq!(code, 2, "{stderr}");

    // What changes after it...
    in_writer(&env, "echo after > /data/marker && rm /data/blob");
    env.kubectl("snap", &["delete", "deployment", "web"]);
    env.kubectl("snap", &["create", "configmap", "later"]);

    // ...is gone once it is restored, and what it held is back.
    let started = Instant::now();
    env.ok(&["snapshot", "restore", "first"]);
    eprintln!(
        "snapshot restore of a 2-node cluster: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    wait_workloads(&env);
    assert_eq!(in_writer(&env, "cat /data/marker").trim(), "before");
    assert_eq!(in_writer(&env, "busybox sha256sum /data/blob"), sum);
    let (code, _, _) = env.run(&["kubectl", "-p", "snap", "--", "get", "configmap", "later"]);
    assert_ne!(code, 0, "an object made after the snapshot came back");

    // A damaged snapshot, and a directory that is none, are refused and
    // change nothing.
    env.kubectl("snap", &["create", "configmap", "kept"]);
    let dir = env.berth_home().join("snapshots/first");
    let archive = dir.join("nodes/snap-m02.tar");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&archive)
        .unwrap();
    std::io::Write::write_all(&mut file, b"x").unwrap();
    let (code, _, stderr) = env.run(&["snapshot", "restore", "first"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("damaged"), "{stderr}");
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("notes.txt"), "hello").unwrap();
    let path = foreign.path().display().to_string();
    let (code, _, stderr) = env.run(&["snapshot", "restore", &path, "-p", "snap"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no snapshot.json"), "{stderr}");
    env.kubectl("snap", &["get", "configmap", "kept"]);
    env.ok(&["snapshot", "delete", "first"]);
    assert!(!dir.exists());

    // A stopped cluster's snapshot, to a directory of the user's, brings
    // back the profile after it was deleted.
    env.ok(&["stop", "-p", "snap"]);
    let place = tempfile::tempdir().unwrap();
    // Shared, as /tmp is: a save into it must not make it private.
    std::fs::set_permissions(place.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let path = place.path().join("stopped").display().to_string();
    let saved = json(&env.ok(&["snapshot", "save", "-p", "snap", &path, "-o", "json"]));
    assert_eq!(saved["snapshot"]["running"], false, "{saved}");
    let private = |path: &str| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(private(&path), 0o700, "the cluster's keys are inside");
    env.ok(&["delete", "-p", "snap"]);
    assert!(env.leftovers("snap").is_empty());
    env.ok(&["snapshot", "restore", &path]);
    wait_workloads(&env);
    assert_eq!(in_writer(&env, "cat /data/marker").trim(), "before");
    env.kubectl("snap", &["get", "configmap", "kept"]);

    // One file, as a backup is carried: saved while the cluster runs and
    // restored over what changed since; a file that is no snapshot is
    // refused and changes nothing.
    let file = place.path().join("snap.tar");
    let file = file.display().to_string();
    env.ok(&["snapshot", "save", "-p", "snap", &file]);
    let mode = std::fs::metadata(place.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o1777, "a save changed its directory's mode");
    assert_eq!(private(&file), 0o600, "the cluster's keys are inside");
    let hidden: Vec<_> = std::fs::read_dir(place.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "a save left {hidden:?}");
    env.kubectl("snap", &["create", "configmap", "after-file"]);
    let bogus = place.path().join("bogus.tar");
    std::fs::write(&bogus, "hello").unwrap();
    let bogus = bogus.display().to_string();
    let (code, _, stderr) = env.run(&["snapshot", "restore", &bogus, "-p", "snap"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bogus.tar is not a snapshot"), "{stderr}");
    env.kubectl("snap", &["get", "configmap", "after-file"]);
    env.ok(&["snapshot", "restore", &file]);
    wait_workloads(&env);
    assert_eq!(in_writer(&env, "cat /data/marker").trim(), "before");
    let (code, _, _) = env.run(&[
        "kubectl",
        "-p",
        "snap",
        "--",
        "get",
        "configmap",
        "after-file",
    ]);
    assert_ne!(
        code, 0,
        "an object made after the file's snapshot came back"
    );
    let unpacked = env.berth_home().join("snapshots");
    let left: Vec<_> = std::fs::read_dir(&unpacked)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a restore left {left:?}");
    env.ok(&["snapshot", "delete", &file]);
    assert!(!std::path::Path::new(&file).exists());
    drop(image);
}

/// A snapshot restored into another profile is the same cluster beside
/// its original: its nodes keep their names in Kubernetes (its volumes
/// are bound to them), under the new profile's containers, port, network
/// and certificates; each runs on without the other.
#[test]
fn a_snapshot_restored_into_another_profile_runs_beside_its_original() {
    let env = Env::new();
    let image = shared_busybox("berth-test/snapshot-copy:1");
    env.ok(&["start", "-p", "orig", "--nodes", "2"]);
    env.ok(&["image", "load", "berth-test/snapshot-copy:1", "-p", "orig"]);
    env.apply("orig", &workloads("berth-test/snapshot-copy:1"));
    wait_workloads_of(&env, "orig");
    let sum = in_writer_of(&env, "orig", "cat /data/blob.sha");
    env.ok(&["snapshot", "save", "-p", "orig", "both"]);
    env.kubectl("orig", &["create", "configmap", "only-in-orig"]);

    env.ok(&["snapshot", "restore", "both", "-p", "copy"]);
    wait_workloads_of(&env, "copy");
    assert_eq!(
        in_writer_of(&env, "copy", "busybox sha256sum /data/blob"),
        sum
    );
    let nodes = env.kubectl(
        "copy",
        &["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"],
    );
    assert_eq!(nodes, "orig orig-m02");
    let (code, _, _) = env.run(&[
        "kubectl",
        "-p",
        "copy",
        "--",
        "get",
        "configmap",
        "only-in-orig",
    ]);
    assert_ne!(code, 0, "the copy has what was made after its snapshot");

    // Two profiles, each of its own containers, network and endpoint.
    let listed = json(&env.ok(&["profile", "list", "-o", "json"]));
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(rows.iter().all(|r| r["status"] == "Running"), "{listed}");
    assert_ne!(rows[0]["endpoint"], rows[1]["endpoint"], "{listed}");
    let copy = json(&env.ok(&["node", "list", "-p", "copy", "-o", "json"]));
    let orig = json(&env.ok(&["node", "list", "-p", "orig", "-o", "json"]));
    assert_ne!(copy[0]["container"], orig[0]["container"]);
    assert_ne!(copy[0]["ip"], orig[0]["ip"], "both on one subnet");

    // Deleting the copy leaves the original as it was.
    env.ok(&["delete", "-p", "copy"]);
    assert!(
        env.leftovers("copy").is_empty(),
        "{:?}",
        env.leftovers("copy")
    );
    env.kubectl("orig", &["get", "configmap", "only-in-orig"]);
    assert_eq!(
        in_writer_of(&env, "orig", "busybox sha256sum /data/blob"),
        sum
    );
    drop(image);
}

/// Several control planes come back to their snapshot with etcd whole;
/// into another profile only where their addresses are free, since etcd's
/// members know each other by them.
#[test]
fn three_control_planes_come_back_to_their_snapshot() {
    let env = Env::new();
    env.ok(&["start", "-p", "hasnap", "--control-planes", "3"]);
    env.kubectl("hasnap", &["create", "configmap", "before"]);
    env.ok(&["snapshot", "save", "-p", "hasnap", "ha"]);
    env.kubectl("hasnap", &["create", "configmap", "after"]);
    env.ok(&["snapshot", "restore", "ha"]);
    let healthy = |profile: &str| {
        eventually(Duration::from_secs(60), || {
            let status = json(&env.run(&["status", "-p", profile, "-o", "json"]).1);
            let healthy = status["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n["etcd"]["healthy"] == true)
                .count();
            (healthy == 3).then_some(()).ok_or(format!("{status}"))
        })
    };
    healthy("hasnap");
    env.kubectl("hasnap", &["get", "configmap", "before"]);
    let (code, _, _) = env.run(&["kubectl", "-p", "hasnap", "--", "get", "configmap", "after"]);
    assert_ne!(code, 0, "an object made after the snapshot came back");

    // Beside the original, refused before anything is made.
    let (code, _, stderr) = env.run(&["snapshot", "restore", "ha", "-p", "hacopy"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("several control planes"), "{stderr}");
    assert!(
        env.leftovers("hacopy").is_empty(),
        "{:?}",
        env.leftovers("hacopy")
    );
    assert!(!env.berth_home().join("profiles/hacopy").exists());
    // Once the original is gone, its addresses are free for the copy.
    env.ok(&["delete", "-p", "hasnap"]);
    env.ok(&["snapshot", "restore", "ha", "-p", "hacopy"]);
    healthy("hacopy");
    env.kubectl("hacopy", &["get", "configmap", "before"]);
}
