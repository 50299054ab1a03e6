//! The store's one error type, shared by every backend.

use crate::store::{KeyValue, LeaseId, Revision};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a store operation failed.
///
/// Variants other than [`Error::Backend`] and [`Error::Closed`] are ordinary outcomes that
/// callers are expected to map (for example to HTTP 404, 409 or 410).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An update or delete named a key that does not exist.
    #[error("key {key:?} not found")]
    NotFound { key: String },

    /// A create named a key that already exists.
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },

    /// A compare-and-swap update or delete expected a `mod_revision` the key no longer has.
    /// `current` is the key's value at the time of the check (`None` only if a backend cannot
    /// tell, e.g. the key vanished concurrently).
    #[error("key {key:?} was modified concurrently")]
    Conflict {
        key: String,
        current: Option<Box<KeyValue>>,
    },

    /// A list or watch asked for a revision older than the compaction point, so the history
    /// needed to answer it is gone. A watch can also end with this item when it fell behind and
    /// the history it needed to catch up was compacted meanwhile.
    #[error("revision {requested} has been compacted (compacted up to {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },

    /// A list or compaction asked for a revision newer than the store's current revision.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },

    /// A create, keep-alive or revoke named a lease that does not exist (never granted, expired
    /// or revoked).
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),

    /// The storage engine failed (I/O error, corrupt database, disk full, file already in use).
    /// A write that fails this way was rolled back, together with the rest of its batch.
    #[error("storage backend failed: {0}")]
    Backend(String),

    /// The store has shut down (its writer is gone), or a watch's event source closed. A write
    /// that fails this way may or may not have been applied.
    #[error("store is closed")]
    Closed,
}

impl Error {
    /// Wraps an engine error with what the store was doing, naming the key when there is one.
    pub(crate) fn backend(context: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        Error::Backend(format!("{context}: {err}"))
    }
}
