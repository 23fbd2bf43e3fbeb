//! The runtime a downloaded version brings (etcd, containerd, runc, CNI
//! plugins) runs the cluster. No release page can be reached here, so a
//! mirror on 127.0.0.1 serves, in each project's release layout, what
//! `cache build` made of the versions the minor pins.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use berth_core::binaries::{COMPONENTS, Cache, Runtime, host_arch};
use berth_engine::{BINARIES_MOUNT, Command, Docker};
use berth_node::addons::Addon;
use common::mirror::{publish, serve, sha256, targz};
use common::{Env, block_on, k8s_version, skipped};

/// The cached binaries of the tests' version and the runtime that came
/// with them, when it came with one (a build or a download).
fn cached() -> Option<(PathBuf, Runtime)> {
    let cache = Cache::new(&berth_core::paths::cache_dir());
    let manifest = cache.get(&k8s_version()).unwrap()?;
    Some((cache.dir(&manifest.version), manifest.runtime?))
}

/// A mirror tree of `dir`'s binaries: Kubernetes' in the official layout,
/// etcd, containerd, runc and the CNI plugins in their projects'.
fn mirror_tree(
    version: &berth_core::binaries::Version,
    dir: &Path,
    runtime: &Runtime,
) -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    let arch = host_arch();
    let read = |name: &str| fs::read(dir.join(name)).unwrap();
    let kubernetes = tree
        .path()
        .join(format!("release/{version}/bin/linux/{arch}"));
    fs::create_dir_all(&kubernetes).unwrap();
    for name in COMPONENTS {
        let bytes = read(name);
        fs::write(kubernetes.join(name), &bytes).unwrap();
        fs::write(kubernetes.join(format!("{name}.sha256")), sha256(&bytes)).unwrap();
    }
    let release = tree.path().join("release");
    let etcd = &runtime.etcd;
    publish(
        &release.join(format!("etcd/v{etcd}")),
        &format!("etcd-v{etcd}-linux-{arch}.tar.gz"),
        &targz(&[(&format!("etcd-v{etcd}-linux-{arch}/etcd"), &read("etcd"))]),
        "SHA256SUMS",
    );
    let containerd = format!(
        "containerd-static-{}-linux-{arch}.tar.gz",
        runtime.containerd
    );
    publish(
        &release.join(format!("containerd/v{}", runtime.containerd)),
        &containerd,
        &targz(&[
            ("bin/containerd", &read("containerd")),
            (
                "bin/containerd-shim-runc-v2",
                &read("containerd-shim-runc-v2"),
            ),
        ]),
        &format!("{containerd}.sha256sum"),
    );
    publish(
        &release.join(format!("runc/v{}", runtime.runc)),
        &format!("runc.{arch}"),
        &read("runc"),
        "runc.sha256sum",
    );
    if let Some(cni) = &runtime.cni {
        let file = format!("cni-plugins-linux-{arch}-v{cni}.tgz");
        let plugins: Vec<(String, Vec<u8>)> = ["bridge", "host-local", "loopback", "portmap"]
            .iter()
            .map(|p| (format!("./{p}"), read(&format!("cni/{p}"))))
            .collect();
        let entries: Vec<(&str, &[u8])> = plugins
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        publish(
            &release.join(format!("cni-plugins/v{cni}")),
            &file,
            &targz(&entries),
            &format!("{file}.sha256"),
        );
    }
    tree
}

#[test]
fn a_downloaded_runtime_runs_the_cluster() {
    let Some((dir, runtime)) = cached() else {
        skipped(
            "tests/runtime.rs: a cluster on a downloaded etcd, containerd, runc and CNI plugins",
            "the tests' Kubernetes version is cached without a runtime (imported); `berth cache build` makes one",
        );
        return;
    };
    let version = k8s_version();
    let tree = mirror_tree(&version, &dir, &runtime);
    let mirror = serve(tree.path());
    let cache = tempfile::tempdir().unwrap();
    let mut env = Env::new();
    env.cache_dir = Some(cache.path().to_path_buf());
    let v = version.to_string();
    env.ok(&["cache", "download", &v, "--binary-mirror", &mirror]);
    let listed = common::json(&env.ok(&["cache", "list", "-o", "json"]));
    assert_eq!(
        listed[0]["runtime"],
        serde_json::to_value(berth_node::supported(&version).unwrap().runtime()).unwrap(),
        "a download brings what the minor's row pins"
    );
    assert_eq!(listed[0]["source"]["kind"], "downloaded");

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
    assert_eq!(
        runtime_version,
        format!("containerd://{}", runtime.containerd)
    );
    let node = env.names(profile).container(profile);
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        for daemon in ["etcd", "containerd"] {
            let exe = docker
                .exec(
                    &node,
                    &Command::new([
                        "sh".to_string(),
                        "-c".into(),
                        format!("readlink /proc/$(pidof -s {daemon})/exe"),
                    ]),
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
    // Pods run, through the volume's shim, runc and CNI plugins.
    env.apply(
        profile,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: p, image: berth.local/pause:1.0, imagePullPolicy: Never}\n",
    );
    env.kubectl(
        profile,
        &["wait", "--for=condition=Ready", "pod/p", "--timeout=120s"],
    );
    let ip = env.kubectl(
        profile,
        &["get", "pod", "p", "-o", "jsonpath={.status.podIP}"],
    );
    assert!(
        ip.starts_with("10.244."),
        "pod address {ip:?} not from the bridge plugin"
    );
    env.ok(&["delete", "-p", profile]);
    assert!(env.leftovers(profile).is_empty());
}

/// containerd 2 takes the configuration berth renders for current
/// Kubernetes, and every setting lands where containerd 2 looks for it.
#[test]
fn containerd_2_reads_the_configuration_berth_renders() {
    let Some((dir, runtime)) = cached().filter(|(_, r)| r.containerd_major() >= 2) else {
        skipped(
            "tests/runtime.rs: containerd 2 reading berth's configuration",
            "the tests' Kubernetes version is cached without containerd 2",
        );
        return;
    };
    let containerd = dir.join("containerd");
    let spec = berth_node::render::NodeSpec {
        node: "dev".into(),
        role: berth_core::profile::Role::ControlPlane,
        node_ip: "172.30.0.2".parse().unwrap(),
        version: k8s_version(),
        row: common::k8s_row(),
        privilege: berth_engine::Privilege::Capabilities,
        cgroup_root: "/berth-dev".into(),
        cgroup_v2: true,
        pod_cidr: "10.244.0.0/24".parse().unwrap(),
        api_ip: "172.30.0.2".parse().unwrap(),
        etcd: None,
        load_balanced: false,
        extra_config: Vec::new(),
        feature_gates: Default::default(),
        addons: vec![Addon::Coredns, Addon::Storage],
        first: true,
        service_lb: false,
        ca_certs: Vec::new(),
        proxy: None,
        registry: None,
        runtime: Some(runtime),
        mtu: None,
    };
    let files = berth_node::render::node_files(&spec, &[]);
    let config = files
        .iter()
        .find_map(|f| match f {
            berth_node::render::NodeFile::File { path, content, .. }
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
        format!("bin_dirs = ['{BINARIES_MOUNT}/cni']"),
        "conf_template = '/etc/containerd/cni.template'".to_string(),
        "default_runtime_name = 'runc'".to_string(),
    ] {
        assert!(runtime.contains(&setting), "{setting} not in\n{runtime}");
    }
}
