//! The writer thread: owns the only writing connection and applies queued writes in batches
//! (group commit), one transaction and one fsync per batch, then publishes the batch's
//! events and answers each request.
//!
//! Batching happens mostly by itself: while one batch is being fsynced, new requests queue up,
//! and the next batch takes all of them; the `Pacer` adds a short, bounded wait so steady
//! concurrent load is not split into half-sized batches. A request that fails on its own (conflict, missing key)
//! does not affect the others; an engine error rolls the whole batch back and fails all of it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::schema::{self, Meta};
use crate::error::{Error, Result};
use crate::lease::{ttl_millis, Leases};
use crate::store::{KeyValue, LeaseId, Revision, WatchEvent};
use crate::watch::Hub;

/// Most requests applied in one transaction; bounds the latency of the first one.
const MAX_BATCH: usize = 256;

/// How long the writer sleeps when no lease is due.
const IDLE_WAKEUP: Duration = Duration::from_secs(60);

/// Upper bound on how long a batch waits for stragglers (see [`Pacer`]).
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(2);

/// Moves already-queued requests into `batch`, up to [`MAX_BATCH`].
fn drain(rx: &Receiver<Request>, batch: &mut Vec<Request>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
}

/// Decides whether a batch should wait briefly for more requests before committing.
///
/// Clients answered by the last commit usually send their next write right away, but only
/// after the writer has already picked up the next batch. Committing at once would split
/// steady concurrent load into two half-sized batches per fsync. So, like PostgreSQL's
/// `commit_delay`, a batch smaller than the previous one waits up to half a typical commit
/// time for the rest. A lone serial writer (previous batch of one) never waits.
#[derive(Debug)]
struct Pacer {
    /// Requests in the last batch: how many clients are probably about to write again.
    expected: usize,
    /// Moving average of how long a commit (mostly the fsync) takes.
    commit_time: Duration,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            expected: 1,
            commit_time: Duration::from_millis(1),
        }
    }
}

impl Pacer {
    fn gather(&mut self, rx: &Receiver<Request>, batch: &mut Vec<Request>) {
        if !batch.is_empty() && batch.len() < self.expected {
            let deadline = Instant::now() + (self.commit_time / 2).min(MAX_COMMIT_DELAY);
            while batch.len() < self.expected.min(MAX_BATCH) {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(request) => {
                        batch.push(request);
                        drain(rx, batch);
                    }
                    Err(_) => break,
                }
            }
        }
        self.expected = batch.len();
    }

    fn committed(&mut self, took: Duration) {
        self.commit_time = (self.commit_time * 7 + took) / 8;
    }
}

/// A write, as queued for the writer thread.
#[derive(Debug)]
pub(crate) enum Command {
    Create {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact(Revision),
    GrantLease(Duration),
    RevokeLease(LeaseId),
}

impl Command {
    /// What the command was doing, for error messages.
    fn describe(&self) -> String {
        match self {
            Command::Create { key, .. } => format!("creating key {key:?}"),
            Command::Update { key, .. } => format!("updating key {key:?}"),
            Command::Delete { key, .. } => format!("deleting key {key:?}"),
            Command::Compact(rev) => format!("compacting to revision {rev}"),
            Command::GrantLease(_) => "granting a lease".to_owned(),
            Command::RevokeLease(id) => format!("revoking lease {id}"),
        }
    }
}

/// What a successful command produced.
#[derive(Debug)]
pub(crate) enum Outcome {
    Kv(KeyValue),
    Deleted(KeyValue, Revision),
    Lease(LeaseId),
    Done,
}

pub(crate) struct Request {
    pub(crate) command: Command,
    pub(crate) reply: oneshot::Sender<Result<Outcome>>,
}

/// State the writer publishes for the async side.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Revision of the last committed write.
    pub(crate) revision: AtomicI64,
    pub(crate) compacted: AtomicI64,
    /// Live leases; keep-alives update deadlines here without a round trip to the writer.
    pub(crate) leases: Mutex<Leases>,
}

impl Shared {
    pub(crate) fn new(meta: &Meta, leases: Leases) -> Self {
        Shared {
            revision: AtomicI64::new(meta.revision),
            compacted: AtomicI64::new(meta.compacted),
            leases: Mutex::new(leases),
        }
    }

    pub(crate) fn leases(&self) -> MutexGuard<'_, Leases> {
        // Lease bookkeeping is a plain map; it cannot be left half-updated.
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) meta: Meta,
    pub(crate) shared: Arc<Shared>,
    pub(crate) hub: Hub,
}

