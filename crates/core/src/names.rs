//! Every name and label berth gives things in the Docker engine and the
//! kubeconfig, in one place, so that no command can disagree about them.
//!
//! One engine may serve several berth homes (CI jobs with their own
//! `BERTH_HOME`, people sharing a Docker host). Engine names are global, so
//! a profile of a home other than the default one carries that home's id in
//! every engine name (`berth-ci-1f2e3d`), and two homes can both run a
//! profile `ci`. Profiles of the default home have the plain names
//! (`berth-dev`), and so do profiles made before this rule. Labels tell
//! what belongs to which home and profile; berth changes nothing whose
//! labels are not its own.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

/// On every resource berth makes.
pub const LABEL_BERTH: &str = "io.berth";
/// The profile a resource belongs to.
pub const LABEL_PROFILE: &str = "io.berth.profile";
/// The berth home (state directory) whose profile it is.
pub const LABEL_HOME: &str = "io.berth.home";
/// The start (or node add) that made it: rollback removes what carries its
/// own token and nothing else.
pub const LABEL_CREATED_BY: &str = "io.berth.created-by";
/// A node container's node name and role.
pub const LABEL_NODE: &str = "io.berth.node";
pub const LABEL_ROLE: &str = "io.berth.role";
/// Short-lived helper containers (the privilege probe, a volume's filler).
pub const LABEL_HELPER: &str = "io.berth.helper";
/// The process that made a helper: `<pid namespace>:<pid>:<start time>`.
pub const LABEL_PROCESS: &str = "io.berth.process";
/// The shared, per-version volume of Kubernetes binaries.
pub const LABEL_BINARIES: &str = "io.berth.binaries";
/// The node image's build context digest and base.
pub const LABEL_IMAGE_CONTEXT: &str = "io.berth.node-image.context";
pub const LABEL_IMAGE_BASE: &str = "io.berth.node-image.base";

/// The home's pull-through registry cache, its network and volume.
pub const LABEL_REGISTRY_CACHE: &str = "io.berth.registry-cache";

const PREFIX: &str = "berth-";

/// The id a new profile of `home` gets in its engine names: none for the
/// default home, else the first 6 hex digits of the SHA-256 of its path.
pub fn home_id(home: &Path) -> Option<String> {
    if home == crate::paths::default_home_dir() {
        return None;
    }
    let digest = Sha256::digest(home.as_os_str().as_encoded_bytes());
    Some(hex::encode(digest)[..6].to_string())
}

/// The container of node `node` of a profile with `home_id`.
pub fn container(node: &str, home_id: Option<&str>) -> String {
    match home_id {
        Some(id) => format!("{PREFIX}{node}-{id}"),
        None => format!("{PREFIX}{node}"),
    }
}

/// The volume holding `/var` of the node whose container is `container`.
pub fn var_volume(container: &str) -> String {
    format!("{container}-var")
}

/// The kubeconfig context of profile `profile` with `home_id`.
pub fn context(profile: &str, home_id: Option<&str>) -> String {
    container(profile, home_id)
}

/// The container and network of the pull-through registry cache of the
/// home with `home_id`; `-data` added, its volume. No profile's name
/// starts with `berth.`, nor any other home's cache's.
pub fn registry_cache(home_id: Option<&str>) -> String {
    match home_id {
        Some(id) => format!("berth.registry-cache-{id}"),
        None => "berth.registry-cache".to_string(),
    }
}

/// What the registry cache of `home` carries: no profile, so that no
/// profile's delete takes it.
pub fn registry_cache_labels(home: &Path) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_BERTH.into(), "true".into()),
        (LABEL_REGISTRY_CACHE.into(), "true".into()),
        (LABEL_HOME.into(), home.display().to_string()),
    ])
}

/// Selects the registry cache of `home`.
pub fn registry_cache_filter(home: &Path) -> berth_engine::Filter {
    vec![
        (LABEL_REGISTRY_CACHE.into(), None),
        (LABEL_HOME.into(), Some(home.display().to_string())),
    ]
}

/// The engine names and labels of one profile of one home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    profile: String,
    home: String,
    /// Set for profiles of a home other than the default one.
    home_id: Option<String>,
}

impl Names {
    /// `home_id` is what the profile was created with: `None` for the
    /// default home and for profiles made before homes had ids.
    pub fn new(profile: &str, home: &Path, home_id: Option<&str>) -> Self {
        Self {
            profile: profile.to_string(),
            home: home.display().to_string(),
            home_id: home_id.map(str::to_string),
        }
    }

    pub fn profile(&self) -> &str {
        &self.profile
    }

