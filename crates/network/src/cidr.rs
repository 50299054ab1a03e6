//! IPv4 prefixes: parsing, membership, and carving a cluster range into per-node /24s.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 prefix such as `10.244.0.0/16` (the address is kept as written, so a host
/// address with its prefix, `10.244.3.1/24`, round-trips).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The address as written.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

/// A prefix that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not an IPv4 prefix (a.b.c.d/n)")]
pub struct ParseError {
    text: String,
}

impl FromStr for Cidr {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, ParseError> {
        let err = || ParseError { text: text.into() };
        let (addr, len) = text.split_once('/').ok_or_else(err)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
        let len: u8 = len.parse().map_err(|_| err())?;
        if len > 32 {
            return Err(err());
        }
        Ok(Cidr { addr, len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Cidr {
    /// Builds a prefix.
    pub fn new(addr: Ipv4Addr, len: u8) -> Self {
        Cidr {
            addr,
            len: len.min(32),
        }
    }

    fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// The network address (host bits cleared).
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The dotted netmask.
    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    /// The broadcast address.
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// Whether `ip` lies inside.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether two prefixes share any address.
    pub fn overlaps(self, other: Cidr) -> bool {
        let len = self.len.min(other.len);
        Cidr::new(self.addr, len).network() == Cidr::new(other.addr, len).network()
    }

    /// The `n`-th address of the network (`nth(1)` is the first host), if inside.
    pub fn nth(self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.len));
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.network()) + n))
    }

    /// How many addresses the prefix holds (saturating at `u32::MAX`).
    pub fn size(self) -> u32 {
        u32::try_from(1u64 << (32 - u32::from(self.len))).unwrap_or(u32::MAX)
    }

    /// The `index`-th sub-prefix of length `len` (e.g. the 3rd /24 of a /16).
    pub fn subnet(self, len: u8, index: u32) -> Option<Cidr> {
        if len < self.len || len > 32 {
            return None;
        }
        let count = 1u64 << (len - self.len);
        if u64::from(index) >= count {
            return None;
        }
        let step = 1u64 << (32 - u32::from(len));
        let base = u64::from(u32::from(self.network())) + u64::from(index) * step;
        u32::try_from(base)
            .ok()
            .map(|b| Cidr::new(Ipv4Addr::from(b), len))
    }

    /// How many sub-prefixes of length `len` fit.
    pub fn subnets(self, len: u8) -> u32 {
        if len < self.len {
            return 0;
        }
        u32::try_from(1u64 << (len - self.len)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slash_16_holds_256_node_slash_24s() {
        let cluster: Cidr = "10.244.0.0/16".parse().unwrap();
        assert_eq!(cluster.subnets(24), 256);
        assert_eq!(cluster.subnet(24, 3).unwrap().to_string(), "10.244.3.0/24");
        assert!(cluster.subnet(24, 256).is_none());
        let node = cluster.subnet(24, 3).unwrap();
        assert_eq!(node.nth(1).unwrap(), Ipv4Addr::new(10, 244, 3, 1));
        assert_eq!(node.broadcast(), Ipv4Addr::new(10, 244, 3, 255));
        assert_eq!(node.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(node.contains(Ipv4Addr::new(10, 244, 3, 77)));
        assert!(!node.contains(Ipv4Addr::new(10, 244, 4, 1)));
        assert!(cluster.overlaps(node) && node.overlaps(cluster));
        assert!(!node.overlaps("10.244.4.0/24".parse().unwrap()));
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for text in ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "x/8"] {
            assert!(text.parse::<Cidr>().is_err(), "{text}");
        }
        assert_eq!(
            "10.96.0.10/12".parse::<Cidr>().unwrap().network(),
            Ipv4Addr::new(10, 96, 0, 0)
        );
    }
}
