//! Watch plumbing shared by the backends: a broadcast hub for live events and a stream that
//! stitches history and live events together without gaps or duplicates.
//!
//! The protocol (per watcher):
//! 1. subscribe to the hub *first*, so nothing committed from now on can be missed;
//! 2. replay history (`rev > after`) from the backend's log, page by page; the last page says
//!    which revision the history is complete through;
//! 3. follow the live broadcast, dropping events at or below that revision (already sent);
//! 4. if the broadcast ring overran this watcher (`Lagged`), go back to step 2 from the last
//!    revision accounted for.
//!
//! Backends must publish each commit's events after the commit is visible to history reads,
//! in commit order, from one place.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::store::{Revision, WatchEvent, WatchStream};

/// How many commit batches a watcher may fall behind before it re-reads history from the log.
/// The ring keeps that many batches alive, so this bounds the memory live watches pin.
pub(crate) const DEFAULT_WATCH_BUFFER: usize = 256;

/// How many events one history read returns at most.
pub(crate) const HISTORY_PAGE: usize = 1000;

/// The events of one commit, shared by all watchers.
pub(crate) type Batch = Arc<[WatchEvent]>;

/// The live-event broadcast of one store.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    tx: broadcast::Sender<Batch>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(DEFAULT_WATCH_BUFFER)
    }
}

impl Hub {
    /// A hub retaining `capacity` batches (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Hub { tx }
    }

    /// Announces one commit's events (in revision order). Never blocks.
    pub(crate) fn publish(&self, events: Vec<WatchEvent>) {
        if !events.is_empty() {
            // An error only means nobody is watching right now.
            let _ = self.tx.send(events.into());
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Batch> {
        self.tx.subscribe()
    }
}

/// One page of history under a prefix.
#[derive(Debug)]
pub(crate) struct HistoryPage {
    /// Events with revision > the requested `after`, ascending, at most [`HISTORY_PAGE`].
    pub(crate) events: Vec<WatchEvent>,
    /// Every event under the prefix with revision <= this is in `events` or earlier pages.
    pub(crate) through: Revision,
    /// The page was full; ask again from `through`.
    pub(crate) more: bool,
}

/// A backend's log, as watchers need it.
#[async_trait::async_trait]
pub(crate) trait History: Send + Sync + 'static {
    /// Events under `prefix` with revision > `after`.
    ///
    /// # Errors
    /// [`Error::Compacted`] if `after` is below the compaction point.
    async fn history(&self, prefix: &str, after: Revision) -> Result<HistoryPage>;
}

enum Mode {
    History,
    Live,
    Done,
}

struct Watcher {
    prefix: String,
    /// Every event with revision <= cursor has been queued or deliberately skipped.
    cursor: Revision,
    pending: VecDeque<WatchEvent>,
    mode: Mode,
    rx: broadcast::Receiver<Batch>,
    history: Arc<dyn History>,
}

/// Opens a watch. The first history page is read before returning, so a compacted `after`
/// fails here rather than as the first stream item.
///
/// The caller must have subscribed `rx` before calling (see the module doc).
pub(crate) async fn open(
    history: Arc<dyn History>,
    rx: broadcast::Receiver<Batch>,
    prefix: &str,
    after: Revision,
) -> Result<WatchStream> {
    let page = history.history(prefix, after).await?;
    let mut watcher = Watcher {
        prefix: prefix.to_owned(),
        cursor: after,
        pending: VecDeque::new(),
        mode: Mode::History,
        rx,
        history,
    };
    watcher.absorb(page);
    Ok(futures::stream::unfold(watcher, Watcher::next).boxed())
}

impl Watcher {
    fn absorb(&mut self, page: HistoryPage) {
        for event in page.events {
            if event.revision() > self.cursor {
                self.cursor = event.revision();
                self.pending.push_back(event);
            }
        }
        // `through` may be below `after` when watching from the future; never move back.
        self.cursor = self.cursor.max(page.through);
        if !page.more {
            self.mode = Mode::Live;
        }
    }

    async fn next(mut self) -> Option<(Result<WatchEvent>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            match self.mode {
                Mode::Done => return None,
                Mode::History => match self.history.history(&self.prefix, self.cursor).await {
                    Ok(page) => self.absorb(page),
                    Err(err) => {
                        self.mode = Mode::Done;
                        return Some((Err(err), self));
                    }
                },
                Mode::Live => match self.rx.recv().await {
                    Ok(batch) => {
                        for event in batch.iter() {
                            if event.revision() <= self.cursor {
                                continue;
                            }
                            self.cursor = event.revision();
                            if event.key().starts_with(&self.prefix) {
                                self.pending.push_back(event.clone());
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::debug!(
                            prefix = %self.prefix,
                            cursor = self.cursor,
                            skipped,
                            "watcher lagged; re-reading history"
                        );
                        self.mode = Mode::History;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.mode = Mode::Done;
                        return Some((Err(Error::Closed), self));
                    }
                },
            }
        }
    }
}
