//! Persistent volumes: the default StorageClass `standard` and the
//! provisioner on every node, `Retain`, access modes, host folders mounted
//! with `--mount`, and `--no-storage`.

mod common;

use std::time::Duration;

use berth_engine::{Command, Docker};
use common::{Env, block_on, eventually, json};

const IMAGE: &str = "berth.test/storage:1";
const STORAGE: &str = "/var/lib/berth/storage";

/// Shared by this file's tests, which run at once.
fn image() -> common::SharedImage {
    common::shared_busybox(IMAGE)
}

fn claim(name: &str, class: Option<&str>, mode: &str) -> String {
    let class = class
        .map(|c| format!("  storageClassName: {c}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n{class}  \
         accessModes: [{mode}]\n  resources: {{requests: {{storage: 1Gi}}}}\n"
    )
}

/// A pod that mounts claim `claim` at /data and runs `script`, then sleeps.
fn pod(name: &str, claim: &str, script: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "{script}; sleep 3600"]
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - name: data
    persistentVolumeClaim: {{claimName: {claim}}}
"#
    )
}

fn field(env: &Env, profile: &str, object: &str, path: &str) -> String {
    env.kubectl(
        profile,
        &["get", object, "-o", &format!("jsonpath={{{path}}}")],
    )
}

/// The exit code of `cmd` in the node's container.
/// The messages of the events of `reason` about the object `name`.
fn events(env: &Env, profile: &str, name: &str, reason: &str) -> String {
    let selector = format!("involvedObject.name={name},reason={reason}");
    env.kubectl(
        profile,
        &[
            "get",
            "events",
            "--field-selector",
            &selector,
            "-o",
            "jsonpath={.items[*].message}",
        ],
    )
}

fn in_node(env: &Env, profile: &str, node: &str, cmd: &[&str]) -> i64 {
    let container = env.names(profile).container(node);
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        docker
            .exec(&container, &Command::new(cmd.iter().copied()))
            .await
            .unwrap()
            .code
    })
}

fn wait_class(env: &Env, profile: &str) {
    eventually(Duration::from_secs(60), || {
        let (code, out, err) = env.run(&[
            "kubectl", "-p", profile, "--", "get", "storageclass", "standard", "-o",
            "jsonpath={.metadata.annotations.storageclass\\.kubernetes\\.io/is-default-class} {.volumeBindingMode} {.reclaimPolicy}",
        ]);
        if code == 0 && out == "true WaitForFirstConsumer Delete" {
            Ok(())
        } else {
            Err(format!("no default StorageClass standard: {out}{err}"))
        }
    });
}

