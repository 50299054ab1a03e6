//! The pod network on this node (crate `oxivirt-network`): each launcher Pod gets a network
//! namespace with a veth and a pod IP before its launcher starts, and the launcher runs
//! inside it (`ip netns exec`, which execs in place, so `launcher.pid` and re-adoption see
//! the launcher itself). The Pod's attachment is kept in `<data-dir>/node/netns/<uid>.json`
//! so a restarted agent reports the same pod IP and tears down what it did not create.
//!
//! Without root (or without `ip`/`nft`), or with `OXIVIRT_POD_NETWORK=off`, there is no pod
//! network: launchers start as before and VMs have no NICs; the Node says why in its
//! `oxivirt.io/pod-network` annotation.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, ResourceExt};
use oxivirt_network::{pod, Attachment, NetworkConfig, NodeNetwork, PodNetworkPlan};
use serde_json::{json, Value};

use crate::well_known as wk;

/// The node's pod network, if it has one, and the attachments of its Pods.
#[derive(Clone)]
pub(crate) struct PodNet {
    node: Option<Arc<NodeNetwork>>,
    /// Without a pod network, whether VMs get passt user-mode networking instead
    /// ([`crate::user_net`]).
    user_mode: bool,
    dir: PathBuf,
    cache: Arc<Mutex<HashMap<String, Attachment>>>,
}

impl PodNet {
    /// Brings up the node's pod network, or explains (logs and Node annotation) why not.
    pub(crate) async fn start(
        client: &kube::Client,
        node_name: &str,
        data_dir: &std::path::Path,
    ) -> Self {
        let config = NetworkConfig::from_env();
        // Turned off on purpose means no NICs; otherwise passt stands in when installed.
        let user_mode =
            !matches!(&config, Ok(c) if !c.enabled) && crate::user_net::passt_installed();
        let outcome = match config {
            Err(e) => Err(e.to_string()),
            Ok(c) if !c.enabled => Err("turned off (OXIVIRT_POD_NETWORK=off)".into()),
            Ok(c) => match oxivirt_network::exec::unavailable_reason().await {
                Some(reason) => Err(reason),
                None => {
                    let elsewhere = other_nodes_prefixes(client, node_name).await;
                    NodeNetwork::start(&c, data_dir, &elsewhere)
                        .await
                        .map_err(|e| crate::status::chain(&e))
                }
            },
        };
        let (node, note) = match outcome {
            Ok(n) => {
                let note = format!("{} on bridge {}", n.pod_cidr, n.bridge);
                (Some(Arc::new(n)), note)
            }
            Err(reason) if user_mode => {
                tracing::warn!(%reason, "no pod network on this node: VMs use passt user-mode networking");
                let note = format!("unavailable: {reason}; VMs use passt user-mode networking");
                (None, note)
            }
            Err(reason) => {
                tracing::warn!(%reason, "no pod network on this node: VMs run without NICs");
                (None, format!("unavailable: {reason}; VMs run without NICs (install passt for user-mode networking)"))
            }
        };
        let nodes: Api<Node> = Api::all(client.clone());
        let mut patch = json!({"metadata": {"annotations": {"oxivirt.io/pod-network": note}}});
        if let Some(n) = &node {
            let v4 = n.pod_cidr.to_string();
            let all: Vec<String> = std::iter::once(v4.clone())
                .chain(n.pod_prefix_v6_cidr())
                .collect();
            patch["spec"] = json!({"podCIDR": v4, "podCIDRs": all});
        }
        if let Err(e) = nodes
            .patch(node_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(error = %e, "cannot record the pod network on the Node");
        }
        PodNet {
            node,
            user_mode,
            dir: data_dir.join("node").join("netns"),
            cache: Arc::default(),
        }
    }

    /// Starts the node's nmstate handler and bridge marker, and its Service proxy
    /// (nftables) and cluster DNS when the node has a pod network.
    pub(crate) fn start_node_services(
        &self,
        client: &kube::Client,
        node_name: &str,
        node_ips: &[String],
    ) {
        let (nmstate_client, name) = (client.clone(), node_name.to_string());
        tokio::spawn(async move {
            if let Err(e) = oxivirt_network::nmstate::run(nmstate_client, name).await {
                tracing::error!(error = %e, "the nmstate handler stopped");
            }
        });
        let (marker_client, name) = (client.clone(), node_name.to_string());
        tokio::spawn(async move {
            if let Err(e) = oxivirt_network::bridge_marker::run(marker_client, name).await {
                tracing::error!(error = %e, "the bridge marker stopped");
            }
        });
        let Some(node) = self.node.clone() else {
            return;
        };
        let (routes_client, routes_node) = (client.clone(), node.clone());
        let name = node_name.to_string();
        let ips = node_ips.iter().filter_map(|ip| ip.parse().ok()).collect();
        tokio::spawn(async move {
            if let Err(e) =
                oxivirt_network::routes::run(routes_client, routes_node, name, ips).await
            {
                tracing::error!(error = %e, "the pod route keeper stopped");
            }
        });
        let (client, name) = (client.clone(), node_name.to_string());
        tokio::spawn(async move {
            if let Err(e) = oxivirt_network::services::proxy::run(client, node, name).await {
                tracing::error!(error = %e, "the Service proxy stopped");
            }
        });
    }

