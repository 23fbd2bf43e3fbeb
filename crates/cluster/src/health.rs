//! What the units berth runs in a node say of themselves: whether each is
//! active and how often systemd restarted it since the node booted, with
//! the last fatal line of one that did. A component that keeps crashing is
//! restarted by systemd within a second, so only its restart count shows it.

use serde::Serialize;

use berth_core::error::Result;
use berth_core::profile::Node;
use berth_engine::Engine;
use berth_node::addons::Addon;
use berth_node::command;

/// The units of a control-plane node; workers run the last three.
const CONTROL_PLANE_UNITS: [&str; 7] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "containerd",
];

/// The units `node` runs with `addons` on.
pub fn units_of(node: &Node, addons: &[Addon]) -> Vec<&'static str> {
    let mut units = if node.is_control_plane() {
        CONTROL_PLANE_UNITS.to_vec()
    } else {
        CONTROL_PLANE_UNITS[4..].to_vec()
    };
    units.extend(addons.iter().flat_map(|a| a.units()));
    units
}

/// systemd's ActiveState of a unit, as systemd writes it: active,
/// activating, failed, inactive, ... (printed and serialised as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ActiveState(String);

impl ActiveState {
    pub fn is_active(&self) -> bool {
        self.0 == "active"
    }

    /// Starting: for the storage provisioner, waiting out its delay.
    pub fn is_activating(&self) -> bool {
        self.0 == "activating"
    }

    /// The state of a unit that could not be asked.
    pub fn unknown() -> Self {
        ActiveState("unknown".into())
    }
}

impl From<&str> for ActiveState {
    fn from(state: &str) -> Self {
        ActiveState(state.to_string())
    }
}

impl std::fmt::Display for ActiveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitHealth {
    pub name: String,
    pub active: ActiveState,
    /// Automatic restarts since the node booted.
    pub restarts: u32,
    /// The last line the unit's process wrote when it died (a Go fatal
    /// error or panic, a klog fatal line), else systemd's note of its exit;
    /// only for a unit that restarted.
    pub last_fatal: Option<String>,
}

/// The units of a running node, from one `systemctl show` and, for those
/// that restarted, one look into the journal each.
pub async fn units(docker: &dyn Engine, node: &Node, addons: &[Addon]) -> Result<Vec<UnitHealth>> {
    let names = units_of(node, addons);
    let out = docker
        .exec(&node.container, &command::unit_states(&names))
        .await?;
    let mut found = parse_show(&out.stdout);
    for unit in found.iter_mut().filter(|u| u.restarts > 0) {
        unit.last_fatal = last_fatal(docker, node, &unit.name).await?;
    }
    Ok(found)
}

async fn last_fatal(docker: &dyn Engine, node: &Node, unit: &str) -> Result<Option<String>> {
    let out = docker
        .exec(&node.container, &command::last_fatal(unit))
        .await?;
    let line = out.stdout.trim();
    Ok((!line.is_empty()).then(|| line.to_string()))
}

/// `systemctl show` prints one block of `Key=Value` lines per unit, blank
/// lines between, its properties in an order of its own.
fn parse_show(text: &str) -> Vec<UnitHealth> {
    text.split("\n\n")
        .filter_map(|block| {
            let value = |key: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            };
            Some(UnitHealth {
                name: value("Id")?.trim_end_matches(".service").to_string(),
                active: value("ActiveState").unwrap_or_default().into(),
                restarts: value("NRestarts").and_then(|n| n.parse().ok()).unwrap_or(0),
                last_fatal: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_show_blocks_become_units_in_any_property_order() {
        let text = "NRestarts=0\nId=etcd.service\nActiveState=active\n\n\
                    Id=kube-apiserver.service\nActiveState=activating\nNRestarts=14\n";
        assert_eq!(
            parse_show(text),
            [
                UnitHealth {
                    name: "etcd".into(),
                    active: "active".into(),
                    restarts: 0,
                    last_fatal: None
                },
                UnitHealth {
                    name: "kube-apiserver".into(),
                    active: "activating".into(),
                    restarts: 14,
                    last_fatal: None
                },
            ]
        );
        assert!(parse_show("").is_empty());
    }

    #[test]
    fn workers_are_asked_for_their_own_units_only() {
        let profile = berth_core::profile::Profile::example("n");
        let profile_node = |index| profile.node_at(index);
        assert_eq!(units_of(&profile_node(0), &[]).len(), 7);
        assert_eq!(
            units_of(&profile_node(1), &[Addon::Coredns]),
            ["kubelet", "kube-proxy", "containerd"]
        );
        assert_eq!(
            units_of(&profile_node(1), &[Addon::Coredns, Addon::Storage]),
            ["kubelet", "kube-proxy", "containerd", "berth-storage"]
        );
    }
}
