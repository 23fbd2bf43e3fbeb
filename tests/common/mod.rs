//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;

use berth::docker::Docker;

/// The Kubernetes version the end-to-end tests run; CI caches it first.
pub fn k8s_version() -> berth::binaries::Version {
    std::env::var("BERTH_TEST_K8S_VERSION")
        .unwrap_or_else(|_| "v1.20.2".into())
        .parse()
        .unwrap()
}

/// The berth binary under test, with the same cache as the test process.
pub fn berth() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("berth").unwrap()
}

pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Removes a container when dropped, so a failing test leaves nothing.
pub struct ContainerGuard(pub String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let name = self.0.clone();
        // A fresh runtime on its own thread: drop may run inside another one.
        let _ = std::thread::spawn(move || {
            block_on(async {
                if let Ok(docker) = Docker::connect().await {
                    let _ = docker.remove_container(&name).await;
                }
            })
        })
        .join();
    }
}

/// Removes an image tag when dropped.
pub struct ImageGuard(pub String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            block_on(async {
                if let Ok(docker) = Docker::connect().await {
                    let _ = docker.remove_image(&name).await;
                }
            })
        })
        .join();
    }
}
