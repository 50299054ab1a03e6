//! VirtualMachineInstance admission: defaults and validation on create; on update, spec
//! immutability for users and hotplug rules for oxivirt's own components.
//!
//! Upstream: the VMI mutator (create: defaults, finalizer, `Pending`; update: reverts status
//! changes from non-KubeVirt users), the VMI create admitter, and the VMI update admitter
//! ("update of VMI object is restricted"; hotplugged volumes must be PVCs or DataVolumes on a
//! `scsi` disk). The manual (7.7, "VMI spec is immutable after creation") agrees.

use serde_json::{json, Value};

use crate::config::ClusterConfig;
use crate::ids::{now_rfc3339, uuid_v5, FIRMWARE_UUID_NAMESPACE};
use crate::json::{array, at, child, default_key, has, index, int_at, nonempty, object_at, str_at};
use crate::quantity::from_json;
use crate::review::{Cause, Operation, Outcome, Request};
use crate::vmi_defaults::default_spec;
use crate::vmi_validation::validate_spec;
use crate::Cluster;

/// The finalizer the VMI mutator adds (UPSTREAM-FACTS §5 "Finalizers").
pub(crate) const VMI_FINALIZER: &str = "kubevirt.io/foregroundDeleteVirtualMachine";
/// Non-root virt-launcher's user (UPSTREAM-FACTS §5: `status.runtimeUser=107`).
const NON_ROOT_UID: i64 = 107;
/// Labels only KubeVirt itself may set on a VMI (upstream `restrictedVmiLabels`).
const RESTRICTED_LABELS: [&str; 6] = [
    "kubevirt.io/created-by",
    "kubevirt.io/migrationJobUID",
    "kubevirt.io/nodeName",
    "kubevirt.io/migrationTargetNodeName",
    "kubevirt.io/schedulable",
    "kubevirt.io/install-strategy-identifier",
];

pub(crate) async fn admit(
    req: &Request<'_>,
    obj: &mut Value,
    cluster: &dyn Cluster,
    out: &mut Outcome,
) {
    match (req.operation, req.old) {
        (Operation::Update, Some(old)) => update(req, obj, old, out),
        _ => {
            let cfg = ClusterConfig::load(cluster).await;
            create(req, obj, &cfg, out);
        }
    }
}

/// Whether `obj.metadata.labels` (a VMI or a VM template) holds labels reserved to KubeVirt.
pub(crate) fn has_restricted_labels(obj: &Value) -> bool {
    RESTRICTED_LABELS
        .iter()
        .any(|l| has(obj, &["metadata", "labels", *l]))
}

/// The stable firmware UUID for a VMI or VM named `name` (upstream's name-based derivation).
pub(crate) fn firmware_uuid(obj: &Value) -> String {
    match nonempty(obj, &["metadata", "name"]).or_else(|| nonempty(obj, &["metadata", "uid"])) {
        Some(key) => uuid_v5(&FIRMWARE_UUID_NAMESPACE, key),
        None => String::new(),
    }
}

fn create(req: &Request<'_>, obj: &mut Value, cfg: &ClusterConfig, out: &mut Outcome) {
    let uuid = firmware_uuid(obj);
    if object_at(obj, &["spec"]).is_none() {
        return;
    }
    let Some(spec) = obj.get_mut("spec") else {
        return;
    };
    out.causes.extend(default_spec(spec, cfg, &uuid));
    default_status(obj);
    if let Some(meta) = object_at(obj, &["metadata"]) {
        let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(list) = finalizers.as_array_mut() {
            if !list.iter().any(|f| f == VMI_FINALIZER) {
                list.push(json!(VMI_FINALIZER));
            }
        }
    }
    if !req.is_system() && has_restricted_labels(obj) {
        out.causes.push(Cause::not_supported(
            "metadata.labels",
            "creation of the following reserved kubevirt.io/ labels on a VMI object is prohibited",
        ));
    }
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    validate_spec(&spec, "spec", &mut out.causes);
    validate_volumes_have_disks(&spec, &mut out.causes);
    validate_memory_requested(&spec, &mut out.causes);
}

fn default_status(obj: &mut Value) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let Some(status) = object_at(obj, &["status"]) else {
        return;
    };
    if status
        .get("phase")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        status.insert("phase".into(), json!("Pending"));
        let stamps = status
            .entry("phaseTransitionTimestamps")
            .or_insert_with(|| json!([]));
        if let Some(stamps) = stamps.as_array_mut() {
            stamps.push(json!({"phase": "Pending", "phaseTransitionTimestamp": now_rfc3339()}));
        }
    }
    if let Some(guest) = at(&spec, &["domain", "memory", "guest"]) {
        default_key(
            status,
            "memory",
            json!({"guestAtBoot": guest, "guestCurrent": guest, "guestRequested": guest}),
        );
    }
    if has(&spec, &["domain", "cpu"]) {
        let get = |k: &str| int_at(&spec, &["domain", "cpu", k]).unwrap_or(0);
        default_key(
            status,
            "currentCPUTopology",
            json!({"sockets": get("sockets"), "cores": get("cores"), "threads": get("threads")}),
        );
    }
    default_key(status, "runtimeUser", json!(NON_ROOT_UID));
}

