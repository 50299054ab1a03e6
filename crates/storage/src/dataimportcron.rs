//! DataImportCrons (manual §9.3): import `spec.template` on `spec.schedule` into DataVolumes
//! named after the managed DataSource, point the DataSource at the newest imported claim,
//! and keep `importsToKeep` imports (`garbageCollect: Outdated`, the default).
//!
//! Differences from upstream, on purpose for now: a registry source is re-imported at every
//! scheduled time (upstream polls the image digest and imports only when it changed), so the
//! DataVolume name carries the scheduled minute instead of the digest.

use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use crate::cron::Schedule;
use crate::events::Recorder;
use crate::kinds::{
    self, annotation, label, name, namespace, phase, str_at, DATA_IMPORT_CRON, DATA_SOURCE,
    DATA_VOLUME,
};
use crate::world::World;

/// Label on every DataVolume and DataSource a cron manages (upstream's).
pub const CRON_LABEL: &str = "cdi.kubevirt.io/dataImportCron";

fn condition(kind: &str, status: bool, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": kind, "status": if status { "True" } else { "False" }, "reason": reason, "message": message,
           "lastTransitionTime": now, "lastHeartbeatTime": now})
}

/// One pass over every DataImportCron. Idempotent.
pub async fn reconcile(client: &kube::Client, world: &World, events: &Recorder) {
    for cron in world.list(DATA_IMPORT_CRON) {
        if kinds::is_deleting(&cron) {
            continue;
        }
        if let Err(e) = reconcile_one(client, world, events, &cron).await {
            tracing::warn!(error = %e, "DataImportCron reconcile failed; retrying");
        }
    }
}

