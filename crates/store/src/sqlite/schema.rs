//! The on-disk layout: connection setup, tables, the `meta` row set, and row decoding.
//!
//! Tables:
//! - `log(rev, key, value, create_rev, lease, prev_rev)`: one row per revision; `value` NULL
//!   marks a deletion; `prev_rev` is the revision of the key's previous version (NULL on
//!   create). Values live only here; watches replay it and past-revision lists read it.
//! - `kv(key, mod_rev, lease)`: the live keys, pointing at their current `log` row.
//! - `meta(name, value)`: `revision`, `compacted`, `next_lease`, `schema`.
//! - `leases(id, ttl_ms)`: live leases (deadlines are kept in memory only).
//!
//! Keys are stored as BLOBs so that range bounds compare bytewise (see `store::prefix_end`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use crate::error::{Error, Result};
use crate::store::{KeyValue, LeaseId, Revision};

const SCHEMA_VERSION: i64 = 1;

const DDL: &str = "
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    value BLOB,
    create_rev INTEGER NOT NULL,
    lease INTEGER,
    prev_rev INTEGER
);
CREATE INDEX IF NOT EXISTS log_key_rev ON log (key, rev);
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY,
    mod_rev INTEGER NOT NULL,
    lease INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease IS NOT NULL;
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl_ms INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value)
    VALUES ('schema', 1), ('revision', 1), ('compacted', 0), ('next_lease', 1);
";

/// The current version of one key: its `kv` row joined to its `log` row.
pub(crate) const SELECT_CURRENT: &str = "SELECT l.value, l.create_rev, l.rev, l.lease
    FROM kv JOIN log l ON l.rev = kv.mod_rev WHERE kv.key = ?1";

/// The counters kept in `meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) revision: Revision,
    pub(crate) compacted: Revision,
    pub(crate) next_lease: LeaseId,
}

fn ctx<'a>(path: &'a Path, what: &str) -> impl Fn(rusqlite::Error) -> Error + 'a {
    let what = what.to_owned();
    move |err| Error::backend(format_args!("{what} {}", path.display()), err)
}

/// Opens the connection the writer thread owns, creating the schema if needed.
///
/// `synchronous=FULL` in WAL mode fsyncs the WAL on every commit: an acknowledged write
/// survives power loss, not just a process crash.
pub(crate) fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(ctx(path, "opening"))?;
    let setup = |conn: &Connection| -> rusqlite::Result<()> {
        conn.busy_timeout(Duration::from_secs(10))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode is {mode}, WAL required"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", -16_000)?;
        conn.execute_batch(DDL)
    };
    setup(&conn).map_err(ctx(path, "initialising"))?;
    let version: i64 = conn
        .query_row("SELECT value FROM meta WHERE name = 'schema'", [], |r| {
            r.get(0)
        })
        .map_err(ctx(path, "reading schema version of"))?;
    if version != SCHEMA_VERSION {
        return Err(Error::Backend(format!(
            "{} has schema version {version}, this build understands {SCHEMA_VERSION}",
            path.display()
        )));
    }
    Ok(conn)
}

/// Opens a read-only-by-pragma connection for the read pool.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(ctx(path, "opening reader for"))?;
    let setup = |conn: &Connection| -> rusqlite::Result<()> {
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "cache_size", -8_000)
    };
    setup(&conn).map_err(ctx(path, "configuring reader for"))?;
    Ok(conn)
}

/// Reads the counters (inside whatever transaction `conn` is in).
pub(crate) fn read_meta(conn: &Connection) -> rusqlite::Result<Meta> {
    let mut stmt = conn.prepare_cached("SELECT name, value FROM meta")?;
    let mut meta = Meta {
        revision: 1,
        compacted: 0,
        next_lease: 1,
    };
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let value: i64 = row.get(1)?;
        match name.as_str() {
            "revision" => meta.revision = value,
            "compacted" => meta.compacted = value,
            "next_lease" => meta.next_lease = value,
            _ => {}
        }
    }
    Ok(meta)
}

pub(crate) fn write_meta(conn: &Connection, meta: &Meta) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE meta SET value = CASE name
            WHEN 'revision' THEN ?1 WHEN 'compacted' THEN ?2 ELSE ?3 END
         WHERE name IN ('revision', 'compacted', 'next_lease')",
    )?
    .execute((meta.revision, meta.compacted, meta.next_lease))?;
    Ok(())
}

/// Every persisted lease and its TTL.
pub(crate) fn read_leases(conn: &Connection) -> rusqlite::Result<Vec<(LeaseId, Duration)>> {
    let mut stmt = conn.prepare_cached("SELECT id, ttl_ms FROM leases")?;
    let rows = stmt.query_map([], |row| {
        let ms: i64 = row.get(1)?;
        Ok((row.get(0)?, Duration::from_millis(ms.max(0).unsigned_abs())))
    })?;
    rows.collect()
}

/// The current version of `key`, if it exists.
pub(crate) fn current(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    conn.prepare_cached(SELECT_CURRENT)?
        .query_row([key.as_bytes()], |row| kv_at(row, key.to_owned(), 0))
        .optional()
}

/// Decodes a key column.
pub(crate) fn key_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<String> {
    let bytes: Vec<u8> = row.get(idx)?;
    String::from_utf8(bytes).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Blob, Box::new(err))
    })
}

/// Decodes `value, create_rev, rev, lease` starting at column `first`.
pub(crate) fn kv_at(row: &Row<'_>, key: String, first: usize) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key,
        value: row.get(first)?,
        create_revision: row.get(first + 1)?,
        mod_revision: row.get(first + 2)?,
        lease: row.get(first + 3)?,
    })
}
