//! `berth cache build`: Kubernetes and its runtime from the Go module
//! proxy. The tests' own version was built by scripts/setup (or
//! scripts/test) into the shared cache; these tests build into caches of
//! their own, where Go's build cache makes that quick.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{berth, k8s_version};
use predicates::str::contains;

/// Every path below `dir`, for comparing a cache before and after.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            found.push(entry.path().display().to_string());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_version_the_proxy_does_not_serve_is_refused_and_nothing_is_cached() {
    let cache = tempfile::tempdir().unwrap();
    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "build", "v1.37.99"])
        .assert()
        .code(2)
        .stderr(contains(
            "the Go module proxy has no k8s.io/kubernetes v1.37.99",
        ))
        .stderr(contains("nothing was built"))
        .stderr(contains("go list -m -versions k8s.io/kubernetes"));
    assert_eq!(tree(&cache.path().join("kubernetes")), Vec::<String>::new());
}

#[test]
fn without_go_it_says_what_to_do() {
    let cache = tempfile::tempdir().unwrap();
    berth()
        .env("BERTH_CACHE_DIR", cache.path())
        .env("PATH", "/nonexistent")
        .args(["cache", "build", "v1.37.2"])
        .assert()
        .code(1)
        .stderr(contains("no usable Go"))
        .stderr(contains("install Go"));
    // Nothing but the (released) lock that builds of one version share.
    let made: Vec<String> = tree(cache.path())
        .into_iter()
        .filter(|p| !p.contains("/locks"))
        .collect();
    assert_eq!(made, Vec::<String>::new());
}

#[test]
fn an_interrupted_build_caches_nothing_and_stops_go() {
    let cache = tempfile::tempdir().unwrap();
    let version = k8s_version().to_string();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("berth"))
        .env("BERTH_CACHE_DIR", cache.path())
        .args(["cache", "build", &version])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Cut it while Kubernetes compiles: the step it says it is at.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    let mut line = String::new();
    while !said.contains("compiling kubernetes") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "it ended first: {said}"
        );
        said.push_str(&line);
    }
    // SAFETY: signals the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let cut = Instant::now();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{said}{rest}");
    assert!(
        cut.elapsed() < Duration::from_secs(10),
        "it took {:?} to stop",
        cut.elapsed()
    );
    assert!(
        rest.contains("interrupted (SIGINT); nothing was cached"),
        "{rest}"
    );
    // No entry, no staging directory, and no go command at work for it.
    let kubernetes = cache.path().join("kubernetes");
    assert_eq!(tree(&kubernetes), Vec::<String>::new(), "left in the cache");
    let staging = cache.path().display().to_string();
    std::thread::sleep(Duration::from_secs(1));
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains(&staging), "still running: {cmdline}");
    }
}

#[test]
fn a_built_version_is_listed_as_such_and_building_it_again_does_nothing() {
    let version = k8s_version().to_string();
    let listed = berth()
        .args(["cache", "list", "-o", "json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ours = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["version"] == version.as_str())
        .unwrap_or_else(|| panic!("{version} is not cached: scripts/test builds it"));
    if ours["source"]["kind"] != "built" {
        common::skipped(
            "tests/build.rs: the tests' version as a build",
            "the tests' version is cached from elsewhere (downloaded or imported)",
        );
        return;
    }
    assert!(
        ours["source"]["go"].as_str().unwrap().starts_with("go1."),
        "{ours}"
    );
    assert_eq!(
        ours["runtime"],
        serde_json::to_value(common::k8s_row().runtime()).unwrap()
    );
    assert_eq!(ours["images"][0], common::k8s_row().coredns);
    berth().args(["cache", "list"]).assert().success().stdout(
        predicates::str::is_match(format!(r"{version} .* ok +built from source \(go1\.")).unwrap(),
    );
    // A second build is a no-op.
    let started = Instant::now();
    berth()
        .args(["cache", "build", &version])
        .assert()
        .success()
        .stderr(contains("built and cached already"));
    assert!(started.elapsed() < Duration::from_secs(5));
}
