//! Conformance cases for single-key reads and writes and the revision counter.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{assert_err, value};
use crate::error::{Error, Result};
use crate::store::Store;

/// A created key reads back with `create_revision == mod_revision ==` the new current revision.
pub async fn create_then_get_returns_the_value<S: Store>(store: S) -> Result<()> {
    let before = store.current_revision().await?;
    let kv = store.create("/k/a", value(1), None).await?;
    assert!(kv.mod_revision > before, "create must take a new revision");
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert_eq!(
        (kv.key.as_str(), kv.value.as_slice(), kv.lease),
        ("/k/a", &value(1)[..], None)
    );
    assert_eq!(store.get("/k/a").await?, Some(kv.clone()));
    assert_eq!(store.current_revision().await?, kv.mod_revision);
    Ok(())
}

/// Reading a key that was never written is not an error.
pub async fn get_of_a_missing_key_is_none<S: Store>(store: S) -> Result<()> {
    assert_eq!(store.get("/nope").await?, None);
    Ok(())
}

/// A second create of the same key fails, names the key, and changes nothing.
pub async fn create_of_an_existing_key_is_already_exists<S: Store>(store: S) -> Result<()> {
    let kv = store.create("/k/a", value(1), None).await?;
    let err = store.create("/k/a", value(2), None).await;
    assert_err(err, "second create", |e| {
        matches!(e, Error::AlreadyExists { key } if key == "/k/a") && e.to_string().contains("/k/a")
    });
    assert_eq!(store.get("/k/a").await?, Some(kv.clone()));
    assert_eq!(store.current_revision().await?, kv.mod_revision);
    Ok(())
}

/// Compare-and-swap with the current `mod_revision` succeeds and keeps `create_revision`.
pub async fn update_with_the_current_revision_replaces_the_value<S: Store>(store: S) -> Result<()> {
    let created = store.create("/k/a", value(1), None).await?;
    let updated = store.update("/k/a", value(2), created.mod_revision).await?;
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(updated.create_revision, created.create_revision);
    assert_eq!(updated.value, value(2));
    assert_eq!(store.get("/k/a").await?, Some(updated));
    Ok(())
}

/// Compare-and-swap with an old `mod_revision` fails and reports the current value.
pub async fn update_with_a_stale_revision_conflicts_and_returns_the_current_value<S: Store>(
    store: S,
) -> Result<()> {
    let created = store.create("/k/a", value(1), None).await?;
    let updated = store.update("/k/a", value(2), created.mod_revision).await?;
    let err = store.update("/k/a", value(3), created.mod_revision).await;
    assert_err(err, "stale update", |e| match e {
        Error::Conflict { key, current } => {
            key == "/k/a" && current.as_deref() == Some(&updated) && e.to_string().contains("/k/a")
        }
        _ => false,
    });
    assert_eq!(store.get("/k/a").await?, Some(updated));
    Ok(())
}

/// Updating a key that does not exist is NotFound, not a conflict.
pub async fn update_of_a_missing_key_is_not_found<S: Store>(store: S) -> Result<()> {
    let err = store.update("/k/missing", value(1), 1).await;
    assert_err(
        err,
        "update of missing key",
        |e| matches!(e, Error::NotFound { key } if key == "/k/missing"),
    );
    Ok(())
}

/// An unconditional delete returns the last value; the key can then be created afresh.
pub async fn delete_without_expected_removes_the_key<S: Store>(store: S) -> Result<()> {
    let created = store.create("/k/a", value(1), None).await?;
    let (prev, rev) = store.delete("/k/a", None).await?;
    assert_eq!(prev, created);
    assert!(rev > created.mod_revision);
    assert_eq!(store.get("/k/a").await?, None);
    assert_eq!(store.current_revision().await?, rev);
    let again = store.create("/k/a", value(2), None).await?;
    assert!(
        again.create_revision > rev,
        "a re-created key starts a new life"
    );
    Ok(())
}

/// A delete with `expected` only succeeds against the current `mod_revision`.
pub async fn delete_with_expected_is_compare_and_swap<S: Store>(store: S) -> Result<()> {
    let created = store.create("/k/a", value(1), None).await?;
    let updated = store.update("/k/a", value(2), created.mod_revision).await?;
    let err = store.delete("/k/a", Some(created.mod_revision)).await;
    assert_err(err, "stale delete", |e| match e {
        Error::Conflict { key, current } => key == "/k/a" && current.as_deref() == Some(&updated),
        _ => false,
    });
    let (prev, _) = store.delete("/k/a", Some(updated.mod_revision)).await?;
    assert_eq!(prev, updated);
    assert_eq!(store.get("/k/a").await?, None);
    Ok(())
}

/// Deleting a key that does not exist is NotFound, with or without `expected`.
pub async fn delete_of_a_missing_key_is_not_found<S: Store>(store: S) -> Result<()> {
    for expected in [None, Some(1)] {
        let err = store.delete("/k/missing", expected).await;
        assert_err(
            err,
            "delete of missing key",
            |e| matches!(e, Error::NotFound { key } if key == "/k/missing"),
        );
    }
    Ok(())
}

/// Successful writes take consecutive revisions across all keys; failed writes take none.
pub async fn every_write_takes_the_next_revision<S: Store>(store: S) -> Result<()> {
    let start = store.current_revision().await?;
    assert!(start >= 1, "a fresh store is at revision 1 or later");
    let a = store.create("/k/a", value(1), None).await?;
    let b = store.create("/k/b", value(1), None).await?;
    assert!(store.create("/k/a", value(9), None).await.is_err());
    assert!(store
        .update("/k/b", value(9), a.mod_revision)
        .await
        .is_err());
    let a2 = store.update("/k/a", value(2), a.mod_revision).await?;
    let (_, del) = store.delete("/k/b", None).await?;
    let revs = [a.mod_revision, b.mod_revision, a2.mod_revision, del];
    let expected: Vec<_> = (1..=4).map(|i| start + i).collect();
    assert_eq!(revs.to_vec(), expected);
    assert_eq!(store.current_revision().await?, start + 4);
    Ok(())
}

/// Writers racing on different keys each get their own revision, and all writes land.
pub async fn concurrent_creates_get_distinct_revisions<S: Store>(store: S) -> Result<()> {
    const WRITERS: usize = 16;
    const EACH: usize = 10;
    let store = Arc::new(store);
    let start = store.current_revision().await?;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..EACH {
                let kv = store
                    .create(&format!("/c/{w:02}/{i:02}"), value(i), None)
                    .await?;
                revs.push(kv.mod_revision);
            }
            Ok::<_, Error>(revs)
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        let revs = task
            .await
            .map_err(|e| Error::Backend(format!("writer task: {e}")))??;
        all.extend(revs);
    }
    let expected: BTreeSet<_> = (1..=(WRITERS * EACH) as i64).map(|i| start + i).collect();
    assert_eq!(all, expected, "revisions must be distinct and gap-free");
    assert_eq!(store.count("/c/").await?, WRITERS * EACH);
    Ok(())
}

/// `count` sees live keys under the prefix only.
pub async fn count_counts_only_keys_under_the_prefix<S: Store>(store: S) -> Result<()> {
    for key in ["/a/1", "/a/2", "/a/3", "/ab/1", "/b/1"] {
        store.create(key, value(0), None).await?;
    }
    store.delete("/a/2", None).await?;
    assert_eq!(store.count("/a/").await?, 2);
    assert_eq!(store.count("/").await?, 4);
    assert_eq!(store.count("").await?, 4);
    assert_eq!(store.count("/c/").await?, 0);
    Ok(())
}
