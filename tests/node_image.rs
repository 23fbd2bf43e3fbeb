//! The node image under the real engine: its tag follows its build context,
//! and a node booted from it runs systemd, containerd, etcd and the pause
//! image, with the version's binaries mounted read-only.

mod common;

use std::time::{Duration, Instant};

use berth_core::node_image::{self as image, Context};
use berth_engine::{BinariesVolume, Command, Docker, NodeContainer, Privilege};
use common::{Guard, Resource, berth, block_on, k8s_version};

fn build(context_dir: Option<&std::path::Path>) -> (String, String) {
    let mut cmd = berth();
    cmd.args(["node-image", "build", "-o", "json"]);
    if let Some(dir) = context_dir {
        cmd.arg("--context").arg(dir);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reused = json["reused"].to_string();
    (json["image"].as_str().unwrap().to_string(), reused)
}

#[test]
fn an_unchanged_context_reuses_its_tag_and_a_changed_one_gets_a_new_one() {
    let (image, _) = build(None);
    assert_eq!(image, Context::embedded().image());
    let (again, reused) = build(None);
    assert_eq!((again.as_str(), reused.as_str()), (image.as_str(), "true"));

    let copy = tempfile::tempdir().unwrap();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("node-image"),
        copy.path(),
    );
    let (same, _) = build(Some(copy.path()));
    assert_eq!(same, image, "a copy of the context is the same context");

    // A file the Dockerfile never copies changes the context but no layer,
    // so the engine's layer cache keeps this build short.
    std::fs::write(copy.path().join("NOTES"), "changed").unwrap();
    let (changed, reused) = build(Some(copy.path()));
    let _cleanup = Guard(Resource::Image(changed.clone()));
    assert_ne!(changed, image);
    assert_eq!(reused, "false");
    assert!(changed.starts_with(&format!("{}:", image::REPOSITORY)));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A container of the test's own, labelled as such.
fn test_container(name: &str, image: &str) -> NodeContainer {
    let labels =
        std::collections::HashMap::from([("io.berth.test".to_string(), "true".to_string())]);
    NodeContainer::helper(name.to_string(), image, labels)
}

/// Fills binaries volumes as this test process.
fn filler(image: &str) -> berth_core::binaries::Filler {
    berth_core::binaries::Filler {
        image: image.to_string(),
        home: std::env::temp_dir().join("berth-test-home"),
        token: berth_core::names::new_token(),
    }
}

async fn exec(docker: &Docker, node: &str, cmd: &[&str]) -> (i64, String) {
    // The test's own probes, spelled here: what berth runs is spelled in
    // berth_node::command.
    let out = docker
        .exec(node, &Command::new(cmd.iter().copied()))
        .await
        .unwrap();
    (out.code, format!("{}{}", out.stdout, out.stderr))
}

#[test]
fn a_node_boots_with_systemd_containerd_etcd_pause_and_the_binaries() {
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let context = Context::embedded();
        let base = image::default_base(&docker).await.unwrap();
        image::ensure(&docker, &context, &context.image(), &base, |_| {})
            .await
            .unwrap();
        let version = k8s_version();
        let cache = berth_core::binaries::Cache::new(&berth_core::paths::cache_dir());
        let manifest = cache.get(&version).unwrap().unwrap_or_else(|| {
            panic!("Kubernetes {version} is not cached; .ci/run caches it first")
        });

        let probe = test_container(
            &format!("berth-test-probe-{}", std::process::id()),
            &context.image(),
        );
        let privilege = docker.privilege(&probe).await.unwrap();
        // The shared per-version volume is a cache, like the node image, and
        // is kept for the tests that follow.
        let binaries = berth_core::binaries::ensure_volume(
            &docker,
            &cache,
            &manifest,
            &filler(&context.image()),
        )
        .await
        .unwrap();
        eprintln!("this engine runs nodes as {privilege:?}");
        let name = format!("berth-test-boot-{}", std::process::id());
        let _cleanup = Guard(Resource::Container(name.clone()));
        let node = NodeContainer {
            name: name.clone(),
            hostname: "boot".into(),
            privilege: Some(privilege),
            cgroup_v2: docker.cgroup_v2().await.unwrap(),
            binaries: Some(BinariesVolume {
                name: binaries,
                writable: false,
            }),
            entrypoint: None,
            ..test_container(&name, &context.image())
        };
        docker.create_container(&node).await.unwrap();
        docker.start_container(&name).await.unwrap();

        let state = booted(&docker, &name).await;
        let (_, failed) = exec(&docker, &name, &["systemctl", "--failed", "--no-legend"]).await;
        assert_eq!(state, "running", "failed units: {failed}");

        for unit in ["containerd", "berth-pause-import", "berth-dns"] {
            let (code, out) = exec(&docker, &name, &["systemctl", "is-active", unit]).await;
            assert_eq!((code, out.trim()), (0, "active"), "{unit}");
        }
        // etcd is there for berth to run on control planes, but Debian's own
        // unit is off: a node runs only what berth renders for it.
        let (code, out) = exec(&docker, &name, &["etcd", "--version"]).await;
        assert_eq!(code, 0, "{out}");
        let (_, out) = exec(&docker, &name, &["systemctl", "is-enabled", "etcd"]).await;
        assert_eq!(out.trim(), "disabled");
        // Off the profile's network there is no engine DNS to reach: the
        // node's resolvers are handed to pods as they are.
        let (_, resolv) = exec(&docker, &name, &["cat", "/etc/berth/resolv.conf"]).await;
        let (_, own) = exec(&docker, &name, &["cat", "/etc/resolv.conf"]).await;
        assert_eq!(resolv, own);
        let (_, images) = exec(
            &docker,
            &name,
            &["ctr", "--namespace", "k8s.io", "images", "ls", "-q"],
        )
        .await;
        assert!(
            images.lines().any(|l| l == "berth.local/pause:1.0"),
            "images: {images}"
        );
        let imports = || async {
            let (_, log) = exec(
                &docker,
                &name,
                &["journalctl", "-b", "-o", "cat", "-u", "berth-pause-import"],
            )
            .await;
            log.lines()
                .filter(|l| l.ends_with(": imported") || l.ends_with(": held already"))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let first = imports().await;
        assert!(
            first.contains(&"berth.local/pause:1.0: imported".to_string()),
            "{first:?}"
        );
        // Booted again, the node imports nothing: containerd holds each
        // image by name and digest already.
        docker.stop_container(&name, 0).await.unwrap();
        docker.start_container(&name).await.unwrap();
        assert_eq!(booted(&docker, &name).await, "running");
        // A container's boots share the host's boot id: the journal of
        // "this boot" holds both.
        let both = imports().await;
        let again: Vec<_> = first
            .iter()
            .map(|l| l.replace(": imported", ": held already"))
            .collect();
        assert_eq!(both, [first, again].concat());

        let dir = berth_engine::BINARIES_MOUNT;
        for bin in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubelet",
            "kube-proxy",
        ] {
            let (code, out) = exec(&docker, &name, &[&format!("{dir}/{bin}"), "--version"]).await;
            assert_eq!(code, 0, "{bin}: {out}");
            assert_eq!(out.trim(), format!("Kubernetes {version}"), "{bin}");
        }
        let (_, out) = exec(
            &docker,
            &name,
            &[
                &format!("{dir}/kubectl"),
                "version",
                "--client",
                "-o",
                "json",
            ],
        )
        .await;
        assert!(
            out.contains(&format!("\"gitVersion\": \"{version}\"")),
            "{out}"
        );
        let (code, _) = exec(&docker, &name, &["touch", &format!("{dir}/x")]).await;
        assert_ne!(code, 0, "the binaries must be mounted read-only");
        if privilege == Privilege::Capabilities {
            let (_, caps) = exec(&docker, &name, &["grep", "CapBnd", "/proc/1/status"]).await;
            assert!(
                !caps.contains("000001ffffffffff"),
                "CAP_SYS_RESOURCE should be missing: {caps}"
            );
        }
    });
}