impl Writer {
    /// Serves requests until every sender is gone, expiring leases on the way.
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        let mut pacer = Pacer::default();
        loop {
            let wait = self
                .shared
                .leases()
                .next_deadline()
                .map_or(IDLE_WAKEUP, |d| d.saturating_duration_since(Instant::now()));
            let mut batch = Vec::new();
            match rx.recv_timeout(wait) {
                Ok(request) => batch.push(request),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            drain(&rx, &mut batch);
            pacer.gather(&rx, &mut batch);
            let expired = self.shared.leases().take_expired();
            if !batch.is_empty() || !expired.is_empty() {
                let started = Instant::now();
                self.commit(batch, &expired);
                pacer.committed(started.elapsed());
            }
        }
    }

    fn commit(&mut self, batch: Vec<Request>, expired: &[LeaseId]) {
        match self.apply_all(&batch, expired) {
            Ok((outcomes, events, meta)) => {
                self.meta = meta;
                self.shared.revision.store(meta.revision, Ordering::SeqCst);
                self.shared
                    .compacted
                    .store(meta.compacted, Ordering::SeqCst);
                self.hub.publish(events);
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    // The caller may have given up waiting; the write stands regardless.
                    let _ = request.reply.send(outcome);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, requests = batch.len(), "write batch rolled back");
                self.recover();
                for request in batch {
                    let what = request.command.describe();
                    let _ = request.reply.send(Err(Error::backend(
                        format_args!("{what} (rolled back)"),
                        &err,
                    )));
                }
            }
        }
    }

    #[allow(clippy::type_complexity, reason = "private helper returning a tuple")]
    fn apply_all(
        &mut self,
        batch: &[Request],
        expired: &[LeaseId],
    ) -> rusqlite::Result<(Vec<Result<Outcome>>, Vec<WatchEvent>, Meta)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut txn = Txn {
            tx: &tx,
            meta: self.meta,
            events: Vec::new(),
            shared: &self.shared,
        };
        for id in expired {
            tracing::debug!(lease = id, "lease expired");
            // Not found only if it was revoked meanwhile, which is fine.
            let _ = txn.revoke(*id)?;
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for request in batch {
            outcomes.push(txn.apply(&request.command)?);
        }
        let Txn { meta, events, .. } = txn;
        if meta != self.meta {
            schema::write_meta(&tx, &meta)?;
        }
        tx.commit()?;
        Ok((outcomes, events, meta))
    }

    /// Re-reads the counters and leases after a rolled-back batch.
    fn recover(&mut self) {
        let reload = |conn: &Connection| -> rusqlite::Result<_> {
            Ok((schema::read_meta(conn)?, schema::read_leases(conn)?))
        };
        match reload(&self.conn) {
            Ok((meta, leases)) => {
                self.meta = meta;
                self.shared.leases().sync(&leases);
            }
            Err(err) => tracing::error!(error = %err, "cannot re-read state after rollback"),
        }
    }
}

/// One batch's transaction and what it has done so far.
struct Txn<'a> {
    tx: &'a Transaction<'a>,
    meta: Meta,
    events: Vec<WatchEvent>,
    shared: &'a Shared,
}

/// Outer error: the engine failed (abort the batch). Inner: this request's own outcome.
type Applied = rusqlite::Result<Result<Outcome>>;

