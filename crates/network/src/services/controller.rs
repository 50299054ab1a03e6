//! The cluster-wide Service controller (the API server's allocators and the endpoints
//! controllers of Kubernetes): gives Services their ClusterIP, NodePorts and LoadBalancer
//! IP, creates `kube-system/kube-dns`, and keeps one Endpoints and one EndpointSlice per
//! selector Service in step with the launcher Pods and VMIs it selects.
//!
//! Level-triggered: every change of a Service, Pod or VMI re-evaluates everything; writes
//! happen only when the desired object differs from what this controller last wrote.
//! Every `.await` is a cancellation point.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Api;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::allocate::{self, Taken, DNS_SERVICE};
use super::endpoints;
use crate::config::NetworkConfig;

const MANAGER: &str = "oxivirt-service-controller";
/// How long changes gather before a pass.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs the controller until the task is dropped.
///
/// # Errors
/// Never in practice: API errors are logged and retried on the next change.
pub async fn run(client: kube::Client, config: NetworkConfig) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstance");
    let vmi_kind = ApiResource::from_gvk(&gvk);
    let vmi_api: Api<DynamicObject> = Api::all_with(client.clone(), &vmi_kind);
    let services = super::mirror(Api::<Service>::all(client.clone()), (), changed.clone()).await;
    let pods = super::mirror(Api::<Pod>::all(client.clone()), (), changed.clone()).await;
    let vmis = super::mirror(vmi_api, vmi_kind, changed.clone()).await;
    ensure_dns_service(&client, &config).await;
    let mut written: HashMap<String, Value> = HashMap::new();
    let mut allocated = Taken::default();
    loop {
        let svcs: Vec<Value> = services
            .state()
            .iter()
            .filter_map(|s| serde_json::to_value(s.as_ref()).ok())
            .collect();
        // Pods and VMIs matter only to Services that select them; without one, a node
        // starting VMs need not copy them all on each of their status changes.
        let selecting = svcs.iter().any(|s| s["spec"]["selector"].is_object());
        let (pod_list, vmi_list): (Vec<Value>, Vec<Value>) = if selecting {
            (
                pods.state()
                    .iter()
                    .filter_map(|p| serde_json::to_value(p.as_ref()).ok())
                    .collect(),
                vmis.state()
                    .iter()
                    .filter_map(|v| serde_json::to_value(v.as_ref()).ok())
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        allocate_all(&client, &config, &svcs, &mut allocated).await;
        endpoints_all(&client, &svcs, &pod_list, &vmi_list, &mut written).await;
        changed.notified().await;
        // Let a burst of changes (VMs starting) gather into one pass.
        tokio::time::sleep(SETTLE).await;
    }
}

/// Creates `kube-system/kube-dns` (UDP and TCP 53, no selector: the node proxies serve it).
/// On a dual-stack cluster it is `PreferDualStack`, and one created single-stack before the
/// cluster got its IPv6 Service range is upgraded (the allocator then adds the IPv6 address).
async fn ensure_dns_service(client: &kube::Client, config: &NetworkConfig) {
    let api: Api<Service> = Api::namespaced(client.clone(), DNS_SERVICE.0);
    let dual = config.service_cidr_v6.is_some();
    let mut svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": DNS_SERVICE.1, "namespace": DNS_SERVICE.0,
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                                "kubernetes.io/cluster-service": "true"}},
        "spec": {"ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]},
    });
    if dual {
        svc["spec"]["ipFamilyPolicy"] = json!("PreferDualStack");
        svc["spec"]["ipFamilies"] = json!(config.service_families());
    }
    let Ok(svc) = serde_json::from_value::<Service>(svc) else {
        return;
    };
    match api.create(&PostParams::default(), &svc).await {
        Ok(_) => tracing::info!(dual_stack = dual, "created Service kube-system/kube-dns"),
        Err(kube::Error::Api(e)) if e.code == 409 && dual => upgrade_dns_service(&api).await,
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => tracing::warn!(error = %e, "cannot create Service kube-system/kube-dns"),
    }
}

/// Makes an existing single-stack `kube-dns` dual-stack (see [`dns_upgrade_patch`]).
async fn upgrade_dns_service(api: &Api<Service>) {
    let current = match api.get(DNS_SERVICE.1).await {
        Ok(svc) => serde_json::to_value(svc).unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read Service kube-system/kube-dns");
            return;
        }
    };
    let Some(patch) = dns_upgrade_patch(&current) else {
        return;
    };
    match api
        .patch(
            DNS_SERVICE.1,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => tracing::info!("Service kube-system/kube-dns made dual-stack"),
        Err(e) => tracing::warn!(error = %e, "cannot make Service kube-system/kube-dns dual-stack"),
    }
}

/// The merge patch making a `kube-dns` created before the cluster had an IPv6 Service range
/// `PreferDualStack` (admission then adds the IPv6 family, the allocator its address), or
/// None when it has an IPv6 family already (dual-stack, or made IPv6-only by the user).
fn dns_upgrade_patch(current: &Value) -> Option<Value> {
    let has_ipv6 = current["spec"]["ipFamilies"]
        .as_array()
        .is_some_and(|families| families.iter().any(|f| f == "IPv6"));
    (!has_ipv6).then(|| json!({"spec": {"ipFamilyPolicy": "PreferDualStack"}}))
}

