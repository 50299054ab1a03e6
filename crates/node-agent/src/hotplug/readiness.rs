//! Where a hot-plugged volume's claim is on its way to attachable, in upstream's
//! `status.volumeStatus` words: `Pending` while the claim is missing or unbound (a claim on
//! a `WaitForFirstConsumer` class waits for the binder to provision it on this VMI's node),
//! `Bound` while its DataVolume is still populating, then attachable.

use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use kube::Api;
use serde_json::Value;

/// A hot-plugged volume that cannot be attached yet, as `volumeStatus` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Waiting {
    /// `Pending`, `Bound` or `MountedToPod`.
    pub(super) phase: &'static str,
    /// `FailedPvcNotFound`, `PVCNotReady`, `FailedDataVolumeImport` or `FailedHotplugSync`.
    pub(super) reason: &'static str,
    pub(super) message: String,
    /// Whether the claim is on its way (being bound or populated), so it is worth looking
    /// again soon; a failure or a lost claim is only retried at the normal pace.
    pub(super) on_its_way: bool,
}

impl Waiting {
    pub(super) fn sync_failed(phase: &'static str, message: String) -> Self {
        Waiting {
            phase,
            reason: "FailedHotplugSync",
            message,
            on_its_way: false,
        }
    }
}

/// The claim and DataVolume names of a hotpluggable volume.
pub(super) fn claim_of(volume: &Value) -> Option<(&str, Option<&str>)> {
    if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
        return Some((claim, None));
    }
    let dv = volume["dataVolume"]["name"].as_str()?;
    Some((dv, Some(dv)))
}

/// Judges the stored claim and DataVolume: `None` when both are ready to attach.
pub(super) fn judge(
    claim: &str,
    pvc: Option<&Value>,
    dv_name: Option<&str>,
    dv: Option<&Value>,
) -> Option<Waiting> {
    let Some(pvc) = pvc else {
        return Some(Waiting {
            phase: "Pending",
            reason: "FailedPvcNotFound",
            message: format!("PVC {claim} not found"),
            // A DataVolume's claim is created by CDI; a bare one may just be slow to come.
            on_its_way: true,
        });
    };
    let phase = pvc["status"]["phase"].as_str().unwrap_or("Pending");
    if phase != "Bound" {
        return Some(Waiting {
            phase: "Pending",
            reason: "PVCNotReady",
            message: format!("PVC is in phase {phase}"),
            on_its_way: phase == "Pending",
        });
    }
    let dv_name = dv_name?;
    // A claim without its DataVolume (deleted, or adopted) is used as it is.
    let dv_phase = dv.map(|dv| dv["status"]["phase"].as_str().unwrap_or("Pending"));
    match dv_phase {
        None | Some("Succeeded") => None,
        Some("Failed") => Some(Waiting {
            phase: "Bound",
            reason: "FailedDataVolumeImport",
            message: format!("DataVolume {dv_name} failed"),
            on_its_way: false,
        }),
        Some(dv_phase) => Some(Waiting {
            phase: "Bound",
            reason: "PVCNotReady",
            message: format!("PVC is in phase Bound, DataVolume {dv_name} is in phase {dv_phase}"),
            on_its_way: true,
        }),
    }
}

/// Reads the volume's claim (and DataVolume) and judges them.
///
/// # Errors
/// A failed API read, in words for the status message.
pub(super) async fn check(
    client: &kube::Client,
    namespace: &str,
    volume: &Value,
) -> Result<Option<Waiting>, String> {
    let Some((claim, dv_name)) = claim_of(volume) else {
        return Ok(None);
    };
    let claims: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "PersistentVolumeClaim")),
    );
    let pvc = claims
        .get_opt(claim)
        .await
        .map_err(|e| format!("reading PersistentVolumeClaim {namespace}/{claim}: {e}"))?;
    let pvc = pvc.map(|p| p.data);
    let dv = match dv_name {
        // Only a bound claim makes its DataVolume's phase matter.
        Some(dv_name)
            if pvc
                .as_ref()
                .is_some_and(|p| p["status"]["phase"] == "Bound") =>
        {
            let dvs: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                namespace,
                &ApiResource::from_gvk(&GroupVersionKind::gvk(
                    "cdi.kubevirt.io",
                    "v1beta1",
                    "DataVolume",
                )),
            );
            dvs.get_opt(dv_name)
                .await
                .map_err(|e| format!("reading DataVolume {namespace}/{dv_name}: {e}"))?
                .map(|d| d.data)
        }
        _ => None,
    };
    Ok(judge(claim, pvc.as_ref(), dv_name, dv.as_ref()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_claim_waiting_for_its_first_consumer_is_pending() {
        let pvc = json!({"status": {"phase": "Pending"}});
        let waiting = judge("d", Some(&pvc), Some("d"), None).expect("waiting");
        assert_eq!(
            (waiting.phase, waiting.reason, waiting.message.as_str()),
            ("Pending", "PVCNotReady", "PVC is in phase Pending")
        );
        assert!(waiting.on_its_way);
        let lost = json!({"status": {"phase": "Lost"}});
        assert!(
            !judge("d", Some(&lost), Some("d"), None)
                .expect("lost")
                .on_its_way
        );
        let missing = judge("d", None, Some("d"), None).expect("waiting");
        assert_eq!(missing.reason, "FailedPvcNotFound");
    }

    #[test]
    fn a_bound_claim_waits_for_its_data_volume_to_succeed() {
        let pvc = json!({"status": {"phase": "Bound"}});
        let importing = json!({"status": {"phase": "ImportInProgress"}});
        let waiting = judge("d", Some(&pvc), Some("d"), Some(&importing)).expect("waiting");
        assert_eq!(waiting.phase, "Bound");
        assert!(waiting.message.contains("ImportInProgress"), "{waiting:?}");
        assert!(waiting.on_its_way);
        let failed = json!({"status": {"phase": "Failed"}});
        let waiting = judge("d", Some(&pvc), Some("d"), Some(&failed)).expect("failed");
        assert_eq!(waiting.reason, "FailedDataVolumeImport");
        assert!(!waiting.on_its_way);
        let done = json!({"status": {"phase": "Succeeded"}});
        assert_eq!(judge("d", Some(&pvc), Some("d"), Some(&done)), None);
        assert_eq!(judge("c", Some(&pvc), None, None), None);
    }

    #[test]
    fn claims_are_named_by_either_source() {
        let pvc = json!({"persistentVolumeClaim": {"claimName": "c"}});
        let dv = json!({"dataVolume": {"name": "d"}});
        assert_eq!(claim_of(&pvc), Some(("c", None)));
        assert_eq!(claim_of(&dv), Some(("d", Some("d"))));
        assert_eq!(claim_of(&json!({"containerDisk": {}})), None);
    }
}
