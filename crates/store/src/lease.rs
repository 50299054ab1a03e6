//! Lease bookkeeping shared by the backends: TTLs and deadlines, kept in memory.
//!
//! Deadlines use `std::time::Instant` (not tokio's) because the SQLite writer thread checks
//! them outside any runtime; both clocks must agree.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::store::LeaseId;

#[derive(Debug, Clone, Copy)]
struct Lease {
    ttl: Duration,
    deadline: Instant,
}

/// The live leases and when each expires.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    live: HashMap<LeaseId, Lease>,
}

impl Leases {
    /// Starts (or restarts) `id` with a full `ttl` from now.
    pub(crate) fn insert(&mut self, id: LeaseId, ttl: Duration) {
        let deadline = Instant::now() + ttl;
        self.live.insert(id, Lease { ttl, deadline });
    }

    pub(crate) fn contains(&self, id: LeaseId) -> bool {
        self.live.contains_key(&id)
    }

    /// Forgets `id`; false if it was not live.
    pub(crate) fn remove(&mut self, id: LeaseId) -> bool {
        self.live.remove(&id).is_some()
    }

    /// Pushes `id`'s deadline to a full TTL from now.
    ///
    /// # Errors
    /// [`Error::LeaseNotFound`] if the lease is not live.
    pub(crate) fn keep_alive(&mut self, id: LeaseId) -> Result<()> {
        let lease = self.live.get_mut(&id).ok_or(Error::LeaseNotFound(id))?;
        lease.deadline = Instant::now() + lease.ttl;
        Ok(())
    }

    /// Makes the live set equal `persisted`, keeping the deadlines of leases already known
    /// and starting a full TTL for the others.
    pub(crate) fn sync(&mut self, persisted: &[(LeaseId, Duration)]) {
        self.live
            .retain(|id, _| persisted.iter().any(|(p, _)| p == id));
        for &(id, ttl) in persisted {
            if !self.live.contains_key(&id) {
                self.insert(id, ttl);
            }
        }
    }

    /// The earliest deadline of any live lease.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.live.values().map(|l| l.deadline).min()
    }

    /// Removes and returns every lease whose deadline has passed, oldest id first.
    pub(crate) fn take_expired(&mut self) -> Vec<LeaseId> {
        let now = Instant::now();
        let mut expired: Vec<LeaseId> = self
            .live
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        for id in &expired {
            self.live.remove(id);
        }
        expired
    }
}

/// A TTL in whole milliseconds, at least 1, for persisting.
pub(crate) fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_leases_are_taken_once_and_live_ones_stay() {
        let mut leases = Leases::default();
        leases.insert(1, Duration::ZERO);
        leases.insert(2, Duration::from_secs(3600));
        assert_eq!(leases.take_expired(), vec![1]);
        assert!(leases.take_expired().is_empty());
        assert!(leases.contains(2));
        assert_eq!(leases.keep_alive(1), Err(Error::LeaseNotFound(1)));
        assert!(leases.keep_alive(2).is_ok());
    }
}
