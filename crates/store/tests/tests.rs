//! The store's integration tests (one binary): the conformance suite on every backend, and
//! SQLite durability across reopen and `kill -9`.

mod memory;
mod sqlite;

use futures::StreamExt;
use oxivirt_store::{conformance::value, Error, Result, Store};

/// With a one-batch live buffer, a watcher that does not read while writes happen must fall
/// back to history; if that history was compacted meanwhile, its first item is `Compacted`
/// and the stream then ends.
pub(crate) async fn lagging_watcher_behind_compaction_gets_compacted<S: Store>(
    store: S,
) -> Result<()> {
    let start = store.current_revision().await?;
    let mut stream = store.watch("/lag/", start).await?;
    for i in 0..20 {
        store
            .create(&format!("/lag/{i:02}"), value(i), None)
            .await?;
    }
    let end = store.current_revision().await?;
    store.compact(end).await?;
    let first = stream.next().await;
    assert_eq!(
        first,
        Some(Err(Error::Compacted {
            requested: start,
            compacted: end
        }))
    );
    assert_eq!(stream.next().await, None);
    Ok(())
}