async fn reconcile_one(
    client: &kube::Client,
    world: &World,
    events: &Recorder,
    cron: &Value,
) -> crate::ops::Result<()> {
    let (ns, cron_name) = (namespace(cron), name(cron));
    let managed = str_at(cron, "/spec/managedDataSource")
        .unwrap_or(cron_name)
        .to_string();
    let Some(schedule) = str_at(cron, "/spec/schedule").and_then(Schedule::parse) else {
        let message = format!(
            "Illegal cron schedule {:?}",
            str_at(cron, "/spec/schedule").unwrap_or_default()
        );
        events
            .warning(cron, DATA_IMPORT_CRON, "InvalidSchedule", &message)
            .await;
        return Ok(());
    };
    let now = Timestamp::now();
    let last: Option<Timestamp> =
        str_at(cron, "/status/lastExecutionTimestamp").and_then(|t| t.parse().ok());
    let mut imports: Vec<Value> = world
        .list(DATA_VOLUME)
        .into_iter()
        .filter(|dv| namespace(dv) == ns && label(dv, CRON_LABEL) == Some(cron_name))
        .collect();
    imports.sort_by(|a, b| {
        str_at(a, "/metadata/creationTimestamp").cmp(&str_at(b, "/metadata/creationTimestamp"))
    });
    // The first import happens at once; later ones at each scheduled time.
    let due = match last {
        None => Some(now),
        Some(last) => schedule.next_after(last).filter(|next| *next <= now),
    };
    let mut status = cron["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    if let Some(at) = due {
        let dv_name = format!("{managed}-{:x}", at.as_second() / 60);
        if world.get(DATA_VOLUME, ns, &dv_name).is_none() {
            let mut annotations = cron["spec"]["template"]["metadata"]["annotations"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            if let Some(immediate) = annotation(cron, crate::well_known::ann::BIND_IMMEDIATE) {
                annotations.insert(
                    crate::well_known::ann::BIND_IMMEDIATE.into(),
                    json!(immediate),
                );
            }
            let mut owners = Vec::new();
            if str_at(cron, "/spec/retentionPolicy") == Some("None") {
                owners.push(kinds::owner_ref(cron, &DATA_IMPORT_CRON, false));
            }
            let dv = json!({
                "apiVersion": DATA_VOLUME.api_version(), "kind": DATA_VOLUME.kind,
                "metadata": {"name": dv_name, "namespace": ns, "labels": {CRON_LABEL: cron_name},
                             "annotations": annotations, "ownerReferences": owners},
                "spec": cron["spec"]["template"]["spec"],
            });
            crate::ops::create(client, DATA_VOLUME, &dv).await?;
            events
                .normal(
                    cron,
                    DATA_IMPORT_CRON,
                    "ImportScheduled",
                    &format!("Import into {dv_name} scheduled"),
                )
                .await;
        }
        status["lastExecutionTimestamp"] = json!(kinds::now());
        status["currentImports"] = json!([{"DataVolumeName": dv_name, "Digest": ""}]);
    }
    let newest_done = imports.iter().rev().find(|dv| phase(dv) == "Succeeded");
    let in_progress = imports
        .iter()
        .any(|dv| phase(dv) != "Succeeded" && phase(dv) != "Failed");
    let stamp = kinds::now();
    if let Some(done) = newest_done {
        point_data_source(client, world, cron, &managed, done).await?;
        status["lastImportedPVC"] = json!({"namespace": ns, "name": name(done)});
        if status["lastImportTimestamp"].is_null()
            || status["lastImportedPVC"]["name"] != name(done)
        {
            status["lastImportTimestamp"] = json!(stamp);
        }
    }
    let up_to_date = newest_done.is_some() && !in_progress;
    let conditions = json!([
        condition(
            "Progressing",
            in_progress,
            if in_progress {
                "ImportProgressing"
            } else {
                "NoImport"
            },
            if in_progress {
                "Import is progressing"
            } else {
                "No current import"
            },
            &stamp
        ),
        condition(
            "UpToDate",
            up_to_date,
            if up_to_date {
                "UpToDate"
            } else {
                "ImportProgressing"
            },
            if up_to_date {
                "Latest import is up to date"
            } else {
                "Import is progressing"
            },
            &stamp
        ),
    ]);
    let same = |a: &Value, b: &Value| {
        a["type"] == b["type"] && a["status"] == b["status"] && a["reason"] == b["reason"]
    };
    let unchanged_conditions = cron["status"]["conditions"].as_array().is_some_and(|old| {
        old.len() == 2
            && old
                .iter()
                .zip(conditions.as_array().into_iter().flatten())
                .all(|(a, b)| same(a, b))
    });
    if !unchanged_conditions {
        status["conditions"] = conditions;
    }
    if status != cron["status"] {
        crate::ops::merge(
            client,
            DATA_IMPORT_CRON,
            ns,
            cron_name,
            &json!({"status": status}),
        )
        .await?;
    }
    collect_garbage(client, cron, &imports, newest_done).await
}

/// Creates or repoints the managed DataSource at the newest imported claim.
async fn point_data_source(
    client: &kube::Client,
    world: &World,
    cron: &Value,
    managed: &str,
    done: &Value,
) -> crate::ops::Result<()> {
    let ns = namespace(cron);
    let source = json!({"pvc": {"namespace": ns, "name": name(done)}});
    match world.get(DATA_SOURCE, ns, managed) {
        Some(existing) if existing["spec"]["source"] == source => Ok(()),
        Some(_) => {
            crate::ops::merge(
                client,
                DATA_SOURCE,
                ns,
                managed,
                &json!({"spec": {"source": source}}),
            )
            .await
        }
        None => {
            let mut owners = Vec::new();
            if str_at(cron, "/spec/retentionPolicy") == Some("None") {
                owners.push(kinds::owner_ref(cron, &DATA_IMPORT_CRON, false));
            }
            let data_source = json!({
                "apiVersion": DATA_SOURCE.api_version(), "kind": DATA_SOURCE.kind,
                "metadata": {"name": managed, "namespace": ns, "labels": {CRON_LABEL: name(cron)}, "ownerReferences": owners},
                "spec": {"source": source},
            });
            crate::ops::create(client, DATA_SOURCE, &data_source)
                .await
                .map(|_| ())
        }
    }
}

/// `garbageCollect: Outdated`: keeps the newest `importsToKeep` (default 3) succeeded imports
/// and never the one the DataSource uses.
async fn collect_garbage(
    client: &kube::Client,
    cron: &Value,
    imports: &[Value],
    newest: Option<&Value>,
) -> crate::ops::Result<()> {
    if str_at(cron, "/spec/garbageCollect").unwrap_or("Outdated") != "Outdated" {
        return Ok(());
    }
    let keep = cron["spec"]["importsToKeep"].as_u64().unwrap_or(3).max(1) as usize;
    let done: Vec<&Value> = imports
        .iter()
        .filter(|dv| phase(dv) == "Succeeded")
        .collect();
    let excess = done.len().saturating_sub(keep);
    for dv in done.into_iter().take(excess) {
        if newest.is_some_and(|n| name(n) == name(dv)) {
            continue;
        }
        crate::ops::delete(client, DATA_VOLUME, namespace(dv), name(dv)).await?;
    }
    Ok(())
}
