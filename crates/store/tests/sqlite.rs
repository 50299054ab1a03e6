//! [`SqliteStore`]: the conformance suite, plus what only a durable backend promises —
//! state, revisions and leases survive reopening, and acknowledged writes survive `kill -9`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use oxivirt_store::conformance::value;
use oxivirt_store::{
    KeyValue, LeaseId, ListOptions, ListResult, Result, Revision, SqliteOptions, SqliteStore,
    Store, WatchStream,
};
use tempfile::TempDir;

/// A store in its own temporary directory, removed when the store is dropped.
pub struct TempStore {
    // Field order matters: the store (and its writer thread) goes before the directory.
    store: SqliteStore,
    _dir: TempDir,
}

impl TempStore {
    pub fn new() -> Self {
        Self::with(SqliteOptions::default())
    }

    pub fn with(options: SqliteOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for a test store");
        let store = SqliteStore::open_with(&dir.path().join("store.db"), options)
            .expect("opening a fresh test store");
        TempStore { store, _dir: dir }
    }
}

#[async_trait::async_trait]
impl Store for TempStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.store.get(key).await
    }
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        self.store.list(prefix, opts).await
    }
    async fn count(&self, prefix: &str) -> Result<usize> {
        self.store.count(prefix).await
    }
    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<KeyValue> {
        self.store.create(key, value, lease).await
    }
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        self.store.update(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        self.store.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.store.watch(prefix, after).await
    }
    async fn current_revision(&self) -> Result<Revision> {
        self.store.current_revision().await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.store.compact(revision).await
    }
    async fn compacted_revision(&self) -> Result<Revision> {
        self.store.compacted_revision().await
    }
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        self.store.grant_lease(ttl).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        self.store.keep_alive(lease).await
    }
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.store.revoke_lease(lease).await
    }
}

fn tiny_buffer() -> SqliteOptions {
    SqliteOptions { watch_buffer: 1 }
}

mod default_buffer {
    oxivirt_store::conformance_tests!(super::TempStore::new);
}

/// Every watch test again with a one-batch live buffer, so watchers keep falling back to the
/// log.
mod tiny_watch_buffer {
    oxivirt_store::conformance_tests!(|| super::TempStore::with(super::tiny_buffer()));
}

#[tokio::test]
async fn lagging_watcher_behind_compaction_gets_compacted() -> Result<()> {
    super::lagging_watcher_behind_compaction_gets_compacted(TempStore::with(tiny_buffer())).await
}

fn db_in(dir: &TempDir) -> PathBuf {
    dir.path().join("store.db")
}

#[tokio::test]
async fn state_and_revision_survive_reopen() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, rev, compacted) = {
        let store = SqliteStore::open(&db_in(&dir))?;
        let a = store.create("/k/a", value(1), None).await?;
        let a = store.update("/k/a", value(2), a.mod_revision).await?;
        store.create("/k/b", value(1), None).await?;
        store.delete("/k/b", None).await?;
        let compacted = a.mod_revision;
        store.compact(compacted).await?;
        (a, store.current_revision().await?, compacted)
    };
    let store = SqliteStore::open(&db_in(&dir))?;
    assert_eq!(store.current_revision().await?, rev);
    assert_eq!(store.compacted_revision().await?, compacted);
    assert_eq!(store.get("/k/a").await?, Some(a.clone()));
    assert_eq!(store.get("/k/b").await?, None);
    let c = store.create("/k/c", value(1), None).await?;
    assert_eq!(
        c.mod_revision,
        rev + 1,
        "the revision counter continues after reopen"
    );
    // History written before the restart is still replayed.
    let mut stream = store.watch("/k/", compacted).await?;
    let events = oxivirt_store::conformance::next_events(&mut stream, 3).await?;
    let revs: Vec<_> = events.iter().map(|e| e.revision()).collect();
    assert_eq!(revs, vec![rev - 1, rev, rev + 1]);
    Ok(())
}

#[tokio::test]
async fn a_write_acknowledged_before_drop_is_present_after_reopen() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&db_in(&dir))?);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..25 {
                acked.push(
                    store
                        .create(&format!("/d/{w}/{i:02}"), value(i), None)
                        .await?,
                );
            }
            Ok::<_, oxivirt_store::Error>(acked)
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("writer task")?);
    }
    drop(store);
    let store = SqliteStore::open(&db_in(&dir))?;
    for kv in &acked {
        assert_eq!(store.get(&kv.key).await?.as_ref(), Some(kv));
    }
    assert_eq!(store.count("/d/").await?, acked.len());
    Ok(())
}

