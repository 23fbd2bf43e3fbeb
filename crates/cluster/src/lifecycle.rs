//! Stopping, pausing and unpausing a profile's nodes.

use futures_util::future::try_join_all;

use super::plan::{self, Step};
use super::{Ctx, node_states, state_of};
use berth_core::error::{Error, Result};
use berth_core::profile::{Node, Profile};
use berth_engine::{ContainerState, Resource};

/// Units stopped in each control-plane node before its container goes, so
/// that etcd and the API server end cleanly and at once: the API server
/// waits up to a minute for the watches of its clients still running.
const STOPPED_FIRST: [&str; 7] = [
    crate::health::STORAGE_UNIT,
    "kubelet",
    "kube-proxy",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
];

/// Stopping a profile: quickly and cleanly. Nothing to take back: a stop
/// cut short is finished by the next stop, or undone by a start.
const STOP: [Stop; 3] = [Stop::ControlPlanes, Stop::Nodes, Stop::Beside];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// etcd and the control plane stopped in their nodes first (seconds).
    ControlPlanes,
    /// Every node's container, without waiting for systemd's full shutdown.
    Nodes,
    /// The registry and the load balancer follow the nodes.
    Beside,
}

struct Stopping<'a> {
    profile: &'a Profile,
    states: Vec<(Node, Resource)>,
}

impl Step<Stopping<'_>> for Stop {
    fn title(self, _: &Stopping) -> Option<String> {
        None
    }

    async fn run(self, ctx: &Ctx, stopping: &mut Stopping<'_>) -> Result<()> {
        let profile = stopping.profile;
        match self {
            Stop::ControlPlanes => {
                // A unit the node does not have would fail the others.
                let mut cmd = vec!["systemctl", "stop"];
                cmd.extend(
                    STOPPED_FIRST
                        .iter()
                        .filter(|u| !profile.no_storage || **u != crate::health::STORAGE_UNIT),
                );
                let cmd = &cmd;
                try_join_all(
                    stopping
                        .states
                        .iter()
                        .filter(|(node, container)| {
                            node.is_control_plane() && state_of(container).is_running()
                        })
                        .map(|(_, container)| ctx.docker.exec(&container.id, cmd)),
                )
                .await?;
            }
            Stop::Nodes => {
                try_join_all(stopping.states.iter().map(|(_, container)| async move {
                    match state_of(container) {
                        ContainerState::Running => {
                            ctx.docker.stop_container(&container.id, 1).await
                        }
                        ContainerState::Paused => {
                            ctx.docker.unpause_container(&container.id).await?;
                            ctx.docker.stop_container(&container.id, 1).await
                        }
                        _ => Ok(()),
                    }
                }))
                .await?;
            }
            Stop::Beside => super::follow_nodes(ctx, profile, false).await?,
        }
        Ok(())
    }
}

/// Stops every node; see `STOP`. Stopping takes nothing back: a cut stop
/// says so, and stopping again carries on.
pub async fn stop<F, Fut>(ctx: &Ctx, profile: &Profile, interrupted: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
    let mut stopping = Stopping {
        profile,
        states: node_states(ctx, profile).await?,
    };
    let name = &profile.name;
    let verb = plan::Verb {
        what: format!("the stop of profile {name}"),
        again: format!("`berth stop -p {name}` stops the rest"),
        undo: None,
    };
    let left = || async { Vec::new() };
    plan::execute(ctx, &verb, &STOP, &mut stopping, interrupted, left).await
}

/// Freezes (or thaws) every process of every node at once through the
/// engine's freezer: the cluster resumes exactly where it was. Returns
/// whether anything changed.
pub async fn pause(ctx: &Ctx, profile: &Profile, freeze: bool) -> Result<bool> {
    let states = node_states(ctx, profile).await?;
    let (from, to) = if freeze {
        (ContainerState::Running, ContainerState::Paused)
    } else {
        (ContainerState::Paused, ContainerState::Running)
    };
    let control_plane = state_of(&states[0].1);
    if control_plane == to {
        return Ok(false);
    }
    if control_plane != from {
        return Err(Error::usage(format!(
            "profile {} is {}, not {}",
            profile.name,
            control_plane.display().to_lowercase(),
            from.display().to_lowercase()
        ))
        .with_hint(format!("`berth start -p {}` starts it", profile.name)));
    }
    // The load balancer with them: a client of a paused cluster waits
    // rather than being refused.
    let balancer = super::balancer::state(ctx, profile)
        .await?
        .filter(|state| *state == from)
        .map(|_| ctx.names(profile).load_balancer());
    let containers = states
        .iter()
        .filter(|(_, container)| state_of(container) == from)
        .map(|(_, container)| container.id.clone())
        .chain(balancer);
    try_join_all(containers.map(|id| async move {
        if freeze {
            ctx.docker.pause_container(&id).await
        } else {
            ctx.docker.unpause_container(&id).await
        }
    }))
    .await?;
    Ok(true)
}
