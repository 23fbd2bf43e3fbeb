//! The user's kubeconfig: found as kubectl finds it, locked as kubectl locks
//! it, written atomically, and every entry berth did not make kept as it was.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use yaml_serde::{Mapping, Value};

use crate::pki::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the kubeconfig {} cannot be parsed ({reason}); berth leaves it untouched", path.display())]
    Unparsable { path: PathBuf, reason: String },
    #[error("the kubeconfig {} stayed locked for {waited} s by {}", path.display(), lock.display())]
    Locked {
        path: PathBuf,
        lock: PathBuf,
        waited: u64,
    },
    #[error("cannot read or write the kubeconfig {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// The file kubectl would use: `--kubeconfig`, else the first existing file
/// in KUBECONFIG, else its first entry, else `~/.kube/config`.
pub fn resolve(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let paths: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if let Some(existing) = paths.iter().find(|p| p.exists()) {
            return existing.clone();
        }
        if let Some(first) = paths.into_iter().next() {
            return first;
        }
    }
    dirs::home_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join(".kube")
        .join("config")
}

/// A context berth writes: cluster, user and context share the name.
pub struct Entry {
    pub name: String,
    pub server: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A standalone kubeconfig holding only this entry.
pub fn standalone(entry: &Entry) -> String {
    let mut config = empty();
    upsert(&mut config, entry, true);
    yaml_serde::to_string(&config).expect("kubeconfig serialises")
}

fn empty() -> Value {
    let mut m = Mapping::new();
    m.insert("apiVersion".into(), "v1".into());
    m.insert("kind".into(), "Config".into());
    m.insert("preferences".into(), Value::Mapping(Mapping::new()));
    m.insert("clusters".into(), Value::Sequence(vec![]));
    m.insert("users".into(), Value::Sequence(vec![]));
    m.insert("contexts".into(), Value::Sequence(vec![]));
    m.insert("current-context".into(), "".into());
    Value::Mapping(m)
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn named(name: &str, key: &str, body: Mapping) -> Value {
    let mut m = Mapping::new();
    m.insert("name".into(), name.into());
    m.insert(key.into(), Value::Mapping(body));
    Value::Mapping(m)
}

/// Replaces or appends the entry's cluster, user and context, leaving every
/// other entry and field in place. Returns the previous current-context.
pub fn upsert(config: &mut Value, entry: &Entry, make_current: bool) -> Option<String> {
    let mut cluster = Mapping::new();
    cluster.insert(
        "certificate-authority-data".into(),
        b64(&entry.ca_pem).into(),
    );
    cluster.insert("server".into(), entry.server.clone().into());
    let mut user = Mapping::new();
    user.insert(
        "client-certificate-data".into(),
        b64(&entry.cert_pem).into(),
    );
    user.insert("client-key-data".into(), b64(&entry.key_pem).into());
    let mut context = Mapping::new();
    context.insert("cluster".into(), entry.name.clone().into());
    context.insert("user".into(), entry.name.clone().into());
    set_named(config, "clusters", named(&entry.name, "cluster", cluster));
    set_named(config, "users", named(&entry.name, "user", user));
    set_named(config, "contexts", named(&entry.name, "context", context));
    let previous = current_context(config);
    if make_current {
        config
            .as_mapping_mut()
            .expect("checked mapping")
            .insert("current-context".into(), entry.name.clone().into());
    }
    previous
}

/// Removes the entry's cluster, user and context. When it was the current
/// context, `restore` becomes current (if that context still exists).
pub fn remove(config: &mut Value, name: &str, restore: Option<&str>) {
    for list in ["clusters", "users", "contexts"] {
        if let Some(Value::Sequence(items)) = config.get_mut(list) {
            items.retain(|item| item.get("name").and_then(Value::as_str) != Some(name));
        }
    }
    if current_context(config).as_deref() == Some(name) {
        let exists = |ctx: &str| {
            config
                .get("contexts")
                .and_then(Value::as_sequence)
                .is_some_and(|items| {
                    items
                        .iter()
                        .any(|i| i.get("name").and_then(Value::as_str) == Some(ctx))
                })
        };
        let next = restore.filter(|r| exists(r)).unwrap_or("").to_string();
        config
            .as_mapping_mut()
            .expect("checked mapping")
            .insert("current-context".into(), next.into());
    }
}

pub fn current_context(config: &Value) -> Option<String> {
    config
        .get("current-context")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The server of the cluster named `name`, if present.
pub fn server(config: &Value, name: &str) -> Option<String> {
    config
        .get("clusters")?
        .as_sequence()?
        .iter()
        .find(|i| i.get("name").and_then(Value::as_str) == Some(name))?
        .get("cluster")?
        .get("server")?
        .as_str()
        .map(str::to_string)
}

fn set_named(config: &mut Value, list: &str, item: Value) {
    let map = config.as_mapping_mut().expect("checked mapping");
    let name = item.get("name").cloned();
    let entry = map
        .entry(list.into())
        .or_insert_with(|| Value::Sequence(vec![]));
    if !entry.is_sequence() {
        *entry = Value::Sequence(vec![]);
    }
    let items = entry.as_sequence_mut().expect("just made a sequence");
    match items.iter_mut().find(|i| i.get("name") == name.as_ref()) {
        Some(existing) => {
            // Keep fields berth does not set (extensions, say) on its own entry too.
            if let (Some(old), Some(new)) = (existing.as_mapping_mut(), item.as_mapping()) {
                for (k, v) in new {
                    old.insert(k.clone(), v.clone());
                }
            }
        }
        None => items.push(item),
    }
}

/// Reads a kubeconfig; a missing or empty file is an empty config.
pub fn read(path: &Path) -> Result<Value, Error> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(empty()),
        Err(source) => {
            return Err(Error::Io {
                path: path.into(),
                source,
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(empty());
    }
    let unparsable = |reason: String| Error::Unparsable {
        path: path.into(),
        reason,
    };
    let value: Value = yaml_serde::from_str(&text).map_err(|e| unparsable(e.to_string()))?;
    if !value.is_mapping() {
        return Err(unparsable("it is not a mapping".into()));
    }
    for list in ["clusters", "users", "contexts"] {
        if value
            .get(list)
            .is_some_and(|v| !v.is_sequence() && !v.is_null())
        {
            return Err(unparsable(format!("`{list}` is not a list")));
        }
    }
    Ok(value)
}

/// Applies `change` to the kubeconfig under kubectl's `<file>.lock`, and
/// writes the result atomically with mode 0600.
pub fn update<T>(path: &Path, change: impl FnOnce(&mut Value) -> T) -> Result<T, Error> {
    let _lock = Lock::acquire(path, Duration::from_secs(30))?;
    let mut config = read(path)?;
    let result = change(&mut config);
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io)?;
    }
    let text = yaml_serde::to_string(&config).expect("kubeconfig serialises");
    write_atomic(path, text.as_bytes(), 0o600).map_err(io)?;
    Ok(result)
}

/// kubectl's lock: a `<file>.lock` created exclusively, removed by its owner.
struct Lock {
    path: PathBuf,
}

impl Lock {
    fn acquire(config: &Path, timeout: Duration) -> Result<Lock, Error> {
        let mut name = config.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.into(),
                source,
            })?;
        }
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(Lock { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if started.elapsed() >= timeout {
                        return Err(Error::Locked {
                            path: config.into(),
                            lock: path,
                            waited: timeout.as_secs(),
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(source) => return Err(Error::Io { path, source }),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> Entry {
        Entry {
            name: name.into(),
            server: "https://127.0.0.1:1234".into(),
            ca_pem: "CA".into(),
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        }
    }

    const FOREIGN: &str = r#"
apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
    extensions:
    - name: x
      extension: {a: 1}
users:
- name: prod-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token]
contexts:
- name: prod
  context: {cluster: prod, user: prod-user, namespace: shop}
current-context: prod
extensions:
- name: y
  extension: {b: 2}
"#;

    #[test]
    fn upsert_then_remove_restores_the_foreign_config_exactly() {
        let original: Value = yaml_serde::from_str(FOREIGN).unwrap();
        let mut config = original.clone();
        let previous = upsert(&mut config, &entry("berth-dev"), true);
        assert_eq!(previous.as_deref(), Some("prod"));
        assert_eq!(current_context(&config).as_deref(), Some("berth-dev"));
        assert_eq!(
            server(&config, "berth-dev").as_deref(),
            Some("https://127.0.0.1:1234")
        );
        remove(&mut config, "berth-dev", previous.as_deref());
        assert_eq!(config, original);
    }

    #[test]
    fn upsert_twice_keeps_one_entry_and_other_profiles_stay() {
        let mut config = empty();
        upsert(&mut config, &entry("berth-a"), true);
        upsert(&mut config, &entry("berth-b"), false);
        upsert(&mut config, &entry("berth-a"), true);
        assert_eq!(config["clusters"].as_sequence().unwrap().len(), 2);
        remove(&mut config, "berth-a", None);
        assert_eq!(
            server(&config, "berth-b").as_deref(),
            Some("https://127.0.0.1:1234")
        );
        assert_eq!(current_context(&config), None);
    }

    #[test]
    fn unparsable_files_are_refused_and_left_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        for bad in ["clusters: [unclosed", "- a list", "clusters: 3"] {
            fs::write(&path, bad).unwrap();
            let err = update(&path, |c| upsert(c, &entry("berth-x"), true)).unwrap_err();
            assert!(matches!(err, Error::Unparsable { .. }), "{bad}: {err}");
            assert_eq!(fs::read_to_string(&path).unwrap(), bad);
        }
        assert!(!dir.path().join("config.lock").exists());
    }

    #[test]
    fn a_held_lock_times_out_naming_the_lock_and_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(dir.path().join("config.lock"), "").unwrap();
        let err = Lock::acquire(&path, Duration::from_millis(100))
            .err()
            .unwrap();
        assert!(err.to_string().contains("config.lock"), "{err}");
        assert!(dir.path().join("config.lock").exists());
    }

    #[test]
    fn written_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kube/config");
        update(&path, |c| upsert(c, &entry("berth-x"), true)).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    /// A small deterministic generator, so a failing case can be replayed.
    struct Random(u64);

    impl Random {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below
        }

        fn word(&mut self) -> String {
            let words = ["prod", "dev", "a-b", "x.y", "berth-z", "ops", "eu-1", "k"];
            format!("{}{}", words[self.next(8) as usize], self.next(100))
        }

        /// Any YAML value a foreign tool might put in a kubeconfig.
        fn value(&mut self, depth: u32) -> Value {
            match self.next(if depth > 2 { 4 } else { 6 }) {
                0 => Value::Bool(self.next(2) == 0),
                1 => Value::Number(self.next(70000).into()),
                2 => Value::String(self.word()),
                3 => Value::Null,
                4 => Value::Sequence((0..self.next(3)).map(|_| self.value(depth + 1)).collect()),
                _ => {
                    let mut m = Mapping::new();
                    for _ in 0..self.next(4) {
                        m.insert(self.word().into(), self.value(depth + 1));
                    }
                    Value::Mapping(m)
                }
            }
        }

        /// A valid kubeconfig with foreign clusters, users and contexts,
        /// each with fields berth does not know, and top-level extras.
        fn kubeconfig(&mut self) -> Value {
            let mut config = Mapping::new();
            config.insert("apiVersion".into(), "v1".into());
            config.insert("kind".into(), "Config".into());
            let mut contexts = Vec::new();
            for (list, key) in [
                ("clusters", "cluster"),
                ("users", "user"),
                ("contexts", "context"),
            ] {
                let items: Vec<Value> = (0..self.next(4))
                    .map(|_| {
                        let name = self.word();
                        if list == "contexts" {
                            contexts.push(name.clone());
                        }
                        let mut body = Mapping::new();
                        for _ in 0..self.next(4) {
                            body.insert(self.word().into(), self.value(0));
                        }
                        named(&name, key, body)
                    })
                    .collect();
                config.insert(list.into(), Value::Sequence(items));
            }
            if !contexts.is_empty() && self.next(2) == 0 {
                let current = contexts[self.next(contexts.len() as u64) as usize].clone();
                config.insert("current-context".into(), current.into());
            }
            for _ in 0..self.next(3) {
                config.insert(format!("x-{}", self.word()).into(), self.value(0));
            }
            Value::Mapping(config)
        }
    }

    #[test]
    fn merging_and_removing_keeps_every_foreign_entry_and_field() {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        for case in 0..500 {
            let original = random.kubeconfig();
            let mut config = original.clone();
            let name = format!("berth-case{case}");
            let make_current = random.next(2) == 0;
            let previous = upsert(&mut config, &entry(&name), make_current);
            assert_eq!(previous, current_context(&original), "case {case}");
            // Written and read back as berth does, then removed again.
            let text = yaml_serde::to_string(&config).unwrap();
            let mut config: Value = yaml_serde::from_str(&text).unwrap();
            let names = |c: &Value, list: &str| -> Vec<String> {
                c.get(list)
                    .and_then(Value::as_sequence)
                    .map(|s| {
                        s.iter()
                            .filter_map(|i| i.get("name")?.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            assert!(names(&config, "contexts").contains(&name), "case {case}");
            remove(&mut config, &name, previous.as_deref());
            // Everything foreign is back exactly, the current context too.
            let mut want = original.clone();
            if want.get("current-context").is_none() && make_current {
                want.as_mapping_mut()
                    .unwrap()
                    .insert("current-context".into(), "".into());
            }
            assert_eq!(config, want, "case {case}:\n{text}");
        }
    }
}
