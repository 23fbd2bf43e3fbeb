//! The node image: a version-independent Debian with systemd, containerd and
//! etcd. Its tag is derived from its build context, so a changed context is
//! never mistaken for an image built from an older one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use berth_engine::{self as docker, Engine};

pub const REPOSITORY: &str = "berth/node-base";
/// The official Debian image, for users whose engine reaches a registry.
pub const DEFAULT_BASE: &str = "debian:bookworm-slim";
/// Made by `node-image/debian-base.sh` where no registry is reachable.
pub const LOCAL_BASE: &str = "berth/debian:bookworm";

/// `node-image/` as it was when berth was built.
const EMBEDDED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/node_image_context.rs"));

/// Files in `node-image/` that are tools around the image, not part of it.
const NOT_IN_CONTEXT: &[&str] = &["debian-base.sh"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the build context {}: {source}", dir.display())]
    ReadContext {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Docker(#[from] docker::Error),
}

/// A build context: relative paths and contents, in a stable order.
pub struct Context {
    files: Vec<(String, Vec<u8>)>,
}

impl Context {
    pub fn embedded() -> Self {
        Self::new(
            EMBEDDED
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_vec()))
                .collect(),
        )
    }

    pub fn from_dir(dir: &Path) -> Result<Self, Error> {
        let mut files = Vec::new();
        collect(dir, dir, &mut files).map_err(|source| Error::ReadContext {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(Self::new(files))
    }

    fn new(mut files: Vec<(String, Vec<u8>)>) -> Self {
        files.retain(|(path, _)| !NOT_IN_CONTEXT.contains(&path.as_str()));
        files.sort();
        Self { files }
    }

    /// The first 12 hex digits of a SHA-256 over every path, mode and content.
    pub fn tag(&self) -> String {
        let mut hash = Sha256::new();
        for (path, content) in &self.files {
            hash.update((path.len() as u64).to_le_bytes());
            hash.update(path.as_bytes());
            hash.update(mode(content).to_le_bytes());
            hash.update((content.len() as u64).to_le_bytes());
            hash.update(content);
        }
        hex::encode(hash.finalize())[..12].to_string()
    }

    pub fn image(&self) -> String {
        format!("{REPOSITORY}:{}", self.tag())
    }

    /// The context as the tar stream the engine's build API takes.
    fn to_tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(mode(content));
            header.set_mtime(0);
            header.set_cksum();
            builder
                .append_data(&mut header, path, content.as_slice())
                .expect("writing a tar to memory cannot fail");
        }
        builder
            .into_inner()
            .expect("writing a tar to memory cannot fail")
    }
}

/// Scripts are executable, everything else is not. Derived from content, not
/// from the file system, so an embedded context and a checkout agree.
fn mode(content: &[u8]) -> u32 {
    if content.starts_with(b"#!") {
        0o755
    } else {
        0o644
    }
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else {
            let rel = path.strip_prefix(root).expect("walked below root");
            files.push((
                rel.to_string_lossy().replace('\\', "/"),
                std::fs::read(&path)?,
            ));
        }
    }
    Ok(())
}

pub enum Built {
    Reused,
    Built,
}

/// The base image to build on when the user names none: the official one if
/// the engine has it, else a local debootstrapped one if present, else the
/// official one, pulled by the build.
pub async fn default_base(engine: &dyn Engine) -> Result<String, Error> {
    if std::env::var("BERTH_BASE_IMAGE").is_ok_and(|b| !b.is_empty()) {
        return Ok(std::env::var("BERTH_BASE_IMAGE").unwrap_or_default());
    }
    if !engine.image_exists(DEFAULT_BASE).await? && engine.image_exists(LOCAL_BASE).await? {
        return Ok(LOCAL_BASE.to_string());
    }
    Ok(DEFAULT_BASE.to_string())
}

/// Builds `image` from `context` unless the engine has it already.
pub async fn ensure(
    engine: &dyn Engine,
    context: &Context,
    image: &str,
    base: &str,
    mut progress: impl FnMut(&str) + Send,
) -> Result<Built, Error> {
    if engine.image_exists(image).await? {
        return Ok(Built::Reused);
    }
    let args = HashMap::from([("BASE".to_string(), base.to_string())]);
    let labels = HashMap::from([
        (crate::names::LABEL_IMAGE_CONTEXT.to_string(), context.tag()),
        (crate::names::LABEL_IMAGE_BASE.to_string(), base.to_string()),
    ]);
    engine
        .build_image(context.to_tar(), image, &args, &labels, &mut progress)
        .await?;
    Ok(Built::Built)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(files: &[(&str, &str)]) -> Context {
        Context::new(
            files
                .iter()
                .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn tag_depends_on_content_path_and_mode_but_not_order() {
        let base = context(&[("Dockerfile", "FROM x"), ("a", "1")]);
        assert_eq!(
            base.tag(),
            context(&[("a", "1"), ("Dockerfile", "FROM x")]).tag()
        );
        assert_ne!(
            base.tag(),
            context(&[("Dockerfile", "FROM x"), ("a", "2")]).tag()
        );
        assert_ne!(
            base.tag(),
            context(&[("Dockerfile", "FROM x"), ("b", "1")]).tag()
        );
        assert_ne!(
            base.tag(),
            context(&[("Dockerfile", "FROM x"), ("a", "#!1")]).tag()
        );
        assert_eq!(base.tag().len(), 12);
    }

    #[test]
    fn the_embedded_context_matches_the_checkout() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node-image");
        assert_eq!(
            Context::embedded().tag(),
            Context::from_dir(&dir).unwrap().tag()
        );
        assert!(
            Context::embedded()
                .files
                .iter()
                .any(|(p, _)| p == "Dockerfile")
        );
        assert!(
            !Context::embedded()
                .files
                .iter()
                .any(|(p, _)| p == "debian-base.sh")
        );
    }

    #[test]
    fn scripts_are_executable_in_the_tar() {
        let tar = context(&[("run.sh", "#!/bin/sh\n"), ("conf", "x")]).to_tar();
        let mut archive = tar::Archive::new(tar.as_slice());
        let modes: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            modes,
            [("conf".to_string(), 0o644), ("run.sh".to_string(), 0o755)]
        );
    }
}
