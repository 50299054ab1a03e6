//! VirtualMachine admission (plus the template checks of replica sets and pools).
//!
//! Defaults (UPSTREAM-FACTS §5, VM mutator): matcher kinds, architecture (from the boot
//! DataSource's `template.kubevirt.io/architecture` label, else the cluster's), machine type, and
//! on create a firmware UUID and serial. Nothing else of the VMI defaults is written into the VM;
//! the VMI gets them when it is created. Validation follows upstream's VM admitter: instance type
//! conflicts first, then run strategy, the template spec, DataVolume templates, hotplug volume
//! requests, and snapshot/restore locks.

use serde_json::{json, Value};

use crate::config::ClusterConfig;
use crate::datavolume;
use crate::ids::{uuid_v5, FIRMWARE_UUID_NAMESPACE};
use crate::instancetype::{conflict_cause, conflicts, find_spec, Matcher};
use crate::json::{
    array, at, bool_at, child, default_str, has, index, nonempty, object_at, str_at,
};
use crate::review::{Cause, Operation, Outcome, Request};
use crate::vmi::firmware_uuid;
use crate::vmi_defaults::{default_architecture, default_machine_type};
use crate::vmi_validation::validate_spec;
use crate::Cluster;

const RUN_STRATEGIES: [&str; 5] = ["Halted", "Manual", "Always", "RerunOnFailure", "Once"];
const ARCH_LABEL: &str = "template.kubevirt.io/architecture";
const TEMPLATE_SPEC: &str = "spec.template.spec";

pub(crate) async fn admit(
    req: &Request<'_>,
    obj: &mut Value,
    cluster: &dyn Cluster,
    out: &mut Outcome,
) {
    let cfg = ClusterConfig::load(cluster).await;
    mutate(req, obj, &cfg, cluster).await;
    if has(obj, &["metadata", "deletionTimestamp"]) {
        return;
    }
    // KubeMacPool is its own mutating webhook: a rejection there ends admission, as
    // kube-apiserver stops at the first webhook that denies.
    crate::macpool::admit(req, obj, cluster, out).await;
    if !out.causes.is_empty() {
        return;
    }
    validate(req, obj, cluster, out).await;
}

async fn mutate(req: &Request<'_>, obj: &mut Value, cfg: &ClusterConfig, cluster: &dyn Cluster) {
    for matcher in [Matcher::Instancetype, Matcher::Preference] {
        let key = match matcher {
            Matcher::Instancetype => "instancetype",
            Matcher::Preference => "preference",
        };
        if let Some(m) = obj
            .pointer_mut(&format!("/spec/{key}"))
            .and_then(Value::as_object_mut)
        {
            default_str(m, "kind", matcher.default_kind());
        }
    }
    if !has(obj, &["spec", "running"]) && !has(obj, &["spec", "runStrategy"]) {
        if let Some(spec) = object_at(obj, &["spec"]) {
            spec.insert("runStrategy".into(), json!("Halted"));
        }
    }
    if !has(obj, &["spec", "template"]) {
        return; // the validation below reports the missing template
    }
    if nonempty(obj, &["spec", "template", "spec", "architecture"]).is_none() {
        if let Some(arch) = architecture_from_data_source(obj, req.namespace, cluster).await {
            if let Some(spec) = object_at(obj, &["spec", "template", "spec"]) {
                spec.insert("architecture".into(), json!(arch));
            }
        }
    }
    let uuid = firmware_uuid(obj);
    let serial_key = format!(
        "{}/{}",
        req.namespace,
        nonempty(obj, &["metadata", "name"]).unwrap_or("")
    );
    let has_preference = has(obj, &["spec", "preference"]);
    let Some(spec_map) = object_at(obj, &["spec", "template", "spec"]) else {
        return;
    };
    let arch = default_architecture(spec_map, cfg);
    let Some(spec) = obj.pointer_mut("/spec/template/spec") else {
        return;
    };
    // A preference may carry `preferredMachineType`, applied when the VMI is built; defaulting
    // the machine type here would shadow it.
    if !has_preference {
        default_machine_type(spec, cfg, &arch);
    }
    if req.operation == Operation::Create && !uuid.is_empty() {
        if let Some(firmware) = object_at(spec, &["domain", "firmware"]) {
            default_str(firmware, "uuid", &uuid);
            default_str(
                firmware,
                "serial",
                &uuid_v5(&FIRMWARE_UUID_NAMESPACE, &serial_key),
            );
        }
    }
}