#[tokio::test]
async fn a_second_open_of_the_same_file_is_refused_until_the_first_is_dropped() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = SqliteStore::open(&db_in(&dir))?;
    match SqliteStore::open(&db_in(&dir)) {
        Err(oxivirt_store::Error::Backend(msg)) => assert!(msg.contains("already open"), "{msg}"),
        other => panic!("second open must fail, got {:?}", other.map(|_| ())),
    }
    first.create("/a", value(1), None).await?;
    drop(first);
    let second = SqliteStore::open(&db_in(&dir))?;
    assert!(second.get("/a").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn leases_survive_reopen_and_still_expire() -> Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (short, long) = {
        let store = SqliteStore::open(&db_in(&dir))?;
        let short = store.grant_lease(Duration::from_millis(300)).await?;
        let long = store.grant_lease(Duration::from_secs(3600)).await?;
        store.create("/l/short", value(1), Some(short)).await?;
        store.create("/l/long", value(1), Some(long)).await?;
        (short, long)
    };
    let store = SqliteStore::open(&db_in(&dir))?;
    store.keep_alive(long).await?;
    let next = store.grant_lease(Duration::from_secs(3600)).await?;
    assert!(next > long, "lease ids are not reused after reopen");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.get("/l/short").await?.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "lease {short} never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.get("/l/long").await?.is_some());
    Ok(())
}

/// Set in the child process to the database path it should write to.
const CHILD_DB_ENV: &str = "OXIVIRT_STORE_SIGKILL_CHILD_DB";
const CHILD_WRITERS: usize = 8;
const ACKS_BEFORE_KILL: usize = 400;

/// Writes forever from several tasks, printing `ACK <key> <revision>` after each
/// acknowledged create, until killed.
#[test]
#[ignore = "helper run as the child process of acknowledged_writes_survive_sigkill"]
fn sigkill_child_writer() {
    let Ok(path) = std::env::var(CHILD_DB_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("child runtime");
    runtime.block_on(async move {
        let store = Arc::new(SqliteStore::open(Path::new(&path)).expect("child opens store"));
        let mut tasks = Vec::new();
        for w in 0..CHILD_WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/kill/{w}/{i:06}");
                    let kv = store
                        .create(&key, value(i), None)
                        .await
                        .expect("child create");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {key} {}", kv.mod_revision).expect("child stdout");
                    out.flush().expect("child stdout");
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db_in(&dir);
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "sqlite::sigkill_child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DB_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning the child writer");
    let stdout = child.stdout.take().expect("child stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut acked: Vec<(String, Revision)> = Vec::new();
    let parse = |line: String, acked: &mut Vec<(String, Revision)>| {
        let mut parts = line.split(' ');
        if parts.next() == Some("ACK") {
            let key = parts.next().expect("ACK line has a key").to_owned();
            let rev = parts
                .next()
                .and_then(|r| r.parse().ok())
                .expect("ACK line has a rev");
            acked.push((key, rev));
        }
    };
    while acked.len() < ACKS_BEFORE_KILL {
        let line = lines
            .next()
            .expect("child exited before being killed")
            .expect("read");
        parse(line, &mut acked);
    }
    child.kill().expect("SIGKILL the child"); // std sends SIGKILL on Unix
    child.wait().expect("reaping the child");
    // Lines already written before the kill were acknowledged too.
    for line in lines {
        parse(line.expect("read"), &mut acked);
    }

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = SqliteStore::open(&path).expect("reopening after SIGKILL");
        for (key, rev) in &acked {
            let kv = store.get(key).await.expect("get after SIGKILL");
            assert_eq!(
                kv.map(|kv| kv.mod_revision),
                Some(*rev),
                "acknowledged {key} lost"
            );
        }
        let max = acked.iter().map(|(_, rev)| *rev).max().unwrap_or(0);
        let current = store.current_revision().await.expect("revision");
        assert!(current >= max, "revision went back from {max} to {current}");
        let next = store
            .create("/after", value(0), None)
            .await
            .expect("write after reopen");
        assert_eq!(next.mod_revision, current + 1);
    });
    eprintln!("{} acknowledged writes survived SIGKILL", acked.len());
}
