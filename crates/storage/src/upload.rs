//! CDI's upload controller for plain claims: a PersistentVolumeClaim annotated
//! `cdi.kubevirt.io/storage.upload.target` (what `virtctl image-upload pvc` creates) gets an
//! upload worker `cdi-upload-<claim>` once bound, its state mirrored into the claim's
//! `cdi.kubevirt.io/storage.pod.*` annotations (virtctl waits for `storage.pod.ready` and then
//! `storage.pod.phase: Succeeded`). Claims of an upload DataVolume are left to the DataVolume
//! controller.

use serde_json::{json, Value};

use crate::importer_pod::{importer_pod, upload_pod_name};
use crate::kinds::{self, annotation, name, namespace, phase, DATA_VOLUME, POD, PVC};
use crate::well_known::ann;
use crate::world::World;

/// One pass over the upload-target claims.
pub async fn reconcile(client: &kube::Client, world: &World) {
    for claim in world.list(PVC) {
        if annotation(&claim, ann::UPLOAD_TARGET).is_none()
            || kinds::is_deleting(&claim)
            || world
                .get(DATA_VOLUME, namespace(&claim), name(&claim))
                .is_some()
        {
            continue;
        }
        if let Err(e) = reconcile_one(client, world, &claim).await {
            tracing::warn!(error = %e, claim = name(&claim), "upload claim reconcile failed; retrying");
        }
    }
}

/// The DataVolume-shaped description of a plain claim's upload (what the worker Pod is
/// built from): its annotations and the claim's content type and preallocation.
fn as_upload_source(claim: &Value) -> Value {
    json!({
        "metadata": {"uid": kinds::uid(claim), "annotations": {}},
        "spec": {
            "source": {"upload": {}},
            "contentType": annotation(claim, ann::CONTENT_TYPE).unwrap_or("kubevirt"),
            "preallocation": annotation(claim, ann::PREALLOCATION_REQUESTED) == Some("true"),
        },
    })
}

async fn reconcile_one(
    client: &kube::Client,
    world: &World,
    claim: &Value,
) -> crate::ops::Result<()> {
    let ns = namespace(claim);
    if phase(claim) != "Bound" || annotation(claim, ann::POD_PHASE) == Some("Succeeded") {
        if let Some(pod) = world.get(POD, ns, &upload_pod_name(name(claim))) {
            // Done: the result is on the claim; the worker goes.
            if annotation(claim, ann::POD_PHASE) == Some("Succeeded") {
                crate::ops::delete(client, POD, ns, name(&pod)).await?;
            }
        }
        return Ok(());
    }
    match world.get(POD, ns, &upload_pod_name(name(claim))) {
        None => {
            if let Some(pod) = importer_pod(world, &as_upload_source(claim), claim) {
                crate::ops::create(client, POD, &pod).await?;
            }
            Ok(())
        }
        Some(pod) => {
            let restarts = pod
                .pointer("/status/containerStatuses/0/restartCount")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            crate::datavolume::mirror_pod(client, claim, &pod, restarts).await
        }
    }
}
