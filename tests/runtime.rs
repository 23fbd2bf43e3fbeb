//! The runtime a downloaded version brings (etcd, containerd, runc) runs
//! the cluster. No release page can be reached here, so a mirror on
//! 127.0.0.1 serves Debian's builds (scripts/runtime-fixtures.sh) in their
//! projects' release layout, beside the cached Kubernetes binaries.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use berth::binaries::{COMPONENTS, Cache, host_arch};
use berth::docker::{BINARIES_MOUNT, Docker};
use common::mirror::{publish, serve, sha256, targz};
use common::{Env, block_on, k8s_version, skipped};

/// Where scripts/setup puts the fixtures.
fn fixtures() -> PathBuf {
    let build = std::env::var_os("BERTH_BUILD_DIR").unwrap_or("/var/cache/berth-build".into());
    PathBuf::from(build).join("fixtures")
}

/// A mirror tree: the cached binaries of `version` in the official layout
/// and the v1 fixtures as etcd 3.5.16, containerd 1.7.24 and runc 1.1.5.
fn mirror_tree(version: &berth::binaries::Version, runtime: &Path) -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    let arch = host_arch();
    let cached = Cache::new(&berth::paths::cache_dir()).dir(version);
    let dir = tree
        .path()
        .join(format!("release/{version}/bin/linux/{arch}"));
    fs::create_dir_all(&dir).unwrap();
    for name in COMPONENTS {
        let bytes = fs::read(cached.join(name)).unwrap();
        fs::write(dir.join(name), &bytes).unwrap();
        fs::write(dir.join(format!("{name}.sha256")), sha256(&bytes)).unwrap();
    }
    let release = tree.path().join("release");
    publish(
        &release.join("etcd/v3.5.16"),
        &format!("etcd-v3.5.16-linux-{arch}.tar.gz"),
        &targz(&[(
            &format!("etcd-v3.5.16-linux-{arch}/etcd"),
            &fs::read(runtime.join("etcd")).unwrap(),
        )]),
        "SHA256SUMS",
    );
    let containerd = format!("containerd-static-1.7.24-linux-{arch}.tar.gz");
    publish(
        &release.join("containerd/v1.7.24"),
        &containerd,
        &targz(&[
            (
                "bin/containerd",
                &fs::read(runtime.join("containerd")).unwrap(),
            ),
            (
                "bin/containerd-shim-runc-v2",
                &fs::read(runtime.join("containerd-shim-runc-v2")).unwrap(),
            ),
        ]),
        &format!("{containerd}.sha256sum"),
    );
    publish(
        &release.join("runc/v1.1.5"),
        &format!("runc.{arch}"),
        &fs::read(runtime.join("runc")).unwrap(),
        "runc.sha256sum",
    );
    tree
}

#[test]
fn a_downloaded_runtime_runs_the_cluster() {
    let runtime = fixtures().join("v1");
    if !runtime.join("etcd").exists() {
        skipped(
            "tests/runtime.rs: a cluster on a downloaded etcd, containerd and runc",
            "no fixtures; scripts/setup makes them with scripts/runtime-fixtures.sh",
        );
        return;
    }
    let version = k8s_version();
    let tree = mirror_tree(&version, &runtime);
    let mirror = serve(tree.path());
    let cache = tempfile::tempdir().unwrap();
    let mut env = Env::new();
    env.cache_dir = Some(cache.path().to_path_buf());
    let v = version.to_string();
    env.ok(&[
        "cache",
        "download",
        &v,
        "--binary-mirror",
        &mirror,
        "--etcd",
        "3.5.16",
        "--containerd",
        "1.7.24",
        "--runc",
        "v1.1.5",
    ]);
    let listed = common::json(&env.ok(&["cache", "list", "-o", "json"]));
    assert_eq!(
        listed[0]["runtime"],
        serde_json::json!({"etcd": "3.5.16", "containerd": "1.7.24", "runc": "1.1.5"})
    );

    let profile = "e2e-runtime";
    env.ok(&["start", "-p", profile, "--wait", "3m"]);
    let runtime_version = env.kubectl(
        profile,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[0].status.nodeInfo.containerRuntimeVersion}",
        ],
    );
    assert_eq!(runtime_version, "containerd://1.7.24");
    let node = env.names(profile).container(profile);
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        for daemon in ["etcd", "containerd"] {
            let exe = docker
                .exec(
                    &node,
                    &[
                        "sh",
                        "-c",
                        &format!("readlink /proc/$(pidof -s {daemon})/exe"),
                    ],
                )
                .await
                .unwrap();
            assert_eq!(
                exe.stdout.trim(),
                format!("{BINARIES_MOUNT}/{daemon}"),
                "{daemon}: {exe:?}"
            );
        }
    });
    // Pods run, through the volume's shim and runc.
    env.apply(
        profile,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: p, image: berth.local/pause:1.0, imagePullPolicy: Never}\n",
    );
    env.kubectl(
        profile,
        &["wait", "--for=condition=Ready", "pod/p", "--timeout=120s"],
    );
    env.ok(&["delete", "-p", profile]);
    assert!(env.leftovers(profile).is_empty());
}

