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

use crate::kinds::{Kind, POD, VMI};
use crate::well_known::{APP_LABEL, CDI_APP};

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
        let mut writers = Vec::new();
        for (kind, fields) in kinds {
            let writer = reflector::store::Writer::<DynamicObject>::new(kind.resource());
            stores.insert(*kind, writer.as_reader());
            writers.push((*kind, fields.clone(), writer));
        }
        let vmis = stores.get(&VMI).cloned();
        for (kind, fields, writer) in writers {
            let resource = kind.resource();
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let mut config = watcher::Config::default();
            if let Some(fields) = fields {
                config = config.fields(&fields);
            }
            let wake = changed.clone();
            let plural = kind.plural;
            let vmis = vmis.clone();
            tasks.spawn(async move {
                let mut stream = watcher::watcher(api, config)
                    .default_backoff()
                    .reflect(writer)
                    .boxed();
                while let Some(event) = stream.next().await {
                    let concerns = match &event {
                        Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
                            concerns_storage(kind, o, vmis.as_ref())
                        }
                        Ok(_) => true,
                        Err(e) => {
                            tracing::debug!(error = %e, resource = plural, "watch failed; retrying");
                            true
                        }
                    };
                    if concerns {
                        wake.notify_one();
                    }
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

/// Whether a change to `object` can matter to a storage loop. Pods and VMIs change several
/// times a second while VMs start, and most have no volume storage provides: only CDI
/// worker Pods, Pods with claims, launcher Pods whose VMI has claims (first-consumer
/// binding, clone sources in use) and VMIs with claims wake the loops. Other kinds always
/// do. The cache is updated either way; the periodic tick stays the safety net.
fn concerns_storage(
    kind: Kind,
    object: &DynamicObject,
    vmis: Option<&Store<DynamicObject>>,
) -> bool {
    let has_claims = |o: &DynamicObject| {
        !oxivirt_api::vmi_claims::claim_names(&o.data["spec"]["volumes"]).is_empty()
    };
    if kind == VMI {
        return has_claims(object);
    }
    if kind != POD {
        return true;
    }
    let labels = object.metadata.labels.as_ref();
    if labels
        .and_then(|l| l.get(APP_LABEL))
        .is_some_and(|a| a == CDI_APP)
        || has_claims(object)
    {
        return true;
    }
    let Some(vmi) = object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubevirt.io/domain"))
    else {
        return false;
    };
    let Some(vmis) = vmis else {
        return true; // no VMI cache to tell: assume it matters
    };
    let key = reflector::ObjectRef::new_with(vmi, VMI.resource())
        .within(object.metadata.namespace.as_deref().unwrap_or_default());
    // A launcher Pod whose VMI is not cached yet may be one with claims.
    vmis.get(&key).is_none_or(|v| has_claims(&v))
}
