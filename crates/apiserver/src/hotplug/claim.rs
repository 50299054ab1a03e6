//! Whether the claim behind an `addvolume` request can be hot-plugged.
//!
//! A claim still on its way is accepted, as upstream accepts it: a DataVolume that is
//! importing or waiting for its first consumer, a claim that is `Pending` on a
//! `WaitForFirstConsumer` class. The running VMI is that first consumer: once its spec
//! names the claim, the binder provisions it on the VMI's node (`selected-node` from the
//! launcher Pod), CDI populates it there, and the node agent attaches it when it is bound
//! and populated, reporting the progress in `status.volumeStatus`. What can never become
//! usable is refused: a missing claim, a failed DataVolume, a claim or DataVolume being
//! deleted, a claim whose volume is lost.

use serde_json::Value;

use super::AddVolume;
use crate::error::{ApiError, ApiResult, Cause};
use crate::service::Api;

/// Why a claim cannot be hot-plugged: (the request field it comes from, the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) field: &'static str,
    pub(super) message: String,
}

fn deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// The field of the request that names the claim.
fn source_field(request: &AddVolume) -> &'static str {
    if request.data_volume.is_some() {
        "volumeSource.dataVolume.name"
    } else {
        "volumeSource.persistentVolumeClaim.claimName"
    }
}

/// Judges a DataVolume (when the source is one) and the claim as they are stored.
///
/// `Err` with a 400 for what does not exist, `Ok(Some(refusal))` for what exists but
/// cannot become usable, `Ok(None)` for a claim that is, or will be, attachable.
pub(super) fn judge(
    ns: &str,
    request: &AddVolume,
    dv: Option<&Value>,
    pvc: Option<&Value>,
) -> ApiResult<Option<Refusal>> {
    let name = &request.name;
    let field = source_field(request);
    let refuse = |message: String| {
        Ok(Some(Refusal {
            field,
            message: format!("Unable to add volume [{name}]: {message}"),
        }))
    };
    if let Some(dv_name) = &request.data_volume {
        let Some(dv) = dv else {
            return Err(ApiError::BadRequest(format!(
                "Unable to add volume [{name}]: DataVolume {ns}/{dv_name} does not exist"
            )));
        };
        if deleting(dv) {
            return refuse(format!("DataVolume {ns}/{dv_name} is being deleted"));
        }
        if dv["status"]["phase"] == "Failed" {
            return refuse(format!(
                "DataVolume {ns}/{dv_name} has failed (phase Failed)"
            ));
        }
    }
    let claim = &request.claim;
    let Some(pvc) = pvc else {
        // The DataVolume controller creates its claim: not there yet is on its way.
        if request.data_volume.is_some() {
            return Ok(None);
        }
        return Err(ApiError::BadRequest(format!(
            "Unable to add volume [{name}]: PersistentVolumeClaim {ns}/{claim} does not exist"
        )));
    };
    if deleting(pvc) {
        return refuse(format!(
            "PersistentVolumeClaim {ns}/{claim} is being deleted"
        ));
    }
    if pvc["status"]["phase"] == "Lost" {
        return refuse(format!(
            "PersistentVolumeClaim {ns}/{claim} has lost its volume (phase Lost)"
        ));
    }
    Ok(None)
}

/// Refuses a claim that does not exist (400) or cannot become usable (422 naming the
/// request field), see the module doc.
///
/// # Errors
/// As described; 500 when the kinds are not served.
pub(super) async fn check(
    api: &Api,
    ns: &str,
    object: (&str, &str),
    request: &AddVolume,
) -> ApiResult<()> {
    let dv = match &request.data_volume {
        Some(dv_name) => {
            let info = api
                .registry
                .by_group_resource("cdi.kubevirt.io", "datavolumes")
                .ok_or_else(|| ApiError::internal("datavolumes.cdi.kubevirt.io are not served"))?;
            api.get(&info, ns, dv_name, &info.storage_version)
                .await
                .ok()
        }
        None => None,
    };
    let info = api
        .registry
        .by_group_resource("", "persistentvolumeclaims")
        .ok_or_else(|| ApiError::internal("persistentvolumeclaims are not served"))?;
    let pvc = api.get(&info, ns, &request.claim, "v1").await.ok();
    match judge(ns, request, dv.as_ref(), pvc.as_ref())? {
        None => Ok(()),
        Some(refusal) => {
            let (kind, name) = object;
            Err(ApiError::invalid(
                "kubevirt.io",
                kind,
                name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: refusal.message,
                    field: refusal.field.into(),
                }],
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data_volume_request() -> AddVolume {
        super::super::parse_add(
            br#"{"name":"d","disk":{},"volumeSource":{"dataVolume":{"name":"d"}}}"#,
        )
        .expect("valid")
    }

    fn claim_request() -> AddVolume {
        super::super::parse_add(
            br#"{"name":"c","disk":{},"volumeSource":{"persistentVolumeClaim":{"claimName":"c"}}}"#,
        )
        .expect("valid")
    }

    #[test]
    fn a_data_volume_waiting_for_its_first_consumer_is_accepted() {
        let dv = json!({"status": {"phase": "WaitForFirstConsumer"}});
        let pvc = json!({"status": {"phase": "Pending"}});
        let request = data_volume_request();
        assert_eq!(
            judge("ns", &request, Some(&dv), Some(&pvc)).ok(),
            Some(None)
        );
        // Its claim may not be created yet.
        assert_eq!(judge("ns", &request, Some(&dv), None).ok(), Some(None));
        let importing = json!({"status": {"phase": "ImportInProgress"}});
        assert_eq!(
            judge("ns", &request, Some(&importing), Some(&pvc)).ok(),
            Some(None)
        );
    }

    #[test]
    fn a_failed_or_deleted_data_volume_is_refused_naming_the_field() {
        let request = data_volume_request();
        let failed = json!({"status": {"phase": "Failed"}});
        let refusal = judge("ns", &request, Some(&failed), None)
            .expect("judged")
            .expect("refused");
        assert_eq!(refusal.field, "volumeSource.dataVolume.name");
        assert_eq!(
            refusal.message,
            "Unable to add volume [d]: DataVolume ns/d has failed (phase Failed)"
        );
        let going = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Succeeded"}});
        let refusal = judge("ns", &request, Some(&going), None)
            .expect("judged")
            .expect("refused");
        assert!(refusal.message.contains("is being deleted"), "{refusal:?}");
        let missing = judge("ns", &request, None, None).expect_err("missing");
        assert!(
            missing
                .to_string()
                .contains("DataVolume ns/d does not exist"),
            "{missing}"
        );
    }

    #[test]
    fn a_pending_claim_is_accepted_and_a_lost_or_missing_one_refused() {
        let request = claim_request();
        let pending = json!({"status": {"phase": "Pending"}});
        assert_eq!(judge("ns", &request, None, Some(&pending)).ok(), Some(None));
        let lost = json!({"status": {"phase": "Lost"}});
        let refusal = judge("ns", &request, None, Some(&lost))
            .expect("judged")
            .expect("refused");
        assert_eq!(
            refusal.field,
            "volumeSource.persistentVolumeClaim.claimName"
        );
        assert!(refusal.message.contains("phase Lost"), "{refusal:?}");
        let going = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Bound"}});
        assert!(judge("ns", &request, None, Some(&going))
            .expect("judged")
            .is_some());
        let missing = judge("ns", &request, None, None).expect_err("missing");
        assert!(
            missing
                .to_string()
                .contains("PersistentVolumeClaim ns/c does not exist"),
            "{missing}"
        );
    }
}
