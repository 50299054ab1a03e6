//! Pod addresses of one node: one file per address under `<data-dir>/node/ipam/`, holding
//! the Pod uid (as CNI's host-local plugin does), created with `O_EXCL` so two Pods never
//! share an address and allocations survive agent restarts.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::cidr::Cidr;

/// Allocation failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every host address of the node's prefix is taken.
    #[error("no free pod address left in {cidr}")]
    Exhausted { cidr: Cidr },
    /// The allocation directory could not be used.
    #[error("cannot use the address allocations in {}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The allocations of one node prefix.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Cidr,
}

impl Ipam {
    /// Allocations of `cidr` kept in `dir`.
    pub fn new(dir: impl Into<PathBuf>, cidr: Cidr) -> Self {
        Ipam {
            dir: dir.into(),
            cidr,
        }
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> Error + '_ {
        |source| Error::Io {
            dir: self.dir.clone(),
            source,
        }
    }

    /// The address of `owner`, allocating the lowest free one (from `.2`: `.1` is the
    /// gateway) when it has none.
    ///
    /// # Errors
    /// [`Error::Exhausted`], [`Error::Io`].
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, Error> {
        std::fs::create_dir_all(&self.dir).map_err(self.io())?;
        if let Some(ip) = self.lookup(owner) {
            return Ok(ip);
        }
        let last = self.cidr.size().saturating_sub(1);
        for n in 2..last {
            let Some(ip) = self.cidr.nth(n) else { break };
            let path = self.dir.join(ip.to_string());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => {
                    std::fs::write(&path, owner).map_err(self.io())?;
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(self.io()(e)),
            }
        }
        Err(Error::Exhausted { cidr: self.cidr })
    }

    /// The address `owner` holds, if any.
    pub fn lookup(&self, owner: &str) -> Option<Ipv4Addr> {
        self.entries()
            .into_iter()
            .find(|(_, o)| o == owner)
            .map(|(ip, _)| ip)
    }

    /// Frees whatever `owner` holds.
    pub fn release(&self, owner: &str) {
        for (ip, o) in self.entries() {
            if o == owner {
                let _ = std::fs::remove_file(self.dir.join(ip.to_string()));
            }
        }
    }

    /// Every allocation: (address, owner).
    pub fn entries(&self) -> Vec<(Ipv4Addr, String)> {
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        read.flatten()
            .filter_map(|e| {
                let ip: Ipv4Addr = e.file_name().to_str()?.parse().ok()?;
                let owner = std::fs::read_to_string(e.path()).ok()?;
                self.cidr
                    .contains(ip)
                    .then(|| (ip, owner.trim().to_string()))
            })
            .collect()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_stable_and_reused_after_release() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(tmp.path(), "10.244.7.0/24".parse().unwrap());
        let a = ipam.allocate("pod-a").unwrap();
        let b = ipam.allocate("pod-b").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 244, 7, 2));
        assert_eq!(b, Ipv4Addr::new(10, 244, 7, 3));
        assert_eq!(ipam.allocate("pod-a").unwrap(), a, "stable for its owner");
        ipam.release("pod-a");
        assert_eq!(ipam.lookup("pod-a"), None);
        assert_eq!(ipam.allocate("pod-c").unwrap(), a);
    }

    #[test]
    fn a_full_prefix_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(tmp.path(), "10.0.0.0/30".parse().unwrap());
        ipam.allocate("one").unwrap();
        let e = ipam.allocate("two").unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/30"), "{e}");
    }
}
