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
use crate::clone;
use crate::events::Recorder;
use crate::importer_pod::{importer_pod, pod_name, upload_pod_name};
use crate::kinds::{
    self, annotation, name, namespace, phase, str_at, uid, DATA_VOLUME, POD, PVC, STORAGE_CLASS,
};
use crate::status::{self, Conditions};
use crate::well_known::{self as wk, ann};
use crate::world::World;

/// Sources this controller imports (the others wait with a condition saying so).
const SUPPORTED: [&str; 5] = ["http", "registry", "blank", "pvc", "upload"];

/// One pass over every DataVolume.
pub async fn reconcile(client: &kube::Client, world: &World, events: &Recorder) {
    for dv in world.list(DATA_VOLUME) {
        if kinds::is_deleting(&dv) {
            continue;
        }
        // A `sourceRef` to a DataSource is a clone of the PVC the DataSource names.
        let dv = match crate::datasource::resolve(world, &dv) {
            Ok(resolved) => resolved,
            Err(message) => {
                let mut conditions = Conditions::from_status(&dv);
                conditions.set_bound(false, "Pending", &message);
                let decision = Decision {
                    phase: "Pending",
                    progress: "N/A".into(),
                    restarts: 0,
                    conditions,
                };
                if let Err(e) = write(client, events, &dv, decision).await {
                    tracing::warn!(error = %e, "DataVolume status write failed; retrying");
                }
                continue;
            }
        };
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
            let message = format!("source {source:?} is not supported by oxivirt yet (supported: http, registry, blank, pvc, upload)");
            conditions.set_bound(false, "NotSupported", &message);
            return write(
                client,
                events,
                dv,
                Decision {
                    phase: "Pending",
                    progress: "N/A".into(),
                    restarts: 0,
                    conditions,
                },
            )
            .await;
        }
        match claim::claim_for(world, dv) {
            Ok(mut claim) => {
                if clone::is_clone(dv) {
                    let Some(source) = clone::source_claim(world, dv) else {
                        let message = format!("source PVC {} not found", clone::describe(dv));
                        conditions.set_bound(false, "Pending", &message);
                        let decision = Decision {
                            phase: "Pending",
                            progress: "N/A".into(),
                            restarts: 0,
                            conditions,
                        };
                        return write(client, events, dv, decision).await;
                    };
                    if let Err(message) = clone::source_ready(world, &source) {
                        conditions.set_bound(false, "Pending", &message);
                        let decision = Decision {
                            phase: "CloneScheduled",
                            progress: "N/A".into(),
                            restarts: 0,
                            conditions,
                        };
                        return write(client, events, dv, decision).await;
                    }
                    plan_clone(client, world, events, dv, &source, &mut claim).await?;
                }
                crate::ops::create(client, PVC, &claim).await?;
                conditions.set_bound(false, "Pending", &format!("PVC {dv_name} Pending"));
            }
            Err(invalid) => {
                events
                    .warning(dv, DATA_VOLUME, invalid.reason, &invalid.message)
                    .await;
                conditions.set_bound(false, invalid.reason, &invalid.message);
            }
        }
        let decision = Decision {
            phase: "Pending",
            progress: "N/A".into(),
            restarts: 0,
            conditions,
        };
        return write(client, events, dv, decision).await;
    };
    if !kinds::controlled_by(&claim, uid(dv))
        && annotation(&claim, ann::POPULATED_FOR) != Some(dv_name)
    {
        let message =
            format!("Resource \"{dv_name}\" already exists and is not managed by DataVolume");
        events
            .warning(dv, DATA_VOLUME, "ErrResourceExists", &message)
            .await;
        conditions.set_bound(false, "ErrResourceExists", &message);
        let decision = Decision {
            phase: "Pending",
            progress: "N/A".into(),
            restarts: 0,
            conditions,
        };
        return write(client, events, dv, decision).await;
    }
    conditions.bound_from_claim(&claim);
    let native_clone = clone::is_clone(dv) && clone::native_claim(&claim);
    if phase(&claim) != "Bound" {
        let waiting = waits_for_consumer(world, &claim);
        let decision = Decision {
            phase: match (waiting, native_clone) {
                (true, _) => "WaitForFirstConsumer",
                (false, true) => "CSICloneInProgress",
                (false, false) => "Pending",
            },
            progress: "N/A".into(),
            restarts: 0,
            conditions,
        };
        return write(client, events, dv, decision).await;
    }
    if native_clone {
        // The provisioner made the volume as a clone: bound means done.
        conditions.set_running(false, "Completed", "Clone Complete");
        conditions.set_ready(true, "", "");
        let decision = Decision {
            phase: "Succeeded",
            progress: "100.0%".into(),
            restarts: 0,
            conditions,
        };
        return write(client, events, dv, decision).await;
    }
    let flavor = if clone::is_clone(dv) {
        Flavor::COPY
    } else if source == "upload" {
        Flavor::UPLOAD
    } else {
        Flavor::IMPORT
    };
    let pod = world.get(POD, ns, &(flavor.pod_name)(dv_name));
    let done = annotation(&claim, ann::POD_PHASE) == Some("Succeeded");
    let restarts = restart_count(&claim, pod.as_ref());
    let decision = match (&pod, done) {
        (_, true) => {
            if let Some(pod) = &pod {
                let retain =
                    annotation(&claim, "cdi.kubevirt.io/storage.pod.retainAfterCompletion")
                        == Some("true");
                if !retain {
                    crate::ops::delete(client, POD, ns, name(pod)).await?;
                }
            }
            conditions.set_running(false, "Completed", flavor.complete);
            conditions.set_ready(true, "", "");
            Decision {
                phase: "Succeeded",
                progress: "100.0%".into(),
                restarts,
                conditions,
            }
        }
        (None, false) => {
            let pod = match clone::source_claim(world, dv).filter(|_| clone::is_clone(dv)) {
                Some(source) if clone::colocated(world, &source, &claim) => {
                    clone::copy_pod(world, dv, &source, &claim)
                }
                Some(_) => None, // the target is not (yet) on the source's node
                None if clone::is_clone(dv) => None,
                None => importer_pod(world, dv, &claim),
            };
            if let Some(pod) = pod {
                crate::ops::create(client, POD, &pod).await?;
            }
            Decision {
                phase: flavor.scheduled,
                progress: "N/A".into(),
                restarts,
                conditions,
            }
        }
        (Some(pod), false) => {
            mirror_pod(client, &claim, pod, restarts).await?;
            let (running, reason, message) = running_from_pod(pod);
            conditions.set_running(running, &reason, &message);
            if running {
                conditions.set_ready(false, "TransferRunning", "");
            }
            let progress = annotation(&claim, ann::PROGRESS)
                .unwrap_or("N/A")
                .to_string();
            match phase(pod) {
                "Succeeded" => {
                    // Recorded on the claim first, so the result survives the Pod's deletion.
                    let patch = json!({"metadata": {"annotations": {ann::POD_PHASE: "Succeeded", ann::PROGRESS: "100.0%"}}});
                    crate::ops::merge(client, PVC, ns, dv_name, &patch).await?;
                    conditions.set_running(false, "Completed", flavor.complete);
                    conditions.set_ready(true, "", "");
                    Decision {
                        phase: "Succeeded",
                        progress: "100.0%".into(),
                        restarts,
                        conditions,
                    }
                }
                "Failed" => Decision {
                    phase: "Failed",
                    progress,
                    restarts,
                    conditions,
                },
                // An upload is ready when its worker listens (the Pod is Ready).
                "Running" if flavor.waits_for_ready && !pod_ready(pod) => Decision {
                    phase: flavor.scheduled,
                    progress,
                    restarts,
                    conditions,
                },
                "Running" => Decision {
                    phase: flavor.in_progress,
                    progress,
                    restarts,
                    conditions,
                },
                _ => Decision {
                    phase: flavor.scheduled,
                    progress,
                    restarts,
                    conditions,
                },
            }
        }
    };
    write(client, events, dv, decision).await
}