    fn file(&self, uid: &str) -> PathBuf {
        self.dir.join(format!("{uid}.json"))
    }

    /// The Pod's attachment, if it has one (from the cache or its file).
    pub(crate) fn attachment(&self, uid: &str) -> Option<Attachment> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = cache.get(uid) {
            return Some(found.clone());
        }
        let bytes = std::fs::read(self.file(uid)).ok()?;
        let found: Attachment = serde_json::from_slice(&bytes).ok()?;
        cache.insert(uid.to_string(), found.clone());
        Some(found)
    }

    /// Plumbs the Pod's namespace for `vmi` and returns the NIC plan for `launch.json`;
    /// `Ok(None)` without a pod network.
    ///
    /// # Errors
    /// A message naming the step that failed.
    pub(crate) async fn attach(
        &self,
        client: &kube::Client,
        pod: &Pod,
        vmi: &Value,
        qemu_owner: Option<(u32, u32)>,
    ) -> Result<Option<PodNetworkPlan>, String> {
        let uid = pod.uid().unwrap_or_default();
        let Some(node) = &self.node else {
            if !self.user_mode {
                return Ok(None);
            }
            let plan = crate::user_net::plan(&with_vm_macs(client, vmi).await);
            if let Some(plan) = &plan {
                crate::user_net::record(&self.dir, &uid, plan)?;
            }
            return Ok(plan);
        };
        let secondary = resolve_networks(client, vmi).await.inspect_err(|message| {
            tracing::warn!(pod = %pod.name_any(), %message, "cannot resolve the VM's networks");
        })?;
        let vmi = &with_vm_macs(client, vmi).await;
        let attachment = match pod::attach(node, &uid, vmi, &secondary, qemu_owner).await {
            Ok(a) => a,
            Err(e) => {
                // Leave nothing half-made behind: the address and namespace go with the error.
                pod::detach(node, &uid).await;
                let message = crate::status::chain(&e);
                tracing::warn!(pod = %pod.name_any(), %message, "cannot set up the Pod's network");
                return Err(message);
            }
        };
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| {
                std::fs::write(
                    self.file(&uid),
                    serde_json::to_vec(&attachment).unwrap_or_default(),
                )
            })
            .map_err(|e| format!("cannot record the network of Pod {}: {e}", pod.name_any()))?;
        let plan = attachment.plan.clone();
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid, attachment);
        Ok(Some(plan))
    }

    /// The launcher command, run inside the Pod's namespace when it has one.
    pub(crate) fn launcher_command(&self, base: &[OsString], uid: &str) -> Vec<OsString> {
        match self.attachment(uid) {
            Some(a) => ["ip", "netns", "exec", a.netns.as_str()]
                .iter()
                .map(OsString::from)
                .chain(base.iter().cloned())
                .collect(),
            None => base.to_vec(),
        }
    }

    /// Adds `podIP`/`podIPs` to a Pod status being written.
    pub(crate) fn add_pod_ips(&self, status: &mut Value, uid: &str) {
        if let Some(a) = self.attachment(uid) {
            status["podIP"] = json!(a.pod_ip.to_string());
            let mut ips = vec![json!({"ip": a.pod_ip.to_string()})];
            ips.extend(a.pod_ip6.map(|ip| json!({"ip": ip.to_string()})));
            status["podIPs"] = json!(ips);
        }
    }

    /// The VMI's `status.interfaces` from the Pod's attachment, merged with `current` (what
    /// the guest agent may have reported under the same names); `None` for a Pod without
    /// an attachment (user-mode networking reports on its own, [`PodNet::report_interfaces`]).
    pub(crate) fn interfaces_status(&self, pod: &Pod, current: &Value) -> Option<Value> {
        let attachment = self.attachment(&pod.uid().unwrap_or_default())?;
        let merged: Vec<Value> = attachment
            .vmi_interfaces()
            .into_iter()
            .map(|mut entry| {
                if let Some(old) = current
                    .as_array()
                    .and_then(|l| l.iter().find(|o| o["name"] == entry["name"]))
                {
                    for (k, v) in old.as_object().into_iter().flatten() {
                        if entry.get(k).is_none() {
                            entry[k] = v.clone();
                        }
                    }
                }
                entry
            })
            .collect();
        Some(json!(merged))
    }

    /// Writes the VMI's `status.interfaces` from the Pod's attachment, as
    /// [`PodNet::interfaces_status`] computes them, when they differ from the stored ones.
    pub(crate) async fn report_interfaces(&self, client: &kube::Client, pod: &Pod) {
        if self.attachment(&pod.uid().unwrap_or_default()).is_none() {
            return crate::user_net::report(client, &self.dir, pod).await;
        }
        let Some(name) = pod.annotations().get(wk::DOMAIN_ANNOTATION) else {
            return;
        };
        let namespace = pod.namespace().unwrap_or_default();
        let api = crate::realise::vmi_api(client, &namespace);
        let Ok(Some(vmi)) = api.get_opt(name).await else {
            return;
        };
        if pod.labels().get("kubevirt.io/created-by") != vmi.metadata.uid.as_ref() {
            return;
        }
        let current = &vmi.data["status"]["interfaces"];
        let Some(merged) = self.interfaces_status(pod, current) else {
            return;
        };
        if *current == merged {
            return;
        }
        let patch = json!({"status": {"interfaces": merged}});
        if let Err(e) = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(error = %e, "cannot write VMI status.interfaces; retrying later");
        }
    }

    /// Removes the Pod's namespace and frees its address (after its launcher stopped).
    pub(crate) async fn detach(&self, uid: &str) {
        let Some(node) = &self.node else {
            return crate::user_net::forget(&self.dir, uid);
        };
        if self.attachment(uid).is_none() {
            return;
        }
        pod::detach(node, uid).await;
        let _ = std::fs::remove_file(self.file(uid));
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }
}

