//! `berth cache import` and `cache list`, with stand-in binaries that answer
//! the version question as the real ones do.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::berth;
use common::mirror::{publish, serve, sha256, targz};
use predicates::str::contains;

use berth_core::binaries::COMPONENTS;

fn fake_binaries(dir: &Path, version: &str) {
    for name in COMPONENTS {
        let body = if name == "kubectl" {
            format!("#!/bin/sh\necho '{{\"clientVersion\": {{\"gitVersion\": \"{version}\"}}}}'\n")
        } else {
            format!("#!/bin/sh\necho 'Kubernetes {version}'\n")
        };
        let path = dir.join(name);
        fs::write(&path, body).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Imports fake binaries of `version` into the cache at `cache`.
fn import_fake(cache: &Path, version: &str) {
    let source = tempfile::tempdir().unwrap();
    fake_binaries(source.path(), version);
    berth()
        .env("BERTH_CACHE_DIR", cache)
        .args(["cache", "import", version])
        .arg(source.path())
        .assert()
        .success();
}

/// Every file below `dir`, so a test can tell that nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    if dir.exists() {
        for entry in walk(dir) {
            files.push((entry.display().to_string(), fs::read(&entry).unwrap()));
        }
    }
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path))
        } else {
            out.push(path)
        }
    }
    out
}

#[test]
fn import_then_list_shows_the_version_with_a_manifest() {
    let cache = tempfile::tempdir().unwrap();
    import_fake(cache.path(), "v1.30.2");
    let manifest = berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "list", "-o", "json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    assert_eq!(listed[0]["version"], "v1.30.2");
    for name in COMPONENTS {
        assert_eq!(listed[0]["files"][name]["reports"], "v1.30.2");
        assert_eq!(
            listed[0]["files"][name]["sha256"].as_str().unwrap().len(),
            64
        );
        let copied = cache
            .path()
            .join("kubernetes/v1.30.2")
            .join(format!("linux-{}", berth_core::binaries::host_arch()))
            .join(name);
        assert!(fs::metadata(copied).unwrap().permissions().mode() & 0o111 != 0);
    }
    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "list"])
        .assert()
        .success()
        .stdout(contains("v1.30.2"));
}

/// Imports `source` as v1.30.2 into a cache that already holds a good
/// v1.30.1, expecting a refusal that names `why` and changes nothing.
fn assert_rejected(source: &Path, why: &str) {
    let cache = tempfile::tempdir().unwrap();
    let good = tempfile::tempdir().unwrap();
    fake_binaries(good.path(), "v1.30.1");
    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "import", "v1.30.1"])
        .arg(good.path())
        .assert()
        .success();
    let before = snapshot(cache.path());
    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "import", "v1.30.2"])
        .arg(source)
        .assert()
        .code(2)
        .stderr(contains(why))
        .stderr(contains("nothing was imported"));
    assert_eq!(before, snapshot(cache.path()), "the cache changed");
}

#[test]
fn import_rejects_a_missing_binary() {
    let source = tempfile::tempdir().unwrap();
    fake_binaries(source.path(), "v1.30.2");
    fs::remove_file(source.path().join("kube-scheduler")).unwrap();
    assert_rejected(source.path(), "has no kube-scheduler");
}