#[test]
fn a_claim_binds_where_its_pod_runs_and_keeps_its_data_until_it_is_deleted() {
    let env = Env::new();
    let profile = "e2e-storage";
    let _image = image();
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("greeting"), "from the host\n").unwrap();
    let readonly = tempfile::tempdir().unwrap();
    let mount_rw = format!("{}:/mnt/shared", shared.path().display());
    let mount_ro = format!("{}:/mnt/readonly:ro", readonly.path().display());
    env.ok(&[
        "start", "-p", profile, "--wait", "3m", "--mount", &mount_rw, "--mount", &mount_ro,
    ]);
    env.ok(&["image", "load", "-p", profile, IMAGE]);
    wait_class(&env, profile);

    // No class named: the default one, and nothing provisioned before a
    // pod uses it.
    env.apply(profile, &claim("data", None, "ReadWriteOnce"));
    assert_eq!(
        field(&env, profile, "pvc/data", ".spec.storageClassName"),
        "standard"
    );
    // Pending because the controller waits for a consumer (its event
    // says so), not because nothing looked at the claim.
    eventually(Duration::from_secs(30), || {
        match events(&env, profile, "data", "WaitForFirstConsumer").as_str() {
            "" => Err("no WaitForFirstConsumer event for the claim".into()),
            _ => Ok(()),
        }
    });
    assert_eq!(field(&env, profile, "pvc/data", ".status.phase"), "Pending");
    assert_eq!(env.kubectl(profile, &["get", "pv", "-o", "name"]), "");

    env.apply(profile, &pod("writer", "data", "echo kept > /data/file"));
    env.wait_ready(profile, "writer");
    assert_eq!(field(&env, profile, "pvc/data", ".status.phase"), "Bound");
    let pv = field(&env, profile, "pvc/data", ".spec.volumeName");
    let pv_object = format!("pv/{pv}");
    assert_eq!(
        field(
            &env,
            profile,
            &pv_object,
            ".spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]"
        ),
        profile
    );
    let dir = format!("{STORAGE}/{pv}");
    assert_eq!(field(&env, profile, &pv_object, ".spec.hostPath.path"), dir);
    assert_eq!(
        in_node(
            &env,
            profile,
            profile,
            &["test", "-f", &format!("{dir}/file")]
        ),
        0
    );

    // A new pod reads what the first wrote, also after stop and start.
    env.kubectl(profile, &["delete", "pod", "writer", "--wait"]);
    env.apply(profile, &pod("reader", "data", "true"));
    env.wait_ready(profile, "reader");
    let read = || env.kubectl(profile, &["exec", "reader", "--", "cat", "/data/file"]);
    assert_eq!(read(), "kept\n");
    env.ok(&["stop", "-p", profile]);
    env.ok(&["start", "-p", profile, "--wait", "3m"]);
    // Right after the start the pod may still show the Ready of before the
    // stop, while its container is made again: asked until it answers.
    eventually(Duration::from_secs(90), || {
        let args = [
            "kubectl",
            "-p",
            profile,
            "--",
            "exec",
            "reader",
            "--",
            "cat",
            "/data/file",
        ];
        match env.run(&args) {
            (0, out, _) => {
                assert_eq!(out, "kept\n");
                Ok(())
            }
            (_, _, err) => Err(err),
        }
    });
    env.ok(&["pause", "-p", profile]);
    env.ok(&["unpause", "-p", profile]);
    assert_eq!(read(), "kept\n");
    // The provisioners begin seconds after their nodes boot; `status`
    // says so meanwhile.
    eventually(Duration::from_secs(30), || {
        let status = json(&env.ok(&["status", "-p", profile, "-o", "json"]));
        match status["storage"]["state"].as_str() {
            Some("running") => Ok(()),
            Some("starting") => Err(format!("{status}")),
            _ => panic!("storage is neither starting nor running: {status}"),
        }
    });
    let status = json(&env.ok(&["status", "-p", profile, "-o", "json"]));
    assert_eq!(status["mounts"], serde_json::json!([mount_rw, mount_ro]));

    // Deleting the claim removes its volume and its directory.
    env.kubectl(profile, &["delete", "pod", "reader", "--wait"]);
    env.kubectl(profile, &["delete", "pvc", "data", "--wait"]);
    eventually(Duration::from_secs(60), || {
        match env.kubectl(profile, &["get", "pv", "-o", "name"]).as_str() {
            "" => Ok(()),
            left => Err(format!("the volume is left: {left}")),
        }
    });
    assert_ne!(
        in_node(&env, profile, profile, &["test", "-e", &dir]),
        0,
        "{dir} is left"
    );

    // ReadWriteMany is served on one node: all its pods share the node.
    env.apply(profile, &claim("shared", None, "ReadWriteMany"));
    env.apply(
        profile,
        &pod("sharer", "shared", "echo shared > /data/file"),
    );
    env.wait_ready(profile, "sharer");
    assert_eq!(field(&env, profile, "pvc/shared", ".status.phase"), "Bound");

    // A class of the user's own with Retain keeps the directory.
    env.apply(
        profile,
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: keep}\n\
         provisioner: io.berth/local-path\nreclaimPolicy: Retain\nvolumeBindingMode: WaitForFirstConsumer\n",
    );
    env.apply(profile, &claim("kept", Some("keep"), "ReadWriteOnce"));
    env.apply(
        profile,
        &pod("keeper", "kept", "echo retained > /data/file"),
    );
    env.wait_ready(profile, "keeper");
    let kept = field(&env, profile, "pvc/kept", ".spec.volumeName");
    let shared_pv = field(&env, profile, "pvc/shared", ".spec.volumeName");
    // Both released at once: the provisioner removing the Delete one's
    // directory shows it at work, so the Retain one's is kept by choice.
    for (pod, claim) in [("keeper", "kept"), ("sharer", "shared")] {
        env.kubectl(profile, &["delete", "pod", pod, "--wait"]);
        env.kubectl(profile, &["delete", "pvc", claim, "--wait"]);
    }
    eventually(Duration::from_secs(30), || {
        match field(&env, profile, &format!("pv/{kept}"), ".status.phase").as_str() {
            "Released" => Ok(()),
            phase => Err(format!("the retained volume is {phase}")),
        }
    });
    let shared_dir = format!("{STORAGE}/{shared_pv}");
    eventually(Duration::from_secs(60), || {
        match in_node(&env, profile, profile, &["test", "-e", &shared_dir]) {
            0 => Err(format!("{shared_dir} of the deleted claim is left")),
            _ => Ok(()),
        }
    });
    let kept_file = format!("{STORAGE}/{kept}/file");
    assert_eq!(
        in_node(&env, profile, profile, &["test", "-f", &kept_file]),
        0
    );

    // Host folders: read from a hostPath pod; the read-only one refuses
    // writes in the node, and in a pod that mounts it read-only (runc
    // bind-mounts a hostPath with the flags the pod asks for, not those of
    // the node's mount).
    env.apply(
        profile,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: host}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {IMAGE}, imagePullPolicy: Never, command: [sleep, "3600"],
      volumeMounts: [{{name: rw, mountPath: /rw}}, {{name: ro, mountPath: /ro, readOnly: true}}]}}
  volumes:
  - {{name: rw, hostPath: {{path: /mnt/shared}}}}
  - {{name: ro, hostPath: {{path: /mnt/readonly}}}}
