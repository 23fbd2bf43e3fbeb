//! The Kubernetes binaries a cluster runs: the version resolved, downloaded
//! into the host's cache when missing, and the volume its nodes mount.

use super::{Ctx, DEFAULT_VERSION, StartOptions};
use berth_core::binaries::{Manifest, Runtime, Version};
use berth_core::error::{Error, Result};
use berth_core::profile::Profile;

/// The version to run, downloaded into the cache when it is not there.
pub(super) fn resolve_version(ctx: &Ctx, opts: &StartOptions) -> Result<Manifest> {
    let version = match &opts.version {
        Some(v) => v.clone(),
        None => match ctx.cache.list()?.into_iter().map(|m| m.version).max() {
            Some(newest) => newest,
            None => DEFAULT_VERSION.parse().expect("valid default"),
        },
    };
    let row = berth_node::supported(&version).map_err(|e| {
        Error::from(e).with_hint(
            "pass --kubernetes-version with a supported version; `berth cache list` shows the cached ones",
        )
    })?;
    let manifest = match ctx.cache.get(&version)? {
        Some(manifest) => manifest,
        None => download(ctx, &version, &row.runtime(), opts.binary_mirror.as_deref())?,
    };
    if !manifest.defects().is_empty() {
        return Err(Error::usage(format!(
            "the cached Kubernetes {version} cannot make a cluster that works: its binaries are {}",
            berth_core::binaries::describe(manifest.defects())
        ))
        .with_hint(berth_core::error::rebuild_hint(&version)));
    }
    Ok(manifest)
}

/// Fetches a version that is not cached yet into the cache.
fn download(
    ctx: &Ctx,
    version: &Version,
    runtime: &Runtime,
    mirror: Option<&str>,
) -> Result<Manifest> {
    let base = mirror.unwrap_or(berth_core::binaries::OFFICIAL_RELEASES);
    let step = ctx
        .ui
        .step(format!("Downloading Kubernetes {version} from {base}"));
    let detail = |line: &str| step.detail(line);
    // The download blocks on its own threads; the runtime has others.
    let manifest =
        tokio::task::block_in_place(|| ctx.cache.download(version, base, runtime, &detail))
            .map_err(|e| download_error(ctx, version, e))?;
    step.done();
    Ok(manifest)
}

/// A failed download, said with the version and where it would be cached.
fn download_error(ctx: &Ctx, version: &Version, e: berth_core::binaries::Error) -> Error {
    use berth_core::binaries::Error as B;
    match e {
        B::Download { .. } | B::Checksum { .. } => Error::failure(format!(
            "Kubernetes {version} is not in the cache ({}) and cannot be downloaded: {e}",
            ctx.cache.dir(version).display()
        ))
        .with_hint(berth_core::error::DOWNLOAD_HINT.replace("VERSION", &version.to_string())),
        other => other.into(),
    }
}

/// The name of the volume of the profile's binaries, made again from the
/// cache (or a download) should it be gone.
pub(super) async fn binaries_volume(ctx: &Ctx, profile: &Profile) -> Result<String> {
    let version = &profile.kubernetes_version;
    let manifest = match ctx.cache.get(version)? {
        Some(manifest) => manifest,
        None => {
            let runtime = berth_node::supported(version)?.runtime();
            download(ctx, version, &runtime, None)?
        }
    };
    // A cluster that exists is started anyway, so its data can be reached.
    if !manifest.defects().is_empty() {
        ctx.ui.info(format!(
            "warning: the cached Kubernetes {version} binaries are {}; {}",
            berth_core::binaries::describe(manifest.defects()),
            berth_core::error::rebuild_hint(version)
        ));
    }
    ensure_binaries(ctx, &manifest, &profile.node_image).await
}

/// The volume of `manifest`'s binaries, filled by a helper of this
/// process's, on each engine of the cluster.
pub(super) async fn ensure_binaries(ctx: &Ctx, manifest: &Manifest, image: &str) -> Result<String> {
    let filler = berth_core::binaries::Filler {
        image: image.to_string(),
        home: ctx.home.clone(),
        token: ctx.token.clone(),
    };
    let filled =
        ctx.docker.members().into_iter().map(|engine| {
            berth_core::binaries::ensure_volume(engine, &ctx.cache, manifest, &filler)
        });
    let names = futures_util::future::try_join_all(filled).await?;
    Ok(names
        .into_iter()
        .next()
        .expect("an engine is a member of itself"))
}
