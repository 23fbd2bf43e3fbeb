//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;

use berth_engine::Docker;

pub mod mirror;
pub mod ns_engine;

/// The Kubernetes version the end-to-end tests run: berth's default, or
/// `BERTH_TEST_VERSION`; scripts/test caches it first.
pub fn k8s_version() -> berth_core::binaries::Version {
    std::env::var("BERTH_TEST_VERSION")
        .unwrap_or_else(|_| berth_cluster::DEFAULT_VERSION.into())
        .parse()
        .unwrap()
}

/// What berth runs with the version under test: its minor's row.
pub fn k8s_row() -> &'static berth_node::Minor {
    berth_node::supported(&k8s_version()).unwrap()
}

/// The berth binary under test, with a cleared environment and exactly
/// what berth needs of the test's own: the binaries cache the test process
/// sees, the engine, a PATH and a home. A test adds what it sets.
pub fn berth() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("berth").unwrap();
    cmd.env_clear().envs(base_env());
    cmd
}

fn base_env() -> Vec<(&'static str, std::ffi::OsString)> {
    let mut env = vec![
        (
            "BERTH_CACHE_DIR",
            berth_core::paths::cache_dir().into_os_string(),
        ),
        ("PATH", std::env::var_os("PATH").unwrap_or_default()),
        // Every start runs the tests' version, whatever else is cached.
        ("BERTH_KUBERNETES_VERSION", k8s_version().to_string().into()),
        ("HOME", std::env::var_os("HOME").unwrap_or_default()),
    ];
    if let Some(host) = std::env::var_os("DOCKER_HOST") {
        env.push(("DOCKER_HOST", host));
    }
    env
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
/// Before it deletes them, it fails the test when a component of a running
/// profile was restarted by systemd (it crashed), unless the test restarts
/// components on purpose (`allow_restarts`).
pub struct Env {
    pub home: tempfile::TempDir,
    pub kubeconfig: std::path::PathBuf,
    restarts_allowed: std::cell::Cell<bool>,
    /// berth runs without `BERTH_HOME`, in the default home of a user whose
    /// home directory is `home`: as a person runs it.
    default_home: bool,
    /// A binaries cache of the test's own instead of the shared one.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Variables that name an engine other than this machine's
    /// (`use_engine`).
    engine: std::cell::RefCell<Vec<(&'static str, String)>>,
}

impl Env {
    /// A berth home of its own, set with `BERTH_HOME`, as CI jobs do.
    pub fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = home.path().join("kube").join("config");
        Env {
            home,
            kubeconfig,
            restarts_allowed: std::cell::Cell::new(false),
            default_home: false,
            cache_dir: None,
            engine: Default::default(),
        }
    }

    /// Every berth of this test, its cleanup included, reaches the engine
    /// `vars` name (`NsEngine::vars`).
    pub fn use_engine(&self, vars: Vec<(&'static str, String)>) {
        *self.engine.borrow_mut() = vars;
    }

    /// berth as a user runs it: no `BERTH_HOME`, its default home under a
    /// home directory of the test's own.
    pub fn with_default_home() -> Self {
        let mut env = Env::new();
        env.default_home = true;
        env
    }

    /// For a test that kills or restarts components itself.
    pub fn allow_restarts(&self) {
        self.restarts_allowed.set(true);
    }

    /// Every unit of every node of the running profiles that systemd
    /// restarted since its node booted, as `profile/node/unit: N restarts
    /// (last line)`. A listing or status that cannot be read is reported
    /// as such, never taken for "no restarts".
    pub fn restarted_units(&self) -> Vec<String> {
        let json = |args: &[&str]| -> Result<serde_json::Value, String> {
            let (code, out, err) = self.run(args);
            // status exits non-zero for an unhealthy node, with its JSON.
            serde_json::from_str(&out)
                .map_err(|_| format!("berth {args:?} gave no JSON (exit {code}): {err}"))
        };
        let listed = match json(&["profile", "list", "-o", "json"]) {
            Ok(listed) => listed,
            Err(why) => return vec![why],
        };
        let mut restarted = Vec::new();
        for profile in listed.as_array().into_iter().flatten() {
            let name = profile["name"].as_str().unwrap_or_default();
            if profile["status"] != "Running" {
                continue;
            }
            let status = match json(&["status", "-p", name, "-o", "json"]) {
                Ok(status) => status,
                Err(why) => {
                    restarted.push(why);
                    continue;
                }
            };
            for node in status["nodes"].as_array().into_iter().flatten() {
                for unit in node["units"].as_array().into_iter().flatten() {
                    if unit["restarts"].as_u64().unwrap_or(0) > 0 {
                        restarted.push(format!(
                            "{name}/{}/{}: {} restarts ({})",
                            node["name"].as_str().unwrap_or_default(),
                            unit["name"].as_str().unwrap_or_default(),
                            unit["restarts"],
                            unit["last_fatal"].as_str().unwrap_or_default()
                        ));
                    }
                }
            }
        }
        restarted
    }

    pub fn apply(&self, profile: &str, manifest: &str) {
        let args = ["kubectl", "-p", profile, "--", "apply", "-f", "-"];
        let (code, _, stderr) = self.run_stdin(&args, manifest);
        assert_eq!(code, 0, "kubectl apply failed:\n{stderr}\n{manifest}");
    }

    /// Starts a pod `name` on `node` with `dnsPolicy: Default` (the node's
    /// resolvers, as kubelet hands them out) that sleeps, and waits for it.
    pub fn resolver_pod(&self, profile: &str, name: &str, node: &str, image: &str) {
        self.apply(
            profile,
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  \
                 dnsPolicy: Default\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {image}, \
                 imagePullPolicy: Never, command: [sleep, \"3600\"]}}\n"
            ),
        );
        self.kubectl(
            profile,
            &[
                "wait",
                "--for=condition=Ready",
                &format!("pod/{name}"),
                "--timeout=180s",
            ],
        );
    }

    /// Asserts that `pod` resolves `host` (a name only the engine's DNS
    /// knows) to `ip` through its resolv.conf, within a minute.
    pub fn assert_resolves(&self, profile: &str, pod: &str, host: &str, ip: &str) {
        eventually(std::time::Duration::from_secs(60), || {
            let (code, out, err) = self.run(&[
                "kubectl", "-p", profile, "--", "exec", pod, "--", "nslookup", host,
            ]);
            if code == 0 && out.contains(&format!("Address: {ip}")) {
                Ok(())
            } else {
                Err(format!("{pod} cannot resolve {host}: {out}{err}"))
            }
        });
    }

    /// What an HTTP GET from inside `pod` to `address` answers, body only.
    pub fn get_from_pod(&self, profile: &str, pod: &str, address: &str) -> Result<String, String> {
        let request = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} | tail -1");
        let (code, out, err) = self.run(&[
            "kubectl", "-p", profile, "--", "exec", pod, "--", "sh", "-c", &request,
        ]);
        if code == 0 && !out.trim().is_empty() {
            Ok(out.trim().to_string())
        } else {
            Err(format!("GET {address} from {pod}: {out}{err}"))
        }
    }

    /// Its berth home.
    pub fn berth_home(&self) -> std::path::PathBuf {
        if self.default_home {
            self.home.path().join(".local/share/berth")
        } else {
            self.home.path().join("berth")
        }
    }

    /// The engine names and labels of profile `profile` of this home.
    pub fn names(&self, profile: &str) -> berth_core::names::Names {
        let home = self.berth_home();
        let id = if self.default_home {
            None
        } else {
            berth_core::names::home_id(&home)
        };
        berth_core::names::Names::new(profile, &home, id.as_deref())
    }

    /// What berth's environment gets besides `base_env`.
    fn own_env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let mut env = vec![("KUBECONFIG", self.kubeconfig.clone().into_os_string())];
        if self.default_home {
            env.push(("HOME", self.home.path().into()));
        } else {
            env.push(("BERTH_HOME", self.berth_home().into_os_string()));
        }
        if let Some(cache) = &self.cache_dir {
            env.push(("BERTH_CACHE_DIR", cache.clone().into_os_string()));
        }
        for (key, value) in self.engine.borrow().iter() {
            env.push((key, value.into()));
        }
        env
    }

    /// The resources of profile `profile` of this home that exist, looked
    /// for twice: by the labels `delete` goes by, and by the names berth
    /// gives the profile's containers, volumes and networks, so that one
    /// berth made without its labels is found too (one that another home's
    /// labels claim, whose names may be the same, is that home's).
    pub fn leftovers(&self, profile: &str) -> Vec<String> {
        let names = self.names(profile);
        let mut named: Vec<String> = [
            names.container(profile),
            names.var_volume(profile),
            names.registry(),
            names.registry_volume(),
            names.load_balancer(),
            names.service_lb(),
        ]
        .into_iter()
        .chain((1..berth_core::profile::MAX_NODES).flat_map(|index| {
            let node = format!("{profile}-m{:02}", index + 1);
            [names.container(&node), names.var_volume(&node)]
        }))
        .collect();
        named.sort();
        let home = self.berth_home().display().to_string();
        let mut found = resources(&names.filter());
        let everything = block_on(async {
            let docker = Docker::connect().await.unwrap();
            docker.resources(&Vec::new()).await.unwrap()
        });
        for resource in everything {
            let owner = resource.labels.get(berth_core::names::LABEL_HOME);
            let text = resource.to_string();
            if named.binary_search(&resource.name).is_ok()
                && owner.is_none_or(|h| *h == home)
                && !found.contains(&text)
            {
                found.push(text);
            }
        }
        found.sort();
        found
    }

    pub fn berth(&self) -> assert_cmd::Command {
        let mut cmd = berth();
        cmd.envs(self.own_env());
        cmd
    }

    /// Runs berth and returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_stdin(args, "")
    }

    /// Runs berth with `stdin` and returns (exit code, stdout, stderr).
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        self.run_in(&[], args, stdin)
    }

    /// Runs berth with `vars` set too, and `stdin`: (exit code, stdout,
    /// stderr).
    pub fn run_in(
        &self,
        vars: &[(&str, &str)],
        args: &[&str],
        stdin: &str,
    ) -> (i32, String, String) {
        let out = self
            .berth()
            .envs(vars.iter().copied())
            .args(args)
            .write_stdin(stdin.to_string())
            .output()
            .unwrap();
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
        self.spawn_in(&[] as &[(&str, &str)], args)
    }

    /// `spawn` with `vars` set too.
    pub fn spawn_in<K, V>(&self, vars: &[(K, V)], args: &[&str]) -> Background
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let child = self
            .command(assert_cmd::cargo::cargo_bin("berth"))
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Background(child)
    }

    /// Waits up to 150 s for `pod` to be Ready, also while its controller
    /// has not made it yet; fails with its description.
    pub fn wait_ready(&self, profile: &str, pod: &str) {
        self.wait_ready_in(profile, "default", pod)
    }

    /// `wait_ready` for a pod of `namespace`.
    pub fn wait_ready_in(&self, profile: &str, namespace: &str, pod: &str) {
        let object = format!("pod/{pod}");
        eventually(std::time::Duration::from_secs(150), || {
            let (code, out, err) = self.run(&[
                "kubectl",
                "-p",
                profile,
                "--",
                "-n",
                namespace,
                "wait",
                "--for=condition=Ready",
                &object,
                "--timeout=10s",
            ]);
            if code == 0 {
                return Ok(());
            }
            let (_, describe, _) = self.run(&[
                "kubectl", "-p", profile, "--", "-n", namespace, "describe", &object,
            ]);
            Err(format!("{object} is not Ready: {out}{err}\n{describe}"))
        });
    }

    /// `program` with the environment berth runs with in this test.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        cmd.env_clear().envs(base_env()).envs(self.own_env());
        cmd
    }

    /// The HTTP status of `method path` asked of the profile's API server
    /// with the bearer `token`.
    pub fn api_as(&self, profile: &str, token: &str, method: &str, path: &str) -> u16 {
        let status = json(&self.ok(&["status", "-p", profile, "-o", "json"]));
        let server = status["endpoint"].as_str().unwrap();
        let ca = self
            .berth_home()
            .join("profiles")
            .join(profile)
            .join("pki/ca.crt");
        let out = self
            .command("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                method,
                "--cacert",
            ])
            .arg(ca)
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("{server}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
    }

    /// The namespace is there and not being deleted (a namespace whose
    /// deletion waits on its objects is Terminating).
    pub fn namespace_stays(&self, profile: &str, namespace: &str) -> bool {
        let (code, phase, _) = self.run(&[
            "kubectl",
            "-p",
            profile,
            "--",
            "get",
            "namespace",
            namespace,
            "-o",
            "jsonpath={.status.phase}",
        ]);
        code == 0 && phase.trim() != "Terminating"
    }

    pub fn kubectl(&self, profile: &str, args: &[&str]) -> String {
        let mut all = vec!["kubectl", "-p", profile, "--"];
        all.extend_from_slice(args);
        self.ok(&all)
    }
}