"#
        ),
    );
    env.wait_ready(profile, "host");
    assert_eq!(
        env.kubectl(profile, &["exec", "host", "--", "cat", "/rw/greeting"]),
        "from the host\n"
    );
    env.kubectl(
        profile,
        &["exec", "host", "--", "sh", "-c", "echo back > /rw/reply"],
    );
    assert_eq!(
        std::fs::read_to_string(shared.path().join("reply")).unwrap(),
        "back\n"
    );
    let (code, _, err) = env.run(&[
        "kubectl",
        "-p",
        profile,
        "--",
        "exec",
        "host",
        "--",
        "sh",
        "-c",
        "echo x > /ro/file",
    ]);
    assert_ne!(code, 0, "a write to the read-only mount succeeded");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_ne!(
        in_node(
            &env,
            profile,
            profile,
            &["sh", "-c", "echo x > /mnt/readonly/file"]
        ),
        0,
        "the node wrote to its read-only folder"
    );
    assert!(!readonly.path().join("file").exists());

    // Mounts are fixed at creation.
    let other = format!("{}:/mnt/other", shared.path().display());
    let (code, _, err) = env.run(&["start", "-p", profile, "--mount", &other]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--mount"), "{err}");

    env.ok(&["delete", "-p", profile]);
    assert_eq!(env.leftovers(profile), Vec::<String>::new());
}

