//! [`SqliteStore`]: the durable default backend, one SQLite file in WAL mode.
//!
//! Writes go through one writer thread (see `writer`) that group-commits; reads and watch
//! history go through a small pool of reader connections (see `reader`); live watch events
//! come from an in-memory broadcast the writer feeds after each commit (see `crate::watch`).

mod reader;
mod schema;
mod writer;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use self::reader::{ReadPool, SqliteHistory};
use self::writer::{Command, Outcome, Request, Shared, Writer};
use crate::error::{Error, Result};
use crate::lease::Leases;
use crate::store::{KeyValue, LeaseId, ListOptions, ListResult, Revision, Store, WatchStream};
use crate::watch::{self, Hub, DEFAULT_WATCH_BUFFER};

/// Tuning for [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How many commit batches the live-watch broadcast holds. A watcher that falls further
    /// behind re-reads history from the log, so this trades memory for fewer re-reads.
    pub watch_buffer: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            watch_buffer: DEFAULT_WATCH_BUFFER,
        }
    }
}

/// A [`Store`] in one SQLite database file. Cloning shares the same store.
///
/// # Guarantees
///
/// A write that returned `Ok` has been fsynced (WAL, `synchronous=FULL`): it survives
/// `kill -9` and power loss. The revision counter survives restarts.
///
/// # Caveats
///
/// - One store per file: a second open (from this or another process) fails while the first
///   is alive; this is enforced with an advisory lock on `<path>.lock`.
/// - A write whose caller stopped waiting (future dropped) may still be applied.
/// - Dropping the last clone waits for the writer thread to finish its current batch.
/// - Lease countdowns restart from their full TTL when the store is reopened.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Held (locked) for the store's lifetime; released after the writer has stopped.
    _lock: std::fs::File,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    reads: Arc<ReadPool>,
    shared: Arc<Shared>,
    hub: Hub,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer drain it and exit.
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the database file at `path`.
    ///
    /// # Errors
    /// [`Error::Backend`] if the file cannot be opened, is already open by another store, is
    /// not a store database, or has a schema version this build does not understand.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// [`SqliteStore::open`] with non-default tuning.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<SqliteStore> {
        let lock = lock_exclusively(path)?;
        let conn = schema::open_writer(path)?;
        let load = |conn: &rusqlite::Connection| -> rusqlite::Result<_> {
            Ok((schema::read_meta(conn)?, schema::read_leases(conn)?))
        };
        let (meta, persisted) = load(&conn)
            .map_err(|err| Error::backend(format_args!("loading {}", path.display()), err))?;
        let mut leases = Leases::default();
        leases.sync(&persisted);
        let shared = Arc::new(Shared::new(&meta, leases));
        let hub = Hub::new(options.watch_buffer);
        let (requests, queue) = mpsc::channel();
        let writer = Writer {
            conn,
            meta,
            shared: shared.clone(),
            hub: hub.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || writer.run(queue))
            .map_err(|err| Error::backend("starting the store writer thread", err))?;
        tracing::debug!(path = %path.display(), revision = meta.revision, "store opened");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                _lock: lock,
                requests: Some(requests),
                writer: Some(writer),
                reads: Arc::new(ReadPool::new(path.to_owned())),
                shared,
                hub,
            }),
        })
    }

    /// Queues a write and waits for the writer's answer.
    async fn submit(&self, command: Command) -> Result<Outcome> {
        let (reply, answer) = oneshot::channel();
        let requests = self.inner.requests.as_ref().ok_or(Error::Closed)?;
        requests
            .send(Request { command, reply })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

/// Takes the advisory lock that keeps two stores (two writers with two revision counters) off
/// one database file.
fn lock_exclusively(path: &Path) -> Result<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| Error::backend(format_args!("opening {}", lock_path.display()), err))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Backend(format!(
            "{} is already open by another store",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(err)) => Err(Error::backend(
            format_args!("locking {}", lock_path.display()),
            err,
        )),
    }
}

/// The writer answered with the wrong kind of outcome; a bug, reported rather than panicking.
fn unexpected(what: &str, outcome: Outcome) -> Error {
    Error::Backend(format!("store writer answered {outcome:?} to {what}"))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let owned = key.to_owned();
        let what = format!("reading key {key:?}");
        self.inner
            .reads
            .run(what, move |conn| Ok(Ok(schema::current(conn, &owned)?)))
            .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let owned = prefix.to_owned();
        let what = format!("listing keys under {prefix:?}");
        self.inner
            .reads
            .run(what, move |conn| reader::list(conn, &owned, &opts))
            .await
    }

    async fn count(&self, prefix: &str) -> Result<usize> {
        let owned = prefix.to_owned();
        let what = format!("counting keys under {prefix:?}");
        self.inner
            .reads
            .run(what, move |conn| Ok(Ok(reader::count(conn, &owned)?)))
            .await
    }

    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<KeyValue> {
        let key = key.to_owned();
        match self.submit(Command::Create { key, value, lease }).await? {
            Outcome::Kv(kv) => Ok(kv),
            other => Err(unexpected("a create", other)),
        }
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        let key = key.to_owned();
        let command = Command::Update {
            key,
            value,
            expected,
        };
        match self.submit(command).await? {
            Outcome::Kv(kv) => Ok(kv),
            other => Err(unexpected("an update", other)),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        let key = key.to_owned();
        match self.submit(Command::Delete { key, expected }).await? {
            Outcome::Deleted(prev, revision) => Ok((prev, revision)),
            other => Err(unexpected("a delete", other)),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let rx = self.inner.hub.subscribe();
        let history = Arc::new(SqliteHistory(self.inner.reads.clone()));
        watch::open(history, rx, prefix, after).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.shared.revision.load(Ordering::SeqCst))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.submit(Command::Compact(revision)).await.map(|_| ())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.inner.shared.compacted.load(Ordering::SeqCst))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        match self.submit(Command::GrantLease(ttl)).await? {
            Outcome::Lease(id) => Ok(id),
            other => Err(unexpected("a lease grant", other)),
        }
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        self.inner.shared.leases().keep_alive(lease)
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.submit(Command::RevokeLease(lease)).await.map(|_| ())
    }
}
