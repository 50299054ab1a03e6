//! DataSources (boot sources, manual §7.1.1.2): a name for a PVC (or snapshot) that
//! `dataVolumeTemplates[].spec.sourceRef` clones. The status mirrors the source and says
//! whether it is ready to clone (`Ready`: the claim exists and, if a DataVolume populates
//! it, that DataVolume has succeeded).

use serde_json::{json, Value};

use crate::kinds::{self, name, namespace, phase, str_at, DATA_SOURCE, DATA_VOLUME, PVC};
use crate::world::World;

/// The `Ready` condition a DataSource should show: (status, reason, message).
pub fn readiness(world: &World, source: &Value) -> (&'static str, String, String) {
    let pvc = &source["spec"]["source"]["pvc"];
    let Some(claim_name) = pvc["name"].as_str() else {
        return ("False", "NoSource".into(), "No source PVC set".into());
    };
    let ns = pvc["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace(source));
    let Some(claim) = world.get(PVC, ns, claim_name) else {
        return (
            "False",
            "NotFound".into(),
            format!("PVC {ns}/{claim_name} not found"),
        );
    };
    if let Some(dv) = world.get(DATA_VOLUME, ns, claim_name) {
        let dv_phase = phase(&dv);
        if dv_phase != "Succeeded" {
            return (
                "False",
                dv_phase.to_string(),
                format!("DataVolume {ns}/{claim_name} is {dv_phase}"),
            );
        }
    } else if phase(&claim) != "Bound" {
        return (
            "False",
            "Pending".into(),
            format!("PVC {ns}/{claim_name} is not bound"),
        );
    }
    (
        "True",
        "Ready".into(),
        "DataSource is ready to be consumed".into(),
    )
}

/// Refreshes every DataSource's status. Idempotent.
pub async fn reconcile(client: &kube::Client, world: &World) {
    for source in world.list(DATA_SOURCE) {
        let (status, reason, message) = readiness(world, &source);
        let current = source["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
            .unwrap_or_default();
        let unchanged = current["status"] == status
            && current["reason"] == reason.as_str()
            && current["message"] == message.as_str()
            && source["status"]["source"] == source["spec"]["source"];
        if unchanged {
            continue;
        }
        let now = kinds::now();
        let transition = if current["status"] == status {
            current["lastTransitionTime"].clone()
        } else {
            json!(now)
        };
        let patch = json!({"status": {
            "source": source["spec"]["source"],
            "conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message,
                            "lastTransitionTime": transition, "lastHeartbeatTime": now}],
        }});
        if let Err(e) = crate::ops::merge(
            client,
            DATA_SOURCE,
            namespace(&source),
            name(&source),
            &patch,
        )
        .await
        {
            tracing::warn!(error = %e, "cannot write DataSource status");
        }
    }
}

/// A DataVolume with its `sourceRef` resolved into `spec.source` (what it clones), or why not.
///
/// # Errors
/// A message when the DataSource is missing or names no PVC.
pub fn resolve(world: &World, dv: &Value) -> Result<Value, String> {
    let reference = &dv["spec"]["sourceRef"];
    if reference.is_null() || !dv["spec"]["source"].is_null() {
        return Ok(dv.clone());
    }
    let ns = reference["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace(dv));
    let source_name = str_at(reference, "/name").unwrap_or_default();
    let source = world
        .get(DATA_SOURCE, ns, source_name)
        .ok_or_else(|| format!("DataSource {ns}/{source_name} not found"))?;
    let pvc = &source["spec"]["source"]["pvc"];
    let claim = pvc["name"]
        .as_str()
        .ok_or_else(|| format!("DataSource {ns}/{source_name} names no PVC"))?;
    let claim_ns = pvc["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(ns);
    let mut resolved = dv.clone();
    resolved["spec"]["source"] = json!({"pvc": {"namespace": claim_ns, "name": claim}});
    Ok(resolved)
}
