//! What the VM controller creates: the VMI (template with the captured instance type and
//! preference applied), the DataVolumes of `spec.dataVolumeTemplates`, and the start
//! revision that `RestartRequired` compares the template against.

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::core::DynamicObject;
use kube::{Api, ResourceExt};
use serde_json::{json, Map, Value};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::{EventType, Regarding};
use crate::object::{controller_ref, data_volume_resource, phase, str_at};
use crate::vm::strategy::has_start_paused_request;
use crate::well_known::{reason, CREATED_BY_LABEL, VM_GENERATION_ANNOTATION};

/// The VMI for `vm` built from its (expanded) template (upstream `SetupVMIFromVM`).
pub(crate) fn vmi_from_vm(vm: &DynamicObject, vm_json: &Value, expanded: &Value) -> Value {
    let template = &expanded["spec"]["template"];
    let mut annotations = template["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let generation = vm.metadata.generation.unwrap_or(1);
    annotations.insert(
        VM_GENERATION_ANNOTATION.into(),
        json!(generation.to_string()),
    );
    let mut spec = super::interfaces::without_detached(&template["spec"]);
    if has_start_paused_request(vm_json) {
        spec["startStrategy"] = json!("Paused");
    }
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": vm.name_any(),
            "namespace": vm.namespace(),
            "labels": template["metadata"]["labels"].as_object().cloned().unwrap_or_default(),
            "annotations": annotations,
            "ownerReferences": [controller_ref(vm, "kubevirt.io/v1", "VirtualMachine")],
        },
        "spec": spec,
    })
}

/// The VM with its instance type and preference applied from the captured
/// ControllerRevisions; `None` while a reference has not been captured yet (the
/// instancetype controller records it in `status.instancetypeRef/preferenceRef`).
///
/// # Errors
/// API failures reading the revisions; [`Error::Expand`] when the expansion conflicts.
pub(crate) async fn expanded_vm(
    ctx: &Context,
    vm: &DynamicObject,
    vm_json: &Value,
) -> Result<Option<Value>> {
    let ns = vm.namespace().unwrap_or_default();
    let revisions: Api<ControllerRevision> = Api::namespaced(ctx.client().clone(), &ns);
    let mut captured: [Option<Value>; 2] = [None, None];
    for (slot, field) in captured.iter_mut().zip(["instancetype", "preference"]) {
        if vm_json["spec"][field].is_null() {
            continue;
        }
        let Some(name) = str_at(
            vm_json,
            &format!("/status/{field}Ref/controllerRevisionRef/name"),
        ) else {
            return Ok(None);
        };
        let Some(revision) = revisions
            .get_opt(name)
            .await
            .map_err(Error::api(format!("ControllerRevision {ns}/{name}")))?
        else {
            return Ok(None);
        };
        *slot = revision.data.map(|d| d.0);
    }
    let [instancetype, preference] = captured;
    oxivirt_api::expand_spec(vm_json, instancetype.as_ref(), preference.as_ref())
        .map(Some)
        .map_err(|source| Error::Expand {
            vm: format!("{ns}/{}", vm.name_any()),
            source,
        })
}

/// The DataVolume a `spec.dataVolumeTemplates` entry describes, owned by the VM.
fn data_volume_from_template(vm: &DynamicObject, template: &Value) -> Value {
    let mut labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(CREATED_BY_LABEL.into(), json!(vm.uid().unwrap_or_default()));
    json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {
            "name": template["metadata"]["name"],
            "namespace": vm.namespace(),
            "labels": labels,
            "annotations": template["metadata"]["annotations"].as_object().cloned().unwrap_or_default(),
            "ownerReferences": [controller_ref(vm, "kubevirt.io/v1", "VirtualMachine")],
        },
        "spec": template["spec"],
    })
}

