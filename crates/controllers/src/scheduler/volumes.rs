//! Where a Pod's bound volumes let it run (kube-scheduler's VolumeBinding filter): the
//! node-local PersistentVolumes of the local provisioner carry `nodeAffinity`, and a VM
//! whose disk lives on one node must start there again.
//!
//! A launcher Pod names no claims itself (the node agent reads them from the VMI), so its
//! claims are its VMI's `persistentVolumeClaim` and `dataVolume` volumes and, for a VM with
//! persistent TPM or EFI state, the VM's state claim. Unbound claims impose nothing: the
//! binder provisions them on the node the Pod lands on.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::DynamicObject;
use kube::Api;
use serde_json::Value;

use oxivirt_api::vmi_claims::{claim_names, state_claim};

use crate::object::{str_at, vmi_resource};

/// One `nodeSelectorTerms` array per bound volume of `pod` that restricts its node.
/// Lookups that fail leave the volume out (the node agent reports an unusable volume).
pub(crate) async fn node_terms(client: &kube::Client, pod: &Value) -> Vec<Value> {
    let ns = str_at(pod, "/metadata/namespace").unwrap_or("default");
    let mut claims = claim_names(&pod["spec"]["volumes"]);
    if let Some(vmi_name) = pod["metadata"]["annotations"]["kubevirt.io/domain"].as_str() {
        let vmis: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &vmi_resource());
        if let Ok(Some(vmi)) = vmis.get_opt(vmi_name).await {
            let vmi = serde_json::to_value(&vmi).unwrap_or_default();
            claims.extend(claim_names(&vmi["spec"]["volumes"]));
            claims.extend(state_claim(&vmi));
        }
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let mut terms = Vec::new();
    for claim in claims {
        let Ok(Some(pvc)) = pvcs.get_opt(&claim).await else {
            continue;
        };
        let Some(volume) = pvc
            .spec
            .and_then(|s| s.volume_name)
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        let Ok(Some(pv)) = pvs.get_opt(&volume).await else {
            continue;
        };
        let required = pv
            .spec
            .and_then(|s| s.node_affinity)
            .and_then(|a| a.required)
            .map(|r| r.node_selector_terms);
        if let Some(required) = required {
            terms.push(serde_json::to_value(required).unwrap_or_default());
        }
    }
    terms
}
