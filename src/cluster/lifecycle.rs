//! Stopping, pausing and unpausing a profile's nodes.

use futures_util::future::try_join_all;

use super::{Ctx, node_states, state_of};
use crate::docker::ContainerState;
use crate::error::{Error, Result};
use crate::profile::Profile;

/// Units stopped in the control-plane node before its container goes, so
/// that etcd and the API server end cleanly and at once: the API server
/// waits up to a minute for the watches of its clients still running.
const STOPPED_FIRST: [&str; 7] = [
    crate::cluster::health::STORAGE_UNIT,
    "kubelet",
    "kube-proxy",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
];

/// Stops every node quickly and cleanly: the control plane and etcd are
/// stopped in their node first (seconds), then the containers go without
/// waiting for systemd's full shutdown.
pub async fn stop(ctx: &Ctx, profile: &Profile) -> Result<()> {
    let states = node_states(ctx, profile).await?;
    try_join_all(states.iter().map(|(node, container)| async move {
        match state_of(container) {
            ContainerState::Running => {
                if node.is_control_plane() {
                    let mut cmd = vec!["systemctl", "stop"];
                    // A unit the node does not have would fail the others.
                    cmd.extend(STOPPED_FIRST.iter().filter(|u| {
                        !profile.no_storage || **u != crate::cluster::health::STORAGE_UNIT
                    }));
                    ctx.docker.exec(&container.id, &cmd).await?;
                }
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
    super::registry::follow_nodes(ctx, profile, false).await
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
    try_join_all(
        states
            .iter()
            .filter(|(_, container)| state_of(container) == from)
            .map(|(_, container)| async move {
                if freeze {
                    ctx.docker.pause_container(&container.id).await
                } else {
                    ctx.docker.unpause_container(&container.id).await
                }
            }),
    )
    .await?;
    Ok(true)
}
