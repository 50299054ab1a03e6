//! Reference measurements of the disk under the data directory: what durability costs before
//! any API server is involved.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result};

/// Rate of 1 KiB append + `fdatasync` on a file in `dir`, over `count` rounds.
///
/// # Errors
/// When the file cannot be created or written.
pub fn fsync_rate(dir: &Path, count: usize) -> Result<f64> {
    let path = dir.join("oxivirt-bench-fsync.tmp");
    let mut file = std::fs::File::create(&path).context("cannot create the fsync probe file")?;
    let block = [0x5au8; 1024];
    let start = Instant::now();
    for _ in 0..count {
        file.write_all(&block)?;
        file.sync_data()?;
    }
    let elapsed = start.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(crate::stats::rate(count, elapsed))
}

/// Rate of single-row SQLite transactions (WAL, `synchronous=FULL`) in `dir`: the durable
/// write rate of a store that commits every write on its own, without group commit.
///
/// # Errors
/// When SQLite fails.
pub fn sqlite_commit_rate(dir: &Path, count: usize) -> Result<f64> {
    let path = dir.join("oxivirt-bench-sqlite.tmp");
    let _ = std::fs::remove_file(&path);
    let db = rusqlite::Connection::open(&path).context("cannot open the SQLite probe")?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)", [])?;
    let value = vec![0x5au8; 300];
    let start = Instant::now();
    for i in 0..count {
        db.execute(
            "INSERT INTO kv (k, v) VALUES (?1, ?2)",
            rusqlite::params![format!("key-{i}"), value],
        )?;
    }
    let elapsed = start.elapsed();
    drop(db);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(crate::stats::rate(count, elapsed))
}