/// Creates the missing DataVolumes of `spec.dataVolumeTemplates`; whether all of them are
/// ready (upstream `handleDataVolumes`: Succeeded, WaitForFirstConsumer or PendingPopulation).
///
/// # Errors
/// API failures (a failed create is also reported as a `FailedDataVolumeCreate` Event).
pub(crate) async fn sync_data_volumes(
    ctx: &Context,
    vm: &DynamicObject,
    vm_json: &Value,
) -> Result<bool> {
    let ns = vm.namespace().unwrap_or_default();
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client().clone(), &ns, &data_volume_resource());
    let regarding = Regarding::of(vm_json, "kubevirt.io/v1", "VirtualMachine");
    let templates = vm_json["spec"]["dataVolumeTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut ready = true;
    for template in &templates {
        let Some(name) = str_at(template, "/metadata/name") else {
            continue;
        };
        let existing = api
            .get_opt(name)
            .await
            .map_err(Error::api(format!("DataVolume {ns}/{name}")))?;
        match existing {
            None => {
                ready = false;
                let dv: DynamicObject =
                    serde_json::from_value(data_volume_from_template(vm, template))
                        .map_err(|_| Error::Malformed("spec.dataVolumeTemplates"))?;
                match api.create(&PostParams::default(), &dv).await {
                    Ok(_) => {
                        let message = format!("Created DataVolume {name}");
                        let r = reason::SUCCESSFUL_DATA_VOLUME_CREATE;
                        ctx.recorder()
                            .publish(&regarding, EventType::Normal, r, &message)
                            .await;
                    }
                    Err(e) => {
                        let message = format!("Error creating DataVolume {name}: {e}");
                        let r = reason::FAILED_DATA_VOLUME_CREATE;
                        ctx.recorder()
                            .publish(&regarding, EventType::Warning, r, &message)
                            .await;
                        return Err(Error::api(format!("DataVolume {ns}/{name}"))(e));
                    }
                }
            }
            Some(dv) => match phase(&dv.data) {
                "Succeeded" | "WaitForFirstConsumer" | "PendingPopulation" => {}
                "Failed" => {
                    ready = false;
                    let message = format!("DataVolume {name} failed to import disk image");
                    let r = reason::FAILED_DATA_VOLUME_IMPORT;
                    ctx.recorder()
                        .publish(&regarding, EventType::Warning, r, &message)
                        .await;
                }
                _ => ready = false,
            },
        }
    }
    Ok(ready)
}

/// The DataVolumes and PersistentVolumeClaims the template's volumes name, as they exist.
pub(crate) async fn referenced_volumes(ctx: &Context, vm_json: &Value) -> (Vec<Value>, Vec<Value>) {
    let ns = str_at(vm_json, "/metadata/namespace").unwrap_or_default();
    let dvs: Api<DynamicObject> =
        Api::namespaced_with(ctx.client().clone(), ns, &data_volume_resource());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client().clone(), ns);
    let (mut found_dvs, mut found_claims) = (Vec::new(), Vec::new());
    let volumes = vm_json["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for volume in &volumes {
        let dv = str_at(volume, "/dataVolume/name");
        if let Some(name) = dv {
            if let Ok(Some(dv)) = dvs.get_opt(name).await {
                found_dvs.push(dv.data);
            }
        }
        if let Some(claim) = str_at(volume, "/persistentVolumeClaim/claimName").or(dv) {
            if let Ok(Some(pvc)) = pvcs.get_opt(claim).await {
                found_claims.push(serde_json::to_value(pvc).unwrap_or(Value::Null));
            }
        }
    }
    (found_dvs, found_claims)
}

fn revision_prefix(vm: &DynamicObject) -> String {
    format!("revision-start-vm-{}-", vm.uid().unwrap_or_default())
}

/// Marks a VM's start revisions, so they are listed by selector: a namespace's full list
/// (every VM's recorded spec) on each reconcile grew with the square of the VMs starting.
const START_REVISION_OF: &str = "oxivirt.io/start-revision-of";

