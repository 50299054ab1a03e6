//! The DataVolume controller (CDI's `datavolume-controller` plus its import controller):
//! creates the DataVolume's claim, runs an importer worker Pod once the claim is bound,
//! mirrors the Pod into the claim's `cdi.kubevirt.io/storage.*` annotations and the
//! DataVolume's `phase`, `progress`, `restartCount` and `Bound`/`Running`/`Ready`
//! conditions, and records upstream's Events.
//!
//! Phases: `Pending` (claim not bound; `WaitForFirstConsumer` while a delayed claim waits
//! for a consumer) → `ImportScheduled` (worker Pod pending) → `ImportInProgress` (running,
//! restarts included) → `Succeeded`; `Failed` only when the worker fails for good.
//!
//! # Guarantees
//! Level-triggered from watch caches; every write is a merge patch computed from the
//! current state, so repeating a pass is harmless.

use serde_json::{json, Value};

use crate::claim::{self, source_type};
use crate::events::Recorder;
use crate::importer_pod::{importer_pod, pod_name};
use crate::kinds::{self, annotation, name, namespace, phase, str_at, uid, DATA_VOLUME, POD, PVC, STORAGE_CLASS};
use crate::status::{self, Conditions};
use crate::well_known::{self as wk, ann};
use crate::world::World;

/// Sources this controller imports (the others wait with a condition saying so).
const SUPPORTED: [&str; 3] = ["http", "registry", "blank"];

/// One pass over every DataVolume.
pub async fn reconcile(client: &kube::Client, world: &World, events: &Recorder) {
    for dv in world.list(DATA_VOLUME) {
        if kinds::is_deleting(&dv) {
            continue;
        }
        if let Err(e) = reconcile_one(client, world, events, &dv).await {
            tracing::warn!(error = %e, "DataVolume reconcile failed; retrying");
        }
    }
}

/// What a pass decided for a DataVolume's status.
struct Decision {
    phase: &'static str,
    progress: String,
    restarts: i64,
    conditions: Conditions,
}

async fn reconcile_one(
    client: &kube::Client,
    world: &World,
    events: &Recorder,
    dv: &Value,
) -> crate::ops::Result<()> {
    let (ns, dv_name) = (namespace(dv), name(dv));
    let mut conditions = Conditions::from_status(dv);
    let source = source_type(dv).unwrap_or_default().to_string();
    let Some(claim) = world.get(PVC, ns, dv_name) else {
        if !SUPPORTED.contains(&source.as_str()) {
            let message = format!("source {source:?} is not supported by oxivirt yet (supported: http, registry, blank)");
            conditions.set_bound(false, "NotSupported", &message);
            return write(client, events, dv, Decision { phase: "Pending", progress: "N/A".into(), restarts: 0, conditions }).await;
        }
        match claim::claim_for(world, dv) {
            Ok(claim) => {
                crate::ops::create(client, PVC, &claim).await?;
                conditions.set_bound(false, "Pending", &format!("PVC {dv_name} Pending"));
            }
            Err(invalid) => {
                events.warning(dv, DATA_VOLUME, invalid.reason, &invalid.message).await;
                conditions.set_bound(false, invalid.reason, &invalid.message);
            }
        }
        let decision = Decision { phase: "Pending", progress: "N/A".into(), restarts: 0, conditions };
        return write(client, events, dv, decision).await;
    };
    if !kinds::controlled_by(&claim, uid(dv)) && annotation(&claim, ann::POPULATED_FOR) != Some(dv_name) {
        let message = format!("Resource \"{dv_name}\" already exists and is not managed by DataVolume");
        events.warning(dv, DATA_VOLUME, "ErrResourceExists", &message).await;
        conditions.set_bound(false, "ErrResourceExists", &message);
        let decision = Decision { phase: "Pending", progress: "N/A".into(), restarts: 0, conditions };
        return write(client, events, dv, decision).await;
    }
    conditions.bound_from_claim(&claim);
    if phase(&claim) != "Bound" {
        let waiting = waits_for_consumer(world, &claim);
        let decision = Decision {
            phase: if waiting { "WaitForFirstConsumer" } else { "Pending" },
            progress: "N/A".into(),
            restarts: 0,
            conditions,
        };
        return write(client, events, dv, decision).await;
    }
    let pod = world.get(POD, ns, &pod_name(dv_name));
    let done = annotation(&claim, ann::POD_PHASE) == Some("Succeeded");
    let restarts = restart_count(&claim, pod.as_ref());
    let decision = match (&pod, done) {
        (_, true) => {
            if let Some(pod) = &pod {
                let retain = annotation(&claim, "cdi.kubevirt.io/storage.pod.retainAfterCompletion") == Some("true");
                if !retain {
                    crate::ops::delete(client, POD, ns, name(pod)).await?;
                }
            }
            conditions.set_running(false, "Completed", "Import Complete");
            conditions.set_ready(true, "", "");
            Decision { phase: "Succeeded", progress: "100.0%".into(), restarts, conditions }
        }
        (None, false) => {
            if let Some(pod) = importer_pod(world, dv, &claim) {
                crate::ops::create(client, POD, &pod).await?;
            }
            Decision { phase: "ImportScheduled", progress: "N/A".into(), restarts, conditions }
        }
        (Some(pod), false) => {
            mirror_pod(client, &claim, pod, restarts).await?;
            let (running, reason, message) = running_from_pod(pod);
            conditions.set_running(running, &reason, &message);
            if running {
                conditions.set_ready(false, "TransferRunning", "");
            }
            let progress = annotation(&claim, ann::PROGRESS).unwrap_or("N/A").to_string();
            match phase(pod) {
                "Succeeded" => {
                    // Recorded on the claim first, so the result survives the Pod's deletion.
                    let patch = json!({"metadata": {"annotations": {ann::POD_PHASE: "Succeeded", ann::PROGRESS: "100.0%"}}});
                    crate::ops::merge(client, PVC, ns, dv_name, &patch).await?;
                    conditions.set_running(false, "Completed", "Import Complete");
                    conditions.set_ready(true, "", "");
                    Decision { phase: "Succeeded", progress: "100.0%".into(), restarts, conditions }
                }
                "Failed" => Decision { phase: "Failed", progress, restarts, conditions },
                "Running" => Decision { phase: "ImportInProgress", progress, restarts, conditions },
                _ => Decision { phase: "ImportScheduled", progress, restarts, conditions },
            }
        }
    };
    write(client, events, dv, decision).await
}

