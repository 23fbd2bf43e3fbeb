//! The journals of berth's units in a profile's nodes: read, filtered to
//! problems, followed, and merged across nodes in time order.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::try_join_all;
use serde::Serialize;

use super::Ctx;
use berth_core::error::{Error, Result};
use berth_core::profile::{Node, Profile};
use berth_engine::Command;
use berth_node::command::{self, JournalStart};

/// Every unit berth runs in a node, and the short names users may give.
pub const COMPONENTS: [(&str, &[&str]); 12] = [
    ("etcd", &[]),
    ("kube-apiserver", &["apiserver"]),
    ("kube-controller-manager", &["controller-manager"]),
    ("kube-scheduler", &["scheduler"]),
    ("kubelet", &[]),
    ("kube-proxy", &["proxy"]),
    ("containerd", &[]),
    ("berth-addons", &["addons"]),
    ("berth-dns", &["dns"]),
    ("berth-routes", &["routes"]),
    ("berth-storage", &["storage"]),
    ("berth-pause-import", &["pause-import"]),
];

/// The unit a user's component name means; an unknown one is refused with
/// the list of valid names.
pub fn component(name: &str) -> Result<&'static str> {
    COMPONENTS
        .iter()
        .find(|(unit, aliases)| *unit == name || aliases.contains(&name))
        .map(|(unit, _)| *unit)
        .ok_or_else(|| {
            let valid: Vec<&str> = COMPONENTS.iter().map(|(unit, _)| *unit).collect();
            Error::usage(format!("there is no component {name}"))
                .with_hint(format!("components: {}", valid.join(", ")))
        })
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Units to read; empty: all of them.
    pub units: Vec<&'static str>,
    pub since: Option<Duration>,
    /// The last N lines of all that is read.
    pub tail: Option<usize>,
    /// Only lines at warning level or above, and systemd's own notes.
    pub problems: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Line {
    /// Microseconds since the Unix epoch.
    pub time_us: u64,
    pub node: String,
    pub component: String,
    pub message: String,
}

/// Where each node's journal was read up to, to go on from there.
pub type Cursors = HashMap<String, String>;

/// The lines of `nodes` that `query` selects, oldest first, after
/// `cursors` (which move on to the last line read).
pub async fn read(
    ctx: &Ctx,
    nodes: &[Node],
    query: &Query,
    cursors: &mut Cursors,
) -> Result<Vec<Line>> {
    let per_node = try_join_all(nodes.iter().map(|node| {
        let after = cursors.get(&node.name).cloned();
        async move {
            let cmd = journalctl(query, after.as_deref());
            let out = ctx.docker.exec(&node.container, &cmd).await?;
            Ok::<_, Error>((node.name.clone(), parse(&node.name, &out.stdout)))
        }
    }))
    .await?;
    let mut lines = Vec::new();
    for (node, (read, cursor)) in per_node {
        if let Some(cursor) = cursor {
            cursors.insert(node, cursor);
        }
        lines.extend(read);
    }
    lines.retain(|l| !query.problems || is_problem(l));
    lines.sort_by_key(|l| l.time_us);
    if let Some(tail) = query.tail {
        let skip = lines.len().saturating_sub(tail);
        lines.drain(..skip);
    }
    Ok(lines)
}

/// The units of each node that systemd gave up on, as `(node, unit)`.
pub async fn failed_units(ctx: &Ctx, nodes: &[Node]) -> Result<Vec<(String, String)>> {
    let cmd = &command::failed_units();
    let per_node = try_join_all(nodes.iter().map(|node| async move {
        let out = ctx.docker.exec(&node.container, cmd).await?;
        Ok::<_, Error>(
            out.stdout
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(|unit| {
                    (
                        node.name.clone(),
                        unit.trim_end_matches(".service").to_string(),
                    )
                })
                .collect::<Vec<_>>(),
        )
    }))
    .await?;
    Ok(per_node.into_iter().flatten().collect())
}

/// The journal read of `query` on one node, going on after `after`.
fn journalctl(query: &Query, after: Option<&str>) -> Command {
    let units: Vec<&str> = if query.units.is_empty() {
        COMPONENTS.iter().map(|(unit, _)| *unit).collect()
    } else {
        query.units.clone()
    };
    let from = match after {
        Some(cursor) => JournalStart::Cursor(cursor.to_string()),
        None => JournalStart::Recent {
            seconds: query.since.map(|since| since.as_secs()),
            // The merged tail is cut from each node's own tail.
            lines: query.tail.filter(|_| !query.problems),
        },
    };
    command::journal_json(&units, &from)
}

