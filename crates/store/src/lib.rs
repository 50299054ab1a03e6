//! oxivirt-store: the revisioned key-value store behind the API server.
//!
//! **Owns:** the [`Store`] trait (get/list/create/update/delete with revisions, list at a past
//! revision, watch streams from a revision, compaction, leases), the in-memory backend
//! [`MemoryStore`] for fast tests, the durable default [`SqliteStore`], and the backend
//! [`conformance`] suite every backend (including a future etcd one) must pass.
//!
//! **Must not:** know HTTP, Kubernetes kinds, or what the stored bytes mean. Keys are opaque
//! strings compared bytewise; values are opaque bytes (JSON in practice).
//!
//! # Model
//!
//! Like etcd, the store keeps one global, monotonic revision counter. A fresh store is at
//! revision 1; every successful create, update or delete takes the next revision (lease grants,
//! keep-alives and compaction do not). Each key remembers the revision that created it
//! (`create_revision`) and the one that last changed it (`mod_revision`); the latter is what
//! compare-and-swap checks. History is kept until [`Store::compact`] forgets it: after
//! `compact(c)`, reads and watches at revisions `>= c` still work, older ones fail with
//! [`Error::Compacted`].
//!
//! ```text
//!  apiserver ──Store trait──▶ SqliteStore ──mpsc──▶ writer thread (group commit, one fsync/batch)
//!                                 │                        │ after commit
//!                                 ├─ read pool (WAL snapshots) ◀── watchers replay history
//!                                 └─ broadcast ◀───────────┘      then follow live events
//! ```

mod error;
mod lease;
mod memory;
mod sqlite;
mod store;
mod watch;

pub mod conformance;

pub use error::{Error, Result};
pub use memory::MemoryStore;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{
    KeyValue, LeaseId, ListOptions, ListResult, Revision, Store, WatchEvent, WatchStream,
};