/// The architecture label of the DataSource a DataVolume template boots from, if any.
async fn architecture_from_data_source(
    vm: &Value,
    namespace: &str,
    cluster: &dyn Cluster,
) -> Option<String> {
    for dvt in array(vm, &["spec", "dataVolumeTemplates"]) {
        let Some(name) = nonempty(dvt, &["spec", "sourceRef", "name"]) else {
            continue;
        };
        if !str_at(dvt, &["spec", "sourceRef", "kind"])
            .is_some_and(|k| k.eq_ignore_ascii_case("DataSource"))
        {
            continue;
        }
        let ns = nonempty(dvt, &["spec", "sourceRef", "namespace"]).unwrap_or(namespace);
        let Some(mut ds) = cluster
            .get("cdi.kubevirt.io", "datasources", ns, name)
            .await
        else {
            continue;
        };
        if let Some(next) =
            nonempty(&ds, &["spec", "source", "dataSource", "name"]).map(str::to_string)
        {
            let next_ns = nonempty(&ds, &["spec", "source", "dataSource", "namespace"])
                .unwrap_or(ns)
                .to_string();
            let Some(target) = cluster
                .get("cdi.kubevirt.io", "datasources", &next_ns, &next)
                .await
            else {
                continue;
            };
            ds = target;
        }
        if let Some(arch) = str_at(&ds, &["metadata", "labels", ARCH_LABEL])
            .filter(|a| ["amd64", "arm64", "s390x"].contains(a))
        {
            return Some(arch.to_string());
        }
    }
    None
}

async fn validate(req: &Request<'_>, obj: &Value, cluster: &dyn Cluster, out: &mut Outcome) {
    let Some(template) = at(obj, &["spec", "template"]) else {
        out.causes.push(Cause::required(
            "spec.template",
            "missing virtual machine template.",
        ));
        return;
    };
    let template_spec = template.get("spec").cloned().unwrap_or(Value::Null);
    match find_spec(obj, req.namespace, Matcher::Instancetype, cluster).await {
        Err(cause) => return out.causes.push(cause),
        Ok(Some(itype)) => {
            let found: Vec<Cause> = conflicts(&itype, &template_spec)
                .into_iter()
                .map(|f| conflict_cause(TEMPLATE_SPEC, f))
                .collect();
            if !found.is_empty() {
                return out.causes.extend(found);
            }
        }
        Ok(None) => {}
    }
    if let Err(cause) = find_spec(obj, req.namespace, Matcher::Preference, cluster).await {
        return out.causes.push(cause);
    }
    if has(obj, &["spec", "running"]) {
        if has(obj, &["spec", "runStrategy"]) {
            out.causes.push(Cause::invalid(
                "spec.running",
                "Running and RunStrategy are mutually exclusive",
            ));
        } else {
            out.warnings.push(
                "spec.running is deprecated, please use spec.runStrategy instead.".to_string(),
            );
        }
    }
    if let Some(strategy) =
        str_at(obj, &["spec", "runStrategy"]).filter(|s| !RUN_STRATEGIES.contains(s))
    {
        out.causes.push(Cause::invalid(
            "spec.runStrategy",
            format!("Invalid RunStrategy ({strategy})"),
        ));
    }
    if !req.is_system() && crate::vmi::has_restricted_labels(template) {
        out.causes.push(Cause::not_supported(
            "spec.template.metadata.labels",
            "creation of the following reserved kubevirt.io/ labels on a VMI object is prohibited",
        ));
    }
    validate_spec(&template_spec, TEMPLATE_SPEC, &mut out.causes);
    validate_data_volume_templates(obj, req.namespace, &mut out.causes);
    validate_volume_requests(obj, &mut out.causes);
    if let (Operation::Update, Some(old)) = (req.operation, req.old) {
        validate_locks(obj, old, &mut out.causes);
    }
}

fn validate_data_volume_templates(vm: &Value, namespace: &str, out: &mut Vec<Cause>) {
    let volumes = array(vm, &["spec", "template", "spec", "volumes"]);
    for (i, dvt) in array(vm, &["spec", "dataVolumeTemplates"])
        .iter()
        .enumerate()
    {
        let f = index("spec.dataVolumeTemplates", i);
        let name = str_at(dvt, &["metadata", "name"]).unwrap_or("");
        if name.is_empty() {
            out.push(Cause::required(
                child(&f, "metadata.name"),
                format!("'name' field must not be empty for DataVolumeTemplate entry {f}."),
            ));
        }
        let referenced = volumes.iter().any(|v| {
            str_at(v, &["dataVolume", "name"]) == Some(name)
                || str_at(v, &["persistentVolumeClaim", "claimName"]) == Some(name)
        });
        if !referenced {
            out.push(Cause::required(
                &f,
                format!("DataVolumeTemplate entry {f} must be referenced in the VMI template's 'volumes' list"),
            ));
        }
        if let Some(ns) = nonempty(dvt, &["metadata", "namespace"]).filter(|ns| *ns != namespace) {
            out.push(Cause::invalid(
                &f,
                format!("Embedded DataVolume namespace {ns} differs from VM namespace {namespace}"),
            ));
        }
        // Upstream leaves this to CDI when the DataVolume is created; rejecting it here shows
        // the error at `oc create` time (manual 7.2.3: a source has exactly one type).
        if let Some(spec) = dvt.get("spec") {
            datavolume::validate_source(spec, &child(&f, "spec"), out);
        }
    }
}

