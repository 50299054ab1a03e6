//! The backend conformance suite: behaviour every [`Store`] must show, whatever its engine.
//!
//! Each case is a public `async fn case<S: Store>(store: S) -> Result<()>` taking a fresh,
//! empty store. Engine errors propagate as `Err`; wrong behaviour panics with a message.
//!
//! Use it from a backend's tests with the macro, which generates one `#[tokio::test]` per case
//! (the calling crate needs `tokio` with the `macros` and `rt` features):
//!
//! ```ignore
//! mod memory {
//!     oxivirt_store::conformance_tests!(|| oxivirt_store::MemoryStore::new());
//! }
//! ```
//!
//! or run every case in sequence with [`run_all`]. Durability across restarts and crashes is
//! engine-specific and tested next to each durable backend, not here.

mod kv;
mod lease;
mod list;
mod watch;

use std::time::Duration;

use futures::StreamExt;

pub use self::kv::*;
pub use self::lease::*;
pub use self::list::*;
pub use self::watch::*;
use crate::error::{Error, Result};
use crate::store::{KeyValue, Store, WatchEvent, WatchStream};

/// How long a case waits for an event that must come.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls `$callback!` with `$args` followed by `;` and the name of every case.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    ($callback:ident; $($args:tt)*) => {
        $crate::$callback! { $($args)*;
            create_then_get_returns_the_value,
            get_of_a_missing_key_is_none,
            create_of_an_existing_key_is_already_exists,
            update_with_the_current_revision_replaces_the_value,
            update_with_a_stale_revision_conflicts_and_returns_the_current_value,
            update_of_a_missing_key_is_not_found,
            delete_without_expected_removes_the_key,
            delete_with_expected_is_compare_and_swap,
            delete_of_a_missing_key_is_not_found,
            every_write_takes_the_next_revision,
            concurrent_creates_get_distinct_revisions,
            count_counts_only_keys_under_the_prefix,
            list_returns_only_keys_under_the_prefix_sorted,
            list_paginates_with_start_after_limit_and_more,
            list_at_an_old_revision_returns_the_old_state,
            list_at_a_future_revision_is_rejected,
            compaction_forgets_old_revisions_but_keeps_latest_values,
            compaction_keeps_the_state_at_the_compaction_revision,
            watch_replays_history_then_streams_live_events,
            watch_from_the_middle_skips_earlier_events,
            watch_only_sees_keys_under_its_prefix,
            watch_events_carry_previous_values,
            several_watchers_see_the_same_events,
            watch_below_the_compaction_point_is_compacted,
            watch_from_the_future_starts_after_that_revision,
            a_slow_watcher_catches_up_without_gaps,
            a_watcher_behind_a_compaction_gets_all_events_or_compacted,
            keys_of_an_expired_lease_are_deleted_with_events,
            keep_alive_postpones_expiry,
            revoking_a_lease_deletes_its_keys_at_once,
            unknown_leases_are_rejected,
            update_keeps_the_lease,
        }
    };
}

/// Generates one `#[tokio::test]` per conformance case, each on a store from `$make`
/// (an expression callable with no arguments, e.g. a closure).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::__store_conformance_cases!(__store_conformance_tests; $make);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_tests {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() -> ::std::result::Result<(), $crate::Error> {
                $crate::conformance::$case(($make)()).await
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_run {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            if let Err(err) = $crate::conformance::$case(($make)()).await {
                panic!("conformance case {} failed: {err}", stringify!($case));
            }
        )*
    };
}

/// Runs every case in sequence, each on a fresh store from `make`.
///
/// # Panics
/// On the first failing case, naming it.
pub async fn run_all<S: Store>(make: impl Fn() -> S) {
    crate::__store_conformance_cases!(__store_conformance_run; make);
}

/// The next event, failing the case if the stream errs, ends or stays silent too long.
pub async fn next_event(stream: &mut WatchStream) -> Result<WatchEvent> {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("watch stream ended while an event was expected"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

/// The next `n` events.
pub async fn next_events(stream: &mut WatchStream, n: usize) -> Result<Vec<WatchEvent>> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(next_event(stream).await?);
    }
    Ok(events)
}

/// Asserts the stream yields nothing for `quiet`.
pub async fn assert_quiet(stream: &mut WatchStream, quiet: Duration) {
    if let Ok(item) = tokio::time::timeout(quiet, stream.next()).await {
        panic!("expected no watch event, got {item:?}");
    }
}

/// A short value naming `n`, for tests.
pub fn value(n: usize) -> Vec<u8> {
    format!("{{\"n\":{n}}}").into_bytes()
}

/// A Put event's new value, failing the case for a Delete.
pub fn put_kv(event: &WatchEvent) -> &KeyValue {
    match event {
        WatchEvent::Put { kv, .. } => kv,
        WatchEvent::Delete { .. } => panic!("expected a put, got {event:?}"),
    }
}

/// Asserts `result` failed with an error matching `pred`, describing `what` otherwise.
pub fn assert_err<T: std::fmt::Debug>(
    result: Result<T>,
    what: &str,
    pred: impl FnOnce(&Error) -> bool,
) {
    match result {
        Err(err) if pred(&err) => {}
        other => panic!("{what}: unexpected result {other:?}"),
    }
}
