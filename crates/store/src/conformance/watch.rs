//! Conformance cases for watch streams: replay, live delivery, filtering, lag and compaction.

use std::time::Duration;

use futures::StreamExt;

use super::{assert_err, assert_quiet, next_event, next_events, put_kv, value, EVENT_TIMEOUT};
use crate::error::{Error, Result};
use crate::store::{Revision, Store, WatchEvent};

/// Writes enough events one by one to overrun any reasonable live-event buffer.
const LAG_WRITES: usize = 300;

fn revisions(events: &[WatchEvent]) -> Vec<Revision> {
    events.iter().map(WatchEvent::revision).collect()
}

/// History (rev > after) comes first, then live events, all in revision order.
pub async fn watch_replays_history_then_streams_live_events<S: Store>(store: S) -> Result<()> {
    let start = store.current_revision().await?;
    let a = store.create("/w/a", value(1), None).await?;
    let a2 = store.update("/w/a", value(2), a.mod_revision).await?;
    let mut stream = store.watch("/w/", start).await?;
    let b = store.create("/w/b", value(1), None).await?;
    let (_, del) = store.delete("/w/a", None).await?;

    let events = next_events(&mut stream, 4).await?;
    assert_eq!(
        events,
        vec![
            WatchEvent::Put {
                kv: a.clone(),
                prev: None
            },
            WatchEvent::Put {
                kv: a2.clone(),
                prev: Some(a)
            },
            WatchEvent::Put { kv: b, prev: None },
            WatchEvent::Delete {
                prev: a2,
                revision: del
            },
        ]
    );
    assert_quiet(&mut stream, Duration::from_millis(100)).await;
    Ok(())
}

/// Events at or below `after` are not replayed.
pub async fn watch_from_the_middle_skips_earlier_events<S: Store>(store: S) -> Result<()> {
    store.create("/w/a", value(1), None).await?;
    let b = store.create("/w/b", value(1), None).await?;
    let c = store.create("/w/c", value(1), None).await?;
    let mut stream = store.watch("/w/", b.mod_revision).await?;
    assert_eq!(put_kv(&next_event(&mut stream).await?), &c);
    assert_quiet(&mut stream, Duration::from_millis(100)).await;
    let now = store.current_revision().await?;
    let mut caught_up = store.watch("/w/", now).await?;
    let d = store.create("/w/d", value(1), None).await?;
    assert_eq!(put_kv(&next_event(&mut caught_up).await?), &d);
    Ok(())
}

/// A watch on "/a/" sees neither "/ab/..." nor "/a", in history or live.
pub async fn watch_only_sees_keys_under_its_prefix<S: Store>(store: S) -> Result<()> {
    let start = store.current_revision().await?;
    store.create("/ab/x", value(0), None).await?;
    let first = store.create("/a/x", value(0), None).await?;
    let mut stream = store.watch("/a/", start).await?;
    store.create("/a", value(0), None).await?;
    store.create("/ab/y", value(0), None).await?;
    let second = store.create("/a/y", value(0), None).await?;
    let events = next_events(&mut stream, 2).await?;
    assert_eq!([put_kv(&events[0]), put_kv(&events[1])], [&first, &second]);
    assert_quiet(&mut stream, Duration::from_millis(100)).await;
    Ok(())
}

/// Updates carry the previous version and deletes the last one, in history and live.
pub async fn watch_events_carry_previous_values<S: Store>(store: S) -> Result<()> {
    let a = store.create("/v/a", value(1), None).await?;
    let a2 = store.update("/v/a", value(2), a.mod_revision).await?;
    let mut stream = store.watch("/v/", a.mod_revision).await?;
    let a3 = store.update("/v/a", value(3), a2.mod_revision).await?;
    let (_, del) = store.delete("/v/a", None).await?;
    let events = next_events(&mut stream, 3).await?;
    assert_eq!(
        events[0],
        WatchEvent::Put {
            kv: a2.clone(),
            prev: Some(a)
        }
    );
    assert_eq!(
        events[1],
        WatchEvent::Put {
            kv: a3.clone(),
            prev: Some(a2)
        }
    );
    assert_eq!(
        events[2],
        WatchEvent::Delete {
            prev: a3,
            revision: del
        }
    );
    assert_eq!((events[2].key(), events[2].revision()), ("/v/a", del));
    Ok(())
}

