//! What a start learns of the host and engine it runs on: free space on
//! the engine's disk (on its own host), a free port on the loopback, and
//! whether the engine starts privileged containers.

use super::Ctx;
use berth_core::error::{Error, Result};
use berth_engine::{Disk, EngineFacts, Flavour, Mount, NodeContainer, Privilege};

/// Free space a node needs on the engine's disk at first: its /var, the
/// images it imports and its logs.
const NODE_DISK_MIB: u64 = 1024;

/// Refuses a start that would run the engine's disk full, where its free
/// space is known (`disk`). `BERTH_MIN_FREE_MIB` replaces the need per
/// node.
pub(super) fn check_disk(engine: Flavour, disk: Option<&Disk>, nodes: u32) -> Result<()> {
    let Some(Disk {
        dir: root,
        free_mib,
    }) = disk
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
            "only {free_mib} MiB are free on {root}, where {engine} keeps its data; \
             {nodes} node(s) need about {need} MiB"
        ))
        .with_hint(format!(
            "free space there (`{} system prune` removes unused images and volumes), then start again",
            engine.cli()
        )));
    }
    Ok(())
}

/// Free space where an engine that is not this machine's keeps its data,
/// read on its host by a short-lived helper from `image` that binds that
/// directory; `None` where the engine does not say where it is.
pub(super) async fn remote_disk(
    ctx: &Ctx,
    facts: &EngineFacts,
    image: &str,
) -> Result<Option<Disk>> {
    const AT: &str = "/engine-data";
    let Some(root) = &facts.data_root else {
        return Ok(None);
    };
    let purpose = "disk";
    let helper = NodeContainer {
        privilege: None,
        entrypoint: Some(vec!["sleep".into(), "60".into()]),
        mounts: vec![Mount {
            host: root.into(),
            node: AT.into(),
            read_only: true,
        }],
        ..NodeContainer::helper(
            berth_core::names::helper(purpose, &ctx.token),
            image,
            berth_core::names::helper_labels(&ctx.home, purpose, &ctx.token),
        )
    };
    let id = ctx.docker.create_container(&helper).await?;
    let read = async {
        ctx.docker.start_container(&id).await?;
        ctx.docker
            .exec(&id, &berth_node::command::free_space(AT))
            .await
    }
    .await;
    // Should this fail, the helpers go at the end of the start anyway.
    let _ = ctx.docker.remove_container(&id).await;
    Ok(available_mib(&read?.stdout).map(|free_mib| Disk {
        dir: root.clone(),
        free_mib,
    }))
}

/// The MiB available in POSIX `df -Pk` output of one file system.
fn available_mib(df: &str) -> Option<u64> {
    let kib: u64 = df.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib / 1024)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_space_available_is_read_from_posix_df() {
        let df = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                  /dev/vda        263174212 12345678 209715200       6% /engine-data\n";
        assert_eq!(available_mib(df), Some(204800));
        assert_eq!(available_mib("df: /engine-data: No such file\n"), None);
    }

    #[test]
    fn a_start_is_refused_only_where_the_free_space_is_known_and_short() {
        let disk = |free_mib| Disk {
            dir: "/var/lib/docker".into(),
            free_mib,
        };
        let docker = Flavour::Docker;
        assert!(check_disk(docker, None, 3).is_ok());
        assert!(check_disk(docker, Some(&disk(NODE_DISK_MIB * 3)), 3).is_ok());
        let error = check_disk(docker, Some(&disk(NODE_DISK_MIB)), 3).unwrap_err();
        assert!(
            error
                .message
                .contains("only 1024 MiB are free on /var/lib/docker"),
            "{}",
            error.message
        );
    }
}