/// What a worker-populated DataVolume's phases are called.
struct Flavor {
    pod_name: fn(&str) -> String,
    scheduled: &'static str,
    in_progress: &'static str,
    complete: &'static str,
    /// The in-progress phase needs the Pod Ready, not only running.
    waits_for_ready: bool,
}

impl Flavor {
    const IMPORT: Flavor = Flavor {
        pod_name,
        scheduled: "ImportScheduled",
        in_progress: "ImportInProgress",
        complete: "Import Complete",
        waits_for_ready: false,
    };
    const COPY: Flavor = Flavor {
        pod_name: copy_pod_name,
        scheduled: "CloneScheduled",
        in_progress: "CloneInProgress",
        complete: "Clone Complete",
        waits_for_ready: false,
    };
    const UPLOAD: Flavor = Flavor {
        pod_name: upload_pod_name,
        scheduled: "UploadScheduled",
        in_progress: "UploadReady",
        complete: "Upload Complete",
        waits_for_ready: true,
    };
}

/// Whether a worker Pod's container is Ready (an upload worker: its socket listens).
pub fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/containerStatuses/0/ready") == Some(&Value::Bool(true))
}

fn copy_pod_name(claim: &str) -> String {
    format!("cdi-clone-{claim}")
}

/// Decides the clone strategy, records it on the DataVolume, and shapes the target claim:
/// a native clone names its source as `dataSource`; a copy is placed on the source's node.
async fn plan_clone(
    client: &kube::Client,
    world: &World,
    events: &Recorder,
    dv: &Value,
    source: &Value,
    claim: &mut Value,
) -> crate::ops::Result<()> {
    let mut chosen = clone::strategy(world, source, &claim["spec"]);
    if namespace(source) != namespace(dv) {
        chosen =
            clone::Strategy::Copy(Some("a cross-namespace clone is copied by a worker".into()));
    }
    match &chosen {
        clone::Strategy::Native(_) => {
            claim["spec"]["dataSource"] =
                json!({"kind": "PersistentVolumeClaim", "name": name(source)});
        }
        clone::Strategy::Copy(reason) => {
            if let Some(node) = clone::source_node(world, source) {
                claim["metadata"]["annotations"][wk::ANN_SELECTED_NODE] = json!(node);
            }
            let modes_differ = reason
                .as_deref()
                .is_some_and(|r| r.contains("volume modes"));
            if modes_differ {
                let message = format!(
                    "Source volume mode {} and target volume mode {} are incompatible: falling back to host-assisted copy",
                    str_at(source, "/spec/volumeMode").unwrap_or("Filesystem"),
                    claim["spec"]["volumeMode"].as_str().unwrap_or("Filesystem")
                );
                events
                    .warning(dv, DATA_VOLUME, "IncompatibleVolumeModes", &message)
                    .await;
            }
        }
    }
    let annotations = clone::annotations_for(&chosen);
    for (k, v) in annotations.as_object().into_iter().flatten() {
        claim["metadata"]["annotations"][k] = v.clone();
    }
    let patch = json!({"metadata": {"annotations": annotations}});
    crate::ops::merge(client, DATA_VOLUME, namespace(dv), name(dv), &patch).await
}

