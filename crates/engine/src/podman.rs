//! Where podman, which speaks Docker's API, does not do what Docker does.

use std::io::Read;

/// The label of a podman network that names the image of the helper
/// which put its firewall rule in, so the same image takes it out.
pub(crate) const LABEL_FORWARD_HELPER: &str = "io.berth.podman-forward-image";

/// The bridge of a podman network of berth's, named from the network so
/// that its firewall rule can be found again (at most 15 characters).
pub(crate) fn bridge_name(network: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("berth{}", &hex::encode(Sha256::digest(network))[..10])
}

/// A shell script that puts in (`add`) or takes out the host's rule that
/// lets traffic between two containers on `bridge` through. Docker has
/// that rule for each of its bridges; podman's CNI firewall lets only the
/// containers' own addresses through, so where the host filters bridged
/// packets (br_netfilter, as on a host with Docker beside podman) pod
/// traffic between nodes is dropped. The rule goes where the host's rules
/// are: nftables or legacy iptables, whichever holds more.
pub(crate) fn forward_script(bridge: &str, add: bool) -> String {
    let change = if add {
        "$ipt -C $rule 2>/dev/null || $ipt -I $rule"
    } else {
        "while $ipt -D $rule 2>/dev/null; do :; done"
    };
    format!(
        "set -e; count() {{ \"$1\" 2>/dev/null | grep -c '^-A' || true; }}; \
         ipt=iptables-nft; [ \"$(count iptables-legacy-save)\" -gt \"$(count iptables-nft-save)\" ] && ipt=iptables-legacy; \
         rule='FORWARD -i {bridge} -o {bridge} -m comment --comment berth -j ACCEPT'; {change}"
    )
}

/// podman unpacks an archive sent to `/` into the container's own file
/// system even where a volume is mounted below (Docker follows the
/// mounts, and berth fills volumes through created, unstarted helpers).
/// So the archive is cut into one per mount point in `mounts` (absolute
/// paths), each with its paths relative to it, and `/` for the rest.
pub(crate) fn split_by_mounts(
    archive: impl Read,
    mounts: &[String],
) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut mounts: Vec<String> = mounts
        .iter()
        .map(|m| m.trim_matches('/').to_string())
        .filter(|m| !m.is_empty())
        .collect();
    // The deepest mount holding a path is the one it lands in.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    let place = |path: &str| -> Option<(usize, String)> {
        // Docker takes absolute paths in an archive as relative to where
        // it is unpacked, and so does this.
        let path = path
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/');
        if path.is_empty() || path == "." {
            return None;
        }
        for (i, mount) in mounts.iter().enumerate() {
            if path == mount {
                return None;
            }
            if let Some(rest) = path.strip_prefix(mount.as_str())
                && let Some(rest) = rest.strip_prefix('/')
            {
                return Some((i, rest.to_string()));
            }
        }
        Some((mounts.len(), path.to_string()))
    };
    let mut parts: Vec<Option<tar::Builder<Vec<u8>>>> = (0..=mounts.len()).map(|_| None).collect();
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        // The root, and a mount point itself (the volume's root), are not
        // files to copy.
        let Some((part, relative)) = place(&path) else {
            continue;
        };
        let builder = parts[part].get_or_insert_with(|| tar::Builder::new(Vec::new()));
        // A hard link names another entry of the archive, which moves with
        // it when both are below the same mount.
        copy_entry(builder, entry, &relative, |target| match place(target) {
            Some((p, t)) if p == part => t,
            _ => target.to_string(),
        })?;
    }
    let mut split = Vec::new();
    for (i, builder) in parts.into_iter().enumerate() {
        if let Some(builder) = builder {
            let destination = match mounts.get(i) {
                Some(mount) => format!("/{mount}"),
                None => "/".to_string(),
            };
            split.push((destination, builder.into_inner()?));
        }
    }
    split.sort();
    Ok(split)
}

/// Whether the podman at the local socket `path` runs rootless: its
/// `/info` says so in a field Docker's lacks (and bollard drops), and
/// Docker's rootless marker in the security options podman leaves out.
pub(crate) async fn rootless(path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut socket = tokio::net::UnixStream::connect(path).await?;
        socket
            .write_all(b"GET /v1.41/info HTTP/1.0\r\nHost: podman\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await?;
        std::io::Result::Ok(answer)
    };
    let Ok(Ok(answer)) = tokio::time::timeout(std::time::Duration::from_secs(10), ask).await else {
        return false;
    };
    let text = String::from_utf8_lossy(&answer);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str::<serde_json::Value>(body)
        .is_ok_and(|info| info["Rootless"] == serde_json::Value::Bool(true))
}

/// Appends `entry` to `builder` as `path`, a hard link's target renamed
/// by `link`.
fn copy_entry<W: std::io::Write, R: Read>(
    builder: &mut tar::Builder<W>,
    mut entry: tar::Entry<'_, R>,
    path: &str,
    link: impl Fn(&str) -> String,
) -> std::io::Result<()> {
    let mut header = entry.header().clone();
    match header.entry_type() {
        tar::EntryType::Symlink => {
            let target = entry.link_name()?.unwrap_or_default().into_owned();
            builder.append_link(&mut header, path, target)
        }
        tar::EntryType::Link => {
            let target = entry.link_name()?.unwrap_or_default();
            builder.append_link(&mut header, path, link(&target.to_string_lossy()))
        }
        _ => {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            builder.append_data(&mut header, path, data.as_slice())
        }
    }
}

