//! What runs inside a node: the units, configs and per-version flags berth
//! renders into it, a row per minor (the runtime upstream pairs with it),
//! and the addons.
//! Pure: nothing here touches an engine, a file or the network, so that a
//! minor or an addon is a change here and its golden file only.

pub mod addons;
pub mod command;
mod follow;
pub mod minors;
pub mod net;
pub mod render;
pub mod service_lb;
mod version;

pub use minors::{Minor, Runtime, Skew, Unsupported, supported};
pub use version::{BadVersion, Version};

/// Appends a regular file to a tar stream: one place for the header that
/// node files, build contexts, volumes and archives all need.
pub fn append_file<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    content: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(mode);
    header.set_mtime(now());
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append_data(&mut header, path, content)
}

/// Seconds since the epoch: file times in archives, and profile times.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