fn start_revisions(vm: &DynamicObject) -> ListParams {
    ListParams::default().labels(&format!(
        "{START_REVISION_OF}={}",
        vm.uid().unwrap_or_default()
    ))
}

/// What `RestartRequired` compares: the template spec and the instance type and
/// preference references.
pub(crate) fn restart_relevant(spec: &Value) -> Value {
    let mut out = Map::new();
    for key in ["instancetype", "preference"] {
        out.insert(key.into(), spec[key].clone());
    }
    // Without `absent` interfaces: dropping one from the spec once it is gone is no change.
    // Without hot-plugged volumes: `addvolume --persist` puts them in the template and the
    // running VMI already has them (upstream does not ask for a restart either).
    let template = super::interfaces::without_detached(&spec["template"]["spec"]);
    out.insert("template".into(), without_hotplugged_volumes(template));
    Value::Object(out)
}

/// `spec` without the volumes whose source is `hotpluggable` and without their disks.
fn without_hotplugged_volumes(mut spec: Value) -> Value {
    let hotplugged = |v: &Value| {
        v.as_object()
            .is_some_and(|m| m.values().any(|source| source["hotpluggable"] == true))
    };
    let names: Vec<Value> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| hotplugged(v))
        .map(|v| v["name"].clone())
        .collect();
    if names.is_empty() {
        return spec;
    }
    if let Some(volumes) = spec["volumes"].as_array_mut() {
        volumes.retain(|v| !names.contains(&v["name"]));
    }
    if let Some(disks) = spec["domain"]["devices"]["disks"].as_array_mut() {
        disks.retain(|d| !names.contains(&d["name"]));
    }
    spec
}

/// Records the VM spec a VMI is started from (`revision-start-vm-<uid>-<generation>`,
/// upstream `createVMRevision`), deleting older ones.
///
/// # Errors
/// API failures.
pub(crate) async fn record_start_revision(
    ctx: &Context,
    vm: &DynamicObject,
    vm_json: &Value,
) -> Result<()> {
    let ns = vm.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client().clone(), &ns);
    let generation = vm.metadata.generation.unwrap_or(1);
    let name = format!("{}{generation}", revision_prefix(vm));
    let uid = vm.uid().unwrap_or_default();
    if ctx
        .start_revision(&uid)
        .is_some_and(|(have, _)| have == name)
    {
        return Ok(());
    }
    let existing = api
        .list(&start_revisions(vm))
        .await
        .map_err(Error::api(format!("ControllerRevisions in {ns}")))?;
    let mut have = false;
    for old in existing
        .items
        .iter()
        .filter(|r| r.name_any().starts_with(&revision_prefix(vm)))
    {
        if old.name_any() == name {
            have = true;
        } else if let Err(e) = api.delete(&old.name_any(), &DeleteParams::default()).await {
            tracing::debug!(error = %e, revision = old.name_any(), "could not delete old start revision");
        }
    }
    if have {
        ctx.remember_start_revision(&uid, Some((name, vm_json["spec"].clone())));
        return Ok(());
    }
    let revision: ControllerRevision = serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": ns,
            "labels": {START_REVISION_OF: vm.uid().unwrap_or_default()},
            "ownerReferences": [controller_ref(vm, "kubevirt.io/v1", "VirtualMachine")],
        },
        "data": {"spec": vm_json["spec"]},
        "revision": generation,
    }))
    .map_err(|_| Error::Malformed("a start ControllerRevision"))?;
    match api.create(&PostParams::default(), &revision).await {
        Ok(_) => {
            ctx.remember_start_revision(&uid, Some((name, vm_json["spec"].clone())));
            Ok(())
        }
        // Recorded by an earlier pass whose answer was lost: the next read lists it.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            ctx.remember_start_revision(&uid, None);
            Ok(())
        }
        Err(e) => Err(Error::api(format!("ControllerRevision {ns}/{name}"))(e)),
    }
}

