//! What addons need from the host besides their manifests: the images
//! berth builds from source where no registry serves them (a machine whose
//! Kubernetes was built from source too), and the CRDs their controllers
//! implement, taken from the CRDs' Go module. Both are made in the host's
//! cache when missing, given to a new node at its first boot (images to
//! import, CRDs for the control plane to apply before the manifests), and
//! put into running nodes when an addon is enabled. Elsewhere the nodes
//! pull the images from their registries, as upstream's manifests expect.

use std::path::PathBuf;

use super::Ctx;
use berth_core::binaries::{Manifest, Source, Version};
use berth_core::error::{Error, Result};
use berth_node::addons::{Addon, FromSource, NODE_IMAGES_DIR};

/// What the cache holds for some addons, each with its file there.
#[derive(Default)]
pub(super) struct Built {
    pub images: Vec<(FromSource, PathBuf)>,
    pub crds: Vec<(Addon, PathBuf)>,
}

/// What `addons` need on `version`'s minor, each with where its file is or
/// would be: images built from source only where `version` was built from
/// source itself.
fn wanted(ctx: &Ctx, version: &Version, addons: &[Addon]) -> Result<Built> {
    let Ok(row) = berth_node::supported(version) else {
        return Ok(Built::default());
    };
    let dir = ctx.cache.images_dir();
    let crds = addons
        .iter()
        .filter_map(|a| Some((*a, dir.join(a.crds(row)?.file_name()))))
        .collect();
    let from_source = matches!(
        ctx.cache.get(version)?,
        Some(Manifest {
            source: Some(Source::Built { .. }),
            ..
        })
    );
    let images = match from_source {
        true => addons
            .iter()
            .flat_map(|a| a.built_from_source(row))
            .map(|image| {
                let path = dir.join(image.archive());
                (image, path)
            })
            .collect(),
        false => Vec::new(),
    };
    Ok(Built { images, crds })
}

/// Those of `wanted` that the cache holds; nothing is made.
pub(super) fn cached(ctx: &Ctx, version: &Version, addons: &[Addon]) -> Result<Built> {
    let mut wanted = wanted(ctx, version, addons)?;
    wanted.images.retain(|(_, path)| path.exists());
    wanted.crds.retain(|(_, path)| path.exists());
    Ok(wanted)
}

/// Makes in the cache those of `wanted` it lacks, and returns those it
/// then holds. What cannot be made is said, and left out: an addon then
/// waits for its image, and `addons list` says how to load it; CRDs left
/// out leave their API unserved.
pub(super) async fn ensure(ctx: &Ctx, version: &Version, addons: &[Addon]) -> Result<Built> {
    let wanted = wanted(ctx, version, addons)?;
    for (image, path) in &wanted.images {
        if path.exists() {
            continue;
        }
        let step = ctx.ui.step(format!(
            "Building {} (no registry serves it here; once per machine)",
            image.image
        ));
        match ctx
            .cache
            .source_image(image, &|line| step.stage(line))
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
    let row = berth_node::supported(version)?;
    for (addon, path) in &wanted.crds {
        let Some(crds) = addon.crds(row).filter(|_| !path.exists()) else {
            continue;
        };
        if let Err(e) = ctx.cache.crds(&crds).await {
            ctx.ui.info(format!(
                "note: the CRDs of {} {} could not be had from the Go module proxy ({}); the {addon} addon runs without the API they define until a later `berth start` or `berth addons enable {addon}` fetches them",
                crds.module,
                crds.version,
                Error::from(e).message
            ));
        }
    }
    cached(ctx, version, addons)
}

/// The file at `path`, as the cache holds it.
fn read_cached(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::failure(format!("cannot read {}: {e}", path.display()))
            .with_hint("remove it; berth makes it again when a profile with its addon starts")
    })
}

/// `built` as a tar for a node container not started yet: its first boot
/// imports the images; a control plane gets the CRDs too.
pub(super) fn for_first_boot(built: &Built, control_plane: bool) -> Result<Option<Vec<u8>>> {
    let mut files: Vec<(String, &PathBuf)> = built
        .images
        .iter()
        .map(|(image, path)| (format!("{NODE_IMAGES_DIR}/{}", image.archive()), path))
        .collect();
    if control_plane {
        files.extend(
            built
                .crds
                .iter()
                .map(|(addon, path)| (addon.crds_path(), path)),
        );
    }
    if files.is_empty() {
        return Ok(None);
    }
    tar_of(&files).map(Some)
}

/// A tar of cached files, each at its path in a node.
fn tar_of(files: &[(String, &PathBuf)]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, path) in files {
        let content = read_cached(path)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name.trim_start_matches('/'), &content[..])
            .expect("writing a tar to memory cannot fail");
    }
    Ok(tar.into_inner().expect("tar in memory"))
}

/// Loads the images of `built` into each running node of `containers`
/// that lacks one, and puts its CRDs into the first, the control plane.
pub(super) async fn load(ctx: &Ctx, containers: &[String], built: &Built) -> Result<()> {
    for container in containers {
        if built.images.is_empty() {
            break;
        }
        let present = super::containerd::list(&*ctx.docker, container).await?;
        for (image, path) in &built.images {
            let name = super::containerd::normalize(&image.image);
            if present.contains(&name) {
                continue;
            }
            let archive = read_cached(path)?;
            super::containerd::load_archive(&*ctx.docker, container, &archive, &[name]).await?;
        }
    }
    if let Some(control_plane) = containers.first() {
        let crds: Vec<(String, &PathBuf)> = built
            .crds
            .iter()
            .map(|(addon, path)| (addon.crds_path(), path))
            .collect();
        if !crds.is_empty() {
            ctx.docker.upload(control_plane, tar_of(&crds)?).await?;
        }
    }
    Ok(())
}
