//! Whether the default StorageClass and its provisioners serve claims, and
//! why not. Every node runs a provisioner unit (rendered by berth) for the
//! claims scheduled to it, and the control plane applies the StorageClass
//! itself, so `start` never waits for either.

use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use serde::Serialize;

use super::health::UnitHealth;
use berth_core::profile::Profile;
use berth_node::addons::STORAGE_UNIT;

#[derive(Debug, Serialize, PartialEq)]
pub struct Storage {
    pub state: StorageState,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageState {
    Running,
    Starting,
    #[serde(rename = "not running")]
    NotRunning,
    /// The profile runs without storage (`--no-storage`).
    Off,
    /// Not known: the API server does not answer.
    Unknown,
}

/// As an addon's state in `addons list`.
impl From<StorageState> for super::addons::AddonState {
    fn from(state: StorageState) -> Self {
        use super::addons::AddonState;
        match state {
            StorageState::Running => AddonState::Ready,
            StorageState::Starting => AddonState::Starting,
            StorageState::NotRunning => AddonState::Unavailable,
            StorageState::Off => AddonState::Disabled,
            StorageState::Unknown => AddonState::Unknown,
        }
    }
}

impl std::fmt::Display for StorageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StorageState::Running => "running",
            StorageState::Starting => "starting",
            StorageState::NotRunning => "not running",
            StorageState::Off => "off",
            StorageState::Unknown => "unknown",
        })
    }
}

/// The storage of `profile`, from each running node's units (by node
/// name) and, when the API server answers, its StorageClass.
pub async fn status(
    client: Option<&kube::Client>,
    profile: &Profile,
    units: &[(String, &[UnitHealth])],
) -> Storage {
    let storage = |state, reason: Option<String>| Storage { state, reason };
    if !profile.has(berth_node::addons::Addon::Storage) {
        return storage(
            StorageState::Off,
            Some("`berth addons enable storage` turns it on".into()),
        );
    }
    let Some(client) = client else {
        return storage(
            StorageState::Unknown,
            Some("the API server is not ready".into()),
        );
    };
    if let Some(reason) = provisioners_down(units) {
        return storage(StorageState::NotRunning, Some(reason));
    }
    let waiting = units.iter().any(|(_, units)| {
        units
            .iter()
            .any(|u| u.name == STORAGE_UNIT && u.active.is_activating())
    });
    if waiting {
        return storage(
            StorageState::Starting,
            Some("the provisioners begin seconds after their nodes boot".into()),
        );
    }
    let classes: Api<StorageClass> = Api::all(client.clone());
    match classes.get_opt("standard").await {
        Ok(Some(_)) => storage(StorageState::Running, None),
        _ => storage(
            StorageState::Starting,
            Some("the StorageClass standard is not there yet; the control plane applies it once its API server answers".into()),
        ),
    }
}

/// Why a provisioner does not run, naming each node whose unit is not
/// active; `None` when all are.
fn provisioners_down(units: &[(String, &[UnitHealth])]) -> Option<String> {
    let down: Vec<String> = units
        .iter()
        .filter_map(|(node, units)| {
            let unit = units.iter().find(|u| u.name == STORAGE_UNIT);
            match unit.map(|u| &u.active) {
                Some(state) if state.is_active() || state.is_activating() => None,
                Some(state) => Some(format!("{node}: {state}")),
                None => Some(format!("{node}: no {STORAGE_UNIT} unit")),
            }
        })
        .collect();
    (!down.is_empty()).then(|| {
        format!(
            "the provisioner does not run on {}; its log: `journalctl -u {STORAGE_UNIT}` in the node",
            down.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(active: &str) -> UnitHealth {
        UnitHealth {
            name: STORAGE_UNIT.into(),
            active: active.into(),
            restarts: 0,
            last_fatal: None,
        }
    }

    #[test]
    fn a_provisioner_down_on_any_node_is_named() {
        let up = [unit("active")];
        let starting = [unit("activating")];
        assert_eq!(provisioners_down(&[("a".into(), &starting[..])]), None);
        let failed = [unit("failed")];
        assert_eq!(provisioners_down(&[("a".into(), &up[..])]), None);
        let reason = provisioners_down(&[
            ("a".into(), &up[..]),
            ("b".into(), &failed[..]),
            ("c".into(), &[][..]),
        ])
        .unwrap();
        assert!(
            reason.contains("b: failed, c: no berth-storage unit"),
            "{reason}"
        );
    }
}
