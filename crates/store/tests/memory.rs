//! The conformance suite on [`MemoryStore`].

use oxivirt_store::MemoryStore;

mod default_buffer {
    oxivirt_store::conformance_tests!(oxivirt_store::MemoryStore::new);
}

/// Every watch test again with a one-batch live buffer, so watchers keep falling back to
/// history.
mod tiny_watch_buffer {
    oxivirt_store::conformance_tests!(|| oxivirt_store::MemoryStore::with_watch_buffer(1));
}

#[tokio::test]
async fn lagging_watcher_behind_compaction_gets_compacted() -> oxivirt_store::Result<()> {
    super::lagging_watcher_behind_compaction_gets_compacted(MemoryStore::with_watch_buffer(1)).await
}

#[tokio::test]
async fn run_all_runs_every_case() {
    oxivirt_store::conformance::run_all(MemoryStore::new).await;
}