/// Each file of a .tar.gz with its content.
pub fn unpack(path: &std::path::Path) -> Vec<(String, String)> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut content = String::new();
            entry.read_to_string(&mut content).unwrap();
            (path, content)
        })
        .collect()
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
        let restarted = if std::thread::panicking() || self.restarts_allowed.get() {
            Vec::new()
        } else {
            self.restarted_units()
        };
        let _ = self.berth().args(["delete", "--all"]).output();
        let _ = self.berth().args(["cache", "registry", "disable"]).output();
        assert!(
            restarted.is_empty(),
            "components crashed and were restarted during the test:\n{}",
            restarted.join("\n")
        );
    }
}

/// A pod `web` of `image` serving `page` over HTTP on 8080 (it prints
/// "serving" first), and a Service `web` on port 80 in front of it.
pub fn web_pod_and_service(image: &str, page: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {image}
    imagePullPolicy: Never
    command: [sh, -c, "mkdir -p /www && echo {page} > /www/index.html && echo serving && httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    )
}

/// A Deployment `web` of `replicas` pods of `image` (busybox), each serving
/// its own name over HTTP on 8080.
/// A claim `data` of `size` and a bare pod `writer` of `image` (which no
/// registry serves) running the shell `script` (no double quotes) with the
/// claim at /data; ready once the command `ready` (a YAML list) succeeds,
/// when given.
pub fn claim_and_writer(image: &str, size: &str, script: &str, ready: Option<&str>) -> String {
    let probe = ready
        .map(|command| {
            format!("\n    readinessProbe: {{exec: {{command: {command}}}, periodSeconds: 1}}")
        })
        .unwrap_or_default();
    format!(
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: {size}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: writer}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: writer
    image: {image}
    imagePullPolicy: Never
    command: [sh, -c, "{script}"]{probe}
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - name: data
    persistentVolumeClaim: {{claimName: data}}
"#
    )
}

