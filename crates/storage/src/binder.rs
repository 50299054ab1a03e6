//! The PersistentVolume controller's binding half, as kube-controller-manager does it:
//! claims without a class get the default class; pending claims bind to a matching
//! Available volume (or the one they name); claims of provisioned classes get their
//! provisioner annotation and, for the hostpath provisioner, the node to provision on
//! (Immediate: a Ready node now; WaitForFirstConsumer: the node of the first Pod that uses
//! the claim); volumes whose claim went away become Released.
//!
//! # Guarantees
//! Works from watch caches; every write is a merge patch of what this pass decided, so a
//! stale cache costs a repeated, harmless patch. Idempotent; every `.await` is a
//! cancellation point.

use oxivirt_api::vmi_claims::{claim_names, state_claim, STATE_CLAIM_LABEL};
use serde_json::{json, Value};

use crate::classes::{self, is_ours};
use crate::events::Recorder;
use crate::kinds::{
    self, annotation, name, namespace, phase, str_at, uid, NODE, POD, PV, PVC, STORAGE_CLASS, VMI,
};
use crate::quantity;
use crate::well_known as wk;
use crate::world::World;

/// One binding pass over every claim and volume.
pub async fn reconcile(client: &kube::Client, world: &World, events: &Recorder) {
    for claim in world.list(PVC) {
        if kinds::is_deleting(&claim) {
            continue;
        }
        if let Err(e) = claim_pass(client, world, events, &claim).await {
            tracing::warn!(error = %e, "PersistentVolumeClaim binding failed; retrying");
        }
    }
    for volume in world.list(PV) {
        if let Err(e) = volume_pass(client, world, events, &volume).await {
            tracing::warn!(error = %e, "PersistentVolume update failed; retrying");
        }
    }
}

fn requested(claim: &Value) -> u64 {
    str_at(claim, "/spec/resources/requests/storage")
        .and_then(quantity::parse)
        .unwrap_or(0)
}

fn capacity(volume: &Value) -> u64 {
    str_at(volume, "/spec/capacity/storage")
        .and_then(quantity::parse)
        .unwrap_or(0)
}

fn volume_mode(obj: &Value) -> &str {
    str_at(obj, "/spec/volumeMode").unwrap_or("Filesystem")
}