/// Whether a pending claim waits for its first consumer (and the DataVolume did not ask
/// for immediate binding).
fn waits_for_consumer(world: &World, claim: &Value) -> bool {
    let class = crate::classes::class_of_claim(claim).and_then(|c| world.get(STORAGE_CLASS, "", c));
    class.is_some_and(|c| c["volumeBindingMode"] == "WaitForFirstConsumer")
        && annotation(claim, wk::ANN_SELECTED_NODE).is_none()
        && !claim::binds_immediately(claim)
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
    (
        false,
        text(terminated, "reason"),
        text(terminated, "message"),
    )
}

/// Writes the worker's state into the claim's annotations (what CDI's tools read).
pub(crate) async fn mirror_pod(
    client: &kube::Client,
    claim: &Value,
    pod: &Value,
    restarts: i64,
) -> crate::ops::Result<()> {
    let (running, reason, message) = running_from_pod(pod);
    let wanted = [
        (ann::POD_PHASE, phase(pod).to_string()),
        (ann::POD_RESTARTS, restarts.to_string()),
        (ann::POD_READY, (running && pod_ready(pod)).to_string()),
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
async fn write(
    client: &kube::Client,
    events: &Recorder,
    dv: &Value,
    decision: Decision,
) -> crate::ops::Result<()> {
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
            true => {
                events
                    .warning(dv, DATA_VOLUME, &event.reason, &event.message)
                    .await
            }
            false => {
                events
                    .normal(dv, DATA_VOLUME, &event.reason, &event.message)
                    .await
            }
        }
    }
    if old_phase != decision.phase {
        let source = clone::describe(dv);
        let target = format!("{}/{dv_name}", namespace(dv));
        let note = match decision.phase {
            "CloneScheduled" => Some((
                "CloneScheduled",
                format!("Cloning from {source} into {target} scheduled"),
            )),
            "CloneInProgress" => Some((
                "CloneInProgress",
                format!("Cloning from {source} into {target} in progress"),
            )),
            "Succeeded" if clone::is_clone(dv) => Some((
                "CloneSucceeded",
                format!("Successfully cloned from {source} into {target}"),
            )),
            "Failed" if clone::is_clone(dv) => Some((
                "CloneFailed",
                format!("Cloning from {source} into {target} failed"),
            )),
            "UploadScheduled" => Some((
                "UploadScheduled",
                format!("Upload into {dv_name} scheduled"),
            )),
            "UploadReady" => Some(("UploadReady", format!("Upload into {dv_name} ready"))),
            "Succeeded" if source_type(dv) == Some("upload") => Some((
                "UploadSucceeded",
                format!("Successfully uploaded into {dv_name}"),
            )),
            "Failed" if source_type(dv) == Some("upload") => {
                Some(("UploadFailed", format!("Upload into {dv_name} failed")))
            }
            "ImportScheduled" => Some((
                "ImportScheduled",
                format!("Import into {dv_name} scheduled"),
            )),
            "ImportInProgress" => Some((
                "ImportInProgress",
                format!("Import into {dv_name} in progress"),
            )),
            "Succeeded" => Some((
                "ImportSucceeded",
                format!("Successfully imported into PVC {dv_name}"),
            )),
            "Failed" => Some((
                "ImportFailed",
                format!("Failed to import into PVC {dv_name}"),
            )),
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
    crate::ops::merge(
        client,
        DATA_VOLUME,
        namespace(dv),
        dv_name,
        &json!({"status": status}),
    )
    .await
}