#[test]
fn import_rejects_a_binary_that_is_not_executable() {
    let source = tempfile::tempdir().unwrap();
    fake_binaries(source.path(), "v1.30.2");
    fs::set_permissions(
        source.path().join("kubelet"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_rejected(source.path(), "kubelet is not executable");
}

#[test]
fn import_rejects_a_binary_of_another_version() {
    let source = tempfile::tempdir().unwrap();
    fake_binaries(source.path(), "v1.30.2");
    fs::write(
        source.path().join("kubectl"),
        "#!/bin/sh\necho '{\"clientVersion\":{\"gitVersion\":\"v1.29.0\"}}'\n",
    )
    .unwrap();
    assert_rejected(source.path(), "reports version v1.29.0, not v1.30.2");
}

/// What the content check looks for, appended to a stand-in binary: Go's
/// build-info header with the flag Go 1.18 and later set, and the source
/// file names of reflect2 1.0.1 (without 1.0.2's `go_above_118.go`), as in
/// Kubernetes v1.20.2 built from Debian's source with Go 1.19 as it is.
fn add_reflect2_defect(binary: &Path) {
    let mut content = fs::read(binary).unwrap();
    content.extend_from_slice(b"exit 0\n\xff Go buildinf:\x08\x02");
    content
        .extend_from_slice(b"k8s.io/kubernetes/vendor/github.com/modern-go/reflect2/unsafe_map.go");
    fs::write(binary, content).unwrap();
}

#[test]
fn import_refuses_binaries_with_the_reflect2_crash_and_changes_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    fake_binaries(source.path(), "v1.20.2");
    add_reflect2_defect(&source.path().join("kube-apiserver"));
    let before = snapshot(cache.path());
    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "import", "v1.20.2"])
        .arg(source.path())
        .assert()
        .code(2)
        .stderr(contains("reflect2 older than 1.0.2"))
        .stderr(contains("nothing was cached"))
        .stderr(contains("berth cache build v1.20.2"));
    assert_eq!(before, snapshot(cache.path()), "the cache changed");
}

#[test]
fn a_version_cached_by_the_old_build_is_listed_as_to_be_rebuilt_and_not_started() {
    let cache = tempfile::tempdir().unwrap();
    import_fake(cache.path(), "v1.20.2");
    // What the old set-up left: the defective binary and a manifest from
    // before berth looked for defects.
    let dir = cache
        .path()
        .join("kubernetes/v1.20.2")
        .join(format!("linux-{}", berth_core::binaries::host_arch()));
    add_reflect2_defect(&dir.join("kube-apiserver"));
    let manifest_path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    manifest.as_object_mut().unwrap().remove("defects");
    fs::write(&manifest_path, manifest.to_string()).unwrap();

    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "list"])
        .assert()
        .success()
        .stdout(predicates::str::is_match(r"v1\.20\.2 .* rebuild ").unwrap())
        .stdout(contains("v1.20.2 must be rebuilt"))
        .stdout(contains("berth cache build v1.20.2"));
    let listed = berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "list", "-o", "json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        listed[0]["defects"],
        serde_json::json!(["reflect2-map-iteration"])
    );
    // What was found is kept in the manifest.
    let kept: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(
        kept["defects"],
        serde_json::json!(["reflect2-map-iteration"])
    );

    let home = tempfile::tempdir().unwrap();
    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .env("BERTH_HOME", home.path())
        .env("KUBECONFIG", home.path().join("kubeconfig"))
        .args([
            "start",
            "-p",
            "e2e-defective",
            "--kubernetes-version",
            "v1.20.2",
        ])
        .assert()
        .code(2)
        .stderr(contains("cannot make a cluster that works"));
    assert!(!home.path().join("profiles/e2e-defective").exists());
    assert!(!home.path().join("kubeconfig").exists());
}

#[test]
fn import_rejects_a_malformed_version() {
    let source = tempfile::tempdir().unwrap();
    berth()
        .env("BERTH_CACHE_DIR", source.path())
        .args(["cache", "import", "../../etc"])
        .arg(source.path())
        .assert()
        .code(2)
        .stderr(contains("is not a Kubernetes version"));
}

