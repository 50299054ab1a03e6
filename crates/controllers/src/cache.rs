//! Watch caches the controllers read instead of the API.
//!
//! A cache is filled by the same watch stream that triggers the controller, so a reconcile
//! woken by an event always sees that event applied. Readers still treat a cache *miss* as
//! "ask the API": a child just created by the previous pass may not be in the cache yet,
//! and creating it twice must not depend on how fast the watch is.

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};

/// A cache of `api` and the stream that fills it (to be polled by a controller, e.g. with
/// `owns_stream_with`); the stream yields each object that changed.
pub(crate) fn reflected<K>(
    api: Api<K>,
    dyntype: K::DynamicType,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource + Clone + std::fmt::Debug + Send + Sync + serde::de::DeserializeOwned + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dyntype);
    let store = writer.as_reader();
    let stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .boxed();
    (store, stream)
}

/// The cached object `namespace/name`, if the cache has it.
pub(crate) fn cached<K>(
    store: &Store<K>,
    dyntype: &K::DynamicType,
    namespace: &str,
    name: &str,
) -> Option<std::sync::Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.get(&ObjectRef::new_with(name, dyntype.clone()).within(namespace))
}
