//! The names a new profile or node takes in the engine: free, or held by
//! something whose owner the error names.

use futures_util::future::try_join_all;

use super::Ctx;
use berth_core::error::{Error, Result};
use berth_core::names::Names;
use berth_engine::{Kind, Resource};

/// Refuses, before anything is made, a start or node add whose engine
/// names (the nodes' containers and volumes, as pairs, and the network
/// when `network`) are taken, naming who has each. Names this very
/// profile's resources hold are taken too: they are what a cut-off start
/// left.
pub(super) async fn ensure_names_free(
    ctx: &Ctx,
    names: &Names,
    nodes: &[(String, String)],
    network: bool,
) -> Result<()> {
    let mut wanted: Vec<(Kind, String)> = Vec::new();
    for (container, volume) in nodes {
        wanted.push((Kind::Container, container.clone()));
        wanted.push((Kind::Volume, volume.clone()));
    }
    if network {
        wanted.push((Kind::Network, names.network()));
    }
    let found = try_join_all(
        wanted
            .iter()
            .map(|(kind, name)| ctx.docker.named(*kind, name)),
    )
    .await?;
    match found.into_iter().flatten().next() {
        Some(resource) => Err(taken(ctx, names, &resource)),
        None => Ok(()),
    }
}

/// A name berth wanted is held by `resource`: who holds it, and what to do.
pub(super) fn taken(ctx: &Ctx, names: &Names, resource: &Resource) -> Error {
    let profile = names.profile();
    let owner = berth_core::names::owner(&resource.labels);
    let hint = if names.owns(&resource.labels) {
        format!(
            "it was left by a start of profile {profile} that was cut off; `berth delete -p {profile}` removes it"
        )
    } else {
        match (
            resource.labels.get(berth_core::names::LABEL_HOME),
            resource.labels.get(berth_core::names::LABEL_PROFILE),
        ) {
            (Some(home), Some(other)) => format!(
                "use another profile name, or delete that cluster where it was made: \
                 `BERTH_HOME={home} berth delete -p {other}`"
            ),
            _ => format!(
                "use another profile name, or remove the {kind} if nothing needs it \
                 (`{cli} {kind} rm {name}`)",
                cli = ctx.docker.flavour().cli(),
                kind = resource.kind,
                name = resource.name
            ),
        }
    };
    Error::usage(format!(
        "cannot make profile {profile}: the {resource} exists already and belongs to {owner}"
    ))
    .with_hint(hint)
}
