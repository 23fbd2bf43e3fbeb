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

#[derive(Clone)]
pub enum Resource {
    Container(String),
    Image(String),
    Volume(String),
}

/// A Docker resource removed when dropped, so a failing test leaves
/// nothing behind.
pub struct Guard(pub Resource);

impl Drop for Guard {
    fn drop(&mut self) {
        let resource = self.0.clone();
        // A fresh runtime on its own thread: drop may run inside another one.
        let _ = std::thread::spawn(move || {
            block_on(async {
                if let Ok(docker) = Docker::connect().await {
                    let _ = match &resource {
                        Resource::Container(n) => docker.remove_container(n).await,
                        Resource::Image(n) => docker.remove_image(n).await,
                        Resource::Volume(n) => docker.remove_volume(n).await,
                    };
                }
            })
        })
        .join();
    }
}

/// An isolated berth: its own state directory and kubeconfig, with every
/// profile it made deleted when dropped, also when the test failed.
pub struct Env {
    pub home: tempfile::TempDir,
    pub kubeconfig: std::path::PathBuf,
}

impl Env {
    pub fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = home.path().join("kube").join("config");
        Env { home, kubeconfig }
    }

    pub fn berth(&self) -> assert_cmd::Command {
        let mut cmd = berth();
        cmd.env("BERTH_HOME", self.home.path().join("berth"))
            .env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Runs berth and returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.berth().args(args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }

    /// Runs berth and fails the test, with its output, unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(code, 0, "berth {args:?} failed:\n{stderr}");
        stdout
    }

    /// Starts berth in the background with stdout piped; it is killed when
    /// the returned handle is dropped.
    pub fn spawn(&self, args: &[&str]) -> Background {
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("berth"))
            .env("BERTH_HOME", self.home.path().join("berth"))
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Background(child)
    }

    pub fn kubectl(&self, profile: &str, args: &[&str]) -> String {
        let mut all = vec!["kubectl", "-p", profile, "--"];
        all.extend_from_slice(args);
        self.ok(&all)
    }
}

pub struct Background(pub std::process::Child);

impl Background {
    /// The next line the process prints.
    pub fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        let stdout = self.0.stdout.as_mut().unwrap();
        // A one-byte buffer keeps nothing of what follows the line.
        std::io::BufReader::with_capacity(1, stdout)
            .read_line(&mut line)
            .unwrap();
        line.trim().to_string()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.berth().args(["delete", "--all"]).output();
    }
}

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Labelled Docker resources of a profile that still exist.
pub fn leftovers(profile: &str) -> Vec<String> {
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let label = format!("io.berth.profile={profile}");
        let mut left: Vec<String> = docker
            .containers_by_label(&label)
            .await
            .unwrap()
            .into_keys()
            .collect();
        left.extend(docker.volumes_by_label(&label).await.unwrap());
        if docker
            .network_exists(&format!("berth-{profile}"))
            .await
            .unwrap()
        {
            left.push(format!("network berth-{profile}"));
        }
        left.sort();
        left
    })
}

/// A 2 MB image of Debian's static busybox (sh, httpd, nc, ...) and the
/// given `(path, content)` files, made in the engine with `docker import`
/// and its Dockerfile `changes`.
pub async fn busybox_image(docker: &Docker, name: &str, files: &[(&str, &str)], changes: &[&str]) {
    let busybox =
        std::fs::read("/bin/busybox").expect("busybox-static is installed by scripts/setup");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(busybox.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "bin/busybox", busybox.as_slice())
        .unwrap();
    for applet in [
        "sh", "httpd", "nc", "echo", "cat", "sleep", "mkdir", "hostname", "printf", "nslookup",
    ] {
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_cksum();
        tar.append_link(&mut link, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, content.as_bytes())
            .unwrap();
    }
    let (repo, tag) = name.rsplit_once(':').unwrap();
    docker
        .import_rootfs(tar.into_inner().unwrap(), repo, tag, changes)
        .await
        .unwrap();
}
