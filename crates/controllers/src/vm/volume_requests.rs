//! `status.volumeRequests`: the hot-plug requests `addvolume`/`removevolume` on a VM record
//! (`virtctl addvolume --persist`). A pass applies them, in order, to the VM template, so
//! the next VMI starts with the disk, and to the VMI while it lives, so its node agent
//! attaches or detaches the disk now; then it drops them from the list.
//!
//! # Guarantees
//! Idempotent: applying a request twice is applying it once (an add whose volume name is
//! already there is done, a remove of a volume that is gone is done), so a pass cut short
//! after the template write and before the status write redoes no harm. Every write carries
//! the resourceVersion it was computed from: a request recorded meanwhile makes the status
//! write conflict, and the retried pass handles it too.
//!
//! # Assumptions
//! The API server checked each request when it was recorded (names, claims, bus), against
//! the template with the earlier requests applied; a request that no longer fits is
//! skipped rather than failing the VM.

use kube::api::{Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Map, Value};

use super::{strategy, Pass};
use crate::error::{Error, Result};
use crate::object::{is_deleting, resource_version, to_json};

/// The requests recorded on `vm`.
fn requests(vm: &Value) -> &[Value] {
    vm["status"]["volumeRequests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn has_volume(spec: &Value, name: &str) -> bool {
    spec["volumes"]
        .as_array()
        .is_some_and(|v| v.iter().any(|v| v["name"] == name))
}

/// An `addVolumeOptions`: its volume and disk join the spec unless a volume of that name
/// is there already.
fn add(spec: &mut Value, options: &Value) {
    let Some(name) = options["name"].as_str().filter(|n| !n.is_empty()) else {
        return;
    };
    let Some(source) = options["volumeSource"].as_object() else {
        return;
    };
    if has_volume(spec, name) {
        return;
    }
    let mut volume = Map::from_iter([("name".to_string(), json!(name))]);
    for (key, inner) in source {
        let mut inner = inner.clone();
        // A requested volume is a hot-plug by definition; the flag is what lets the node
        // agent attach it and a later removevolume take it away.
        if inner.is_object() {
            inner["hotpluggable"] = json!(true);
        }
        volume.insert(key.clone(), inner);
    }
    let mut volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    volumes.push(Value::Object(volume));
    spec["volumes"] = json!(volumes);
    let mut disk = options["disk"].clone();
    if !disk.is_object() {
        disk = json!({});
    }
    disk["name"] = json!(name);
    let mut disks = spec["domain"]["devices"]["disks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    disks.retain(|d| d["name"] != name);
    disks.push(disk);
    spec["domain"]["devices"]["disks"] = json!(disks);
}

/// A `removeVolumeOptions`: a hot-plugged volume and its disk leave the spec; a volume the
/// VM was defined with stays.
fn remove(spec: &mut Value, name: &str) {
    let hotplugged = spec["volumes"].as_array().is_some_and(|v| {
        v.iter().any(|v| {
            v["name"] == name
                && (v["persistentVolumeClaim"]["hotpluggable"] == true
                    || v["dataVolume"]["hotpluggable"] == true)
        })
    });
    if !hotplugged {
        return;
    }
    if let Some(volumes) = spec["volumes"].as_array_mut() {
        volumes.retain(|v| v["name"] != name);
    }
    if let Some(disks) = spec["domain"]["devices"]["disks"].as_array_mut() {
        disks.retain(|d| d["name"] != name);
    }
}

/// Applies `requests` in order to a VMI spec (a VM's `spec.template.spec` or a VMI's
/// `spec`).
pub(super) fn apply(spec: &mut Value, requests: &[Value]) {
    for request in requests {
        if request["addVolumeOptions"].is_object() {
            add(spec, &request["addVolumeOptions"]);
        } else if let Some(name) = request["removeVolumeOptions"]["name"].as_str() {
            remove(spec, name);
        }
    }
}

/// The merge patch that gives a VMI spec (`template`: a VM's template spec) the volumes
/// and disks of `spec`.
fn volumes_patch(rv: Option<&str>, spec: &Value, template: bool) -> Value {
    let fields = json!({
        "volumes": spec["volumes"],
        "domain": {"devices": {"disks": spec["domain"]["devices"]["disks"]}},
    });
    let spec = if template {
        json!({"template": {"spec": fields}})
    } else {
        fields
    };
    json!({"metadata": {"resourceVersion": rv}, "spec": spec})
}

/// Handles the VM's `status.volumeRequests` (see the module doc); the VMI as it now is.
///
/// # Errors
/// API failures, conflicts included (the pass is retried).
pub(super) async fn handle(pass: &mut Pass<'_>, vmi: Option<Value>) -> Result<Option<Value>> {
    let requests = requests(&pass.json).to_vec();
    if requests.is_empty() {
        return Ok(vmi);
    }
    let name = pass.vm.name_any();
    let template = &pass.json["spec"]["template"]["spec"];
    let mut spec = template.clone();
    apply(&mut spec, &requests);
    if spec != *template {
        let patch = volumes_patch(resource_version(&pass.json), &spec, true);
        let updated = pass
            .vms
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::api(format!("volumes of {}", pass.what())))?;
        pass.set_vm(updated);
    }
    let vmi = match vmi {
        Some(vmi) if !is_deleting(&vmi) && !strategy::is_final(&vmi) => {
            let mut spec = vmi["spec"].clone();
            apply(&mut spec, &requests);
            if spec == vmi["spec"] {
                Some(vmi)
            } else {
                let patch = volumes_patch(resource_version(&vmi), &spec, false);
                let updated = pass
                    .vmis
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(Error::api(format!(
                        "volumes of the VirtualMachineInstance of {}",
                        pass.what()
                    )))?;
                Some(to_json(&updated))
            }
        }
        other => other,
    };
    // Null deletes the list (merge patch): upstream leaves no empty list behind.
    pass.patch_status(Map::from_iter([("volumeRequests".into(), Value::Null)]))
        .await?;
    Ok(vmi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        json!({
            "domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]}},
            "volumes": [{"name": "root", "dataVolume": {"name": "root"}}],
        })
    }

    fn add_request(name: &str) -> Value {
        json!({"addVolumeOptions": {
            "name": name,
            "disk": {"disk": {"bus": "scsi"}, "serial": "S1"},
            "volumeSource": {"dataVolume": {"name": "data"}},
        }})
    }

    #[test]
    fn an_add_request_puts_a_hotpluggable_volume_and_its_disk_into_the_spec_once() {
        let mut once = spec();
        apply(&mut once, &[add_request("hp")]);
        assert_eq!(
            once["volumes"][1],
            json!({"name": "hp", "dataVolume": {"name": "data", "hotpluggable": true}})
        );
        assert_eq!(
            once["domain"]["devices"]["disks"][1],
            json!({"name": "hp", "disk": {"bus": "scsi"}, "serial": "S1"})
        );
        let mut twice = once.clone();
        apply(&mut twice, &[add_request("hp")]);
        assert_eq!(twice, once);
    }

    #[test]
    fn a_remove_request_takes_only_hot_plugged_volumes_away() {
        let mut spec = spec();
        let remove_hp = json!({"removeVolumeOptions": {"name": "hp"}});
        let remove_root = json!({"removeVolumeOptions": {"name": "root"}});
        apply(&mut spec, &[add_request("hp"), remove_root]);
        assert_eq!(spec["volumes"].as_array().map(Vec::len), Some(2));
        apply(&mut spec, std::slice::from_ref(&remove_hp));
        assert_eq!(spec, self::spec());
        // Removing what is gone is done already.
        apply(&mut spec, &[remove_hp]);
        assert_eq!(spec, self::spec());
    }

    #[test]
    fn requests_apply_in_order() {
        let mut spec = spec();
        let readd = json!({"addVolumeOptions": {
            "name": "hp", "disk": {"disk": {"bus": "scsi"}, "serial": "S2"},
            "volumeSource": {"persistentVolumeClaim": {"claimName": "other"}},
        }});
        apply(
            &mut spec,
            &[
                add_request("hp"),
                json!({"removeVolumeOptions": {"name": "hp"}}),
                readd,
            ],
        );
        assert_eq!(
            spec["volumes"][1]["persistentVolumeClaim"]["claimName"],
            "other"
        );
        assert_eq!(spec["domain"]["devices"]["disks"][1]["serial"], "S2");
    }

    #[test]
    fn the_template_patch_replaces_volumes_and_disks_under_the_read_version() {
        let patch = volumes_patch(Some("7"), &spec(), true);
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        assert_eq!(
            patch["spec"]["template"]["spec"]["volumes"][0]["name"],
            "root"
        );
        let patch = volumes_patch(Some("7"), &spec(), false);
        assert_eq!(
            patch["spec"]["domain"]["devices"]["disks"][0]["name"],
            "root"
        );
    }
}
