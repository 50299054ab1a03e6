//! The garbage collector and the namespace and CRD cleanup controllers.
//!
//! They keep an in-memory index of every object's identity, owners and finalizers,
//! built from a full list and kept current by a store watch, and reconcile from that
//! index: the index is derived state, rebuilt on every start (level-triggered).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use oxivirt_store::{ListOptions, WatchEvent};
use serde_json::{json, Value};

use crate::context::{RequestCtx, UserInfo};
use crate::crd::CLEANUP_FINALIZER;
use crate::objects;
use crate::service::{Api, DeleteOptions, Subresource};

pub const FINALIZER_ORPHAN: &str = "orphan";
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";
const NAMESPACE_FINALIZER: &str = "kubernetes";

#[derive(Debug, Clone)]
struct Entry {
    group: String,
    plural: String,
    namespace: Option<String>,
    name: String,
    uid: String,
    owners: Vec<(String, bool)>,
    deleting: bool,
    finalizers: Vec<String>,
    crd_group_plural: Option<(String, String)>,
}

#[derive(Default)]
struct Index {
    by_key: HashMap<String, Entry>,
}

impl Index {
    fn apply(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        let Some(value) = value else {
            return self.by_key.remove(key).is_some();
        };
        let Some(entry) = parse_entry(key, value) else {
            return false;
        };
        let relevant = !entry.owners.is_empty() || entry.deleting;
        let was_relevant = self
            .by_key
            .get(key)
            .is_some_and(|e| !e.owners.is_empty() || e.deleting);
        self.by_key.insert(key.to_string(), entry);
        relevant || was_relevant
    }

    fn alive_uids(&self) -> HashSet<&str> {
        self.by_key.values().map(|e| e.uid.as_str()).collect()
    }
}

