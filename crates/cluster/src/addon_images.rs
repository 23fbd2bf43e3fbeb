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
/// source, where `version` itself was built from source, each with where
/// its archive is or would be.
fn wanted(ctx: &Ctx, version: &Version, addons: &[Addon]) -> Result<Vec<Built>> {
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
    Ok(addons
        .iter()
        .flat_map(|a| a.built_from_source(row))
        .map(|image| {
            let path = ctx.cache.images_dir().join(image.archive());
            (image, path)
        })
        .collect())
}

/// Those of `wanted` that the cache holds; nothing is built.
pub(super) fn cached(ctx: &Ctx, version: &Version, addons: &[Addon]) -> Result<Vec<Built>> {
    let mut wanted = wanted(ctx, version, addons)?;
    wanted.retain(|(_, path)| path.exists());
    Ok(wanted)
}

/// Builds into the cache those of `wanted` it lacks, and returns those it
/// then holds. An image that cannot be built is said, and left out: the
/// addon then waits for it, and `addons list` says how to load it.
pub(super) async fn ensure(ctx: &Ctx, version: &Version, addons: &[Addon]) -> Result<Vec<Built>> {
    for (image, path) in wanted(ctx, version, addons)? {
        if path.exists() {
            continue;
        }
        let step = ctx.ui.step(format!(
            "Building {} (no registry serves it here; once per machine)",
            image.image
        ));
        match ctx
            .cache
            .source_image(&image, &|line| step.stage(line))
            .await
        {
            Ok(_) => {
                step.done();
            }
            Err(e) => {
                drop(step);
                ctx.ui.info(format!(
                    "note: {} could not be built ({}); its addon waits for it, and `berth addons list` says how to load it",
                    image.image,
                    Error::from(e).message
                ));
            }
        }
    }
    cached(ctx, version, addons)
}

/// The archive at `path`, as the cache holds it.
fn read_archive(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::failure(format!("cannot read {}: {e}", path.display()))
            .with_hint("remove it; berth builds it again when a profile with its addon starts")
    })
}

/// `built` as a tar for a node container not started yet: its first boot
/// imports them.
pub(super) fn for_first_boot(built: &[Built]) -> Result<Option<Vec<u8>>> {
    if built.is_empty() {
        return Ok(None);
    }
    let mut tar = tar::Builder::new(Vec::new());
    for (image, path) in built {
        let content = read_archive(path)?;
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
            let archive = read_archive(path)?;
            super::containerd::load_archive(&*ctx.docker, container, &archive, &[name]).await?;
        }
    }
    Ok(())
}
