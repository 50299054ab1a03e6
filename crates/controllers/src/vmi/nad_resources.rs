//! Device-plugin resources of a VMI's secondary networks, as upstream's virt-controller
//! asks for them: a NetworkAttachmentDefinition annotated
//! `k8s.v1.cni.cncf.io/resourceName: <resource>` (for Linux bridges
//! `bridge.network.kubevirt.io/<bridge>`, manual §8.5.2) makes the launcher Pod request and
//! limit one `<resource>` per network using it, so only nodes advertising it (the node agent's
//! bridge marker) are eligible. NADs that cannot be read add nothing: the node agent names a
//! missing NAD when it plumbs the Pod.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use kube::Api;
use serde_json::{json, Value};

use crate::well_known::COMPUTE_CONTAINER;

/// The NAD annotation naming the resource its users need.
pub(super) const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";

/// `(namespace, name)` of the NAD a `multus.networkName` names from `vmi_namespace`.
fn nad_reference<'a>(network_name: &'a str, vmi_namespace: &'a str) -> (&'a str, &'a str) {
    network_name
        .split_once('/')
        .unwrap_or((vmi_namespace, network_name))
}

/// Resource name → count for the VMI's multus networks.
pub(super) async fn network_resources(client: &kube::Client, vmi: &Value) -> BTreeMap<String, i64> {
    let namespace = vmi["metadata"]["namespace"].as_str().unwrap_or_default();
    let gvk = GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition");
    // Multus' CRD spells its plural with dashes.
    let kind = ApiResource::from_gvk_with_plural(&gvk, "network-attachment-definitions");
    let mut out = BTreeMap::new();
    let networks = vmi["spec"]["networks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for network in networks {
        let Some(network_name) = network["multus"]["networkName"].as_str() else {
            continue;
        };
        let (ns, name) = nad_reference(network_name, namespace);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &kind);
        let nad = match api.get_opt(name).await {
            Ok(Some(nad)) => nad,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(nad = %format!("{ns}/{name}"), error = %e, "cannot read the NetworkAttachmentDefinition for its resourceName");
                continue;
            }
        };
        if let Some(resource) = nad
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RESOURCE_NAME_ANNOTATION))
            .filter(|r| !r.is_empty())
        {
            *out.entry(resource.clone()).or_insert(0) += 1;
        }
    }
    out
}

/// Adds `resources` to the compute container's requests and limits (extended resources
/// must have both, equal).
pub(super) fn add_to_pod(pod: &mut Value, resources: &BTreeMap<String, i64>) {
    if resources.is_empty() {
        return;
    }
    let Some(containers) = pod["spec"]["containers"].as_array_mut() else {
        return;
    };
    let Some(compute) = containers
        .iter_mut()
        .find(|c| c["name"] == COMPUTE_CONTAINER)
    else {
        return;
    };
    for kind in ["requests", "limits"] {
        if !compute["resources"][kind].is_object() {
            compute["resources"][kind] = json!({});
        }
        for (name, count) in resources {
            compute["resources"][kind][name] = json!(count.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_may_name_another_namespace() {
        assert_eq!(nad_reference("br", "vms"), ("vms", "br"));
        assert_eq!(nad_reference("shared/br", "vms"), ("shared", "br"));
    }

    #[test]
    fn resources_go_into_the_compute_containers_requests_and_limits() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "compute", "resources": {"requests": {"memory": "1Gi"}}},
            {"name": "guest-console-log"}]}});
        let resources = BTreeMap::from([("bridge.network.kubevirt.io/br1".to_string(), 2)]);
        add_to_pod(&mut pod, &resources);
        let compute = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(compute["requests"]["memory"], "1Gi");
        assert_eq!(compute["requests"]["bridge.network.kubevirt.io/br1"], "2");
        assert_eq!(compute["limits"]["bridge.network.kubevirt.io/br1"], "2");
        assert!(pod["spec"]["containers"][1]["resources"].is_null());
    }
}
