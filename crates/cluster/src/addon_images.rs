//! The images of addons that berth builds from source (where no registry
//! serves them): built into the host's cache when missing, given to a new
//! node to import at its first boot, and loaded into running nodes when an
//! addon is enabled.

use std::path::PathBuf;

use super::Ctx;
use berth_core::binaries::Version;
use berth_core::error::{Error, Result};
use berth_node::addons::{Addon, FromSource, NODE_IMAGES_DIR};

/// An image built from source and its archive in the cache.
pub(super) type Built = (FromSource, PathBuf);

/// The images `addons` run on `profile`'s minor that berth builds from
/// source, built into the cache when it lacks them.
pub(super) async fn ensure(ctx: &Ctx, version: &Version, addons: &[Addon]) -> Result<Vec<Built>> {
    let Ok(row) = berth_node::supported(version) else {
        return Ok(Vec::new());
    };
    let mut built = Vec::new();
    for image in addons.iter().flat_map(|a| a.built_from_source(row)) {
        let path = ctx.cache.images_dir().join(image.archive());
        let path = if path.exists() {
            path
        } else {
            let step = ctx.ui.step(format!(
                "Building {} (no registry serves it here; once per machine)",
                image.image
            ));
            let path = ctx
                .cache
                .source_image(&image, &|line| step.stage(line))
                .await
                .map_err(|e| {
                    let error = Error::from(e);
                    match error.hint {
                        Some(_) => error,
                        None => error.with_hint(
                            "berth builds it with the Go on PATH from the module proxy, as `berth cache build` builds Kubernetes; leave the addon out to go on without it",
                        ),
                    }
                })?;
            step.done();
            path
        };
        built.push((image, path));
    }
    Ok(built)
}

/// `built` as a tar for a node container not started yet: its first boot
/// imports them.
pub(super) fn for_first_boot(built: &[Built]) -> Result<Option<Vec<u8>>> {
    if built.is_empty() {
        return Ok(None);
    }
    let mut tar = tar::Builder::new(Vec::new());
    for (image, path) in built {
        let content = std::fs::read(path).map_err(|e| {
            Error::failure(format!("cannot read {}: {e}", path.display()))
                .with_hint("`berth cache list` shows the cache; start again to build it anew")
        })?;
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        let name = format!(
            "{}/{}",
            NODE_IMAGES_DIR.trim_start_matches('/'),
            image.archive()
        );
        tar.append_data(&mut header, name, &content[..])
            .expect("writing a tar to memory cannot fail");
    }
    Ok(Some(tar.into_inner().expect("tar in memory")))
}

/// Loads `built` into each running node of `containers` that lacks one.
pub(super) async fn load(ctx: &Ctx, containers: &[String], built: &[Built]) -> Result<()> {
    if built.is_empty() {
        return Ok(());
    }
    for container in containers {
        let present = super::containerd::list(&*ctx.docker, container).await?;
        for (image, path) in built {
            let name = super::containerd::normalize(&image.image);
            if present.contains(&name) {
                continue;
            }
            let archive = std::fs::read(path)
                .map_err(|e| Error::failure(format!("cannot read {}: {e}", path.display())))?;
            super::containerd::load_archive(&*ctx.docker, container, &archive, &[name]).await?;
        }
    }
    Ok(())
}
