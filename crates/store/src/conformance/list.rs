//! Conformance cases for range reads, reads at past revisions, and compaction.

use super::{assert_err, value};
use crate::error::{Error, Result};
use crate::store::{KeyValue, ListOptions, Store};

fn keys(items: &[KeyValue]) -> Vec<&str> {
    items.iter().map(|kv| kv.key.as_str()).collect()
}

fn at(revision: i64) -> ListOptions {
    ListOptions {
        revision: Some(revision),
        ..ListOptions::default()
    }
}

/// A prefix is a plain string prefix: "/a/" must not match "/ab/..." or "/a".
pub async fn list_returns_only_keys_under_the_prefix_sorted<S: Store>(store: S) -> Result<()> {
    for key in ["/a/2", "/ab/1", "/a", "/a/1", "/b/1", "/a/10"] {
        store.create(key, value(0), None).await?;
    }
    let list = store.list("/a/", ListOptions::default()).await?;
    assert_eq!(keys(&list.items), ["/a/1", "/a/10", "/a/2"]);
    assert!(!list.more);
    assert_eq!(list.revision, store.current_revision().await?);
    let all = store.list("", ListOptions::default()).await?;
    assert_eq!(
        keys(&all.items),
        ["/a", "/a/1", "/a/10", "/a/2", "/ab/1", "/b/1"]
    );
    assert!(store
        .list("/c/", ListOptions::default())
        .await?
        .items
        .is_empty());
    Ok(())
}

/// Pages chained by `start_after` and the first page's revision read one consistent snapshot.
pub async fn list_paginates_with_start_after_limit_and_more<S: Store>(store: S) -> Result<()> {
    for i in 0..5 {
        store.create(&format!("/p/{i}"), value(i), None).await?;
    }
    store.create("/q/0", value(0), None).await?;
    let first = store
        .list(
            "/p/",
            ListOptions {
                limit: Some(2),
                ..ListOptions::default()
            },
        )
        .await?;
    assert_eq!(keys(&first.items), ["/p/0", "/p/1"]);
    assert!(first.more);
    // Writes after the first page must not show up in later pages of the same snapshot.
    store.create("/p/2a", value(9), None).await?;
    store.delete("/p/3", None).await?;
    let page = |after: &str| ListOptions {
        revision: Some(first.revision),
        start_after: Some(after.to_owned()),
        limit: Some(2),
    };
    let second = store.list("/p/", page("/p/1")).await?;
    assert_eq!(keys(&second.items), ["/p/2", "/p/3"]);
    assert!(second.more);
    assert_eq!(second.revision, first.revision);
    let third = store.list("/p/", page("/p/3")).await?;
    assert_eq!(keys(&third.items), ["/p/4"]);
    assert!(
        !third.more,
        "an exactly-filled last page must not claim more"
    );
    let exact = store
        .list(
            "/p/",
            ListOptions {
                limit: Some(5),
                ..at(first.revision)
            },
        )
        .await?;
    assert_eq!(exact.items.len(), 5);
    assert!(!exact.more);
    let unlimited = store.list(
        "/p/",
        ListOptions {
            limit: Some(0),
            ..ListOptions::default()
        },
    );
    assert_eq!(
        keys(&unlimited.await?.items),
        ["/p/0", "/p/1", "/p/2", "/p/2a", "/p/4"]
    );
    // start_after before the prefix is harmless; after every key yields nothing.
    let before = ListOptions {
        start_after: Some("/a".into()),
        ..ListOptions::default()
    };
    assert_eq!(store.list("/p/", before).await?.items.len(), 5);
    let beyond = ListOptions {
        start_after: Some("/p/9".into()),
        ..ListOptions::default()
    };
    assert!(store.list("/p/", beyond).await?.items.is_empty());
    Ok(())
}

