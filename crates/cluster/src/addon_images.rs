//! The images of addons that berth builds from source where no registry
//! serves them (a machine whose Kubernetes was built from source too):
//! built into the host's cache when missing, given to a new node to import
//! at its first boot, and loaded into running nodes when an addon is
//! enabled. Elsewhere the nodes pull them from their registries, as
//! upstream's manifests expect.

use std::path::PathBuf;

use super::Ctx;
use berth_core::binaries::{Manifest, Source, Version};
use berth_core::error::{Error, Result};
use berth_node::addons::{Addon, FromSource, NODE_IMAGES_DIR};

/// An image built from source and its archive in the cache.
pub(super) type Built = (FromSource, PathBuf);

/// The images `addons` run on `version`'s minor that berth builds from
/// source, built into the cache when it lacks them, where `version` itself
/// was built from source. An image that cannot be built is said, and left
/// out: the addon then waits for it, and `addons list` says how to load it.
pub(super) async fn ensure(ctx: &Ctx, version: &Version, addons: &[Addon]) -> Result<Vec<Built>> {
    let Ok(row) = berth_node::supported(version) else {
        return Ok(Vec::new());
    };
    let from_source = matches!(
        ctx.cache.get(version)?,
        Some(Manifest {
            source: Some(Source::Built { .. }),
            ..
        })
    );
    if !from_source {
        return Ok(Vec::new());
    }
    let mut built = Vec::new();
    for image in addons.iter().flat_map(|a| a.built_from_source(row)) {
        let path = ctx.cache.images_dir().join(image.archive());
        if !path.exists() {
            let step = ctx.ui.step(format!(
                "Building {} (no registry serves it here; once per machine)",
                image.image
            ));
            if let Err(e) = ctx
                .cache
                .source_image(&image, &|line| step.stage(line))
                .await
            {
                drop(step);
                ctx.ui.info(format!(
                    "note: {} could not be built ({}); its addon waits for it, and `berth addons list` says how to load it",
                    image.image,
                    Error::from(e).message
                ));
                continue;
            }
            step.done();
        }
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