/// Whether a pending claim waits for its first consumer (and the DataVolume did not ask
/// for immediate binding).
fn waits_for_consumer(world: &World, claim: &Value) -> bool {
    let class = crate::classes::class_of_claim(claim).and_then(|c| world.get(STORAGE_CLASS, "", c));
    class.is_some_and(|c| c["volumeBindingMode"] == "WaitForFirstConsumer")
        && annotation(claim, wk::ANN_SELECTED_NODE).is_none()
        && annotation(claim, ann::BIND_IMMEDIATE) != Some("true")
}

fn restart_count(claim: &Value, pod: Option<&Value>) -> i64 {
    let from_pod = pod
        .and_then(|p| p.pointer("/status/containerStatuses/0/restartCount"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let recorded = annotation(claim, ann::POD_RESTARTS)
        .and_then(|r| r.parse::<i64>().ok())
        .unwrap_or(0);
    from_pod.max(recorded)
}

/// The Running condition a worker Pod implies (upstream's rules: running → "Pod is running";
/// waiting → its reason, except a crash-loop which shows the last termination; terminated →
/// its reason and termination message).
pub fn running_from_pod(pod: &Value) -> (bool, String, String) {
    let Some(container) = pod.pointer("/status/containerStatuses/0") else {
        return (false, "Pending".into(), String::new());
    };
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let state = &container["state"];
    if state["running"].is_object() {
        return (true, "Pod is running".into(), String::new());
    }
    let waiting = &state["waiting"];
    if waiting.is_object() && waiting["reason"] != "CrashLoopBackOff" {
        return (false, text(waiting, "reason"), text(waiting, "message"));
    }
    let terminated = if state["terminated"].is_object() {
        &state["terminated"]
    } else {
        &container["lastState"]["terminated"]
    };
    (false, text(terminated, "reason"), text(terminated, "message"))
}

/// Writes the worker's state into the claim's annotations (what CDI's tools read).
async fn mirror_pod(client: &kube::Client, claim: &Value, pod: &Value, restarts: i64) -> crate::ops::Result<()> {
    let (running, reason, message) = running_from_pod(pod);
    let wanted = [
        (ann::POD_PHASE, phase(pod).to_string()),
        (ann::POD_RESTARTS, restarts.to_string()),
        (ann::POD_READY, running.to_string()),
        (ann::RUNNING, running.to_string()),
        (ann::RUNNING_REASON, reason),
        (ann::RUNNING_MESSAGE, message),
        (ann::IMPORT_POD, name(pod).to_string()),
    ];
    let changed: serde_json::Map<String, Value> = wanted
        .into_iter()
        .filter(|(k, v)| annotation(claim, k) != Some(v.as_str()))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let patch = json!({"metadata": {"annotations": changed}});
    crate::ops::merge(client, PVC, namespace(claim), name(claim), &patch).await
}

/// Writes the DataVolume's status when it changed, with the Events upstream records for the
/// transitions.
async fn write(client: &kube::Client, events: &Recorder, dv: &Value, decision: Decision) -> crate::ops::Result<()> {
    let old = &dv["status"];
    let dv_name = name(dv);
    let old_phase = old["phase"].as_str().unwrap_or_default();
    let claim_name = str_at(dv, "/metadata/name").unwrap_or_default();
    let mut status = json!({
        "phase": decision.phase,
        "progress": decision.progress,
        "restartCount": decision.restarts,
        "conditions": decision.conditions.into_value(),
    });
    if decision.phase != "Pending" || old["claimName"].is_string() {
        status["claimName"] = json!(claim_name);
    }
    if status::same_ignoring_times(old, &status) {
        return Ok(());
    }
    for event in status::condition_events(old, &status) {
        match event.warning {
            true => events.warning(dv, DATA_VOLUME, &event.reason, &event.message).await,
            false => events.normal(dv, DATA_VOLUME, &event.reason, &event.message).await,
        }
    }
    if old_phase != decision.phase {
        let note = match decision.phase {
            "ImportScheduled" => Some(("ImportScheduled", format!("Import into {dv_name} scheduled"))),
            "ImportInProgress" => Some(("ImportInProgress", format!("Import into {dv_name} in progress"))),
            "Succeeded" => Some(("ImportSucceeded", format!("Successfully imported into PVC {dv_name}"))),
            "Failed" => Some(("ImportFailed", format!("Failed to import into PVC {dv_name}"))),
            _ => None,
        };
        if let Some((reason, message)) = note {
            match decision.phase {
                "Failed" => events.warning(dv, DATA_VOLUME, reason, &message).await,
                _ => events.normal(dv, DATA_VOLUME, reason, &message).await,
            }
        }
    }
    // DataVolumes have no status subresource: the status is patched on the object.
    crate::ops::merge(client, DATA_VOLUME, namespace(dv), dv_name, &json!({"status": status})).await
}