/// `status.volumeRequests` (written by `virtctl addvolume --persist`): hotplug rules.
fn validate_volume_requests(vm: &Value, out: &mut Vec<Cause>) {
    for (i, request) in array(vm, &["status", "volumeRequests"]).iter().enumerate() {
        let f = index("status.volumeRequests", i);
        let (add, remove) = (
            at(request, &["addVolumeOptions"]),
            has(request, &["removeVolumeOptions"]),
        );
        let Some(add) = add else {
            if !remove {
                out.push(Cause::invalid(&f, "VolumeRequests require one of either addVolumeOptions or removeVolumeOptions to be set"));
            }
            continue;
        };
        if remove {
            out.push(Cause::invalid(&f, "VolumeRequests require either addVolumeOptions or removeVolumeOptions to be set, not both"));
            continue;
        }
        let name = str_at(add, &["name"]).unwrap_or("");
        let source = at(add, &["volumeSource"]).cloned().unwrap_or(Value::Null);
        if !has(&source, &["persistentVolumeClaim"]) && !has(&source, &["dataVolume"]) {
            out.push(Cause::invalid(
                child(&f, "addVolumeOptions.volumeSource"),
                format!("volume {name} is not a PVC or DataVolume"),
            ));
        }
        let Some(disk) = at(add, &["disk"]) else {
            out.push(Cause::invalid(
                &f,
                format!("AddVolume request for [{name}] requires the disk field to be set."),
            ));
            continue;
        };
        let bus = if has(disk, &["disk"]) {
            str_at(disk, &["disk", "bus"]).unwrap_or("")
        } else if has(disk, &["lun"]) {
            str_at(disk, &["lun", "bus"]).unwrap_or("")
        } else {
            out.push(Cause::invalid(&f, format!("AddVolume request for [{name}] requires diskDevice of type 'disk' or 'lun' to be used.")));
            continue;
        };
        if bus != "scsi" {
            out.push(Cause::invalid(&f, format!("AddVolume request for [{name}] requires disk bus to be 'scsi'. [{bus}] is not permitted")));
        } else if bool_at(disk, &["dedicatedIOThread"]) == Some(true) {
            out.push(Cause::invalid(
                &f,
                "IOThreads are not supported by scsi bus.",
            ));
        }
    }
}

/// A VM whose snapshot or restore is in progress keeps its spec (upstream VM admitter).
fn validate_locks(vm: &Value, old: &Value, out: &mut Vec<Cause>) {
    if vm.get("spec") == old.get("spec") {
        return;
    }
    if let Some(snapshot) = nonempty(vm, &["status", "snapshotInProgress"]) {
        out.push(Cause::not_supported(
            "spec",
            format!("Cannot update VM spec until snapshot {snapshot:?} completes"),
        ));
    }
    let halted = match (
        str_at(vm, &["spec", "runStrategy"]),
        bool_at(vm, &["spec", "running"]),
    ) {
        (Some(s), _) => s == "Halted",
        (None, running) => running != Some(true),
    };
    if let Some(restore) = nonempty(vm, &["status", "restoreInProgress"]).filter(|_| !halted) {
        out.push(Cause::not_supported(
            "spec",
            format!("Cannot start VM until restore {restore:?} completes"),
        ));
    }
}

/// VirtualMachineInstanceReplicaSet and VirtualMachinePool: validate the embedded VMI template
/// found under `keys` (`spec.template`, `spec.virtualMachineTemplate.spec.template`).
pub(crate) fn admit_template_owner(obj: &Value, keys: &[&str], out: &mut Outcome) {
    let path = keys.join(".");
    let Some(template) = at(obj, keys) else {
        out.causes
            .push(Cause::required(&path, "missing virtual machine template."));
        return;
    };
    let spec = template.get("spec").cloned().unwrap_or(Value::Null);
    validate_spec(&spec, &child(&path, "spec"), &mut out.causes);
}

/// VirtualMachineInstancePreset is served but deprecated (UPSTREAM-FACTS §5, VMI mutator).
pub(crate) fn warn_preset(req: &Request<'_>, out: &mut Outcome) {
    if req.operation == Operation::Create {
        out.warnings.push("kubevirt.io/v1 VirtualMachineInstancePresets is now deprecated and will be removed in v2.".to_string());
    }
}

#[cfg(test)]
mod tests;
