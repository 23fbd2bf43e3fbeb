//! What runs inside a node: its image, and the units, configs and
//! per-version flags berth renders into it.

pub mod addons;
pub mod image;
pub mod render;

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
    header.set_mtime(crate::cluster::now());
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append_data(&mut header, path, content)
}