impl Txn<'_> {
    fn apply(&mut self, command: &Command) -> Applied {
        match command {
            Command::Create { key, value, lease } => self.create(key, value, *lease),
            Command::Update {
                key,
                value,
                expected,
            } => self.update(key, value, *expected),
            Command::Delete { key, expected } => self.delete(key, *expected),
            Command::Compact(rev) => self.compact(*rev),
            Command::GrantLease(ttl) => self.grant(*ttl),
            Command::RevokeLease(id) => self.revoke(*id),
        }
    }

    fn next_revision(&mut self) -> Revision {
        self.meta.revision += 1;
        self.meta.revision
    }

    fn append_log(
        &self,
        kv: &KeyValue,
        tombstone: bool,
        prev: Option<Revision>,
    ) -> rusqlite::Result<()> {
        let value = (!tombstone).then_some(kv.value.as_slice());
        self.tx
            .prepare_cached(
                "INSERT INTO log (rev, key, value, create_rev, lease, prev_rev)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute((
                kv.mod_revision,
                kv.key.as_bytes(),
                value,
                kv.create_revision,
                kv.lease.filter(|_| !tombstone),
                prev,
            ))?;
        Ok(())
    }

    fn create(&mut self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Applied {
        if let Some(id) = lease.filter(|id| !self.shared.leases().contains(*id)) {
            return Ok(Err(Error::LeaseNotFound(id)));
        }
        let rev = self.meta.revision + 1;
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO kv (key, mod_rev, lease) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO NOTHING",
            )?
            .execute((key.as_bytes(), rev, lease))?;
        if inserted == 0 {
            return Ok(Err(Error::AlreadyExists {
                key: key.to_owned(),
            }));
        }
        self.next_revision();
        let kv = KeyValue {
            key: key.to_owned(),
            value: value.to_vec(),
            create_revision: rev,
            mod_revision: rev,
            lease,
        };
        self.append_log(&kv, false, None)?;
        self.events.push(WatchEvent::Put {
            kv: kv.clone(),
            prev: None,
        });
        Ok(Ok(Outcome::Kv(kv)))
    }

    /// The key's current version, or the request's error if it is missing or mismatched.
    fn check(&self, key: &str, expected: Option<Revision>) -> rusqlite::Result<Result<KeyValue>> {
        let Some(prev) = schema::current(self.tx, key)? else {
            return Ok(Err(Error::NotFound {
                key: key.to_owned(),
            }));
        };
        if expected.is_some_and(|rev| rev != prev.mod_revision) {
            return Ok(Err(Error::Conflict {
                key: key.to_owned(),
                current: Some(Box::new(prev)),
            }));
        }
        Ok(Ok(prev))
    }

    fn update(&mut self, key: &str, value: &[u8], expected: Revision) -> Applied {
        let prev = match self.check(key, Some(expected))? {
            Ok(prev) => prev,
            Err(err) => return Ok(Err(err)),
        };
        let rev = self.next_revision();
        self.tx
            .prepare_cached("UPDATE kv SET mod_rev = ?2 WHERE key = ?1")?
            .execute((key.as_bytes(), rev))?;
        let kv = KeyValue {
            value: value.to_vec(),
            mod_revision: rev,
            ..prev.clone()
        };
        self.append_log(&kv, false, Some(prev.mod_revision))?;
        self.events.push(WatchEvent::Put {
            kv: kv.clone(),
            prev: Some(prev),
        });
        Ok(Ok(Outcome::Kv(kv)))
    }

    fn delete(&mut self, key: &str, expected: Option<Revision>) -> Applied {
        let prev = match self.check(key, expected)? {
            Ok(prev) => prev,
            Err(err) => return Ok(Err(err)),
        };
        let revision = self.next_revision();
        self.tx
            .prepare_cached("DELETE FROM kv WHERE key = ?1")?
            .execute([key.as_bytes()])?;
        let tombstone = KeyValue {
            mod_revision: revision,
            ..prev.clone()
        };
        self.append_log(&tombstone, true, Some(prev.mod_revision))?;
        self.events.push(WatchEvent::Delete {
            prev: prev.clone(),
            revision,
        });
        Ok(Ok(Outcome::Deleted(prev, revision)))
    }

    fn compact(&mut self, revision: Revision) -> Applied {
        if revision > self.meta.revision {
            return Ok(Err(Error::FutureRevision {
                requested: revision,
                current: self.meta.revision,
            }));
        }
        if revision <= self.meta.compacted {
            return Ok(Ok(Outcome::Done));
        }
        // Keep, per key, the version visible at `revision` (unless it is a deletion) and
        // everything newer: enough for reads at >= `revision` and for the `prev` of every
        // later event.
        let removed = self
            .tx
            .prepare_cached(
                "DELETE FROM log WHERE rev <= ?1 AND (value IS NULL OR rev <
                    (SELECT MAX(m.rev) FROM log m WHERE m.key = log.key AND m.rev <= ?1))",
            )?
            .execute([revision])?;
        tracing::debug!(revision, removed, "compacted");
        self.meta.compacted = revision;
        Ok(Ok(Outcome::Done))
    }

    fn grant(&mut self, ttl: Duration) -> Applied {
        let id = self.meta.next_lease;
        self.meta.next_lease += 1;
        self.tx
            .prepare_cached("INSERT INTO leases (id, ttl_ms) VALUES (?1, ?2)")?
            .execute((id, ttl_millis(ttl)))?;
        self.shared.leases().insert(id, ttl);
        Ok(Ok(Outcome::Lease(id)))
    }

    fn revoke(&mut self, id: LeaseId) -> Applied {
        self.shared.leases().remove(id);
        let removed = self
            .tx
            .prepare_cached("DELETE FROM leases WHERE id = ?1")?
            .execute([id])?;
        if removed == 0 {
            return Ok(Err(Error::LeaseNotFound(id)));
        }
        let keys = self
            .tx
            .prepare_cached("SELECT key FROM kv WHERE lease = ?1 ORDER BY key")?
            .query_map([id], |row| schema::key_at(row, 0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        for key in keys {
            if let Err(err) = self.delete(&key, None)? {
                tracing::warn!(lease = id, error = %err, "lease key vanished during revoke");
            }
        }
        Ok(Ok(Outcome::Done))
    }
}