    pub fn home(&self) -> &str {
        &self.home
    }

    pub fn home_id(&self) -> Option<&str> {
        self.home_id.as_deref()
    }

    /// The container of the node named `node`.
    pub fn container(&self, node: &str) -> String {
        container(node, self.home_id())
    }

    /// The volume that holds `/var` of the node named `node`.
    pub fn var_volume(&self, node: &str) -> String {
        var_volume(&self.container(node))
    }

    /// The profile's registry container; a `.` keeps it apart from every
    /// node's and profile's name, which have none.
    pub fn registry(&self) -> String {
        format!("{}.registry", self.container(&self.profile))
    }

    /// The load balancer in front of several control planes.
    pub fn load_balancer(&self) -> String {
        format!("{}.lb", self.container(&self.profile))
    }

    /// The controller of its LoadBalancer Services.
    pub fn service_lb(&self) -> String {
        format!("{}.services", self.container(&self.profile))
    }

    /// The volume of the registry's images.
    pub fn registry_volume(&self) -> String {
        format!("{}-data", self.registry())
    }

    pub fn network(&self) -> String {
        self.container(&self.profile)
    }

    /// The kubeconfig's cluster, user and context name.
    pub fn context(&self) -> String {
        context(&self.profile, self.home_id())
    }

    /// What every resource of the profile carries.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_BERTH.into(), "true".into()),
            (LABEL_PROFILE.into(), self.profile.clone()),
            (LABEL_HOME.into(), self.home.clone()),
        ])
    }

    /// The labels of what one start or node add makes: the profile's and
    /// the token of that operation.
    pub fn labels_created_by(&self, token: &str) -> HashMap<String, String> {
        let mut labels = self.labels();
        labels.insert(LABEL_CREATED_BY.into(), token.into());
        labels
    }

    /// The label filter that selects this profile's resources: both the
    /// profile and the home must match.
    pub fn filter(&self) -> berth_engine::Filter {
        vec![
            (LABEL_PROFILE.into(), Some(self.profile.clone())),
            (LABEL_HOME.into(), Some(self.home.clone())),
        ]
    }

    /// Whether a resource with these labels is this profile's.
    pub fn owns(&self, labels: &HashMap<String, String>) -> bool {
        labels.get(LABEL_PROFILE) == Some(&self.profile)
            && labels.get(LABEL_HOME) == Some(&self.home)
    }
}

/// Who a resource with these labels belongs to, as a user reads it.
pub fn owner(labels: &HashMap<String, String>) -> String {
    match (labels.get(LABEL_HOME), labels.get(LABEL_PROFILE)) {
        (Some(home), Some(profile)) => format!("profile {profile} of the berth home {home}"),
        (None, Some(profile)) => {
            format!("profile {profile} of a berth too old to label its home")
        }
        _ if labels.contains_key(LABEL_BERTH) => "berth, for no profile".to_string(),
        _ => "something not made by berth".to_string(),
    }
}

/// A token that tells one berth operation's resources from every other's:
/// the time in nanoseconds and the process id, which no two processes
/// share at the same moment on one machine, and a random part for
/// processes in different PID namespaces.
pub fn new_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut random = [0u8; 4];
    // SAFETY: getrandom writes at most `random.len()` bytes into it.
    let _ = unsafe { libc::getrandom(random.as_mut_ptr().cast(), random.len(), 0) };
    format!("{nanos:x}-{}-{}", std::process::id(), hex::encode(random))
}

/// A helper container's name: what it helps with and the token of the
/// process that made it.
pub fn helper(purpose: &str, token: &str) -> String {
    format!("{PREFIX}{purpose}-{token}")
}

/// Seconds a helper container may live before it is taken for one whose
/// berth was killed: the longest, filling a volume, takes seconds.
pub const HELPER_LIFETIME_SECS: i64 = 600;

/// A helper's labels: what it is for, the home and the process that made
/// it. Helpers live for seconds; one of this home's that is much older was
/// left by a berth that was killed, and is swept (`cluster::remove_helpers`).
pub fn helper_labels(home: &Path, purpose: &str, token: &str) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (LABEL_BERTH.into(), "true".into()),
        (LABEL_HELPER.into(), purpose.into()),
        (LABEL_HOME.into(), home.display().to_string()),
        (LABEL_CREATED_BY.into(), token.into()),
    ]);
    if let Some(process) = this_process() {
        labels.insert(LABEL_PROCESS.into(), process);
    }
    labels
}