/// containerd 2 takes the configuration berth renders for current
/// Kubernetes, and every setting lands where containerd 2 looks for it.
#[test]
fn containerd_2_reads_the_configuration_berth_renders() {
    let containerd = fixtures().join("v2/containerd");
    if !containerd.exists() {
        skipped(
            "tests/runtime.rs: containerd 2 reading berth's configuration",
            "no fixtures; scripts/setup makes them with scripts/runtime-fixtures.sh",
        );
        return;
    }
    let spec = berth::node::render::NodeSpec {
        node: "dev".into(),
        role: berth::profile::Role::ControlPlane,
        node_ip: "172.30.0.2".parse().unwrap(),
        version: "v1.34.1".parse().unwrap(),
        privilege: berth::docker::Privilege::Capabilities,
        cgroup_root: "/berth-dev".into(),
        cgroup_v2: true,
        pod_cidr: "10.244.0.0/24".parse().unwrap(),
        api_ip: "172.30.0.2".parse().unwrap(),
        etcd: None,
        load_balanced: false,
        extra_config: Vec::new(),
        feature_gates: Default::default(),
        dns: true,
        storage: true,
        addons: Vec::new(),
        first: true,
        registry: None,
        runtime: Some(berth::binaries::runtime_for_minor(34)),
    };
    let files = berth::node::render::node_files(&spec, &[]);
    let config = files
        .iter()
        .find_map(|f| match f {
            berth::node::render::NodeFile::File { path, content, .. }
                if path == "/etc/containerd/config.toml" =>
            {
                Some(content.clone())
            }
            _ => None,
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("config.toml"), &config).unwrap();
    let out = std::process::Command::new(&containerd)
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .args(["config", "dump"])
        .output()
        .unwrap();
    let dumped = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The dump is containerd's own reading: each setting in its plugin.
    let section = |name: &str| {
        let start = dumped
            .find(&format!("[plugins.'{name}']"))
            .unwrap_or_else(|| panic!("no {name} in\n{dumped}"));
        let rest = &dumped[start + 1..];
        let end = rest.find("\n  [plugins.'").map_or(rest.len(), |e| e + 1);
        rest[..end].to_string()
    };
    let images = section("io.containerd.cri.v1.images");
    assert!(
        images.contains("sandbox = 'berth.local/pause:1.0'"),
        "{images}"
    );
    let runtime = section("io.containerd.cri.v1.runtime");
    for setting in [
        "restrict_oom_score_adj = true".to_string(),
        format!("BinaryName = '{BINARIES_MOUNT}/runc'"),
        "bin_dirs = ['/usr/lib/cni']".to_string(),
        "conf_template = '/etc/containerd/cni.template'".to_string(),
        "default_runtime_name = 'runc'".to_string(),
    ] {
        assert!(runtime.contains(&setting), "{setting} not in\n{runtime}");
    }
}