/// The VM spec recorded when the current VMI was started, if any.
///
/// # Errors
/// API failures.
pub(crate) async fn start_revision_spec(
    ctx: &Context,
    vm: &DynamicObject,
) -> Result<Option<Value>> {
    let uid = vm.uid().unwrap_or_default();
    if let Some((_, spec)) = ctx.start_revision(&uid) {
        return Ok(Some(spec));
    }
    let ns = vm.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client().clone(), &ns);
    let list = api
        .list(&start_revisions(vm))
        .await
        .map_err(Error::api(format!("ControllerRevisions in {ns}")))?;
    let prefix = revision_prefix(vm);
    let newest = list
        .items
        .into_iter()
        .filter(|r| r.name_any().starts_with(&prefix))
        .max_by_key(|r| r.revision)
        .and_then(|r| Some((r.name_any(), r.data?.0["spec"].clone())));
    if let Some(newest) = &newest {
        ctx.remember_start_revision(&uid, Some(newest.clone()));
    }
    Ok(newest.map(|(_, spec)| spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> (DynamicObject, Value) {
        let value = json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "vm1", "namespace": "ns", "uid": "vm-uid", "generation": 3},
            "spec": {"template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"note": "x"}},
                "spec": {"domain": {"devices": {}}},
            }},
            "status": {"stateChangeRequests": [{"action": "Start", "data": {"paused": "true"}}]},
        });
        (
            serde_json::from_value(value.clone()).expect("a DynamicObject"),
            value,
        )
    }

    #[test]
    fn the_vmi_takes_the_template_and_points_at_its_vm() {
        let (obj, value) = vm();
        let vmi = vmi_from_vm(&obj, &value, &value);
        assert_eq!(vmi["metadata"]["name"], "vm1");
        assert_eq!(vmi["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(vmi["metadata"]["annotations"]["note"], "x");
        assert_eq!(
            vmi["metadata"]["annotations"][VM_GENERATION_ANNOTATION],
            "3"
        );
        let owner = &vmi["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["uid"].as_str()),
            (Some("VirtualMachine"), Some("vm-uid"))
        );
        assert_eq!(owner["controller"], true);
        assert_eq!(vmi["spec"]["startStrategy"], "Paused", "start --paused");
    }

    #[test]
    fn data_volumes_from_templates_are_owned_and_labelled() {
        let (obj, _) = vm();
        let dv = data_volume_from_template(
            &obj,
            &json!({"metadata": {"name": "disk"}, "spec": {"source": {"blank": {}}}}),
        );
        assert_eq!(dv["metadata"]["labels"][CREATED_BY_LABEL], "vm-uid");
        assert_eq!(dv["metadata"]["ownerReferences"][0]["name"], "vm1");
        assert_eq!(dv["spec"]["source"], json!({"blank": {}}));
    }

    #[test]
    fn hot_plugged_volumes_do_not_require_a_restart() {
        let started = json!({"template": {"spec": {
            "domain": {"devices": {"disks": [{"name": "root", "disk": {}}]}},
            "volumes": [{"name": "root", "containerDisk": {"image": "x"}}]}}});
        let with = |disk: Value, volume: Value| {
            let mut spec = started.clone();
            if let Some(d) = spec["template"]["spec"]["domain"]["devices"]["disks"].as_array_mut() {
                d.push(disk);
            }
            if let Some(v) = spec["template"]["spec"]["volumes"].as_array_mut() {
                v.push(volume);
            }
            spec
        };
        let plugged = with(
            json!({"name": "hp", "disk": {"bus": "scsi"}}),
            json!({"name": "hp", "dataVolume": {"name": "d", "hotpluggable": true}}),
        );
        assert_eq!(restart_relevant(&started), restart_relevant(&plugged));
        let cold = with(
            json!({"name": "cold", "disk": {}}),
            json!({"name": "cold", "dataVolume": {"name": "d"}}),
        );
        assert_ne!(restart_relevant(&started), restart_relevant(&cold));
    }
}