/// podman archives a path that is a mount point (a volume) with entries
/// rooted at `/` (`/`, `/lib`, ...) where Docker names them under the
/// path's last part (`var/`, `var/lib`, ...), which is what berth unpacks.
/// Rewrites `archive` into `out` as Docker would have written it.
pub(crate) fn as_docker_archives(
    archive: impl Read,
    out: impl std::io::Write,
    top: &str,
) -> std::io::Result<()> {
    let rename = |path: &str| match path.strip_prefix('/') {
        Some(rest) => format!("{top}/{rest}"),
        None => path.to_string(),
    };
    let mut builder = tar::Builder::new(out);
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        // The tar crate reads `/x` as `x`: only the raw name tells.
        let path = if raw.starts_with('/') {
            rename(&raw)
        } else {
            path
        };
        copy_entry(&mut builder, entry, &path, rename)?;
    }
    builder.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_name_fits_the_kernel_and_is_the_networks_own() {
        let name = bridge_name("berth-dev-0c3067");
        assert_eq!(name.len(), 15);
        assert_eq!(name, bridge_name("berth-dev-0c3067"));
        assert_ne!(name, bridge_name("berth-dev2-0c3067"));
    }

    #[test]
    fn the_forward_rule_is_put_in_once_and_taken_out_whole() {
        let add = forward_script("berthabc", true);
        assert!(add.contains("-i berthabc -o berthabc"), "{add}");
        assert!(
            add.contains("$ipt -C $rule 2>/dev/null || $ipt -I $rule"),
            "{add}"
        );
        let remove = forward_script("berthabc", false);
        assert!(remove.contains("while $ipt -D $rule"), "{remove}");
    }

    fn archive(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, link) in entries {
            let mut header = tar::Header::new_gnu();
            match link {
                Some(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target).unwrap();
                }
                None if path.ends_with('/') => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    // The tar crate writes no absolute path; engines'
                    // archives may hold them.
                    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                    header.set_cksum();
                    builder.append(&header, &[][..]).unwrap();
                }
                None => {
                    header.set_size(path.len() as u64);
                    builder
                        .append_data(&mut header, path, path.as_bytes())
                        .unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    fn listing(part: &[u8]) -> Vec<(String, String)> {
        tar::Archive::new(part)
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut content = String::new();
                match e.link_name().unwrap() {
                    Some(link) => content = format!("-> {}", link.display()),
                    None => {
                        e.read_to_string(&mut content).unwrap();
                    }
                }
                (path, content)
            })
            .collect()
    }

    #[test]
    fn each_path_goes_to_the_deepest_mount_that_holds_it() {
        let tar = archive(&[
            ("./", None),
            ("etc/kubernetes/a.conf", None),
            ("/var/", None),
            ("var/lib/berth/images/x.tar", None),
            ("var/lib/kubelet/link", Some("/etc/kubernetes/a.conf")),
            ("opt/berth/kubernetes/bin/kubelet", None),
        ]);
        let mounts = ["/var".to_string(), "/opt/berth/kubernetes/bin/".to_string()];
        let split = split_by_mounts(tar.as_slice(), &mounts).unwrap();
        let places: Vec<&str> = split.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(places, ["/", "/opt/berth/kubernetes/bin", "/var"]);
        assert_eq!(
            listing(&split[0].1),
            [(
                "etc/kubernetes/a.conf".to_string(),
                "etc/kubernetes/a.conf".to_string()
            )]
        );
        assert_eq!(
            listing(&split[2].1),
            [
                (
                    "lib/berth/images/x.tar".to_string(),
                    "var/lib/berth/images/x.tar".to_string()
                ),
                (
                    "lib/kubelet/link".to_string(),
                    "-> /etc/kubernetes/a.conf".to_string()
                ),
            ]
        );
        assert_eq!(
            listing(&split[1].1),
            [(
                "kubelet".to_string(),
                "opt/berth/kubernetes/bin/kubelet".to_string()
            )]
        );
    }

    #[test]
    fn an_archive_of_a_mount_point_is_named_as_docker_names_it() {
        let tar = archive(&[("/", None), ("/lib/", None)]);
        let mut out = Vec::new();
        as_docker_archives(tar.as_slice(), &mut out, "var").unwrap();
        let names: Vec<String> = listing(&out).into_iter().map(|(p, _)| p).collect();
        assert_eq!(names, ["var/", "var/lib/"]);
        let plain = archive(&[("default/", None)]);
        let mut out = Vec::new();
        as_docker_archives(plain.as_slice(), &mut out, "default").unwrap();
        assert_eq!(listing(&out)[0].0, "default/");
    }

    #[test]
    fn an_archive_outside_every_mount_stays_whole() {
        let tar = archive(&[("etc/hostname", None)]);
        let split = split_by_mounts(tar.as_slice(), &["/var".to_string()]).unwrap();
        assert_eq!(split.len(), 1);
        assert_eq!(split[0].0, "/");
        assert_eq!(listing(&split[0].1)[0].0, "etc/hostname");
    }
}