#[test]
fn a_binaries_volume_left_incomplete_is_filled_again() {
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let context = Context::embedded();
        let image = context.image();
        // Built here too: the tests of this file run at the same time.
        let base = image::default_base(&docker).await.unwrap();
        image::ensure(&docker, &context, &image, &base, |_| {})
            .await
            .unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        let version: berth_core::binaries::Version = "v1.30.2".parse().unwrap();
        for name in berth_core::binaries::COMPONENTS {
            let answer = if name == "kubectl" {
                format!("echo '{{\"clientVersion\":{{\"gitVersion\":\"{version}\"}}}}'")
            } else {
                format!("echo 'Kubernetes {version}' # {}", std::process::id())
            };
            let path = source.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{answer}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let cache = berth_core::binaries::Cache::new(cache_dir.path());
        let manifest = cache.import(&version, source.path()).unwrap();
        let volume = berth_core::binaries::volume_name(&manifest);
        let _cleanup = Guard(Resource::Volume(volume.clone()));

        // As a fill cut off before its end leaves it: the volume, empty.
        let labels = std::collections::HashMap::from([
            (
                berth_core::names::LABEL_BERTH.to_string(),
                "true".to_string(),
            ),
            (
                berth_core::names::LABEL_BINARIES.to_string(),
                version.to_string(),
            ),
        ]);
        docker.create_volume(&volume, &labels).await.unwrap();
        let filler = filler(&image);
        let ensure = || berth_core::binaries::ensure_volume(&docker, &cache, &manifest, &filler);
        // Two berths (another home, another process) at it at once: one fills
        // while the other waits for its helper to go, and neither removes
        // the other's.
        let other = berth_core::binaries::Filler {
            home: std::env::temp_dir().join("berth-test-other-home"),
            ..self::filler(&image)
        };
        let (filled, by_other) = tokio::join!(
            ensure(),
            berth_core::binaries::ensure_volume(&docker, &cache, &manifest, &other)
        );
        assert_eq!(filled.unwrap(), volume);
        assert_eq!(by_other.unwrap(), volume);

        let reader = NodeContainer {
            name: format!("berth-test-reader-{}", std::process::id()),
            binaries: Some(BinariesVolume {
                name: volume.clone(),
                writable: false,
            }),
            privilege: Some(Privilege::Capabilities),
            ..test_container(&format!("berth-test-reader-{}", std::process::id()), &image)
        };
        let _reader = Guard(Resource::Container(reader.name.clone()));
        docker.create_container(&reader).await.unwrap();
        for name in berth_core::binaries::COMPONENTS {
            let path = format!("{}/{name}", berth_engine::BINARIES_MOUNT);
            assert!(
                docker.file_exists(&reader.name, &path).await.unwrap(),
                "{path}"
            );
        }
        // A complete volume is used as it is: with the cached files gone, a
        // second fill could not even start.
        std::fs::remove_dir_all(cache.dir(&version)).unwrap();
        let again = ensure().await.unwrap();
        assert_eq!(again, volume);
    })
}

/// Waits for the node's systemd to finish booting, and says how it ended.
async fn booted(docker: &Docker, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, state) = exec(docker, name, &["systemctl", "is-system-running"]).await;
        let state = state.trim().to_string();
        // Before systemd opens its bus, systemctl cannot ask it at all.
        let booting = state.starts_with("Failed to connect to bus");
        if !booting && !matches!(state.as_str(), "offline" | "initializing" | "starting" | "")
            || Instant::now() > deadline
        {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
