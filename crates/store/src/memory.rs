//! [`MemoryStore`]: the whole store in one mutex-guarded map, for fast tests of other crates.
//!
//! Same semantics as the durable backend (revisions, MVCC lists, compaction, watches, leases),
//! nothing persisted.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::lease::Leases;
use crate::store::{
    effective_limit, range_start, KeyValue, LeaseId, ListOptions, ListResult, Revision, Store,
    WatchEvent, WatchStream,
};
use crate::watch::{self, History, HistoryPage, Hub, HISTORY_PAGE};

/// An in-memory [`Store`]. Cloning shares the same data.
///
/// `new` needs no runtime; lease expiry runs on a tokio task spawned by the first
/// [`Store::grant_lease`], which lives until the last clone is dropped.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Arc<Mutex<State>>,
    hub: Hub,
    sweeper_started: AtomicBool,
    /// Wakes the lease sweeper when a lease with a possibly earlier deadline is granted.
    wake: Arc<Notify>,
}

/// One version of a key; `kv` is None for a deletion (tombstone).
#[derive(Debug, Clone)]
struct Version {
    rev: Revision,
    kv: Option<KeyValue>,
}

#[derive(Debug)]
struct State {
    rev: Revision,
    compacted: Revision,
    next_lease: LeaseId,
    /// Every key's versions, ascending by revision; only what compaction left.
    keys: BTreeMap<String, Vec<Version>>,
    /// Every event with revision > `compacted`, ascending.
    events: VecDeque<WatchEvent>,
    leases: Leases,
}

impl Default for State {
    fn default() -> Self {
        State {
            rev: 1,
            compacted: 0,
            next_lease: 1,
            keys: BTreeMap::new(),
            events: VecDeque::new(),
            leases: Leases::default(),
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves the state consistent (every mutation is
    // completed before anything that can panic), so poisoning is ignored.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose live-watch broadcast holds only `batches` writes; watchers further behind
    /// re-read history. Small values exercise the catch-up path in tests.
    pub fn with_watch_buffer(batches: usize) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                hub: Hub::new(batches),
                ..Inner::default()
            }),
        }
    }

    /// Runs `f` on the state under the lock and publishes the events it records.
    fn write<T>(&self, f: impl FnOnce(&mut State, &mut Vec<WatchEvent>) -> Result<T>) -> Result<T> {
        let mut state = lock(&self.inner.state);
        let mut events = Vec::new();
        let out = f(&mut state, &mut events);
        state.events.extend(events.iter().cloned());
        // Published under the lock so batches reach the hub in revision order.
        self.inner.hub.publish(events);
        out
    }

    /// Starts the lease sweeper on the current tokio runtime, once. Outside a runtime leases
    /// never expire on their own (revoke still works); the next grant inside one starts it.
    fn start_sweeper(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("MemoryStore lease granted outside a tokio runtime; no expiry");
            return;
        };
        if self.inner.sweeper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let wake = self.inner.wake.clone();
        runtime.spawn(sweep_leases(weak, wake));
    }
}

/// Expires leases until the store is dropped.
async fn sweep_leases(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let store = MemoryStore { inner };
        let next = store.write(|state, events| {
            for id in state.leases.take_expired() {
                state.delete_lease_keys(id, events);
            }
            Ok(state.leases.next_deadline())
        });
        drop(store);
        // Wake at least every second to notice the store being dropped.
        let mut nap = Duration::from_secs(1);
        if let Ok(Some(deadline)) = next {
            nap = nap.min(deadline.saturating_duration_since(std::time::Instant::now()));
        }
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            () = wake.notified() => {}
        }
    }
}

impl State {
    fn current(&self, key: &str) -> Option<&KeyValue> {
        self.keys.get(key)?.last()?.kv.as_ref()
    }

    fn push(&mut self, key: &str, rev: Revision, kv: Option<KeyValue>) {
        self.keys
            .entry(key.to_owned())
            .or_default()
            .push(Version { rev, kv });
    }

    fn put(&mut self, kv: KeyValue, prev: Option<KeyValue>, events: &mut Vec<WatchEvent>) {
        self.push(&kv.key, kv.mod_revision, Some(kv.clone()));
        events.push(WatchEvent::Put { kv, prev });
    }

    fn remove(&mut self, prev: KeyValue, events: &mut Vec<WatchEvent>) -> Revision {
        self.rev += 1;
        let revision = self.rev;
        self.push(&prev.key, revision, None);
        events.push(WatchEvent::Delete { prev, revision });
        revision
    }

    fn delete_lease_keys(&mut self, id: LeaseId, events: &mut Vec<WatchEvent>) {
        let doomed: Vec<KeyValue> = self
            .keys
            .values()
            .filter_map(|versions| versions.last()?.kv.clone())
            .filter(|kv| kv.lease == Some(id))
            .collect();
        for kv in doomed {
            self.remove(kv, events);
        }
    }