/// The IPv4 pod prefixes other Nodes hold (an empty list when the Nodes cannot be read: the
/// host's routes still keep same-host nodes apart).
async fn other_nodes_prefixes(client: &kube::Client, own: &str) -> Vec<oxivirt_network::Cidr> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = match nodes.list(&Default::default()).await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the Nodes' pod prefixes");
            return Vec::new();
        }
    };
    list.items
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(own))
        .filter_map(|n| n.spec.as_ref()?.pod_cidr.as_ref()?.parse().ok())
        .collect()
}

/// The NetworkAttachmentDefinitions of the VMI's Multus networks, by network name.
/// `networkName` is `name` (in the VMI's namespace, where the manual says it must live) or
/// `namespace/name`.
///
/// # Errors
/// A message naming the NAD that is missing or unusable.
async fn resolve_networks(
    client: &kube::Client,
    vmi: &Value,
) -> Result<std::collections::BTreeMap<String, oxivirt_network::secondary::BridgeNetwork>, String> {
    let mut out = std::collections::BTreeMap::new();
    let vmi_ns = vmi["metadata"]["namespace"].as_str().unwrap_or_default();
    // Multus's plural is hyphenated: kube-rs cannot guess it from the kind.
    let resource = ApiResource {
        group: "k8s.cni.cncf.io".into(),
        version: "v1".into(),
        api_version: "k8s.cni.cncf.io/v1".into(),
        kind: "NetworkAttachmentDefinition".into(),
        plural: "network-attachment-definitions".into(),
    };
    for network in vmi["spec"]["networks"].as_array().into_iter().flatten() {
        let Some(reference) = network["multus"]["networkName"].as_str() else {
            continue;
        };
        let (ns, name) = reference.split_once('/').unwrap_or((vmi_ns, reference));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        let nad = api
            .get_opt(name)
            .await
            .map_err(|e| format!("reading NetworkAttachmentDefinition {ns}/{name}: {e}"))?
            .ok_or_else(|| {
                format!(
                    "NetworkAttachmentDefinition {ns}/{name} not found (network {:?}): it must exist in the VM's namespace {vmi_ns} or be named namespace/name",
                    network["name"].as_str().unwrap_or_default()
                )
            })?;
        let config = nad.data["spec"]["config"].as_str().unwrap_or_default();
        let parsed = oxivirt_network::secondary::parse_nad(&format!("{ns}/{name}"), config)
            .map_err(|e| e.to_string())?;
        out.insert(
            network["name"].as_str().unwrap_or_default().to_string(),
            parsed,
        );
    }
    Ok(out)
}

/// The VMI with the MACs its VirtualMachine's template holds for interfaces that have
/// none: the MAC pool writes them into the VM, possibly just after this VMI was made, and
/// the guest should see the MAC it keeps across restarts from its first boot.
async fn with_vm_macs(client: &kube::Client, vmi: &Value) -> Value {
    let mut vmi = vmi.clone();
    let missing = vmi["spec"]["domain"]["devices"]["interfaces"]
        .as_array()
        .is_some_and(|l| l.iter().any(|i| i.get("macAddress").is_none()));
    let owner = vmi["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|l| l.iter().find(|o| o["kind"] == "VirtualMachine"))
        .and_then(|o| o["name"].as_str())
        .map(str::to_string);
    let (true, Some(owner)) = (missing, owner) else {
        return vmi;
    };
    let ns = vmi["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::from_gvk(&gvk));
    let Ok(Some(vm)) = api.get_opt(&owner).await else {
        return vmi;
    };
    let template = vm.data["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"].clone();
    if let Some(list) = vmi["spec"]["domain"]["devices"]["interfaces"].as_array_mut() {
        for iface in list.iter_mut().filter(|i| i.get("macAddress").is_none()) {
            let mac = template
                .as_array()
                .and_then(|t| t.iter().find(|t| t["name"] == iface["name"]))
                .and_then(|t| t["macAddress"].as_str());
            if let Some(mac) = mac {
                iface["macAddress"] = Value::from(mac);
            }
        }
    }
    vmi
}
