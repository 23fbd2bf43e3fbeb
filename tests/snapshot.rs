//! `snapshot save` and `restore` against the real engine: a two-node
//! cluster with a Deployment of an image only its nodes hold and a pod
//! with 100 MiB on a persistent volume comes back to its snapshot (objects,
//! volume data, images); a damaged or foreign snapshot is refused and
//! changes nothing; a stopped cluster's snapshot brings back a profile that
//! was deleted since.

mod common;

use std::time::{Duration, Instant};

use common::{Env, eventually, json, shared_busybox};

/// A claim, a pod that fills it once (100 MiB and their SHA-256, and a
/// marker; ready once the SHA-256 is whole, moved into place) and then sleeps, and a Deployment `web` of two replicas; all of
/// the image `image`, which no registry serves.
fn workloads(image: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 200Mi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: writer}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: writer
    image: {image}
    imagePullPolicy: Never
    command: [sh, -c, "if [ ! -f /data/blob.sha ]; then echo before > /data/marker && busybox dd if=/dev/urandom of=/data/blob bs=1M count=100 && busybox sha256sum /data/blob > /data/blob.tmp && busybox mv /data/blob.tmp /data/blob.sha; fi; sleep 3600"]
    readinessProbe: {{exec: {{command: [cat, /data/blob.sha]}}, periodSeconds: 1}}
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - name: data
    persistentVolumeClaim: {{claimName: data}}
---
{}"#,
        common::web_deployment(image, 2)
    )
}

fn in_writer(env: &Env, script: &str) -> String {
    env.kubectl("snap", &["exec", "writer", "--", "sh", "-c", script])
}

/// Waits until the Deployment's replicas and the writer are ready.
fn wait_workloads(env: &Env) {
    env.wait_ready("snap", "writer");
    eventually(Duration::from_secs(120), || {
        let ready = env.kubectl(
            "snap",
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
    let path = place.path().join("stopped").display().to_string();
    let saved = json(&env.ok(&["snapshot", "save", "-p", "snap", &path, "-o", "json"]));
    assert_eq!(saved["snapshot"]["running"], false, "{saved}");
    env.ok(&["delete", "-p", "snap"]);
    assert!(env.leftovers("snap").is_empty());
    env.ok(&["snapshot", "restore", &path]);
    wait_workloads(&env);
    assert_eq!(in_writer(&env, "cat /data/marker").trim(), "before");
    env.kubectl("snap", &["get", "configmap", "kept"]);
    drop(image);
}