/// A mirror tree holding fake v1.30.2 binaries with their `.sha256` files,
/// and the etcd, containerd and runc paired with v1.30 as their projects
/// publish them, under `etcd/`, `containerd/` and `runc/`.
fn mirror_tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(format!(
        "release/v1.30.2/bin/linux/{}",
        berth_core::binaries::host_arch()
    ));
    fs::create_dir_all(&dir).unwrap();
    fake_binaries(&dir, "v1.30.2");
    for name in COMPONENTS {
        let sum = sha256(&fs::read(dir.join(name)).unwrap());
        fs::write(dir.join(format!("{name}.sha256")), sum).unwrap();
    }
    let arch = berth_core::binaries::host_arch();
    let release = root.path().join("release");
    let script = |text: &str| format!("#!/bin/sh\necho '{text}'\n");
    let etcd = targz(&[(
        &format!("etcd-v3.5.24-linux-{arch}/etcd"),
        script("etcd Version: 3.5.24").as_bytes(),
    )]);
    publish(
        &release.join("etcd/v3.5.24"),
        &format!("etcd-v3.5.24-linux-{arch}.tar.gz"),
        &etcd,
        "SHA256SUMS",
    );
    let containerd = targz(&[
        (
            "bin/containerd",
            script("containerd github.com/containerd/containerd/v2 v2.1.5 fcd43222").as_bytes(),
        ),
        (
            "bin/containerd-shim-runc-v2",
            script("containerd-shim-runc-v2:\n  Version:  v2.1.5").as_bytes(),
        ),
        (
            "bin/ctr",
            script("ctr github.com/containerd/containerd/v2 v2.1.5").as_bytes(),
        ),
    ]);
    let containerd_file = format!("containerd-static-2.1.5-linux-{arch}.tar.gz");
    publish(
        &release.join("containerd/v2.1.5"),
        &containerd_file,
        &containerd,
        &format!("{containerd_file}.sha256sum"),
    );
    publish(
        &release.join("runc/v1.3.3"),
        &format!("runc.{arch}"),
        script("runc version 1.3.3").as_bytes(),
        "runc.sha256sum",
    );
    root
}

#[test]
fn download_verifies_each_checksum_and_caches_the_version() {
    let tree = mirror_tree();
    let mirror = serve(tree.path());
    let cache = tempfile::tempdir().unwrap();
    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "download", "1.30.2", "--binary-mirror", &mirror])
        .assert()
        .success();
    let out = berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "list", "-o", "json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arch_dir = tree.path().join(format!(
        "release/v1.30.2/bin/linux/{}",
        berth_core::binaries::host_arch()
    ));
    for name in COMPONENTS {
        let published = fs::read_to_string(arch_dir.join(format!("{name}.sha256"))).unwrap();
        assert_eq!(listed[0]["files"][name]["sha256"], published.as_str());
        assert_eq!(listed[0]["files"][name]["reports"], "v1.30.2");
    }
    // The runtime paired with v1.30 came along, each file checked.
    assert_eq!(
        listed[0]["runtime"],
        serde_json::json!({"etcd": "3.5.24", "containerd": "2.1.5", "runc": "1.3.3"})
    );
    for (name, reports) in [
        ("etcd", "3.5.24"),
        ("containerd", "2.1.5"),
        ("containerd-shim-runc-v2", "2.1.5"),
        ("runc", "1.3.3"),
    ] {
        assert_eq!(listed[0]["files"][name]["reports"], reports, "{name}");
        let cached = cache.path().join(format!(
            "kubernetes/v1.30.2/linux-{}/{name}",
            berth_core::binaries::host_arch()
        ));
        assert_eq!(
            listed[0]["files"][name]["sha256"],
            sha256(&fs::read(&cached).unwrap()).as_str()
        );
    }
    let runc = tree.path().join(format!(
        "release/runc/v1.3.3/runc.{}",
        berth_core::binaries::host_arch()
    ));
    assert_eq!(
        listed[0]["files"]["runc"]["sha256"],
        sha256(&fs::read(runc).unwrap()).as_str()
    );
    // Only what nodes run is kept of the archives.
    assert!(
        !cache
            .path()
            .join(format!(
                "kubernetes/v1.30.2/linux-{}/ctr",
                berth_core::binaries::host_arch()
            ))
            .exists()
    );
}

/// A download from `mirror` must fail naming `why`, and leave the cache as
/// it was.
fn assert_download_refused(mirror: &str, why: &str) {
    let cache = tempfile::tempdir().unwrap();
    let before = snapshot(cache.path());
    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "download", "v1.30.2", "--binary-mirror", mirror])
        .assert()
        .code(1)
        .stderr(contains(why))
        .stderr(contains("nothing was cached"))
        .stderr(contains("berth cache import"));
    assert_eq!(before, snapshot(cache.path()), "the cache changed");
    assert!(!cache.path().join("kubernetes/v1.30.2").exists());
    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "list", "-o", "json"])
        .assert()
        .stdout("[]\n");
}

