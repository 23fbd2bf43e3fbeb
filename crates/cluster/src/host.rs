//! What a start learns of the host and engine it runs on: free space on
//! the engine's disk, a free port on the loopback, and whether the engine
//! starts privileged containers.

use super::Ctx;
use berth_core::error::{Error, Result};
use berth_engine::{Disk, EngineFacts, NodeContainer, Privilege};

/// Free space a node needs on the engine's disk at first: its /var, the
/// images it imports and its logs.
const NODE_DISK_MIB: u64 = 1024;

/// Refuses a start that would run the engine's disk full, where the
/// engine knows it (a remote engine's is not checked).
/// `BERTH_MIN_FREE_MIB` replaces the need per node.
pub(super) fn check_disk(facts: &EngineFacts, nodes: u32) -> Result<()> {
    let Some(Disk {
        dir: root,
        free_mib,
    }) = &facts.disk
    else {
        return Ok(());
    };
    let free_mib = *free_mib;
    let per_node = std::env::var("BERTH_MIN_FREE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(NODE_DISK_MIB);
    let need = per_node * u64::from(nodes);
    if free_mib < need {
        return Err(Error::failure(format!(
                "only {free_mib} MiB are free on {root}, where the Docker engine keeps its data; \
                 {nodes} node(s) need about {need} MiB"
            ),
        )
        .with_hint("free space there (`docker system prune` removes unused images and volumes), then start again"));
    }
    Ok(())
}

/// A port on 127.0.0.1 that nothing listens on now, kept by the profile.
pub(super) fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::failure(format!("cannot find a free port on 127.0.0.1: {e}")))?;
    Ok(listener.local_addr().expect("bound").port())
}

/// Whether the engine starts privileged nodes, probed once per engine
/// setup and remembered under `$BERTH_HOME/engines/`: the probe starts a
/// container, most of a second of every start otherwise.
pub(super) async fn privilege(ctx: &Ctx, facts: &EngineFacts, image: &str) -> Result<Privilege> {
    let path = ctx
        .home
        .join("engines")
        .join(format!("{}.privilege", facts.privilege_key));
    let known = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    if let Some(privilege) = known {
        return Ok(privilege);
    }
    let purpose = "privilege-probe";
    let probe = NodeContainer::helper(
        berth_core::names::helper(purpose, &ctx.token),
        image,
        berth_core::names::helper_labels(&ctx.home, purpose, &ctx.token),
    );
    let privilege = ctx.docker.privilege(&probe).await?;
    // Only a speed-up: a cache that cannot be written is probed again.
    if let Some(dir) = path.parent()
        && berth_core::pki::create_private_dir(dir).is_ok()
    {
        let json = serde_json::to_vec(&privilege).expect("privilege serialises");
        let _ = berth_core::pki::write_atomic(&path, &json, 0o600);
    }
    Ok(privilege)
}
