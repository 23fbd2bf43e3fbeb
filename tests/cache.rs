//! `berth cache import` and `cache list`, with stand-in binaries that answer
//! the version question as the real ones do.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::berth;
use predicates::str::contains;

const COMPONENTS: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
];

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
    let source = tempfile::tempdir().unwrap();
    fake_binaries(source.path(), "v1.30.2");
    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "import", "1.30.2"])
        .arg(source.path())
        .assert()
        .success();
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
            .join(format!("linux-{}", berth::binaries::host_arch()))
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