/// Whether the berth that made a helper with these labels, created at
/// `created` (Unix seconds), is surely gone: its process is known dead (in
/// this PID namespace), or the helper is older than any helper lives.
pub fn helper_is_dead(labels: &HashMap<String, String>, created: Option<i64>, now: i64) -> bool {
    let process_gone = labels.get(LABEL_PROCESS).and_then(|p| process_alive(p)) == Some(false);
    process_gone || now - created.unwrap_or(now) > HELPER_LIFETIME_SECS
}

/// This process as `<pid namespace>:<pid>:<start time>`: the namespace
/// tells whether a process id means the same process to another berth,
/// and the start time tells a process from a later one with its id.
pub fn this_process() -> Option<String> {
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let pid = std::process::id();
    Some(format!(
        "{}:{pid}:{}",
        namespace.display(),
        start_time(&format!("/proc/{pid}/stat"))?
    ))
}

/// Whether the process `LABEL_PROCESS` names still runs; `None` when this
/// berth cannot tell (another PID namespace: another container or host).
pub fn process_alive(process: &str) -> Option<bool> {
    let mut parts = process.rsplitn(3, ':');
    let (started, pid, namespace) = (parts.next()?, parts.next()?, parts.next()?);
    let ours = std::fs::read_link("/proc/self/ns/pid").ok()?;
    if ours.display().to_string() != namespace {
        return None;
    }
    let pid: u32 = pid.parse().ok()?;
    Some(start_time(&format!("/proc/{pid}/stat")).as_deref() == Some(started))
}

/// Field 22 of /proc/PID/stat, after the command name in parentheses.
fn start_time(stat_path: &str) -> Option<String> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_home_has_plain_names_and_another_home_its_id_in_each() {
        let plain = Names::new("dev", Path::new("/home/a/.local/share/berth"), None);
        assert_eq!(plain.container("dev"), "berth-dev");
        assert_eq!(plain.container("dev-m02"), "berth-dev-m02");
        assert_eq!(plain.var_volume("dev-m02"), "berth-dev-m02-var");
        assert_eq!(plain.network(), "berth-dev");
        assert_eq!(plain.context(), "berth-dev");
        let ci = Names::new("ci", Path::new("/tmp/job1"), Some("1f2e3d"));
        assert_eq!(ci.container("ci-m02"), "berth-ci-m02-1f2e3d");
        assert_eq!(ci.var_volume("ci"), "berth-ci-1f2e3d-var");
        assert_eq!(ci.network(), "berth-ci-1f2e3d");
        assert_eq!(ci.context(), "berth-ci-1f2e3d");
        assert_ne!(
            home_id(Path::new("/tmp/job1")),
            home_id(Path::new("/tmp/job2"))
        );
        assert_eq!(home_id(Path::new("/tmp/job1")).unwrap().len(), 6);
        assert_eq!(home_id(&crate::paths::default_home_dir()), None);
        assert_eq!(registry_cache(None), "berth.registry-cache");
        assert_eq!(
            registry_cache(Some("1f2e3d")),
            "berth.registry-cache-1f2e3d"
        );
    }

    #[test]
    fn a_profile_owns_only_what_carries_both_its_name_and_its_home() {
        let names = Names::new("ci", Path::new("/tmp/job1"), None);
        assert!(names.owns(&names.labels()));
        assert!(names.owns(&names.labels_created_by("t")));
        let other_home = Names::new("ci", Path::new("/tmp/job2"), None).labels();
        assert!(!names.owns(&other_home));
        let other_profile = Names::new("cd", Path::new("/tmp/job1"), None).labels();
        assert!(!names.owns(&other_profile));
        assert!(!names.owns(&HashMap::new()));
        assert_eq!(owner(&other_home), "profile ci of the berth home /tmp/job2");
        assert_eq!(owner(&HashMap::new()), "something not made by berth");
    }

    #[test]
    fn a_process_is_alive_while_it_runs_and_unknown_across_namespaces() {
        let me = this_process().unwrap();
        assert_eq!(process_alive(&me), Some(true));
        let (pid_and_namespace, _) = me.rsplit_once(':').unwrap();
        assert_eq!(
            process_alive(&format!("{pid_and_namespace}:1")),
            Some(false)
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let (namespace, _) = pid_and_namespace.rsplit_once(':').unwrap();
        assert_eq!(process_alive(&format!("{namespace}:{pid}:1")), Some(false));
        assert_eq!(process_alive("pid:[1]:1:1"), None);
        assert_eq!(process_alive("nonsense"), None);
    }

    #[test]
    fn tokens_differ_between_calls() {
        assert_ne!(new_token(), new_token());
    }
}
