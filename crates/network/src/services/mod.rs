//! Services: the cluster-wide controller ([`controller`]: addresses, Endpoints,
//! EndpointSlices, the `kube-dns` Service) and the per-node proxy ([`proxy`]: nftables).
//! The decisions are pure functions ([`allocate`], [`endpoints`], [`rules`]); the two loops
//! only watch, compare and write.

pub mod allocate;
pub mod announce;
pub mod controller;
pub mod endpoints;
pub mod proxy;
pub mod rules;

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use tokio::sync::Notify;

/// Keeps a store of every `K` in sync, waking `changed` on each event; returns the store
/// once the initial list is in.
pub(crate) async fn mirror<K>(api: Api<K>, kind: K::DynamicType, changed: Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + Send + Sync + serde::de::DeserializeOwned + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(kind);
    let store = writer.as_reader();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            match stream.next().await {
                Some(Ok(_)) => changed.notify_one(),
                Some(Err(e)) => tracing::debug!(error = %e, "watch error; retrying"),
                None => break,
            }
        }
    });
    // A watch that never lists (API down) leaves the store empty: callers retry later.
    let _ = store.wait_until_ready().await;
    store
}