#[test]
fn download_refuses_a_file_whose_checksum_differs() {
    let tree = mirror_tree();
    let kubelet = tree.path().join(format!(
        "release/v1.30.2/bin/linux/{}/kubelet",
        berth_core::binaries::host_arch()
    ));
    fs::write(
        &kubelet,
        "#!/bin/sh\necho 'Kubernetes v1.30.2 (tampered)'\n",
    )
    .unwrap();
    assert_download_refused(&serve(tree.path()), "published checksum is");
}

#[test]
fn download_refuses_a_runtime_archive_whose_checksum_differs_or_is_unlisted() {
    let tree = mirror_tree();
    let etcd_dir = tree.path().join("release/etcd/v3.5.24");
    let file = format!(
        "etcd-v3.5.24-linux-{}.tar.gz",
        berth_core::binaries::host_arch()
    );
    fs::write(etcd_dir.join(&file), b"not the archive").unwrap();
    assert_download_refused(&serve(tree.path()), "published checksum is");
    fs::write(
        etcd_dir.join("SHA256SUMS"),
        format!("{}  other.tar.gz\n", "0".repeat(64)),
    )
    .unwrap();
    assert_download_refused(
        &serve(tree.path()),
        "SHA256SUMS: it does not hold a SHA-256 checksum",
    );
}

#[test]
fn download_refuses_a_runtime_binary_that_reports_another_version() {
    let tree = mirror_tree();
    let arch = berth_core::binaries::host_arch();
    publish(
        &tree.path().join("release/runc/v1.3.3"),
        &format!("runc.{arch}"),
        b"#!/bin/sh\necho 'runc version 1.1.12'\n",
        "runc.sha256sum",
    );
    assert_download_refused(&serve(tree.path()), "reports version 1.1.12, not 1.3.3");
}

#[test]
fn download_refuses_a_missing_file_and_an_unreachable_mirror() {
    let tree = mirror_tree();
    fs::remove_file(tree.path().join(format!(
        "release/v1.30.2/bin/linux/{}/kube-proxy.sha256",
        berth_core::binaries::host_arch()
    )))
    .unwrap();
    assert_download_refused(&serve(tree.path()), "kube-proxy.sha256: http status: 404");
    // Port 1 on loopback: nothing listens, the connection is refused.
    assert_download_refused("http://127.0.0.1:1/release", "cannot download");
}

#[test]
fn download_rejects_a_mirror_that_is_not_a_url() {
    berth()
        .env("BERTH_CACHE_DIR", tempfile::tempdir().unwrap().path())
        .args([
            "cache",
            "download",
            "v1.30.2",
            "--binary-mirror",
            "dl.k8s.io",
        ])
        .assert()
        .code(2)
        .stderr(contains("is not a mirror URL"));
}

#[test]
fn version_reports_berth_its_node_image_and_the_cached_versions() {
    let cache = tempfile::tempdir().unwrap();
    let version = |format: &str| {
        let out = berth()
            .env("BERTH_CACHE_DIR", cache.path())
            .args(["version", "-o", format])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let empty: serde_json::Value = serde_json::from_str(&version("json")).unwrap();
    assert_eq!(empty["cached"], serde_json::json!([]));
    assert!(version("text").contains("cached:     none"));

    import_fake(cache.path(), "v1.30.2");
    let reported: serde_json::Value = serde_json::from_str(&version("json")).unwrap();
    assert_eq!(reported["version"], env!("CARGO_PKG_VERSION"));
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(
        reported["commit"],
        head.as_deref().unwrap_or("unknown"),
        "built from another commit than the checkout's"
    );
    assert_eq!(
        reported["node_image"],
        berth_core::node_image::Context::embedded().image()
    );
    assert_eq!(
        reported["kubernetes"],
        serde_json::json!({
            "oldest": format!("v1.{}", berth_node::minors::OLDEST_MINOR),
            "newest": format!("v1.{}", berth_node::minors::NEWEST_MINOR),
            "default": berth_cluster::DEFAULT_VERSION,
        })
    );
    assert_eq!(reported["cached"], serde_json::json!(["v1.30.2"]));
    assert!(version("text").contains("cached:     v1.30.2"));
}
