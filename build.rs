//! The commit berth is built from, for `berth version` and the logs archive.

use std::path::Path;

fn main() {
    // Read at run time: a build script compiled for one checkout is reused
    // for another when they share a target directory.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    git_commit(Path::new(&manifest_dir));
}

/// The commit berth is built from, for `berth version`; "unknown" outside
/// a git checkout.
fn git_commit(dir: &Path) {
    let git = dir.join(".git");
    for watched in ["HEAD", "refs/heads", "packed-refs"] {
        if git.join(watched).exists() {
            println!("cargo:rerun-if-changed={}", git.join(watched).display());
        }
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BERTH_GIT_COMMIT={commit}");
}
