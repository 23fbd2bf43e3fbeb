//! Stopping, pausing and unpausing a profile's nodes.

use futures_util::future::try_join_all;

use super::plan::{self, Step};
use super::{Ctx, node_states, state_of};
use berth_core::error::{Error, Result};
use berth_core::profile::{Node, Profile};
use berth_engine::{ContainerState, Resource};

/// Units stopped in each control-plane node before its container goes, so
/// that etcd ends cleanly and at once (and the API server, which
/// `command::stop_control_plane` kills: its graceful shutdown waits for its clients'
/// watches).
const STOPPED_FIRST: [&str; 6] = [
    "kubelet",
    "kube-proxy",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
];

/// Seconds the engine gives a node's systemd before it kills the node.
/// None: once etcd has ended cleanly what is left (containerd, the
/// kubelet, the pods) keeps nothing a kill loses, and the pods are made
/// anew at the next start, as they would be after systemd's own shutdown,
/// which takes 5 s in full; a second's grace bought nothing but the wait.
const NODE_STOP_GRACE: i32 = 0;

/// Stopping a profile: quickly and cleanly. Nothing to take back: a stop
/// cut short is finished by the next stop, or undone by a start.
const STOP: [Stop; 3] = [Stop::ControlPlanes, Stop::Nodes, Stop::Beside];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// etcd and the control plane stopped in their nodes first (seconds).
    ControlPlanes,
    /// Every node's container, without waiting for systemd's shutdown.
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
                try_join_all(
                    stopping
                        .states
                        .iter()
                        .filter(|(node, container)| {
                            node.is_control_plane() && state_of(container).is_running()
                        })
                        .map(|(_, container)| stop_control_plane(ctx, profile, &container.id)),
                )
                .await?;
            }
            Stop::Nodes => {
                try_join_all(stopping.states.iter().map(|(_, container)| async move {
                    match state_of(container) {
                        ContainerState::Running => {
                            ctx.docker
                                .stop_container(&container.id, NODE_STOP_GRACE)
                                .await
                        }
                        ContainerState::Paused => {
                            ctx.docker.unpause_container(&container.id).await?;
                            ctx.docker
                                .stop_container(&container.id, NODE_STOP_GRACE)
                                .await
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

/// Stops the units of control plane `container` in `STOPPED_FIRST`'s
/// order, its addons' first.
pub(super) async fn stop_control_plane(
    ctx: &Ctx,
    profile: &Profile,
    container: &str,
) -> Result<()> {
    // A unit the node does not have would fail the others.
    let mut units: Vec<&str> = profile
        .addons_on()
        .iter()
        .flat_map(|a| a.units())
        .copied()
        .collect();
    units.extend(STOPPED_FIRST);
    ctx.docker
        .exec(container, &berth_node::command::stop_control_plane(&units))
        .await?;
    Ok(())
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
    plan::execute(ctx, verb, &STOP, &mut stopping, interrupted).await
}

/// Freezing (or thawing) a profile: one step over every node and the
/// load balancer at once. Undo: what it changed, changed back, so that a
/// failed or cut pause leaves no node frozen apart from the others.
const PAUSE: [Pause; 1] = [Pause::Containers];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Pause {
    Containers,
}

struct Pausing {
    freeze: bool,
    /// The containers to change, by id.
    containers: Vec<String>,
    /// Those changed so far.
    changed: std::sync::Mutex<Vec<String>>,
}

impl Pausing {
    async fn change(&self, ctx: &Ctx, id: &str, freeze: bool) -> Result<()> {
        if freeze {
            ctx.docker.pause_container(id).await?;
        } else {
            ctx.docker.unpause_container(id).await?;
        }
        Ok(())
    }
}

impl Step<Pausing> for Pause {
    fn title(self, _: &Pausing) -> Option<String> {
        None
    }

    async fn run(self, ctx: &Ctx, pausing: &mut Pausing) -> Result<()> {
        let pausing = &*pausing;
        try_join_all(pausing.containers.iter().map(|id| async move {
            pausing.change(ctx, id, pausing.freeze).await?;
            pausing.changed.lock().unwrap().push(id.clone());
            Ok::<_, Error>(())
        }))
        .await?;
        Ok(())
    }

    async fn undo(self, ctx: &Ctx, pausing: &Pausing) -> Result<()> {
        let changed = pausing.changed.lock().unwrap().clone();
        try_join_all(
            changed
                .iter()
                .map(|id| pausing.change(ctx, id, !pausing.freeze)),
        )
        .await?;
        Ok(())
    }
}

/// Freezes (or thaws) every process of every node at once through the
/// engine's freezer: the cluster resumes exactly where it was. Returns
/// whether anything changed; a failed or interrupted one is undone.
pub async fn pause<F, Fut>(
    ctx: &Ctx,
    profile: &Profile,
    freeze: bool,
    interrupted: F,
) -> Result<bool>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = &'static str>,
{
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
    let mut pausing = Pausing {
        freeze,
        containers: states
            .iter()
            .filter(|(_, container)| state_of(container) == from)
            .map(|(_, container)| container.id.clone())
            .chain(balancer)
            .collect(),
        changed: Default::default(),
    };
    let name = &profile.name;
    let (verb, other) = if freeze {
        ("pause", "unpause")
    } else {
        ("unpause", "pause")
    };
    let verb = plan::Verb {
        what: format!("the {verb} of profile {name}"),
        again: format!("`berth {verb} -p {name}` carries on"),
        undo: Some(plan::Undo {
            maker: if freeze { "this pause" } else { "this unpause" },
            kept: None,
            left_hint: format!("`berth {other} -p {name}` makes every node alike again"),
            // What the cut undo left changed: the nodes now in the new state.
            left: plan::left(move || async move {
                node_states(ctx, profile)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(_, container)| state_of(container) == to)
                    .map(|(node, _)| format!("node {} {}", node.name, to.display().to_lowercase()))
                    .collect()
            }),
        }),
    };
    plan::execute(ctx, verb, &PAUSE, &mut pausing, interrupted).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, never};
    use berth_core::profile::Role;
    use berth_engine::Kind;
    use berth_engine::fake::FakeEngine;

    /// A running profile `dev` of a control plane and a worker.
    fn running() -> (tempfile::TempDir, std::sync::Arc<FakeEngine>, Ctx, Profile) {
        let (dir, engine, ctx) = Ctx::with_fake_engine();
        let mut profile = Profile::example("dev");
        let worker = profile.next_node(Role::Worker).unwrap();
        profile.insert(&worker);
        let labels = ctx.names(&profile).labels_created_by("earlier-start");
        for node in profile.nodes() {
            engine.add(Kind::Container, &node.container, &labels);
        }
        (dir, engine, ctx, profile)
    }

    fn states(engine: &FakeEngine, profile: &Profile) -> Vec<ContainerState> {
        profile
            .nodes()
            .iter()
            .map(|n| engine.state(&n.container).unwrap())
            .collect()
    }

    #[test]
    fn stop_ends_the_control_plane_first_and_the_next_stop_finishes_a_failed_one() {
        let (_dir, engine, ctx, profile) = running();
        engine.answer("sh -c d=/run/systemd/system/kube-apiserver.service.d", "");
        let [control_plane, worker] = &profile.nodes()[..] else {
            unreachable!()
        };
        engine.fail("stop", &worker.container);
        assert!(block_on(stop(&ctx, &profile, never)).is_err());
        assert_eq!(
            states(&engine, &profile),
            [ContainerState::Exited, ContainerState::Running]
        );
        // Only the control plane was told to end its units first.
        let execs = engine.execs.lock().unwrap().clone();
        assert_eq!(execs.len(), 1, "{execs:?}");
        assert!(execs[0].contains("systemctl stop") && execs[0].contains("etcd"));
        assert!(execs[0].contains("SuccessExitStatus=SIGKILL"), "{execs:?}");
        let cp = engine.state(&control_plane.container);
        assert_eq!(cp, Some(ContainerState::Exited));
        // Nothing to take back: the next stop finishes it.
        engine.heal();
        block_on(stop(&ctx, &profile, never)).unwrap();
        assert_eq!(states(&engine, &profile), [ContainerState::Exited; 2]);
    }

    #[test]
    fn pause_freezes_every_node_or_none_and_unpause_thaws_them() {
        let (_dir, engine, ctx, profile) = running();
        assert!(block_on(pause(&ctx, &profile, true, never)).unwrap());
        assert_eq!(states(&engine, &profile), [ContainerState::Paused; 2]);
        // Paused already: nothing to do.
        assert!(!block_on(pause(&ctx, &profile, true, never)).unwrap());
        assert!(block_on(pause(&ctx, &profile, false, never)).unwrap());
        assert_eq!(states(&engine, &profile), [ContainerState::Running; 2]);

        // One node that cannot be frozen: the other is thawed again.
        let worker = &profile.nodes()[1];
        engine.fail("pause", &worker.container);
        assert!(block_on(pause(&ctx, &profile, true, never)).is_err());
        assert_eq!(states(&engine, &profile), [ContainerState::Running; 2]);
    }

    #[test]
    fn a_cluster_over_an_engine_that_does_not_answer_is_not_stopped_half_and_says_which() {
        use berth_engine::{Engine, Kind, Lost, Spread};
        let (_dir, engine, ctx, profile) = crate::testing::running(vec![1]);
        let unreachable = berth_engine::Error::Unreachable {
            engine: berth_engine::Flavour::Docker,
            endpoint: "tcp://b:2376".into(),
            reason: "connection refused".into(),
        };
        let mut spread = profile.clone();
        let made_on = |host: &str| berth_core::profile::EngineRef {
            host: host.into(),
            id: host.into(),
            tls: None,
            host_address: std::net::Ipv4Addr::LOCALHOST,
            ssh_forward: false,
        };
        spread.engine = Some(made_on("tcp://a:2376"));
        spread.engines = vec![made_on("tcp://b:2376")];
        spread.node_engines = [(1, 1)].into();
        ctx.store.save(&spread).unwrap();
        // The worker was on the second engine, which no longer answers.
        let worker = spread.nodes()[1].container.clone();
        engine
            .resources
            .lock()
            .unwrap()
            .retain(|r| !(r.kind == Kind::Container && r.name == worker));
        let members: Vec<std::sync::Arc<dyn Engine>> = vec![
            engine.clone(),
            std::sync::Arc::new(Lost::new("tcp://b:2376", &unreachable)),
        ];
        let ctx = crate::Ctx {
            docker: std::sync::Arc::new(Spread::new(members, 0, spread.placed())),
            ..ctx
        };
        let error =
            crate::testing::block_on(stop(&ctx, &spread, crate::testing::never)).unwrap_err();
        let said = format!("{error} {}", error.hint.clone().unwrap_or_default());
        assert!(
            said.contains("node dev-m02 of profile dev is on the engine at tcp://b:2376, which does not answer")
                && said.contains("berth status -p dev"),
            "{said}"
        );
        assert!(
            engine.execs.lock().unwrap().is_empty(),
            "something was stopped"
        );
    }
}
