//! Core `v1` Events as client-go's recorder writes them: one Event per (object, type,
//! reason, message), its `count` and `lastTimestamp` bumped when it repeats.
//!
//! Events are best effort: a failure to record one is logged and never fails a reconcile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{json, Value};

use crate::object::now_rfc3339;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong or needs attention.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Regarding {
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind` of the object.
    pub kind: String,
    /// Namespace (Events of cluster-scoped objects go to `default`).
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// Uid of the object.
    pub uid: String,
}

impl Regarding {
    /// The reference for an object given as JSON (`apiVersion`/`kind` from the object).
    pub fn of(obj: &Value, api_version: &str, kind: &str) -> Regarding {
        let meta = &obj["metadata"];
        let text = |k: &str| meta[k].as_str().unwrap_or_default().to_string();
        Regarding {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: text("namespace"),
            name: text("name"),
            uid: text("uid"),
        }
    }
}

type Key = (Regarding, EventType, String, String);

/// Records Events as one component (`source.component`, `reportingComponent`).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: &'static str,
    seen: Arc<Mutex<HashMap<Key, (String, i64)>>>,
}

/// How many distinct Events a recorder remembers for aggregation before it forgets all.
const MEMORY: usize = 4096;

impl Recorder {
    /// A recorder writing as `component` (for example `virtualmachine-controller`).
    pub fn new(client: kube::Client, component: &'static str) -> Recorder {
        Recorder {
            client,
            component,
            seen: Arc::default(),
        }
    }

    /// Records an Event about `regarding`; repeats bump the existing Event's count.
    ///
    /// The write happens in the background: an Event is a note about what a reconciler
    /// did, and waiting for it put one more API round trip on the path of every VM start
    /// (create the VMI, the Pod, bind it…). A failed write is logged, as before.
    pub async fn publish(
        &self,
        regarding: &Regarding,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        let recorder = self.clone();
        let (regarding, reason, message) =
            (regarding.clone(), reason.to_string(), message.to_string());
        tokio::spawn(async move {
            recorder.write(&regarding, type_, &reason, &message).await;
        });
    }

    async fn write(&self, regarding: &Regarding, type_: EventType, reason: &str, message: &str) {
        let key = (
            regarding.clone(),
            type_,
            reason.to_string(),
            message.to_string(),
        );
        let ns = if regarding.namespace.is_empty() {
            "default".to_string()
        } else {
            regarding.namespace.clone()
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let previous = self.lock().get(&key).cloned();
        let now = now_rfc3339();
        if let Some((name, count)) = previous {
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.lock().insert(key, (name, count + 1));
                    return;
                }
                // Expired (Events live an hour) or deleted: write a new one.
                Err(e) => tracing::debug!(error = %e, event = name, "event gone; recreating"),
            }
        }
        let name = format!("{}.{:x}", regarding.name, Timestamp::now().as_nanosecond());
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": regarding.api_version, "kind": regarding.kind,
                "namespace": regarding.namespace, "name": regarding.name, "uid": regarding.uid,
            },
            "type": type_.as_str(), "reason": reason, "message": message,
            "source": {"component": self.component},
            "reportingComponent": self.component, "reportingInstance": self.component,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        let event: Event = match serde_json::from_value(event) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "could not build an Event");
                return;
            }
        };
        match events.create(&PostParams::default(), &event).await {
            Ok(_) => {
                let mut seen = self.lock();
                if seen.len() >= MEMORY {
                    seen.clear();
                }
                seen.insert(key, (name, 1));
            }
            Err(e) => tracing::warn!(error = %e, reason, "could not record an Event"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (String, i64)>> {
        // A poisoned map only loses aggregation; keep using it.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}