#[test]
fn three_nodes_keep_each_replica_on_its_node_and_refuse_shared_claims() {
    let env = Env::new();
    let profile = "e2e-storage3";
    let _image = image();
    env.ok(&["start", "-p", profile, "--nodes", "3", "--wait", "3m"]);
    env.ok(&["image", "load", "-p", profile, IMAGE]);
    wait_class(&env, profile);
    env.apply(
        profile,
        &format!(
            r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 3
  podManagementPolicy: Parallel
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {{labelSelector: {{matchLabels: {{app: db}}}}, topologyKey: kubernetes.io/hostname}}
      containers:
      - name: c
        image: {IMAGE}
        imagePullPolicy: Never
        command: [sh, -c, "[ -f /data/owner ] || hostname > /data/owner; sleep 3600"]
        volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#
        ),
    );
    let placement = || {
        (0..3)
            .map(|i| {
                let pod = format!("db-{i}");
                env.wait_ready(profile, &pod);
                let node = field(&env, profile, &format!("pod/{pod}"), ".spec.nodeName");
                let pv = field(&env, profile, &format!("pvc/data-{pod}"), ".spec.volumeName");
                let affinity = field(
                    &env,
                    profile,
                    &format!("pv/{pv}"),
                    ".spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]",
                );
                assert_eq!(affinity, node, "{pod}'s volume is bound to another node");
                let owner = env.kubectl(profile, &["exec", &pod, "--", "cat", "/data/owner"]);
                (pod, node, owner)
            })
            .collect::<Vec<_>>()
    };
    let before = placement();
    let mut nodes: Vec<&str> = before.iter().map(|(_, n, _)| n.as_str()).collect();
    nodes.sort();
    assert_eq!(
        nodes,
        [
            profile,
            &format!("{profile}-m02"),
            &format!("{profile}-m03")
        ]
    );
    env.kubectl(
        profile,
        &["delete", "pod", "db-0", "db-1", "db-2", "--wait"],
    );
    assert_eq!(placement(), before, "a replica moved or lost its data");

    // A shared claim cannot be served across nodes: Pending, and why.
    env.apply(profile, &claim("shared", None, "ReadWriteMany"));
    env.apply(profile, &pod("sharer", "shared", "true"));
    eventually(Duration::from_secs(60), || {
        let events = events(&env, profile, "shared", "ProvisioningFailed");
        if events.contains("ReadWriteMany and ReadOnlyMany are not served on a cluster of 3 nodes")
        {
            Ok(())
        } else {
            Err(format!(
                "no event says why the claim is not served: {events:?}"
            ))
        }
    });
    assert_eq!(
        field(&env, profile, "pvc/shared", ".status.phase"),
        "Pending"
    );
    env.ok(&["delete", "-p", profile]);
    assert_eq!(env.leftovers(profile), Vec::<String>::new());
}

#[test]
fn no_storage_makes_no_class_and_no_provisioner() {
    let env = Env::new();
    let profile = "e2e-nostorage";
    env.ok(&["start", "-p", profile, "--no-storage", "--wait", "3m"]);
    let status = json(&env.ok(&["status", "-p", profile, "-o", "json"]));
    assert_eq!(status["storage"]["state"], "off", "{status}");
    // The addons are applied right after the API server answers: by the
    // time CoreDNS's objects are there, a StorageClass would be too.
    eventually(Duration::from_secs(60), || {
        let (code, _, err) = env.run(&[
            "kubectl",
            "-p",
            profile,
            "--",
            "get",
            "-n",
            "kube-system",
            "deployment",
            "coredns",
        ]);
        if code == 0 { Ok(()) } else { Err(err) }
    });
    assert_eq!(
        env.kubectl(profile, &["get", "storageclass", "-o", "name"]),
        ""
    );
    assert_ne!(
        in_node(
            &env,
            profile,
            profile,
            &["systemctl", "cat", "berth-storage.service"]
        ),
        0,
        "the provisioner's unit is in the node"
    );
    env.ok(&["delete", "-p", profile]);
}

#[test]
fn bad_mounts_are_refused_before_anything_is_made() {
    let env = Env::new();
    let profile = "e2e-badmount";
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().display().to_string();
    for (mount, says) in [
        ("relative/dir:/data".to_string(), "absolute"),
        (format!("{host}/missing:/data"), "does not exist"),
        (format!("{host}:/var/lib"), "shadow"),
        (format!("{host}:/opt/berth"), "shadow"),
        (format!("{host}:/data:rx"), "HOST_DIR:NODE_DIR"),
    ] {
        let (code, _, err) = env.run(&["start", "-p", profile, "--mount", &mount]);
        assert_eq!(code, 2, "{mount}: {err}");
        assert!(err.contains(says), "{mount}: {err}");
        assert_eq!(env.leftovers(profile), Vec::<String>::new());
        assert!(
            env.ok(&["profile", "list", "-o", "json"]).trim() == "[]",
            "{mount}"
        );
    }
}
