//! The read side: a small pool of connections, each read a WAL snapshot on a blocking thread,
//! so reads never queue behind the writer's fsyncs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::schema::{self, key_at, kv_at};
use crate::error::{Error, Result};
use crate::store::{
    effective_limit, prefix_end, range_start, KeyValue, ListOptions, ListResult, Revision,
    WatchEvent,
};
use crate::watch::{History, HistoryPage, HISTORY_PAGE};

/// Reads running at once (and connections kept open). The machine has few cores; more
/// readers would only contend.
const MAX_READERS: usize = 4;

pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf) -> Self {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_READERS)),
        }
    }

    /// Runs `read` on a pooled connection on the blocking thread pool.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, what: String, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<Result<T>> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        let pool = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = pool.checkout()?;
            let out = read(&mut conn);
            pool.checkin(conn);
            out.map_err(|err| Error::backend(&what, err))?
        });
        task.await
            .map_err(|err| Error::Backend(format!("read task failed: {err}")))?
    }

    fn checkout(&self) -> Result<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => schema::open_reader(&self.path),
        }
    }

    fn checkin(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_READERS {
            idle.push(conn);
        }
    }
}

fn check_read_revision(requested: Revision, meta: &schema::Meta) -> Result<()> {
    if requested > meta.revision {
        return Err(Error::FutureRevision {
            requested,
            current: meta.revision,
        });
    }
    if requested < meta.compacted {
        return Err(Error::Compacted {
            requested,
            compacted: meta.compacted,
        });
    }
    Ok(())
}

fn sql_limit(limit: Option<usize>) -> i64 {
    // One extra row tells whether more remain; -1 means no limit to SQLite.
    limit.map_or(-1, |n| i64::try_from(n).map_or(-1, |n| n.saturating_add(1)))
}

/// Keys under `prefix` (with pagination), at `opts.revision` or the latest, from one snapshot.
pub(crate) fn list(
    conn: &mut Connection,
    prefix: &str,
    opts: &ListOptions,
) -> rusqlite::Result<Result<ListResult>> {
    let tx = conn.transaction()?;
    let meta = schema::read_meta(&tx)?;
    let at = opts.revision.unwrap_or(meta.revision);
    if let Err(err) = check_read_revision(at, &meta) {
        return Ok(Err(err));
    }
    let start = range_start(prefix, opts.start_after.as_deref());
    let end = prefix_end(prefix);
    let limit = effective_limit(opts);
    let range = (start.as_bytes(), end.as_slice(), sql_limit(limit));
    let mut items = if at == meta.revision {
        let mut stmt = tx.prepare_cached(
            "SELECT kv.key, l.value, l.create_rev, l.rev, l.lease
             FROM kv JOIN log l ON l.rev = kv.mod_rev
             WHERE kv.key >= ?1 AND kv.key < ?2
             ORDER BY kv.key LIMIT ?3",
        )?;
        let rows = stmt.query_map(range, |row| kv_at(row, key_at(row, 0)?, 1))?;
        rows.collect::<rusqlite::Result<Vec<KeyValue>>>()?
    } else {
        // The version of each key visible at `at`, skipping keys deleted by then.
        let mut stmt = tx.prepare_cached(
            "SELECT l.key, l.value, l.create_rev, l.rev, l.lease FROM log l
             WHERE l.key >= ?1 AND l.key < ?2 AND l.rev <= ?4
               AND l.rev = (SELECT MAX(m.rev) FROM log m WHERE m.key = l.key AND m.rev <= ?4)
               AND l.value IS NOT NULL
             ORDER BY l.key LIMIT ?3",
        )?;
        let params = (range.0, range.1, range.2, at);
        let rows = stmt.query_map(params, |row| kv_at(row, key_at(row, 0)?, 1))?;
        rows.collect::<rusqlite::Result<Vec<KeyValue>>>()?
    };
    let more = limit.is_some_and(|n| items.len() > n);
    if let Some(n) = limit {
        items.truncate(n);
    }
    tx.commit()?;
    Ok(Ok(ListResult {
        items,
        revision: at,
        more,
    }))
}

pub(crate) fn count(conn: &Connection, prefix: &str) -> rusqlite::Result<usize> {
    let end = prefix_end(prefix);
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM kv WHERE key >= ?1 AND key < ?2")?
        .query_row((prefix.as_bytes(), end.as_slice()), |r| r.get(0))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Decodes a log row joined with its previous version (see [`history`]'s query).
fn event_at(row: &rusqlite::Row<'_>) -> rusqlite::Result<WatchEvent> {
    let rev: Revision = row.get(0)?;
    let key = key_at(row, 1)?;
    let prev_rev: Option<Revision> = row.get(5)?;
    let prev = match prev_rev {
        Some(_) => Some(kv_at(row, key.clone(), 6)?),
        None => None,
    };
    let value: Option<Vec<u8>> = row.get(2)?;
    match (value, prev) {
        (Some(value), prev) => Ok(WatchEvent::Put {
            kv: KeyValue {
                key,
                value,
                create_revision: row.get(3)?,
                mod_revision: rev,
                lease: row.get(4)?,
            },
            prev,
        }),
        (None, Some(prev)) => Ok(WatchEvent::Delete {
            prev,
            revision: rev,
        }),
        (None, None) => Err(rusqlite::Error::InvalidColumnType(
            5,
            format!("deletion of {key:?} at revision {rev} lost its previous version"),
            rusqlite::types::Type::Null,
        )),
    }
}

/// One page of events under `prefix` after `after`, from one snapshot.
pub(crate) fn history(
    conn: &mut Connection,
    prefix: &str,
    after: Revision,
) -> rusqlite::Result<Result<HistoryPage>> {
    let tx = conn.transaction()?;
    let meta = schema::read_meta(&tx)?;
    if after < meta.compacted {
        return Ok(Err(Error::Compacted {
            requested: after,
            compacted: meta.compacted,
        }));
    }
    let end = prefix_end(prefix);
    // `+l.key` keeps SQLite on the rev primary key: watchers usually resume from a recent
    // revision, so scanning forward from `after` beats scanning the whole prefix.
    let mut stmt = tx.prepare_cached(
        "SELECT l.rev, l.key, l.value, l.create_rev, l.lease,
                p.rev, p.value, p.create_rev, p.rev, p.lease
         FROM log l LEFT JOIN log p ON p.rev = l.prev_rev
         WHERE l.rev > ?1 AND +l.key >= ?2 AND +l.key < ?3
         ORDER BY l.rev LIMIT ?4",
    )?;
    let page = i64::try_from(HISTORY_PAGE).unwrap_or(i64::MAX);
    let rows = stmt.query_map((after, prefix.as_bytes(), end.as_slice(), page), event_at)?;
    let events = rows.collect::<rusqlite::Result<Vec<WatchEvent>>>()?;
    drop(stmt);
    tx.commit()?;
    let more = events.len() == HISTORY_PAGE;
    let through = match events.last() {
        Some(last) if more => last.revision(),
        _ => meta.revision,
    };
    Ok(Ok(HistoryPage {
        events,
        through,
        more,
    }))
}

/// The log as watchers see it.
pub(crate) struct SqliteHistory(pub(crate) Arc<ReadPool>);

#[async_trait::async_trait]
impl History for SqliteHistory {
    async fn history(&self, prefix: &str, after: Revision) -> Result<HistoryPage> {
        let owned = prefix.to_owned();
        let what = format!("reading history under {prefix:?} after revision {after}");
        self.0
            .run(what, move |conn| history(conn, &owned, after))
            .await
    }
}
