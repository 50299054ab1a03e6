//! Watch caches of the kinds a loop reconciles, and the wake-up they share.
//!
//! The storage controllers are few and their objects few, so each loop reconciles *every*
//! object of its kinds on each wake-up (any watched change, or a periodic tick) from these
//! caches, the way the scheduler does. Level-triggered: a missed event costs one tick.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::kinds::Kind;

/// How long changes gather before the loops wake (see [`World::start`]).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Caches of several kinds, filled by watches running in [`World::tasks`].
pub struct World {
    stores: HashMap<Kind, Store<DynamicObject>>,
    /// Notified after watch events (at most once per [`SETTLE`]).
    pub wake: Arc<Notify>,
    /// The watch tasks; dropping the world stops them.
    pub tasks: JoinSet<()>,
}

impl World {
    /// Starts watches of `kinds` (each with an optional field selector).
    pub fn start(client: &kube::Client, kinds: &[(Kind, Option<String>)]) -> World {
        let wake = Arc::new(Notify::new());
        let changed = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        // Every watched change wakes the loops, but at most once per SETTLE: a node starting
        // ten VMs a second makes hundreds of Pod and VMI events, and each pass reconciles
        // every object of its kinds.
        let (from, to) = (changed.clone(), wake.clone());
        tasks.spawn(async move {
            loop {
                from.notified().await;
                tokio::time::sleep(SETTLE).await;
                to.notify_one();
            }
        });
        let mut stores = HashMap::new();
        for (kind, fields) in kinds {
            let resource = kind.resource();
            let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
            stores.insert(*kind, writer.as_reader());
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let mut config = watcher::Config::default();
            if let Some(fields) = fields {
                config = config.fields(fields);
            }
            let wake = changed.clone();
            let plural = kind.plural;
            tasks.spawn(async move {
                let mut stream = watcher::watcher(api, config)
                    .default_backoff()
                    .reflect(writer)
                    .boxed();
                while let Some(event) = stream.next().await {
                    if let Err(e) = event {
                        tracing::debug!(error = %e, resource = plural, "watch failed; retrying");
                    }
                    wake.notify_one();
                }
                tracing::warn!(resource = plural, "watch ended");
            });
        }
        World {
            stores,
            wake,
            tasks,
        }
    }

    /// Waits until every cache has its first list.
    pub async fn ready(&self) {
        for store in self.stores.values() {
            // Only fails when the writer is dropped, which ends the world anyway.
            let _ = store.wait_until_ready().await;
        }
    }

    /// Every cached object of `kind`, as JSON, sorted by namespace and name.
    pub fn list(&self, kind: Kind) -> Vec<Value> {
        let Some(store) = self.stores.get(&kind) else {
            return Vec::new();
        };
        let mut out: Vec<Value> = store
            .state()
            .iter()
            .filter_map(|o| serde_json::to_value(&**o).ok())
            .collect();
        out.sort_by(|a, b| {
            (crate::kinds::namespace(a), crate::kinds::name(a))
                .cmp(&(crate::kinds::namespace(b), crate::kinds::name(b)))
        });
        out
    }

    /// One cached object.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        let store = self.stores.get(&kind)?;
        let key = if kind.namespaced {
            reflector::ObjectRef::new_with(name, kind.resource()).within(namespace)
        } else {
            reflector::ObjectRef::new_with(name, kind.resource())
        };
        store.get(&key).and_then(|o| serde_json::to_value(&*o).ok())
    }
}
