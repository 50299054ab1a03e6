//! Conformance cases for leases: expiry, keep-alive and revoke.

use std::time::{Duration, Instant};

use super::{assert_err, next_event, value};
use crate::error::{Error, Result};
use crate::store::{Store, WatchEvent};

/// Short enough to keep the suite fast, long enough to survive a loaded CI machine.
const TTL: Duration = Duration::from_millis(300);

/// Polls until `key` is gone, failing after ten seconds.
async fn wait_gone<S: Store>(store: &S, key: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.get(key).await?.is_some() {
        assert!(Instant::now() < deadline, "{key} outlived its lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// When a lease expires its keys are deleted (with Delete events) and the lease is gone.
pub async fn keys_of_an_expired_lease_are_deleted_with_events<S: Store>(store: S) -> Result<()> {
    let lease = store.grant_lease(TTL).await?;
    let start = store.current_revision().await?;
    let a = store.create("/e/a", value(1), Some(lease)).await?;
    let b = store.create("/e/b", value(1), Some(lease)).await?;
    let kept = store.create("/e/kept", value(1), None).await?;
    assert_eq!(a.lease, Some(lease));
    let mut stream = store.watch("/e/", kept.mod_revision).await?;
    wait_gone(&store, "/e/a").await?;
    wait_gone(&store, "/e/b").await?;
    let mut deleted = Vec::new();
    for _ in 0..2 {
        match next_event(&mut stream).await? {
            WatchEvent::Delete { prev, revision } => {
                assert!(revision > start);
                deleted.push(prev);
            }
            other => panic!("expected a delete, got {other:?}"),
        }
    }
    deleted.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(deleted, vec![a, b]);
    assert_eq!(store.get("/e/kept").await?, Some(kept));
    assert_err(
        store.keep_alive(lease).await,
        "keep-alive of expired lease",
        |e| *e == Error::LeaseNotFound(lease),
    );
    let late = store.create("/e/late", value(1), Some(lease)).await;
    assert_err(late, "create with expired lease", |e| {
        *e == Error::LeaseNotFound(lease)
    });
    Ok(())
}

/// Keep-alives restart the countdown; once they stop, the lease expires.
pub async fn keep_alive_postpones_expiry<S: Store>(store: S) -> Result<()> {
    let lease = store.grant_lease(TTL).await?;
    store.create("/ka/a", value(1), Some(lease)).await?;
    let until = Instant::now() + TTL * 3;
    while Instant::now() < until {
        store.keep_alive(lease).await?;
        tokio::time::sleep(TTL / 4).await;
    }
    assert!(
        store.get("/ka/a").await?.is_some(),
        "kept-alive lease expired"
    );
    wait_gone(&store, "/ka/a").await
}

/// Revoking deletes the lease's keys before returning; a second revoke finds no lease.
pub async fn revoking_a_lease_deletes_its_keys_at_once<S: Store>(store: S) -> Result<()> {
    let lease = store.grant_lease(Duration::from_secs(3600)).await?;
    let other = store.grant_lease(Duration::from_secs(3600)).await?;
    assert_ne!(lease, other);
    store.create("/r/a", value(1), Some(lease)).await?;
    store.create("/r/b", value(1), Some(lease)).await?;
    store.create("/r/other", value(1), Some(other)).await?;
    let before = store.current_revision().await?;
    store.revoke_lease(lease).await?;
    assert_eq!(store.get("/r/a").await?, None);
    assert_eq!(store.get("/r/b").await?, None);
    assert!(store.get("/r/other").await?.is_some());
    assert_eq!(
        store.current_revision().await?,
        before + 2,
        "one revision per deleted key"
    );
    let again = store.revoke_lease(lease).await;
    assert_err(again, "second revoke", |e| {
        *e == Error::LeaseNotFound(lease)
    });
    Ok(())
}

/// Lease ids that were never granted are rejected everywhere.
pub async fn unknown_leases_are_rejected<S: Store>(store: S) -> Result<()> {
    let bogus = 987_654_321;
    let create = store.create("/n/a", value(1), Some(bogus)).await;
    assert_err(create, "create with unknown lease", |e| {
        *e == Error::LeaseNotFound(bogus)
    });
    assert_eq!(store.get("/n/a").await?, None);
    let keep = store.keep_alive(bogus).await;
    assert_err(keep, "keep-alive of unknown lease", |e| {
        *e == Error::LeaseNotFound(bogus)
    });
    let revoke = store.revoke_lease(bogus).await;
    assert_err(revoke, "revoke of unknown lease", |e| {
        *e == Error::LeaseNotFound(bogus)
    });
    Ok(())
}

/// An update leaves the key attached to its lease.
pub async fn update_keeps_the_lease<S: Store>(store: S) -> Result<()> {
    let lease = store.grant_lease(Duration::from_secs(3600)).await?;
    let kv = store.create("/ul/a", value(1), Some(lease)).await?;
    let updated = store.update("/ul/a", value(2), kv.mod_revision).await?;
    assert_eq!(updated.lease, Some(lease));
    assert_eq!(
        store.get("/ul/a").await?.and_then(|kv| kv.lease),
        Some(lease)
    );
    store.revoke_lease(lease).await?;
    assert_eq!(store.get("/ul/a").await?, None);
    Ok(())
}