/// journalctl's JSON lines as lines of `node`, and the last one's cursor.
fn parse(node: &str, json_lines: &str) -> (Vec<Line>, Option<String>) {
    let mut cursor = None;
    let lines = json_lines
        .lines()
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .filter_map(|entry| {
            cursor = entry["__CURSOR"]
                .as_str()
                .map(String::from)
                .or(cursor.take());
            // systemd's own notes about a unit name it in UNIT; what the
            // unit's processes write is under their own _SYSTEMD_UNIT.
            let unit = entry["UNIT"].as_str().or(entry["_SYSTEMD_UNIT"].as_str())?;
            let priority: u8 = entry["PRIORITY"]
                .as_str()
                .and_then(|p| p.parse().ok())
                .unwrap_or(6);
            let message = match &entry["MESSAGE"] {
                serde_json::Value::String(s) => s.clone(),
                // Journald keeps a message that is not UTF-8 as bytes.
                serde_json::Value::Array(bytes) => String::from_utf8_lossy(
                    &bytes
                        .iter()
                        .filter_map(|b| b.as_u64().map(|b| b as u8))
                        .collect::<Vec<_>>(),
                )
                .into_owned(),
                _ => return None,
            };
            // systemd's own notes (a unit failed, restarted) are problems
            // when journald ranks them a warning or worse.
            let systemd_note = !entry["UNIT"].is_null();
            Some(Line {
                time_us: entry["__REALTIME_TIMESTAMP"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),
                node: node.to_string(),
                component: unit.trim_end_matches(".service").to_string(),
                message: if systemd_note && priority <= 4 {
                    format!("systemd: {message}")
                } else {
                    message
                },
            })
        })
        .collect();
    (lines, cursor)
}

/// Whether a line says something went wrong: klog's E, W and F lines,
/// etcd's and containerd's levels, systemd's warnings about a unit, and
/// the provisioner's failures.
fn is_problem(line: &Line) -> bool {
    let m = line.message.as_str();
    let klog = m.len() > 5
        && matches!(m.as_bytes()[0], b'E' | b'W' | b'F')
        && m.as_bytes()[1..5].iter().all(u8::is_ascii_digit);
    klog || m.starts_with("systemd: ")
        || [
            "\"level\":\"warn\"",
            "\"level\":\"error\"",
            "\"level\":\"fatal\"",
            "\"level\":\"panic\"",
        ]
        .iter()
        .any(|l| m.contains(l))
        || ["level=warning", "level=error", "level=fatal", "level=panic"]
            .iter()
            .any(|l| m.contains(l))
        || m.starts_with("panic:")
        || m.starts_with("fatal error:")
        || m.starts_with("failed (try ")
        || m.starts_with("refused ")
}

/// The nodes whose logs are read: the one named, or all; each must run.
pub async fn nodes(ctx: &Ctx, profile: &Profile, only: Option<&str>) -> Result<Vec<Node>> {
    super::images::running_nodes(ctx, profile, only).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_named_by_unit_or_short_name_and_unknown_ones_listed() {
        assert_eq!(component("apiserver").unwrap(), "kube-apiserver");
        assert_eq!(component("kubelet").unwrap(), "kubelet");
        let error = component("nginx").unwrap_err();
        assert!(error.hint.unwrap().contains("etcd, kube-apiserver"));
    }

    #[test]
    fn journal_entries_become_lines_with_their_unit_and_the_last_cursor() {
        let json = r#"{"__CURSOR":"c1","__REALTIME_TIMESTAMP":"20","_SYSTEMD_UNIT":"kubelet.service","PRIORITY":"6","MESSAGE":"I1130 started"}
{"__CURSOR":"c2","__REALTIME_TIMESTAMP":"30","UNIT":"etcd.service","PRIORITY":"4","MESSAGE":"etcd.service: Failed with result 'exit-code'."}
{"__CURSOR":"c3","__REALTIME_TIMESTAMP":"40","_SYSTEMD_UNIT":"containerd.service","PRIORITY":"6","MESSAGE":[104,105]}
"#;
        let (lines, cursor) = parse("dev", json);
        assert_eq!(cursor.as_deref(), Some("c3"));
        let shown: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l.component.as_str(), l.message.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("kubelet", "I1130 started"),
                (
                    "etcd",
                    "systemd: etcd.service: Failed with result 'exit-code'."
                ),
                ("containerd", "hi"),
            ]
        );
        let problems: Vec<bool> = lines.iter().map(is_problem).collect();
        assert_eq!(problems, [false, true, false]);
    }

    #[test]
    fn problems_are_warnings_and_worse_in_each_component_s_format() {
        let line = |message: &str| Line {
            time_us: 0,
            node: "n".into(),
            component: "c".into(),
            message: message.into(),
        };
        for bad in [
            "E1130 06:00:00.000000   1 reflector.go:1] failed",
            "W1130 06:00:00.000000   1 x.go:1] slow",
            r#"{"level":"warn","msg":"apply request took too long"}"#,
            r#"time="2026-11-30" level=error msg="failed to pull""#,
            "panic: runtime error",
        ] {
            assert!(is_problem(&line(bad)), "{bad}");
        }
        for fine in [
            "I1130 06:00:00 ok",
            "Everything fine",
            r#"{"level":"info"}"#,
            "Warning",
        ] {
            assert!(!is_problem(&line(fine)), "{fine}");
        }
    }

    #[test]
    fn a_follow_goes_on_after_the_cursor_and_a_first_read_cuts_by_time_and_tail() {
        let query = Query {
            units: vec!["kubelet"],
            since: Some(Duration::from_secs(300)),
            tail: Some(5),
            problems: false,
        };
        let first = journalctl(&query, None).argv().to_vec();
        assert!(first.contains(&"--since=-300s".to_string()));
        assert!(first.contains(&"--lines=5".to_string()));
        assert!(first.contains(&"--unit=kubelet.service".to_string()));
        let next = journalctl(&query, Some("c9")).argv().to_vec();
        assert!(next.contains(&"--after-cursor=c9".to_string()));
        assert!(
            !next
                .iter()
                .any(|a| a.starts_with("--since") || a.starts_with("--lines"))
        );
    }
}