pub fn web_deployment(image: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {image}
        imagePullPolicy: Never
        command: [sh, -c, "mkdir -p /www && hostname > /www/index.html && httpd -f -p 8080 -h /www"]
"#
    )
}

/// An HTTP GET from the host to 127.0.0.1:`port` (with `host` as its Host
/// header when given): the body's last line.
pub fn http_get(port: u16, host: Option<&str>) -> Result<String, String> {
    http_get_at("127.0.0.1", port, host)
}

/// `http_get` to `address` instead of 127.0.0.1.
pub fn http_get_at(address: &str, port: u16, host: Option<&str>) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect((address, port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let header = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    stream
        .write_all(format!("GET / HTTP/1.0\r\n{header}\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// The port of a URL berth printed, such as http://127.0.0.1:8080.
pub fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// Records that part of a test could not run here, and why. The reason is
/// printed, and appended to the file `BERTH_TEST_SKIPS` names, which
/// scripts/test shows after the run, so that a skip never passes unseen.
pub fn skipped(what: &str, why: &str) {
    let line = format!("SKIPPED: {what}: {why}\n");
    eprint!("{line}");
    if let Some(path) = std::env::var_os("BERTH_TEST_SKIPS") {
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// The parts of a long test on one cluster (which costs too much to start
/// once per part): each part runs even when one before it failed, and the
/// test fails when `Parts` goes, naming every part that did. A part that
/// needs what an earlier one made says so by being in the same part.
#[derive(Default)]
pub struct Parts {
    failed: Vec<String>,
}

impl Parts {
    pub fn run(&mut self, name: &str, part: impl FnOnce()) {
        eprintln!("part: {name}");
        let started = std::time::Instant::now();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(part)) {
            Ok(()) => eprintln!("part: {name}: ok ({:.1?})", started.elapsed()),
            Err(_) => {
                eprintln!("part: {name}: FAILED (its panic is printed above)");
                self.failed.push(name.to_string());
            }
        }
    }
}

impl Drop for Parts {
    fn drop(&mut self) {
        if !self.failed.is_empty() && !std::thread::panicking() {
            panic!(
                "{} part(s) failed: {}",
                self.failed.len(),
                self.failed.join("; ")
            );
        }
    }
}

/// Retries `check` until it passes or `timeout` ends, then fails with its
/// last complaint.
pub fn eventually(timeout: std::time::Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(why) if std::time::Instant::now() > deadline => panic!("{why}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_secs(1)),
        }
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

/// Every resource in the engine with labels matching `filter`, as
/// `kind name`, sorted.
pub fn resources(filter: &berth_engine::Filter) -> Vec<String> {
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let mut found: Vec<String> = docker
            .resources(filter)
            .await
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        found.sort();
        found
    })
}

/// A busybox image that the tests of one binary running at once share:
/// made by the first that asks for it, removed when the last is done, so
/// that no test removes it under another.
pub struct SharedImage(&'static str);

static IMAGE_USERS: std::sync::Mutex<Vec<(&'static str, usize)>> =
    std::sync::Mutex::new(Vec::new());

pub fn shared_busybox(name: &'static str) -> SharedImage {
    let mut users = IMAGE_USERS.lock().unwrap_or_else(|e| e.into_inner());
    match users.iter_mut().find(|(n, _)| *n == name) {
        Some((_, count)) => *count += 1,
        None => {
            block_on(async {
                let docker = Docker::connect().await.unwrap();
                busybox_image(&docker, name, &[], &[]).await;
            });
            users.push((name, 1));
        }
    }
    SharedImage(name)
}

impl Drop for SharedImage {
    fn drop(&mut self) {
        let mut users = IMAGE_USERS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = users.iter().position(|(n, _)| *n == self.0) {
            users[i].1 -= 1;
            if users[i].1 == 0 {
                users.remove(i);
                drop(Guard(Resource::Image(self.0.to_string())));
            }
        }
    }
}

/// A 2 MB image of Debian's static busybox (sh, httpd, nc, ...) and the
/// given `(path, content)` files, made in the engine with `docker import`
/// and its Dockerfile `changes`.
pub async fn busybox_image(docker: &Docker, name: &str, files: &[(&str, &str)], changes: &[&str]) {
    let busybox =
        std::fs::read("/bin/busybox").expect("busybox-static is installed by scripts/setup");
    let mut tar = tar::Builder::new(Vec::new());
    append_file(&mut tar, "bin/busybox", &busybox, 0o755);
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
        append_file(&mut tar, path, content.as_bytes(), 0o644);
    }
    let (repo, tag) = name.rsplit_once(':').unwrap();
    docker
        .import_rootfs(tar.into_inner().unwrap(), repo, tag, changes)
        .await
        .unwrap();
}

/// A file `path` (relative) with `content` and `mode` in `tar`.
pub fn append_file(tar: &mut tar::Builder<Vec<u8>>, path: &str, content: &[u8], mode: u32) {
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(mode);
    header.set_cksum();
    tar.append_data(&mut header, path, content).unwrap();
}

/// `docker load` of an image archive into the test's engine.
pub async fn docker_load(archive: &std::path::Path) {
    use futures_util::StreamExt as _;
    let api = bollard::Docker::connect_with_defaults().unwrap();
    let bytes = std::fs::read(archive).unwrap();
    let options = bollard::query_parameters::ImportImageOptionsBuilder::default().build();
    let mut stream = api.import_image(options, bollard::body_full(bytes.into()), None);
    while let Some(item) = stream.next().await {
        let info = item.unwrap();
        assert!(info.error_detail.is_none(), "{:?}", info.error_detail);
    }
}

/// A test server (a Go program of the tests, `source` relative to the
/// repository), built static with the machine's Go, alone in the image
/// `image` as its entrypoint; the image is removed when the guard drops.
pub fn go_image(source: &str, image: &str) -> Guard {
    let out = tempfile::tempdir().unwrap();
    let binary = out.path().join("server");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
    let built = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(&source)
        .env("CGO_ENABLED", "0")
        .env("GO111MODULE", "off")
        .env("GOCACHE", out.path().join("cache"))
        .output()
        .expect("Go is on PATH (scripts/setup makes sure)");
    assert!(
        built.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_path_with_name(&binary, "server").unwrap();
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let (repo, tag) = image.rsplit_once(':').unwrap();
        let entrypoint = r#"ENTRYPOINT ["/server"]"#;
        docker
            .import_rootfs(tar.into_inner().unwrap(), repo, tag, &[entrypoint])
            .await
            .unwrap();
    });
    Guard(Resource::Image(image.into()))
}

/// The Service `web`: port 80 to port 8080 of the pods labelled `app: web`.
pub const WEB_SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
";

/// Text as base64, as Secrets and caBundles hold it.
pub fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A TLS Secret `name` in `namespace` with a serving certificate and key.
pub fn tls_secret(namespace: &str, name: &str, cert: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         type: kubernetes.io/tls\ndata: {{tls.crt: {}, tls.key: {}}}\n",
        b64(cert),
        b64(key)
    )
}

/// A CA of the test's own.
pub struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pub pem: String,
}

impl TestCa {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "berth test private CA");
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa { params, key, pem }
    }

    /// A client certificate for `name` and its key.
    pub fn client(&self, name: &str) -> (String, String) {
        let issuer = rcgen::Issuer::new(self.params.clone(), &self.key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A server certificate for `ip` and its key.
    pub fn server(&self, ip: &str) -> (String, String) {
        let issuer = rcgen::Issuer::new(self.params.clone(), &self.key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![ip.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Debian's docker-registry in a container of the node image, its images
/// in the volume `volume`; `tls` serves HTTPS with that certificate and
/// key at `ip` on `network`, else plain HTTP published on 127.0.0.1:`port`
/// (where the host's engine pushes without TLS).
pub fn test_registry(
    name: &str,
    volume: &str,
    network: Option<(String, String)>,
    port: Option<u16>,
    tls: Option<(&str, &str)>,
) {
    let config = match tls {
        Some(_) => {
            "version: 0.1\nstorage: {filesystem: {rootdirectory: /var/lib/docker-registry}}\n\
                    http: {addr: ':5000', tls: {certificate: /etc/berth-test/tls.crt, key: /etc/berth-test/tls.key}}\n"
        }
        None => {
            "version: 0.1\nstorage: {filesystem: {rootdirectory: /var/lib/docker-registry}}\n\
                 http: {addr: ':5000'}\n"
        }
    };
    let mut tar = tar::Builder::new(Vec::new());
    append_file(
        &mut tar,
        "etc/berth-test/config.yml",
        config.as_bytes(),
        0o644,
    );
    if let Some((cert, key)) = tls {
        append_file(&mut tar, "etc/berth-test/tls.crt", cert.as_bytes(), 0o644);
        append_file(&mut tar, "etc/berth-test/tls.key", key.as_bytes(), 0o600);
    }
    let tar = tar.into_inner().unwrap();
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let image = berth_core::node_image::Context::embedded().image();
        let spec = berth_engine::NodeContainer {
            privilege: None,
            cgroup_v2: true,
            entrypoint: Some(
                [
                    "/usr/bin/docker-registry",
                    "serve",
                    "/etc/berth-test/config.yml",
                ]
                .map(String::from)
                .to_vec(),
            ),
            var_volume: Some(volume.to_string()),
            network,
            ports: port.map(|p| vec![(p, 5000)]).unwrap_or_default(),
            ..berth_engine::NodeContainer::helper(name.to_string(), &image, Default::default())
        };
        let id = docker.create_container(&spec).await.unwrap();
        docker.upload(&id, tar).await.unwrap();
        docker.start_container(&id).await.unwrap();
    });
}

/// What a container printed, stdout and stderr as one text.
pub fn container_logs(name: &str) -> String {
    use futures_util::StreamExt as _;
    block_on(async {
        let api = bollard::Docker::connect_with_defaults().unwrap();
        let options = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut logs = api.logs(name, Some(options));
        let mut text = String::new();
        while let Some(chunk) = logs.next().await {
            text.push_str(&chunk.unwrap().to_string());
        }
        text
    })
}

/// A TLS registry of the test's own at `ip` on `network`, holding `image`
/// as `app:1`: pushed through a plain one on the loopback that shares its
/// volume. Everything goes when it is dropped.
pub struct TlsRegistry {
    _pushed: Guard,
    _containers: [Guard; 2],
    _volume: Guard,
}

impl TlsRegistry {
    pub fn start(network: String, ip: &str, cert: &str, key: &str, image: &str) -> Self {
        let tag = format!("{}-{}", std::process::id(), ip.replace('.', "-"));
        let volume = format!("berth-test-registry-{tag}");
        let _volume = Guard(Resource::Volume(volume.clone()));
        let plain = format!("berth-test-registry-http-{tag}");
        let secure = format!("berth-test-registry-tls-{tag}");
        let _containers = [
            Guard(Resource::Container(plain.clone())),
            Guard(Resource::Container(secure.clone())),
        ];
        let port = free_port();
        test_registry(&plain, &volume, None, Some(port), None);
        test_registry(
            &secure,
            &volume,
            Some((network, ip.to_string())),
            None,
            Some((cert, key)),
        );
        let _pushed = push(image, &format!("127.0.0.1:{port}/app"));
        TlsRegistry {
            _pushed,
            _containers,
            _volume,
        }
    }
}

/// Pushes `image` from the host's engine as `repo:1` (a registry on the
/// loopback takes it without TLS), trying again while the registry starts;
/// the tag goes with the guard.
pub fn push(image: &str, repo: &str) -> Guard {
    use futures_util::StreamExt as _;
    let name = repo.to_string();
    block_on(async {
        let api = bollard::Docker::connect_with_defaults().unwrap();
        let tag = bollard::query_parameters::TagImageOptions {
            repo: Some(name.clone()),
            tag: Some("1".into()),
        };
        api.tag_image(image, Some(tag)).await.unwrap();
        let options = bollard::query_parameters::PushImageOptions {
            tag: Some("1".into()),
            platform: None,
        };
        // As the docker CLI does: an empty credential, which a registry
        // without authentication takes.
        let anonymous = Some(bollard::auth::DockerCredentials::default());
        for attempt in 0.. {
            let mut progress = api.push_image(&name, Some(options.clone()), anonymous.clone());
            let mut failed = None;
            while let Some(step) = progress.next().await {
                match step {
                    Ok(step) if step.error_detail.is_none() => {}
                    other => failed = Some(format!("{other:?}")),
                }
            }
            match failed {
                None => break,
                Some(why) if attempt == 20 => panic!("push of {name}:1 failed: {why}"),
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            }
        }
    });
    Guard(Resource::Image(format!("{name}:1")))
}