fn access_modes(obj: &Value) -> Vec<&str> {
    obj["spec"]["accessModes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether `volume` can serve `claim` (class, mode, access modes, size, claimRef).
pub fn matches(claim: &Value, volume: &Value) -> bool {
    let class = str_at(claim, "/spec/storageClassName").unwrap_or_default();
    let volume_class = str_at(volume, "/spec/storageClassName").unwrap_or_default();
    let wanted = access_modes(claim);
    let offered = access_modes(volume);
    let reserved_for = &volume["spec"]["claimRef"];
    let reserved_ok = reserved_for.is_null()
        || (reserved_for["namespace"] == namespace(claim)
            && reserved_for["name"] == name(claim)
            && reserved_for["uid"]
                .as_str()
                .is_none_or(|u| u.is_empty() || u == uid(claim)));
    let available = matches!(phase(volume), "Available" | "Pending" | "")
        || (reserved_for["uid"] == uid(claim) && !reserved_for.is_null());
    class == volume_class
        && volume_mode(claim) == volume_mode(volume)
        && wanted.iter().all(|m| offered.contains(m))
        && capacity(volume) >= requested(claim)
        && reserved_ok
        && available
        && !kinds::is_deleting(volume)
}

async fn claim_pass(
    client: &kube::Client,
    world: &World,
    events: &Recorder,
    claim: &Value,
) -> crate::ops::Result<()> {
    let (ns, claim_name) = (namespace(claim), name(claim));
    if claim["spec"]["storageClassName"].is_null() {
        // Retroactive default class assignment (Kubernetes 1.28+): a claim created without
        // a class gets the default one, so the default class applies to it.
        if let Some(default) = classes::default_class(world) {
            let patch = json!({"spec": {"storageClassName": default}});
            return crate::ops::merge(client, PVC, ns, claim_name, &patch).await;
        }
    }
    if phase(claim).is_empty() {
        // Kubernetes defaults a new claim's phase to Pending.
        let patch = json!({"status": {"phase": "Pending"}});
        crate::ops::merge_status(client, PVC, ns, claim_name, &patch).await?;
    }
    if phase(claim) == "Bound" {
        let volume_name = str_at(claim, "/spec/volumeName").unwrap_or_default();
        if world.get(PV, "", volume_name).is_none() && !volume_name.is_empty() {
            // The cache may lag a just-created volume: confirm before declaring loss.
            if crate::ops::get(client, PV, "", volume_name)
                .await?
                .is_none()
            {
                events
                    .warning(
                        claim,
                        PVC,
                        "ClaimLost",
                        "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                    )
                    .await;
                return crate::ops::merge_status(
                    client,
                    PVC,
                    ns,
                    claim_name,
                    &json!({"status": {"phase": "Lost"}}),
                )
                .await;
            }
        }
        return Ok(());
    }
    let volumes = world.list(PV);
    let named = str_at(claim, "/spec/volumeName").filter(|v| !v.is_empty());
    let chosen = match named {
        Some(volume_name) => volumes
            .iter()
            .find(|v| name(v) == volume_name && matches(claim, v)),
        None => {
            let mut fits: Vec<&Value> = volumes.iter().filter(|v| matches(claim, v)).collect();
            // Volumes reserved for this claim first, then the smallest that fits.
            fits.sort_by_key(|v| (v["spec"]["claimRef"].is_null(), capacity(v)));
            fits.first().copied()
        }
    };
    if let Some(volume) = chosen {
        return bind(client, claim, volume).await;
    }
    if named.is_some() {
        return Ok(()); // waiting for the named volume to exist or become available
    }
    let class_name = str_at(claim, "/spec/storageClassName").unwrap_or_default();
    if class_name.is_empty() {
        let message = "no persistent volumes available for this claim and no storage class is set";
        events.normal(claim, PVC, "FailedBinding", message).await;
        return Ok(());
    }
    let Some(class) = world.get(STORAGE_CLASS, "", class_name) else {
        let message = format!("storageclass.storage.k8s.io \"{class_name}\" not found");
        events
            .warning(claim, PVC, "ProvisioningFailed", &message)
            .await;
        return Ok(());
    };
    let provisioner = class["provisioner"].as_str().unwrap_or_default();
    if annotation(claim, wk::ANN_STORAGE_PROVISIONER) != Some(provisioner) {
        let patch = json!({"metadata": {"annotations": {
            wk::ANN_STORAGE_PROVISIONER: provisioner,
            wk::ANN_BETA_STORAGE_PROVISIONER: provisioner,
        }}});
        crate::ops::merge(client, PVC, ns, claim_name, &patch).await?;
    }
    let delayed = class["volumeBindingMode"] == "WaitForFirstConsumer"
        && !crate::claim::binds_immediately(claim);
    if is_ours(provisioner) && annotation(claim, wk::ANN_SELECTED_NODE).is_none() {
        let mut node = if delayed {
            first_consumer_node(world, claim)
        } else {
            ready_node(world)
        };
        // A clone is made where its source's data is (local volumes cannot move).
        if let (Some(_), Some(source)) = (&node, crate::node::clone_source_name(claim)) {
            node = world
                .get(PVC, ns, source)
                .and_then(|source| crate::importer_pod::claim_node(world, &source));
        }
        match node {
            Some(node) => {
                let patch = json!({"metadata": {"annotations": {wk::ANN_SELECTED_NODE: node}}});
                return crate::ops::merge(client, PVC, ns, claim_name, &patch).await;
            }
            None if delayed => {
                let message = "waiting for first consumer to be created before binding";
                events
                    .normal(claim, PVC, "WaitForFirstConsumer", message)
                    .await;
                return Ok(());
            }
            None => {}
        }
    }
    let message = format!(
        "Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the \
         system administrator. If volume creation is delayed, please verify that the provisioner is running and \
         correctly registered."
    );
    events
        .normal(claim, PVC, "ExternalProvisioning", &message)
        .await;
    Ok(())
}

/// The node of a running-or-starting Pod that uses the claim: directly (a `persistentVolumeClaim`
/// volume) or through the VMI a virt-launcher Pod runs (its PVC and DataVolume volumes).
fn first_consumer_node(world: &World, claim: &Value) -> Option<String> {
    let ns = namespace(claim);
    world
        .list(POD)
        .into_iter()
        .filter(|p| {
            namespace(p) == ns
                && !matches!(phase(p), "Succeeded" | "Failed")
                && !kinds::is_deleting(p)
        })
        .find_map(|pod| {
            let node = str_at(&pod, "/spec/nodeName")
                .filter(|n| !n.is_empty())?
                .to_string();
            let direct = claim_names(&pod["spec"]["volumes"]).contains(&name(claim).to_string());
            let via_vmi = annotation(&pod, "kubevirt.io/domain")
                .and_then(|vmi| world.get(VMI, ns, vmi))
                .is_some_and(|vmi| {
                    claim_names(&vmi["spec"]["volumes"]).contains(&name(claim).to_string())
                        || is_state_claim_of(claim, &vmi)
                });
            (direct || via_vmi).then_some(node)
        })
}

/// Whether `claim` is the state claim (`persistent-state-for-<vm>`, labelled
/// `persistent-state-for: <vm>`) of the VM that `vmi` runs: its launcher Pod, which reaches
/// the claim through the node agent rather than a volume, is its consumer.
fn is_state_claim_of(claim: &Value, vmi: &Value) -> bool {
    let vm = str_at(vmi, "/metadata/name").unwrap_or_default();
    state_claim(vmi).as_deref() == Some(name(claim))
        && claim["metadata"]["labels"][STATE_CLAIM_LABEL] == vm
}

/// A Ready node to provision Immediate claims on (the first by name, for determinism).
fn ready_node(world: &World) -> Option<String> {
    world.list(NODE).into_iter().find_map(|node| {
        let ready = node["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        ready.then(|| name(&node).to_string())
    })
}

async fn bind(client: &kube::Client, claim: &Value, volume: &Value) -> crate::ops::Result<()> {
    let (ns, claim_name, volume_name) = (namespace(claim), name(claim), name(volume));
    if volume["spec"]["claimRef"]["uid"] != uid(claim) {
        let patch = json!({
            "metadata": {"annotations": {wk::ANN_BOUND_BY_CONTROLLER: "yes"}},
            "spec": {"claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": ns, "name": claim_name, "uid": uid(claim),
            }},
        });
        crate::ops::merge(client, PV, "", volume_name, &patch).await?;
    }
    if phase(volume) != "Bound" {
        crate::ops::merge_status(
            client,
            PV,
            "",
            volume_name,
            &json!({"status": {"phase": "Bound"}}),
        )
        .await?;
    }
    let mut annotations = json!({wk::ANN_BIND_COMPLETED: "yes"});
    if str_at(claim, "/spec/volumeName").is_none_or(str::is_empty) {
        annotations[wk::ANN_BOUND_BY_CONTROLLER] = json!("yes");
    }
    let patch =
        json!({"metadata": {"annotations": annotations}, "spec": {"volumeName": volume_name}});
    crate::ops::merge(client, PVC, ns, claim_name, &patch).await?;
    let status = json!({"status": {
        "phase": "Bound",
        "accessModes": volume["spec"]["accessModes"],
        "capacity": volume["spec"]["capacity"],
    }});
    crate::ops::merge_status(client, PVC, ns, claim_name, &status).await?;
    tracing::info!(claim = %format!("{ns}/{claim_name}"), volume = volume_name, "bound");
    Ok(())
}

async fn volume_pass(
    client: &kube::Client,
    world: &World,
    events: &Recorder,
    volume: &Value,
) -> crate::ops::Result<()> {
    let volume_name = name(volume);
    let reference = &volume["spec"]["claimRef"];
    if reference.is_null() {
        if !matches!(phase(volume), "Available" | "Failed") {
            let patch = json!({"status": {"phase": "Available"}});
            return crate::ops::merge_status(client, PV, "", volume_name, &patch).await;
        }
        return Ok(());
    }
    let (claim_ns, claim_name) = (
        reference["namespace"].as_str().unwrap_or_default(),
        reference["name"].as_str().unwrap_or_default(),
    );
    let claim = world.get(PVC, claim_ns, claim_name);
    let same_claim = claim.as_ref().is_some_and(|c| {
        reference["uid"]
            .as_str()
            .is_none_or(|u| u.is_empty() || u == uid(c))
    });
    if same_claim || phase(volume) != "Bound" {
        if phase(volume).is_empty() {
            // A provisioned, pre-bound volume waits for its claim as Available (Kubernetes'
            // phase for it too) until the claim pass binds it.
            let patch = json!({"status": {"phase": "Available"}});
            return crate::ops::merge_status(client, PV, "", volume_name, &patch).await;
        }
        return Ok(());
    }
    // Bound, and its claim is gone: confirm against the API (the cache may lag), then release.
    if let Some(live) = crate::ops::get(client, PVC, claim_ns, claim_name).await? {
        if reference["uid"].as_str().is_none_or(|u| u == uid(&live)) {
            return Ok(());
        }
    }
    crate::ops::merge_status(
        client,
        PV,
        "",
        volume_name,
        &json!({"status": {"phase": "Released"}}),
    )
    .await?;
    let policy = str_at(volume, "/spec/persistentVolumeReclaimPolicy").unwrap_or("Delete");
    let ours = annotation(volume, wk::ANN_PROVISIONED_BY).is_some_and(is_ours);
    if policy == "Delete" && !ours {
        let message = format!(
            "error getting deleter volume plugin for volume \"{volume_name}\": no deletable volume plugin matched"
        );
        events
            .warning(volume, PV, "VolumeFailedDelete", &message)
            .await;
        let patch = json!({"status": {"phase": "Failed", "message": message}});
        crate::ops::merge_status(client, PV, "", volume_name, &patch).await?;
    }
    tracing::info!(volume = volume_name, policy, "released");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(size: &str, modes: &[&str]) -> Value {
        json!({"metadata": {"name": "c", "namespace": "ns", "uid": "u1"},
               "spec": {"storageClassName": "sc", "accessModes": modes,
                        "resources": {"requests": {"storage": size}}}})
    }

    fn volume(size: &str, modes: &[&str]) -> Value {
        json!({"metadata": {"name": "v"},
               "spec": {"storageClassName": "sc", "accessModes": modes, "capacity": {"storage": size}},
               "status": {"phase": "Available"}})
    }

    #[test]
    fn a_volume_matches_a_claim_of_its_class_size_and_modes() {
        assert!(matches(
            &claim("1Gi", &["ReadWriteOnce"]),
            &volume("2Gi", &["ReadWriteOnce", "ReadWriteMany"])
        ));
        assert!(!matches(
            &claim("3Gi", &["ReadWriteOnce"]),
            &volume("2Gi", &["ReadWriteOnce"])
        ));
        assert!(!matches(
            &claim("1Gi", &["ReadWriteMany"]),
            &volume("2Gi", &["ReadWriteOnce"])
        ));
        let mut block = volume("2Gi", &["ReadWriteOnce"]);
        block["spec"]["volumeMode"] = json!("Block");
        assert!(!matches(&claim("1Gi", &["ReadWriteOnce"]), &block));
    }

    #[test]
    fn a_volume_reserved_for_another_claim_does_not_match() {
        let mut v = volume("2Gi", &["ReadWriteOnce"]);
        v["spec"]["claimRef"] = json!({"namespace": "ns", "name": "other"});
        assert!(!matches(&claim("1Gi", &["ReadWriteOnce"]), &v));
        v["spec"]["claimRef"] = json!({"namespace": "ns", "name": "c", "uid": "u1"});
        assert!(matches(&claim("1Gi", &["ReadWriteOnce"]), &v));
    }

    #[test]
    fn a_bound_volume_does_not_match_a_new_claim() {
        let mut v = volume("2Gi", &["ReadWriteOnce"]);
        v["status"]["phase"] = json!("Bound");
        assert!(!matches(&claim("1Gi", &["ReadWriteOnce"]), &v));
    }
}