fn key(obj: &Value) -> (String, String) {
    (
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

async fn allocate_all(
    client: &kube::Client,
    config: &NetworkConfig,
    svcs: &[Value],
    allocated: &mut Taken,
) {
    let mut taken = allocated.clone();
    for svc in svcs {
        taken.add(svc);
    }
    for svc in svcs {
        let (ns, name) = key(svc);
        let api: Api<Service> = Api::namespaced(client.clone(), &ns);
        match allocate::spec_patch(svc, config, &mut taken) {
            Ok(Some(patch)) => {
                if let Err(e) = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::warn!(service = %format!("{ns}/{name}"), error = %e, "cannot write Service addresses");
                } else {
                    tracing::info!(service = %format!("{ns}/{name}"), clusterIP = %patch["spec"]["clusterIP"], "Service addresses allocated");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "Service address allocation failed"),
        }
        match allocate::status_patch(svc, config, &mut taken) {
            Ok(Some(patch)) => {
                if let Err(e) = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::warn!(service = %format!("{ns}/{name}"), error = %e, "cannot write the LoadBalancer IP");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "LoadBalancer IP allocation failed"),
        }
    }
    // What was handed out stays reserved until the store shows it (it lags our patches).
    *allocated = taken;
}

async fn endpoints_all(
    client: &kube::Client,
    svcs: &[Value],
    pods: &[Value],
    vmis: &[Value],
    written: &mut HashMap<String, Value>,
) {
    let vmi_of = |pod: &Value| -> Option<Value> {
        let name = pod["metadata"]["annotations"]["kubevirt.io/domain"].as_str()?;
        let ns = &pod["metadata"]["namespace"];
        vmis.iter()
            .find(|v| v["metadata"]["name"] == name && &v["metadata"]["namespace"] == ns)
            .cloned()
    };
    let live: std::collections::HashSet<String> = svcs
        .iter()
        .map(|s| {
            let (ns, name) = key(s);
            format!("{ns}/{name}")
        })
        .collect();
    written.retain(|k, _| live.contains(k.split('#').next().unwrap_or_default()));
    for svc in svcs {
        if svc["spec"]["selector"]
            .as_object()
            .is_none_or(|s| s.is_empty())
            || svc["spec"]["type"] == "ExternalName"
        {
            continue;
        }
        let (ns, name) = key(svc);
        let found = endpoints::backends(svc, pods, &vmi_of);
        let ep = endpoints::endpoints(svc, pods, &found);
        let slices = endpoints::endpoint_slices(svc, pods, &found);
        let ep_key = format!("{ns}/{name}");
        if written.get(&ep_key) != Some(&ep)
            && apply(client, &ns, &ep, "v1", "Endpoints", "endpoints").await
        {
            written.insert(ep_key.clone(), ep);
        }
        for slice in slices {
            let slice_key = format!(
                "{ep_key}#slice#{}",
                slice["addressType"].as_str().unwrap_or_default()
            );
            if written.get(&slice_key) != Some(&slice)
                && apply(
                    client,
                    &ns,
                    &slice,
                    "discovery.k8s.io/v1",
                    "EndpointSlice",
                    "endpointslices",
                )
                .await
            {
                written.insert(slice_key, slice);
            }
        }
        // A Service downgraded to one family (SingleStack) loses the other family's slice.
        let families = endpoints::families(svc);
        for family in ["IPv4", "IPv6"] {
            let slice_key = format!("{ep_key}#slice#{family}");
            if !families.contains(&family) && written.contains_key(&slice_key) {
                delete_slice(client, &ns, &endpoints::slice_name(&name, family)).await;
                written.remove(&slice_key);
            }
        }
    }
}

/// Deletes an EndpointSlice this controller wrote (gone already is fine).
async fn delete_slice(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        Api::namespaced(client.clone(), ns);
    match api.delete(name, &Default::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            tracing::warn!(slice = %format!("{ns}/{name}"), error = %e, "cannot delete EndpointSlice")
        }
    }
}

/// Server-side applies `obj`; true on success.
async fn apply(
    client: &kube::Client,
    ns: &str,
    obj: &Value,
    api_version: &str,
    kind: &str,
    plural: &str,
) -> bool {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match api
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(%kind, object = %format!("{ns}/{name}"), error = %e, "cannot write");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_stack_kube_dns_is_made_prefer_dual_stack_and_others_are_left_alone() {
        let svc =
            |families: Value| json!({"spec": {"ipFamilies": families, "clusterIP": "10.96.0.10"}});
        assert_eq!(
            dns_upgrade_patch(&svc(json!(["IPv4"]))),
            Some(json!({"spec": {"ipFamilyPolicy": "PreferDualStack"}}))
        );
        assert_eq!(dns_upgrade_patch(&svc(json!(["IPv4", "IPv6"]))), None);
        assert_eq!(dns_upgrade_patch(&svc(json!(["IPv6"]))), None);
    }
}