fn parse_entry(key: &str, value: &[u8]) -> Option<Entry> {
    let parts: Vec<&str> = key.trim_start_matches('/').split('/').collect();
    let (group, plural, namespace, name) = match parts.as_slice() {
        ["registry", g, p, ns, n] => (g, p, Some(ns.to_string()), n),
        ["registry", g, p, n] => (g, p, None, n),
        _ => return None,
    };
    let obj: Value = serde_json::from_slice(value).ok()?;
    let owners = objects::owner_references(&obj)
        .iter()
        .filter_map(|r| {
            Some((
                r["uid"].as_str()?.to_string(),
                r["blockOwnerDeletion"] == json!(true),
            ))
        })
        .collect();
    let mut finalizers = objects::finalizers(&obj);
    if *group == "core" && *plural == "namespaces" {
        if let Some(spec) = obj.pointer("/spec/finalizers").and_then(Value::as_array) {
            finalizers.extend(spec.iter().filter_map(|v| v.as_str().map(str::to_string)));
        }
    }
    let crd_group_plural = (*group == "apiextensions.k8s.io").then(|| {
        (
            obj.pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            obj.pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    });
    Some(Entry {
        group: if *group == "core" {
            String::new()
        } else {
            group.to_string()
        },
        plural: plural.to_string(),
        namespace,
        name: name.to_string(),
        uid: objects::uid(&obj).to_string(),
        owners,
        deleting: objects::is_deleting(&obj),
        finalizers,
        crd_group_plural,
    })
}

/// Runs the collector until the process ends; restarts its watch after errors.
pub async fn run(api: Arc<Api>) {
    loop {
        if let Err(e) = run_once(&api).await {
            tracing::warn!(error = %e, "garbage collector restarting");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run_once(api: &Arc<Api>) -> anyhow::Result<()> {
    let mut index = Index::default();
    let listed = api.store.list("/registry/", ListOptions::default()).await?;
    for kv in &listed.items {
        index.apply(&kv.key, Some(&kv.value));
    }
    let mut watch = api.store.watch("/registry/", listed.revision).await?;
    let mut dirty = true;
    loop {
        if dirty {
            reconcile(api, &index).await;
            dirty = false;
        }
        // Gather a burst of events before reconciling again; a periodic pass retries
        // anything that failed (for example a write that lost a race).
        let deadline = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(deadline);
        tokio::select! {
            event = watch.next() => {
                let Some(event) = event else { anyhow::bail!("store watch ended") };
                dirty |= apply_event(&mut index, event?);
                while let Some(Some(event)) = futures::FutureExt::now_or_never(watch.next()) {
                    dirty |= apply_event(&mut index, event?);
                }
            }
            _ = &mut deadline => dirty = index.by_key.values().any(|e| e.deleting || !e.owners.is_empty()),
        }
    }
}

fn apply_event(index: &mut Index, event: WatchEvent) -> bool {
    match event {
        WatchEvent::Put { kv, .. } => index.apply(&kv.key, Some(&kv.value)),
        WatchEvent::Delete { prev, .. } => index.apply(&prev.key, None),
    }
}

fn ctx() -> RequestCtx {
    let mut ctx = RequestCtx::new(UserInfo::system("garbage-collector"));
    ctx.field_manager = "garbage-collector".into();
    ctx
}

async fn reconcile(api: &Api, index: &Index) {
    let alive = index.alive_uids();
    let deleting_with: HashMap<&str, &Entry> = index
        .by_key
        .values()
        .filter(|e| e.deleting)
        .map(|e| (e.uid.as_str(), e))
        .collect();
    let mut dependents_of: HashMap<&str, Vec<&Entry>> = HashMap::new();
    for e in index.by_key.values() {
        for (owner, _) in &e.owners {
            dependents_of.entry(owner.as_str()).or_default().push(e);
        }
    }
    // Dependents whose owners are gone, orphaning, or deleting in the foreground.
    for e in index.by_key.values().filter(|e| !e.owners.is_empty()) {
        let mut drop_refs = Vec::new();
        let mut foreground = false;
        let mut live_owner = false;
        for (owner, _) in &e.owners {
            match deleting_with.get(owner.as_str()) {
                Some(o) if o.finalizers.iter().any(|f| f == FINALIZER_ORPHAN) => {
                    drop_refs.push(owner.clone())
                }
                Some(o) if o.finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) => {
                    foreground = true
                }
                Some(_) => live_owner = true,
                None if alive.contains(owner.as_str()) => live_owner = true,
                None => drop_refs.push(owner.clone()),
            }
        }
        let all_gone = !live_owner
            && !foreground
            && drop_refs.len() == e.owners.len()
            && e.owners.iter().all(|(o, _)| !alive.contains(o.as_str()));
        if foreground || all_gone {
            if !e.deleting {
                let policy = if foreground {
                    "Foreground"
                } else {
                    "Background"
                };
                delete(api, e, policy).await;
            }
        } else if !drop_refs.is_empty() {
            remove_owner_refs(api, e, &drop_refs).await;
        }
    }
    // Owners whose orphan or foreground finalizer can now be released.
    for e in index.by_key.values().filter(|e| e.deleting) {
        let deps = dependents_of
            .get(e.uid.as_str())
            .cloned()
            .unwrap_or_default();
        if e.finalizers.iter().any(|f| f == FINALIZER_ORPHAN) && deps.is_empty() {
            remove_finalizer(api, e, FINALIZER_ORPHAN).await;
        }
        if e.finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) {
            let blocking = deps
                .iter()
                .any(|d| d.owners.iter().any(|(o, block)| o == &e.uid && *block));
            if !blocking {
                remove_finalizer(api, e, FINALIZER_FOREGROUND).await;
            }
        }
        if e.group.is_empty()
            && e.plural == "namespaces"
            && e.finalizers.iter().any(|f| f == NAMESPACE_FINALIZER)
        {
            let contents: Vec<&Entry> = index
                .by_key
                .values()
                .filter(|c| c.namespace.as_deref() == Some(e.name.as_str()))
                .collect();
            for c in &contents {
                if !c.deleting {
                    delete(api, c, "Background").await;
                }
            }
            if contents.is_empty() {
                release_namespace(api, &e.name).await;
            }
        }
        if let Some((group, plural)) = &e.crd_group_plural {
            if e.finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
                let instances: Vec<&Entry> = index
                    .by_key
                    .values()
                    .filter(|c| &c.group == group && &c.plural == plural)
                    .collect();
                for c in &instances {
                    if !c.deleting {
                        delete(api, c, "Background").await;
                    }
                }
                if instances.is_empty() {
                    api.registry.remove_crd(&e.name);
                    remove_finalizer(api, e, CLEANUP_FINALIZER).await;
                }
            }
        }
    }
}

async fn delete(api: &Api, e: &Entry, policy: &str) {
    let Some(info) = api.registry.by_group_resource(&e.group, &e.plural) else {
        return;
    };
    let opts = DeleteOptions {
        propagation: Some(policy.into()),
        precondition_uid: Some(e.uid.clone()),
        ..Default::default()
    };
    let ns = e.namespace.as_deref().unwrap_or("");
    match api
        .delete(&info, ns, &e.name, &opts, &ctx(), &info.storage_version)
        .await
    {
        Ok(_) => {
            tracing::debug!(resource = %info.group_resource(), name = %e.name, policy, "garbage collector deleted object")
        }
        Err(err) => {
            tracing::debug!(resource = %info.group_resource(), name = %e.name, error = %err, "garbage collector delete failed")
        }
    }
}

async fn remove_owner_refs(api: &Api, e: &Entry, owners: &[String]) {
    mutate(api, e, |obj| {
        let refs: Vec<Value> = objects::owner_references(obj)
            .into_iter()
            .filter(|r| !owners.iter().any(|o| r["uid"].as_str() == Some(o.as_str())))
            .collect();
        let meta = objects::meta_mut(obj);
        if refs.is_empty() {
            meta.remove("ownerReferences");
        } else {
            meta.insert("ownerReferences".into(), json!(refs));
        }
    })
    .await;
}

async fn remove_finalizer(api: &Api, e: &Entry, finalizer: &str) {
    mutate(api, e, |obj| {
        let list: Vec<String> = objects::finalizers(obj)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        objects::set_finalizers(obj, &list);
    })
    .await;
}

async fn release_namespace(api: &Api, name: &str) {
    let Some(info) = api.registry.by_group_resource("", "namespaces") else {
        return;
    };
    let e = Entry {
        group: String::new(),
        plural: "namespaces".into(),
        namespace: None,
        name: name.into(),
        uid: String::new(),
        owners: vec![],
        deleting: true,
        finalizers: vec![],
        crd_group_plural: None,
    };
    let _ = info;
    mutate(api, &e, |obj| {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("finalizers".into(), json!([]));
        }
    })
    .await;
}

async fn mutate(api: &Api, e: &Entry, f: impl Fn(&mut Value)) {
    let Some(info) = api.registry.by_group_resource(&e.group, &e.plural) else {
        return;
    };
    let ns = e.namespace.as_deref().unwrap_or("");
    let result = api
        .write_loop(
            &info,
            ns,
            &e.name,
            &ctx(),
            &info.storage_version,
            false,
            |old| {
                let mut new = old.clone();
                objects::meta_mut(&mut new).remove("resourceVersion");
                f(&mut new);
                Ok(new)
            },
            Subresource::Main,
        )
        .await;
    if let Err(err) = result {
        tracing::debug!(resource = %info.group_resource(), name = %e.name, error = %err, "garbage collector update failed");
    }
}
