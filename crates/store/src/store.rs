//! The backend-neutral data model and the [`Store`] trait.

use crate::error::Result;

/// A point in the store's global history. Monotonic; a fresh store is at revision 1.
pub type Revision = i64;

/// Identifies a lease granted by [`Store::grant_lease`].
pub type LeaseId = i64;

/// One key as stored at some revision.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the create that started this incarnation of the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key (what compare-and-swap compares).
    pub mod_revision: Revision,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// A change to one key, as delivered by [`Store::watch`].
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// A key was created (prev None) or updated (prev Some).
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// A key was deleted at `revision`; `prev` is its last value.
    Delete { prev: KeyValue, revision: Revision },
}

impl WatchEvent {
    /// The revision at which the change happened.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }

    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put { kv, .. } => &kv.key,
            WatchEvent::Delete { prev, .. } => &prev.key,
        }
    }
}

/// How to read a range of keys.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Read as of this revision (None = latest). Err(Compacted) if older than the compaction point; Err(FutureRevision) if newer than current.
    pub revision: Option<Revision>,
    /// Only keys strictly greater than this (for pagination).
    pub start_after: Option<String>,
    /// Max items (None/0 = all).
    pub limit: Option<usize>,
}

/// The answer to [`Store::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct ListResult {
    /// Matching keys, sorted bytewise by key.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at (pass it back in [`ListOptions::revision`] to read the
    /// next page from the same snapshot).
    pub revision: Revision,
    /// More keys remain after the last item.
    pub more: bool,
}

/// A watch: the events under a prefix in revision order, history first, then live.
pub type WatchStream = futures::stream::BoxStream<'static, Result<WatchEvent>>;

/// A revisioned key-value store (the etcd v3 model, reduced to what an API server needs).
///
/// # Guarantees
///
/// - Every successful write takes a new, strictly greater global revision; a write that
///   returned `Ok` is visible to every later read and watch (read-your-writes), and for durable
///   backends survives a crash.
/// - A watch delivers each matching event exactly once, in revision order, with no gaps.
///
/// # Caveats
///
/// An update keeps the key's lease; there is no way to attach or detach a lease after create.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`, or `None`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// All keys starting with `prefix` (a plain string prefix).
    ///
    /// # Errors
    /// [`Compacted`](crate::Error::Compacted) / [`FutureRevision`](crate::Error::FutureRevision)
    /// for a `revision` outside the retained history.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// Count keys under prefix (latest).
    async fn count(&self, prefix: &str) -> Result<usize>;

    /// Err(AlreadyExists) if key exists.
    ///
    /// With `lease`, the key is deleted when the lease expires or is revoked;
    /// Err(LeaseNotFound) if the lease does not exist.
    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<KeyValue>;

    /// Compare-and-swap on `mod_revision`: `Err(Conflict { key, current })` if it differs
    /// (`current` is the key's value now), `Err(NotFound)` if the key is absent.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue>;

    /// Delete; if `expected` is Some, CAS on mod_revision. Returns the deleted kv (prev) and the delete revision.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)>;

    /// Events for keys under `prefix` with revision > `after`, in revision order, first the history then live.
    /// Err(Compacted{..}) if `after` < compaction point (immediately, or as a stream item if it happens later).
    ///
    /// `after` may be in the future: the stream then starts with the first event past it.
    /// The stream ends after yielding an `Err` item.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The revision of the last write (1 for a fresh store).
    async fn current_revision(&self) -> Result<Revision>;

    /// Forget history older than `revision` (latest value of each key is always kept).
    ///
    /// Afterwards reads at revisions `>= revision` still work. Compacting at or below the
    /// current compaction point is a no-op; Err(FutureRevision) beyond the current revision.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The revision passed to the last effective [`Store::compact`] (0 if never compacted).
    async fn compacted_revision(&self) -> Result<Revision>;

    /// Leases: keys created with a lease are deleted (producing Delete events) when it expires or is revoked.
    ///
    /// Durable backends restart each lease's countdown when they reopen.
    async fn grant_lease(&self, ttl: std::time::Duration) -> Result<LeaseId>;

    /// Restarts the lease's countdown from its full TTL. Err(LeaseNotFound) once it expired.
    async fn keep_alive(&self, lease: LeaseId) -> Result<()>;

    /// Ends the lease now, deleting its keys. Err(LeaseNotFound) if it does not exist.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;
}

/// The exclusive upper bound of the keys that start with `prefix`, bytewise.
///
/// UTF-8 never contains byte 0xFF, so every string starting with `prefix` sorts below
/// `prefix ++ [0xFF]`, and every string that does not start with it sorts outside
/// `[prefix, prefix ++ [0xFF])`.
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = Vec::with_capacity(prefix.len() + 1);
    end.extend_from_slice(prefix.as_bytes());
    end.push(0xFF);
    end
}

/// The inclusive lower bound of a list: `prefix`, or just past `start_after` when that is
/// further along (the successor of a string `s` in byte order is `s ++ "\0"`).
pub(crate) fn range_start(prefix: &str, start_after: Option<&str>) -> String {
    match start_after {
        Some(after) if after >= prefix => format!("{after}\0"),
        _ => prefix.to_owned(),
    }
}

/// A `limit` from [`ListOptions`] as "at most this many", treating 0 as unlimited.
pub(crate) fn effective_limit(opts: &ListOptions) -> Option<usize> {
    opts.limit.filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_excludes_sibling_prefixes() {
        let end = prefix_end("/a/");
        assert!(b"/a/zzz".as_slice() < end.as_slice());
        assert!(b"/ab/".as_slice() > end.as_slice());
        assert!(b"/a".as_slice() < b"/a/".as_slice());
        assert!("/a/\u{10FFFF}\u{10FFFF}".as_bytes() < end.as_slice());
    }

    #[test]
    fn range_start_moves_past_start_after_only_inside_the_prefix() {
        assert_eq!(range_start("/a/", None), "/a/");
        assert_eq!(range_start("/a/", Some("/a/x")), "/a/x\0");
        assert_eq!(range_start("/b/", Some("/a/x")), "/b/");
    }
}