/// Every watcher gets its own full copy of the events.
pub async fn several_watchers_see_the_same_events<S: Store>(store: S) -> Result<()> {
    let start = store.current_revision().await?;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(store.watch("/s/", start).await?);
    }
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(
            store
                .create(&format!("/s/{i}"), value(i), None)
                .await?
                .mod_revision,
        );
    }
    streams.push(store.watch("/s/", start).await?);
    for stream in &mut streams {
        assert_eq!(revisions(&next_events(stream, 5).await?), written);
    }
    Ok(())
}

/// Watching from below the compaction point fails at once; from the point itself it works
/// and still carries previous values older than the point.
pub async fn watch_below_the_compaction_point_is_compacted<S: Store>(store: S) -> Result<()> {
    let a = store.create("/z/a", value(1), None).await?;
    store.create("/z/b", value(1), None).await?;
    store.create("/z/c", value(1), None).await?;
    let point = store.current_revision().await?;
    store.compact(point).await?;
    let err = store.watch("/z/", a.mod_revision - 1).await.map(|_| ());
    assert_err(
        err,
        "watch below compaction",
        |e| matches!(e, Error::Compacted { requested, compacted } if *requested == a.mod_revision - 1 && *compacted == point),
    );
    let mut stream = store.watch("/z/", point).await?;
    let a2 = store.update("/z/a", value(2), a.mod_revision).await?;
    let event = next_event(&mut stream).await?;
    assert_eq!(
        event,
        WatchEvent::Put {
            kv: a2,
            prev: Some(a)
        }
    );
    Ok(())
}

/// A watch may start past the current revision; it then skips events up to `after`.
pub async fn watch_from_the_future_starts_after_that_revision<S: Store>(store: S) -> Result<()> {
    let now = store.current_revision().await?;
    let mut stream = store.watch("/u/", now + 2).await?;
    store.create("/u/1", value(1), None).await?;
    store.create("/u/2", value(2), None).await?;
    let third = store.create("/u/3", value(3), None).await?;
    assert_eq!(put_kv(&next_event(&mut stream).await?), &third);
    Ok(())
}

/// A watcher that does not read while many writes happen still gets every event, once, in
/// order, with nothing missing (backends with bounded buffers must re-read history).
pub async fn a_slow_watcher_catches_up_without_gaps<S: Store>(store: S) -> Result<()> {
    let start = store.current_revision().await?;
    let mut stream = store.watch("/l/", start).await?;
    for i in 0..LAG_WRITES {
        store.create(&format!("/l/{i:04}"), value(i), None).await?;
    }
    let events = next_events(&mut stream, LAG_WRITES).await?;
    let expected: Vec<Revision> = (1..=LAG_WRITES as i64).map(|i| start + i).collect();
    assert_eq!(revisions(&events), expected);
    let last = store.create("/l/last", value(0), None).await?;
    assert_eq!(put_kv(&next_event(&mut stream).await?), &last);
    Ok(())
}

/// A lagging watcher whose missing history was compacted away either still delivers every
/// event (if its backend buffered them) or delivers a gap-free prefix and then
/// `Err(Compacted)`, after which the stream ends.
pub async fn a_watcher_behind_a_compaction_gets_all_events_or_compacted<S: Store>(
    store: S,
) -> Result<()> {
    let start = store.current_revision().await?;
    let mut stream = store.watch("/l/", start).await?;
    for i in 0..LAG_WRITES {
        store.create(&format!("/l/{i:04}"), value(i), None).await?;
    }
    let end = store.current_revision().await?;
    store.compact(end).await?;
    let mut expected = start + 1;
    while expected <= end {
        match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(event))) => {
                assert_eq!(event.revision(), expected, "events must have no gaps");
                expected += 1;
            }
            Ok(Some(Err(Error::Compacted { compacted, .. }))) => {
                assert_eq!(compacted, end);
                let after = tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await;
                assert!(matches!(after, Ok(None)), "stream must end after Compacted");
                return Ok(());
            }
            other => panic!("unexpected watch item {other:?}"),
        }
    }
    Ok(())
}