    fn check_read_revision(&self, requested: Revision) -> Result<()> {
        if requested > self.rev {
            return Err(Error::FutureRevision {
                requested,
                current: self.rev,
            });
        }
        if requested < self.compacted {
            return Err(Error::Compacted {
                requested,
                compacted: self.compacted,
            });
        }
        Ok(())
    }

    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
        let at = opts.revision.unwrap_or(self.rev);
        self.check_read_revision(at)?;
        let start = range_start(prefix, opts.start_after.as_deref());
        let limit = effective_limit(opts).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut more = false;
        let range = self
            .keys
            .range::<str, _>((Bound::Included(start.as_str()), Bound::Unbounded));
        for (key, versions) in range {
            if !key.starts_with(prefix) {
                break;
            }
            let visible = versions.partition_point(|v| v.rev <= at);
            let Some(kv) = visible.checked_sub(1).and_then(|i| versions[i].kv.as_ref()) else {
                continue;
            };
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(kv.clone());
        }
        Ok(ListResult {
            items,
            revision: at,
            more,
        })
    }

    fn compact(&mut self, revision: Revision) -> Result<()> {
        if revision > self.rev {
            return Err(Error::FutureRevision {
                requested: revision,
                current: self.rev,
            });
        }
        if revision <= self.compacted {
            return Ok(());
        }
        self.compacted = revision;
        while self
            .events
            .front()
            .is_some_and(|e| e.revision() <= revision)
        {
            self.events.pop_front();
        }
        self.keys.retain(|_, versions| {
            // Keep the version visible at `revision` (unless it is a tombstone) and later ones.
            let visible = versions.partition_point(|v| v.rev <= revision);
            let mut keep_from = visible.saturating_sub(1);
            if versions
                .get(keep_from)
                .is_some_and(|v| v.kv.is_none() && v.rev <= revision)
            {
                keep_from += 1;
            }
            versions.drain(..keep_from);
            !versions.is_empty()
        });
        Ok(())
    }

    fn history(&self, prefix: &str, after: Revision) -> Result<HistoryPage> {
        if after < self.compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted: self.compacted,
            });
        }
        let start = self.events.partition_point(|e| e.revision() <= after);
        let mut events = Vec::new();
        for event in self.events.range(start..) {
            if events.len() == HISTORY_PAGE {
                let through = events.last().map_or(after, WatchEvent::revision);
                return Ok(HistoryPage {
                    events,
                    through,
                    more: true,
                });
            }
            if event.key().starts_with(prefix) {
                events.push(event.clone());
            }
        }
        Ok(HistoryPage {
            events,
            through: self.rev,
            more: false,
        })
    }
}

struct MemoryHistory(Arc<Mutex<State>>);

#[async_trait::async_trait]
impl History for MemoryHistory {
    async fn history(&self, prefix: &str, after: Revision) -> Result<HistoryPage> {
        lock(&self.0).history(prefix, after)
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(lock(&self.inner.state).current(key).cloned())
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        lock(&self.inner.state).list(prefix, &opts)
    }

    async fn count(&self, prefix: &str) -> Result<usize> {
        let state = lock(&self.inner.state);
        let range = state
            .keys
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded));
        Ok(range
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(_, versions)| versions.last().is_some_and(|v| v.kv.is_some()))
            .count())
    }

    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<KeyValue> {
        self.write(|state, events| {
            if state.current(key).is_some() {
                return Err(Error::AlreadyExists {
                    key: key.to_owned(),
                });
            }
            if let Some(id) = lease.filter(|id| !state.leases.contains(*id)) {
                return Err(Error::LeaseNotFound(id));
            }
            state.rev += 1;
            let kv = KeyValue {
                key: key.to_owned(),
                value,
                create_revision: state.rev,
                mod_revision: state.rev,
                lease,
            };
            state.put(kv.clone(), None, events);
            Ok(kv)
        })
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        self.write(|state, events| {
            let prev = state.current(key).cloned().ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })?;
            if prev.mod_revision != expected {
                return Err(Error::Conflict {
                    key: key.to_owned(),
                    current: Some(Box::new(prev)),
                });
            }
            state.rev += 1;
            let kv = KeyValue {
                value,
                mod_revision: state.rev,
                ..prev.clone()
            };
            state.put(kv.clone(), Some(prev), events);
            Ok(kv)
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        self.write(|state, events| {
            let prev = state.current(key).cloned().ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })?;
            if expected.is_some_and(|rev| rev != prev.mod_revision) {
                return Err(Error::Conflict {
                    key: key.to_owned(),
                    current: Some(Box::new(prev)),
                });
            }
            let revision = state.remove(prev.clone(), events);
            Ok((prev, revision))
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let rx = self.inner.hub.subscribe();
        let history = Arc::new(MemoryHistory(self.inner.state.clone()));
        watch::open(history, rx, prefix, after).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(lock(&self.inner.state).rev)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        lock(&self.inner.state).compact(revision)
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(lock(&self.inner.state).compacted)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let id = {
            let mut state = lock(&self.inner.state);
            let id = state.next_lease;
            state.next_lease += 1;
            state.leases.insert(id, ttl);
            id
        };
        self.start_sweeper();
        self.inner.wake.notify_one();
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        lock(&self.inner.state).leases.keep_alive(lease)
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.write(|state, events| {
            if !state.leases.remove(lease) {
                return Err(Error::LeaseNotFound(lease));
            }
            state.delete_lease_keys(lease, events);
            Ok(())
        })
    }
}