/// Every volume (but memory dumps) needs a disk or filesystem of the same name (VMI only).
fn validate_volumes_have_disks(spec: &Value, out: &mut Vec<Cause>) {
    let devices: Vec<&str> = ["disks", "filesystems"]
        .iter()
        .flat_map(|l| array(spec, &["domain", "devices", l]))
        .filter_map(|d| str_at(d, &["name"]))
        .collect();
    for (i, volume) in array(spec, &["volumes"]).iter().enumerate() {
        let name = str_at(volume, &["name"]).unwrap_or("");
        if !has(volume, &["memoryDump"]) && !devices.contains(&name) {
            let f = child(&index("spec.volumes", i), "name");
            out.push(Cause::invalid(&f, format!("{f} '{name}' not found.")));
        }
    }
}

/// A VMI must ask for memory somehow (upstream `ValidateVirtualMachineInstanceMandatoryFields`).
fn validate_memory_requested(spec: &Value, out: &mut Vec<Cause>) {
    let requested = at(spec, &["domain", "resources", "requests", "memory"])
        .and_then(from_json)
        .and_then(Result::ok)
        .is_some_and(|q| !q.is_zero());
    if !requested
        && !has(spec, &["domain", "memory", "guest"])
        && !has(spec, &["domain", "memory", "hugepages"])
    {
        out.push(Cause::required(
            "spec.domain.memory.guest",
            "no memory requested, at least one of 'spec.domain.memory.guest', 'spec.domain.memory.hugepages.size' \
             or 'spec.domain.resources.requests.memory' must be set",
        ));
    }
}

fn update(req: &Request<'_>, obj: &mut Value, old: &Value, out: &mut Outcome) {
    if req.is_system() {
        validate_hotplug(obj, old, &mut out.causes);
        return;
    }
    // Users cannot write VMI status: the mutator puts the stored status back.
    if let Some(map) = obj.as_object_mut() {
        match old.get("status") {
            Some(status) => map.insert("status".into(), status.clone()),
            None => map.remove("status"),
        };
    }
    if obj.get("spec") != old.get("spec") {
        out.causes.push(Cause::not_supported(
            "spec",
            "update of VMI object is restricted",
        ));
    }
    let restricted =
        |v: &Value| RESTRICTED_LABELS.map(|l| at(v, &["metadata", "labels", l]).cloned());
    if restricted(obj) != restricted(old) {
        out.causes.push(Cause::not_supported(
            "metadata.labels",
            "modification of kubevirt.io/ labels on a VMI object is restricted",
        ));
    }
}

/// Volumes added after creation are hotplugged: PVCs or DataVolumes on a `scsi` disk or LUN
/// (manual 7.15.1: virtio cannot be hotplugged; containerDisks cannot be hotplugged).
fn validate_hotplug(obj: &Value, old: &Value, out: &mut Vec<Cause>) {
    let names = |v: &Value| -> Vec<String> {
        array(v, &["spec", "volumes"])
            .iter()
            .filter_map(|v| str_at(v, &["name"]))
            .map(str::to_string)
            .collect()
    };
    let old_names = names(old);
    let disks = array(obj, &["spec", "domain", "devices", "disks"]);
    for (i, volume) in array(obj, &["spec", "volumes"]).iter().enumerate() {
        let name = str_at(volume, &["name"]).unwrap_or("");
        if old_names.iter().any(|n| n == name) || has(volume, &["memoryDump"]) {
            continue;
        }
        if !has(volume, &["persistentVolumeClaim"]) && !has(volume, &["dataVolume"]) {
            out.push(Cause::invalid(
                index("spec.volumes", i),
                format!("volume {name} is not a PVC or DataVolume"),
            ));
            continue;
        }
        let Some(j) = disks
            .iter()
            .position(|d| str_at(d, &["name"]) == Some(name))
        else {
            out.push(Cause::invalid(
                index("spec.volumes", i),
                format!("Disk {name} does not exist"),
            ));
            continue;
        };
        let field = index("spec.domain.devices.disks", j);
        let disk = &disks[j];
        if !has(disk, &["disk"]) && !has(disk, &["lun"]) {
            out.push(Cause::invalid(
                &field,
                format!(
                    "Disk {name} requires diskDevice of type 'disk' or 'lun' to be hotplugged."
                ),
            ));
        } else if str_at(disk, &["disk", "bus"]) != Some("scsi")
            && str_at(disk, &["lun", "bus"]) != Some("scsi")
        {
            out.push(Cause::invalid(
                &field,
                format!("hotplugged Disk {name} does not use a scsi bus"),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
