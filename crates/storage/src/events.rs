//! Core `v1` Events the way client-go's recorder writes them: one Event per (object, type,
//! reason, message), with `count` and `lastTimestamp` bumped when it repeats. Best effort:
//! a failure is logged, never returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::kinds::{self, Kind};

type Key = (String, &'static str, String, String);

/// Records Events as one component (`source.component`).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: &'static str,
    seen: Arc<Mutex<HashMap<Key, (String, i64)>>>,
}

/// How many distinct Events are remembered for aggregation before all are forgotten.
const MEMORY: usize = 4096;

impl Recorder {
    pub fn new(client: kube::Client, component: &'static str) -> Recorder {
        Recorder {
            client,
            component,
            seen: Arc::default(),
        }
    }

    /// A `Normal` Event about `obj` (of `kind`).
    pub async fn normal(&self, obj: &Value, kind: Kind, reason: &str, message: &str) {
        self.publish(obj, kind, "Normal", reason, message).await;
    }

    /// A `Warning` Event about `obj` (of `kind`).
    pub async fn warning(&self, obj: &Value, kind: Kind, reason: &str, message: &str) {
        self.publish(obj, kind, "Warning", reason, message).await;
    }

    async fn publish(
        &self,
        obj: &Value,
        kind: Kind,
        type_: &'static str,
        reason: &str,
        message: &str,
    ) {
        let key = (
            kinds::uid(obj).to_string(),
            type_,
            reason.to_string(),
            message.to_string(),
        );
        let ns = match kinds::namespace(obj) {
            "" => "default",
            ns => ns,
        };
        let now = kinds::now();
        let previous = self.lock().get(&key).cloned();
        if let Some((name, count)) = previous {
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            if crate::ops::merge(&self.client, EVENT, ns, &name, &patch)
                .await
                .is_ok()
            {
                self.lock().insert(key, (name, count + 1));
                return;
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!("{}.{nanos:x}", kinds::name(obj));
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": kind.api_version(), "kind": kind.kind,
                "namespace": kinds::namespace(obj), "name": kinds::name(obj), "uid": kinds::uid(obj),
            },
            "type": type_, "reason": reason, "message": message,
            "source": {"component": self.component},
            "reportingComponent": self.component, "reportingInstance": self.component,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        match crate::ops::create(&self.client, EVENT, &event).await {
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

const EVENT: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    namespaced: true,
};
