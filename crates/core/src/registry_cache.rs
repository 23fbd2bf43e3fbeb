//! The pull-through image cache that every profile of a home shares
//! (`berth cache registry`), as berth remembers it: the upstream
//! registries it mirrors and where its network is. Its file outlives every
//! profile; its presence says the cache is on.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pki::{create_private_dir, write_atomic};
use berth_node::net::Cidr;

/// The registries a cache mirrors unless told otherwise: where most
/// images come from, by the name images use and the URL that serves them.
pub const DEFAULT_UPSTREAMS: [(&str, &str); 4] = [
    ("docker.io", "https://registry-1.docker.io"),
    ("registry.k8s.io", "https://registry.k8s.io"),
    ("ghcr.io", "https://ghcr.io"),
    ("quay.io", "https://quay.io"),
];

/// The port the first upstream's mirror listens on, in the cache's
/// container; the next ones follow it.
const FIRST_PORT: u16 = 5000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// How images name the registry (`docker.io` in `docker.io/library/x`).
    pub host: String,
    /// Where the cache fetches what it does not hold.
    pub url: String,
}

impl Upstream {
    /// `HOST=URL`, as `--upstream` takes it.
    pub fn parse(arg: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::usage(format!("`{arg}` is not an upstream registry: {why}")).with_hint(
                "write it as HOST=URL, the name images use and the registry's URL, e.g. \
                 registry.example.com=https://registry.example.com",
            )
        };
        let (host, url) = arg.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
            && host
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if !host_ok {
            return Err(bad(
                "the host is not a registry's name (letters, digits, `.`, `-`, `:port`)",
            ));
        }
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| bad("the URL does not start with http:// or https://"))?;
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(bad("the URL names no server"));
        }
        Ok(Self {
            host: host.to_string(),
            url: url.trim_end_matches('/').to_string(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryCache {
    /// In the order of their ports.
    pub upstreams: Vec<Upstream>,
    /// The subnet of the cache's own network, where it reaches upstreams.
    pub subnet: Cidr,
}

impl RegistryCache {
    /// The default upstreams and `named` ones; a named one of a default's
    /// host takes its place.
    pub fn upstreams(named: Vec<Upstream>) -> Vec<Upstream> {
        let mut all: Vec<Upstream> = DEFAULT_UPSTREAMS
            .iter()
            .filter(|(host, _)| !named.iter().any(|n| n.host == *host))
            .map(|(host, url)| Upstream {
                host: host.to_string(),
                url: url.to_string(),
            })
            .collect();
        for upstream in named {
            all.retain(|u| u.host != upstream.host);
            all.push(upstream);
        }
        all
    }

    /// Each upstream with the port its mirror listens on.
    pub fn ports(&self) -> impl Iterator<Item = (&Upstream, u16)> {
        self.upstreams.iter().zip(FIRST_PORT..)
    }

    /// The cache's address on its own network: the subnet's last host,
    /// above any address the engine gives containers attached later.
    pub fn ip(&self) -> Ipv4Addr {
        self.subnet.last_host()
    }
}

/// The cache's address on a profile's network of `subnet`: below the
/// registry's and the load balancer's, far above every node's.
pub fn ip_on(subnet: Cidr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.last_host()) - 2)
}

fn file(home: &Path) -> PathBuf {
    home.join("registry-cache.json")
}

/// The home's cache, `None` when it is off. A file that cannot be read is
/// an error that names it, never taken for "off".
pub fn load(home: &Path) -> Result<Option<RegistryCache>> {
    let path = file(home);
    let corrupt = |reason: String| {
        Error::failure(format!(
            "the registry cache's file {} cannot be read: {reason}",
            path.display()
        ))
        .with_hint(
            "fix or remove the file (an older or newer berth may have written it); \
             `berth cache registry disable` then removes what is left",
        )
    };
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| corrupt(e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(corrupt(e.to_string())),
    }
}

pub fn save(home: &Path, cache: &RegistryCache) -> Result<()> {
    let path = file(home);
    let json = serde_json::to_vec_pretty(cache).expect("the cache's state serialises");
    let failed =
        |e: &dyn std::fmt::Display| Error::failure(format!("cannot write {}: {e}", path.display()));
    create_private_dir(home).map_err(|e| failed(&e))?;
    write_atomic(&path, &json, 0o600).map_err(|e| failed(&e))
}

pub fn remove(home: &Path) -> Result<()> {
    let path = file(home);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::failure(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_host_equals_url_and_refused_otherwise() {
        let up = Upstream::parse("registry.test:5000=http://upstream:5000/").unwrap();
        assert_eq!(up.host, "registry.test:5000");
        assert_eq!(up.url, "http://upstream:5000");
        for bad in [
            "registry.test",
            "=https://x",
            "-x=https://x",
            "a/b=https://x",
            "x=ftp://x",
            "x=https://",
        ] {
            let error = Upstream::parse(bad).unwrap_err();
            assert_eq!(error.exit, crate::error::Exit::Usage, "{bad}");
            assert!(error.hint.unwrap().contains("HOST=URL"), "{bad}");
        }
    }

    #[test]
    fn named_upstreams_join_the_defaults_and_replace_one_of_their_host() {
        let named = vec![
            Upstream::parse("docker.io=https://mirror.example").unwrap(),
            Upstream::parse("registry.test=http://up:5000").unwrap(),
        ];
        let cache = RegistryCache {
            upstreams: RegistryCache::upstreams(named),
            subnet: Cidr::slash24(172, 30, 9),
        };
        let listed: Vec<(&str, &str, u16)> = cache
            .ports()
            .map(|(u, port)| (u.host.as_str(), u.url.as_str(), port))
            .collect();
        assert_eq!(
            listed,
            [
                ("registry.k8s.io", "https://registry.k8s.io", 5000),
                ("ghcr.io", "https://ghcr.io", 5001),
                ("quay.io", "https://quay.io", 5002),
                ("docker.io", "https://mirror.example", 5003),
                ("registry.test", "http://up:5000", 5004),
            ]
        );
        assert_eq!(cache.ip(), Ipv4Addr::new(172, 30, 9, 254));
        assert_eq!(
            ip_on(Cidr::slash24(172, 30, 7)),
            Ipv4Addr::new(172, 30, 7, 252)
        );
    }

    #[test]
    fn the_state_round_trips_and_a_file_it_cannot_read_is_an_error() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(load(home.path()).unwrap(), None);
        let cache = RegistryCache {
            upstreams: RegistryCache::upstreams(Vec::new()),
            subnet: Cidr::slash24(172, 30, 1),
        };
        save(home.path(), &cache).unwrap();
        assert_eq!(load(home.path()).unwrap(), Some(cache));
        fs::write(file(home.path()), "{not json").unwrap();
        let error = load(home.path()).unwrap_err();
        assert!(error.message.contains("registry-cache.json"), "{error}");
        assert_eq!(fs::read(file(home.path())).unwrap(), b"{not json");
        remove(home.path()).unwrap();
        assert_eq!(load(home.path()).unwrap(), None);
        remove(home.path()).unwrap();
    }
}
