//! The etcd cluster of several control planes, asked and changed through
//! the node image's etcdctl in a control-plane node, against that node's
//! own member (etcd serves clients on the loopback only).

use serde::{Deserialize, Serialize};

use super::{Ctx, node_states, state_of};
use berth_core::error::{Error, Result};
use berth_core::profile::{Node, Profile};
use berth_engine::Resource;
use berth_node::command;
use berth_node::render::ETCD_PEER_PORT;

/// Runs etcdctl in `container`: its output, or the last line it said on
/// failure (those before are its client's retries).
async fn run(
    ctx: &Ctx,
    container: &str,
    args: &[&str],
) -> Result<std::result::Result<String, String>> {
    let out = ctx.docker.exec(container, &command::etcdctl(args)).await?;
    Ok(out.success().map(|o| o.stdout).map_err(|stderr| {
        stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no answer")
            .trim()
            .to_string()
    }))
}

/// Runs a change of the members. etcd refuses one while a member has been
/// connected for less than a few seconds (it might not be healthy): a
/// control plane that just started, so it is asked again for a while.
async fn change(ctx: &Ctx, container: &str, args: &[&str], what: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match run(ctx, container, args).await? {
            Ok(_) => return Ok(()),
            Err(said)
                if said.contains("unhealthy cluster") && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(said) => return Err(etcd_error(what, &said)),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Member {
    #[serde(rename = "ID")]
    pub id: u64,
    /// Empty for a member added that has not started yet.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
}

#[derive(Deserialize)]
struct MemberList {
    #[serde(default)]
    members: Vec<Member>,
}

/// The cluster's members, as the member in `container` knows them.
pub async fn members(ctx: &Ctx, container: &str) -> Result<Vec<Member>> {
    let out = run(ctx, container, &["member", "list", "-w", "json"])
        .await?
        .map_err(|stderr| etcd_error("list the etcd members", &stderr))?;
    parse_members(&out)
}

fn parse_members(json: &str) -> Result<Vec<Member>> {
    serde_json::from_str::<MemberList>(json)
        .map(|l| l.members)
        .map_err(|e| Error::failure(format!("etcdctl listed the members unreadably: {e}")))
}

fn etcd_error(what: &str, said: &str) -> Error {
    Error::failure(format!("cannot {what}: etcd said {said}")).with_hint(
        "`berth status` shows each control plane's etcd member; a majority of them must be healthy",
    )
}

/// Adds `node` as a member that has not started: it starts with
/// `--initial-cluster-state existing` and joins.
pub async fn add_member(ctx: &Ctx, container: &str, node: &Node) -> Result<()> {
    let peer = format!("--peer-urls=https://{}:{ETCD_PEER_PORT}", node.ip);
    let what = format!("add {} to etcd", node.name);
    change(ctx, container, &["member", "add", &node.name, &peer], &what).await
}

/// Removes `node`'s member, if it is one.
pub async fn remove_member(ctx: &Ctx, container: &str, node: &Node) -> Result<()> {
    let peer = format!("https://{}:{ETCD_PEER_PORT}", node.ip);
    let found = members(ctx, container)
        .await?
        .into_iter()
        .find(|m| m.name == node.name || m.peer_urls.contains(&peer));
    let Some(member) = found else {
        return Ok(());
    };
    let id = format!("{:x}", member.id);
    let what = format!("remove {} from etcd", node.name);
    change(ctx, container, &["member", "remove", &id], &what).await
}

/// One control plane's etcd member, as `status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberHealth {
    /// It answers a read that needs the cluster's majority.
    pub healthy: bool,
    pub leader: bool,
    /// What etcdctl said when it is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct EndpointStatus {
    #[serde(rename = "Status")]
    status: StatusBody,
}

#[derive(Deserialize)]
struct StatusBody {
    header: Header,
    leader: u64,
}

#[derive(Deserialize)]
struct Header {
    member_id: u64,
}

/// The member of the control plane in `container`.
pub async fn health(ctx: &Ctx, container: &str) -> Result<MemberHealth> {
    let (health, status) = tokio::try_join!(
        run(ctx, container, &["endpoint", "health"]),
        run(ctx, container, &["endpoint", "status", "-w", "json"]),
    )?;
    let leader = status
        .ok()
        .and_then(|json| serde_json::from_str::<Vec<EndpointStatus>>(&json).ok())
        .and_then(|s| s.into_iter().next())
        .is_some_and(|s| s.status.leader == s.status.header.member_id);
    Ok(match health {
        Ok(_) => MemberHealth {
            healthy: true,
            leader,
            error: None,
        },
        Err(said) => MemberHealth {
            healthy: false,
            leader,
            error: Some(said),
        },
    })
}

/// Hands etcd's leadership from the member in `container`, when it leads,
/// to another started member, so that stopping it costs the cluster no
/// election (a second or more in which no write, and no API server's
/// readiness check, gets through).
pub async fn hand_over_leadership(ctx: &Ctx, container: &str) -> Result<()> {
    let status = run(ctx, container, &["endpoint", "status", "-w", "json"])
        .await?
        .map_err(|stderr| etcd_error("read the etcd member's status", &stderr))?;
    let Some(own) = serde_json::from_str::<Vec<EndpointStatus>>(&status)
        .ok()
        .and_then(|s| s.into_iter().next())
    else {
        return Err(Error::failure(format!(
            "etcdctl told the member's status unreadably: {status}"
        ))
        .with_hint(
            "`berth status` shows each control plane's etcd member; then run the command again",
        ));
    };
    let me = own.status.header.member_id;
    if own.status.leader != me {
        return Ok(());
    }
    let members = members(ctx, container).await?;
    let Some(next) = members.iter().find(|m| m.id != me && !m.name.is_empty()) else {
        return Ok(());
    };
    let id = format!("{:x}", next.id);
    change(
        ctx,
        container,
        &["move-leader", &id],
        "hand etcd's leadership over",
    )
    .await
}

/// A control plane whose container runs, other than `except`, to ask and
/// change etcd through; the first one when it runs.
pub async fn running_control_plane(
    ctx: &Ctx,
    profile: &Profile,
    except: Option<&Node>,
) -> Result<Resource> {
    node_states(ctx, profile)
        .await?
        .into_iter()
        .find(|(node, container)| {
            node.is_control_plane()
                && except.is_none_or(|e| e.name != node.name)
                && state_of(container).is_running()
        })
        .map(|(_, container)| container)
        .ok_or_else(|| {
            Error::usage(format!("no control plane of profile {} runs", profile.name))
                .with_hint(format!("`berth start -p {}` first", profile.name))
        })
}

/// Refuses to take `node`'s member out when the members left would have
/// no healthy majority: etcd, and the cluster with it, would stop.
/// `doing` says what would take it out, as "deleting".
pub async fn check_quorum_without(
    ctx: &Ctx,
    profile: &Profile,
    node: &Node,
    doing: &str,
) -> Result<()> {
    let states = node_states(ctx, profile).await?;
    let mut healthy = 0;
    let mut left = 0;
    for (other, container) in states.iter().filter(|(n, _)| n.is_control_plane()) {
        if other.name == node.name {
            continue;
        }
        left += 1;
        if state_of(container).is_running() && health(ctx, &container.id).await?.healthy {
            healthy += 1;
        }
    }
    if healthy * 2 > left {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{doing} {} would leave etcd {left} members of which {healthy} healthy: \
         without a majority of healthy members the cluster stops",
        node.name
    ))
    .with_hint(format!(
        "`berth start -p {}` starts the stopped control planes; `berth status` shows each member",
        profile.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcdctl_member_lists_are_read_with_unstarted_members() {
        let json = r#"{"header":{"cluster_id":1,"member_id":2,"raft_term":3},
            "members":[{"ID":12345,"name":"dev","peerURLs":["https://172.30.7.2:2380"],
            "clientURLs":["https://127.0.0.1:2379"]},
            {"ID":678,"peerURLs":["https://172.30.7.5:2380"]}]}"#;
        let members = parse_members(json).unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].name, "dev");
        assert_eq!(members[1].name, "");
        assert_eq!(members[1].peer_urls, ["https://172.30.7.5:2380"]);
        assert!(parse_members("not json").is_err());
    }
}