/// MVCC: a list at an old revision shows values, deletions and creations as they were then.
pub async fn list_at_an_old_revision_returns_the_old_state<S: Store>(store: S) -> Result<()> {
    let a1 = store.create("/m/a", value(1), None).await?;
    let b1 = store.create("/m/b", value(1), None).await?;
    let then = store.current_revision().await?;
    let a2 = store.update("/m/a", value(2), a1.mod_revision).await?;
    store.delete("/m/b", None).await?;
    let c1 = store.create("/m/c", value(1), None).await?;
    store.create("/m/b", value(3), None).await?;

    let old = store.list("/m/", at(then)).await?;
    assert_eq!(old.items, vec![a1.clone(), b1.clone()]);
    assert_eq!(old.revision, then);
    let paged = store
        .list(
            "/m/",
            ListOptions {
                limit: Some(1),
                ..at(then)
            },
        )
        .await?;
    assert_eq!((paged.items, paged.more), (vec![a1.clone()], true));

    let mid = store.list("/m/", at(c1.mod_revision)).await?;
    assert_eq!(mid.items, vec![a2.clone(), c1.clone()]);
    let latest = store.list("/m/", ListOptions::default()).await?;
    assert_eq!(keys(&latest.items), ["/m/a", "/m/b", "/m/c"]);
    let now = store.current_revision().await?;
    assert_eq!(store.list("/m/", at(now)).await?.items, latest.items);
    Ok(())
}

/// Reading at a revision that does not exist yet is an error, not an empty answer.
pub async fn list_at_a_future_revision_is_rejected<S: Store>(store: S) -> Result<()> {
    store.create("/f/a", value(1), None).await?;
    let now = store.current_revision().await?;
    let err = store.list("/f/", at(now + 1)).await;
    assert_err(
        err,
        "future list",
        |e| matches!(e, Error::FutureRevision { requested, current } if *requested == now + 1 && *current == now),
    );
    Ok(())
}

/// After compaction, old revisions are gone but every key's latest value stays readable.
pub async fn compaction_forgets_old_revisions_but_keeps_latest_values<S: Store>(
    store: S,
) -> Result<()> {
    assert_eq!(store.compacted_revision().await?, 0);
    let a = store.create("/x/a", value(1), None).await?;
    let b = store.create("/x/b", value(1), None).await?;
    let b2 = store.update("/x/b", value(2), b.mod_revision).await?;
    store.create("/x/gone", value(1), None).await?;
    store.delete("/x/gone", None).await?;
    let now = store.current_revision().await?;
    store.compact(now).await?;
    assert_eq!(store.compacted_revision().await?, now);

    let err = store.list("/x/", at(a.mod_revision)).await;
    assert_err(
        err,
        "list below compaction",
        |e| matches!(e, Error::Compacted { requested, compacted } if *requested == a.mod_revision && *compacted == now),
    );
    assert_eq!(store.get("/x/a").await?, Some(a.clone()));
    assert_eq!(store.get("/x/b").await?, Some(b2.clone()));
    assert_eq!(
        store.list("/x/", at(now)).await?.items,
        vec![a.clone(), b2.clone()]
    );
    assert_eq!(
        store.list("/x/", ListOptions::default()).await?.items,
        vec![a, b2]
    );

    // Compacting again at or below the point is a no-op; beyond the present is an error.
    store.compact(now - 1).await?;
    assert_eq!(store.compacted_revision().await?, now);
    let err = store.compact(now + 1).await;
    assert_err(err, "future compaction", |e| {
        matches!(e, Error::FutureRevision { .. })
    });
    Ok(())
}

/// Reads at the compaction revision itself and later still see the right history.
pub async fn compaction_keeps_the_state_at_the_compaction_revision<S: Store>(
    store: S,
) -> Result<()> {
    let a = store.create("/y/a", value(1), None).await?;
    let a2 = store.update("/y/a", value(2), a.mod_revision).await?;
    let b = store.create("/y/b", value(1), None).await?;
    let point = store.current_revision().await?;
    let a3 = store.update("/y/a", value(3), a2.mod_revision).await?;
    store.delete("/y/b", None).await?;
    let c = store.create("/y/c", value(1), None).await?;
    store.compact(point).await?;

    assert_eq!(store.list("/y/", at(point)).await?.items, vec![a2, b]);
    assert_eq!(store.list("/y/", at(a3.mod_revision)).await?.items.len(), 2);
    let latest = store.list("/y/", ListOptions::default()).await?;
    assert_eq!(latest.items, vec![a3, c]);
    assert_eq!(store.count("/y/").await?, 2);
    Ok(())
}
