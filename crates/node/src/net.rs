//! IPv4 networks as berth hands them out: a profile's /24 on the engine,
//! the cluster's pod network and each node's /24 of it. Written and read as
//! `a.b.c.d/n`, the form the engine and Kubernetes use.

use std::net::Ipv4Addr;

/// An IPv4 network: its first address, and the length of its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Cidr {
    /// The network of `prefix` bits that starts at `network`, which must
    /// have no bits set past the prefix (a constant's is checked by the
    /// unit tests of its module).
    pub const fn new(network: Ipv4Addr, prefix: u8) -> Self {
        Cidr { network, prefix }
    }

    /// The /24 whose first address is `a.b.c.0`.
    pub const fn slash24(a: u8, b: u8, c: u8) -> Self {
        Cidr::new(Ipv4Addr::new(a, b, c, 0), 24)
    }

    /// The `n`th /24 within this network, which is larger.
    pub fn nth_slash24(self, n: u8) -> Self {
        let [a, b, c, _] = self.host(u32::from(n) << 8).octets();
        Cidr::slash24(a, b, c)
    }

    /// Whether this is the network its own text names: its address has no
    /// bits set past the prefix.
    pub fn is_aligned(self) -> bool {
        self.to_string().parse::<Cidr>().is_ok()
    }

    /// The network's `n`th address (0 is the network's own).
    pub fn host(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + n)
    }

    /// The last address before the broadcast address.
    pub fn last_host(self) -> Ipv4Addr {
        self.host((1u32 << (32 - self.prefix)) - 2)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an IPv4 network such as 172.30.0.0/24");
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let network: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        // A prefix of 31 or 32 has no hosts to hand out.
        if !(1..=30).contains(&prefix) || u32::from(network) & (u32::MAX >> prefix) != 0 {
            return Err(bad());
        }
        Ok(Cidr { network, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> String {
        cidr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_read_and_write_as_the_engine_writes_them() {
        let subnet: Cidr = "172.30.7.0/24".parse().unwrap();
        assert_eq!(subnet, Cidr::slash24(172, 30, 7));
        assert_eq!(subnet.to_string(), "172.30.7.0/24");
        assert_eq!(subnet.host(2), Ipv4Addr::new(172, 30, 7, 2));
        assert_eq!(subnet.last_host(), Ipv4Addr::new(172, 30, 7, 254));
        let pods: Cidr = "10.244.0.0/16".parse().unwrap();
        assert_eq!(pods.last_host(), Ipv4Addr::new(10, 244, 255, 254));
        assert_eq!(pods.nth_slash24(3).to_string(), "10.244.3.0/24");
        assert!(pods.is_aligned());
        assert!(!Cidr::new(Ipv4Addr::new(10, 244, 0, 1), 16).is_aligned());
        assert_eq!(serde_json::to_string(&subnet).unwrap(), "\"172.30.7.0/24\"");
        let back: Cidr = serde_json::from_str("\"172.30.7.0/24\"").unwrap();
        assert_eq!(back, subnet);
        for bad in [
            "172.30.7.0",
            "172.30.7.1/24",
            "172.30.7.0/33",
            "x/24",
            "10.0.0.0/31",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} was taken");
        }
        assert!(serde_json::from_str::<Cidr>("\"nonsense\"").is_err());
    }
}
