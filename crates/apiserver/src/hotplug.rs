//! `addvolume` / `removevolume` on VMs and VMIs (manual 7.15.1), as upstream's virt-api
//! handles them: by editing specs or recording requests, never by touching the guest.
//!
//! * On a VMI the volume and its disk go into the VMI spec only: a VM owning the VMI does
//!   not keep it across a restart. The node agent of the VMI's node sees the spec change
//!   and attaches or detaches the disk over QMP, reporting in `status.volumeStatus`
//!   (design 0005, hot-plug).
//! * On a VM (`virtctl addvolume --persist`) the request is checked against the VM
//!   template and recorded in `status.volumeRequests`; the VM controller puts it into
//!   `spec.template.spec`, so the next VMI starts with the disk, and into a running VMI's
//!   spec, then drops the request from the list.
//!
//! The hot-plugged volume source carries `hotpluggable: true`, which is what lets it be
//! removed again; a volume the VM was defined with is refused. A claim still being
//! provisioned or populated is accepted ([`claim`]).

mod claim;

use serde_json::{json, Value};

use crate::context::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::service::{Api, Subresource};

/// Which object a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    VirtualMachine,
    VirtualMachineInstance,
}

impl Target {
    fn plural(self) -> &'static str {
        match self {
            Target::VirtualMachine => "virtualmachines",
            Target::VirtualMachineInstance => "virtualmachineinstances",
        }
    }
}

/// A validated `AddVolumeOptions`.
#[derive(Debug, Clone, PartialEq)]
pub struct AddVolume {
    /// The volume (and disk) name.
    pub name: String,
    /// The disk, its `name` set to [`AddVolume::name`].
    pub disk: Value,
    /// The volume, with `hotpluggable: true` on its source.
    pub volume: Value,
    /// The claim behind the volume (a DataVolume's claim has its name).
    pub claim: String,
    /// Set for a `dataVolume` source.
    pub data_volume: Option<String>,
    pub dry_run: bool,
}

fn dry_run_of(options: &Value) -> bool {
    options["dryRun"]
        .as_array()
        .is_some_and(|d| d.iter().any(|v| v == "All"))
}

/// Parses and checks an `AddVolumeOptions` body (upstream's messages).
///
/// # Errors
/// 400 for malformed JSON, a missing name, disk or source, or a source other than exactly
/// one PVC or DataVolume, or a bus other than `scsi`.
pub fn parse_add(body: &[u8]) -> ApiResult<AddVolume> {
    let options: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("the AddVolumeOptions are not valid JSON: {e}"))
    })?;
    let name = options["name"].as_str().unwrap_or_default().to_string();
    if name.is_empty() {
        return Err(ApiError::BadRequest(
            "AddVolumeOptions requires name to be set".into(),
        ));
    }
    let Some(disk) = options.get("disk").filter(|d| d.is_object()) else {
        return Err(ApiError::BadRequest(
            "AddVolumeOptions requires disk to not be nil".into(),
        ));
    };
    let Some(source) = options.get("volumeSource").filter(|s| s.is_object()) else {
        return Err(ApiError::BadRequest(
            "AddVolumeOptions requires VolumeSource to not be nil".into(),
        ));
    };
    let mut disk = disk.clone();
    disk["name"] = json!(name);
    // Hot-plugged disks sit on the virtio-scsi controller: a virtio disk would need a PCI
    // slot reserved in advance (manual 7.15.1).
    let device = if disk.get("lun").is_some() {
        "lun"
    } else {
        "disk"
    };
    if !disk[device].is_object() {
        disk[device] = json!({});
    }
    match disk[device]["bus"].as_str() {
        None | Some("") => disk[device]["bus"] = json!("scsi"),
        Some("scsi") => {}
        Some(bus) => {
            return Err(ApiError::BadRequest(format!(
                "AddVolume request for [{name}] requires disk bus to be 'scsi'. [{bus}] is not permitted"
            )))
        }
    }
    let (pvc, dv) = (
        source
            .get("persistentVolumeClaim")
            .filter(|s| s.is_object()),
        source.get("dataVolume").filter(|s| s.is_object()),
    );
    let (key, mut inner, claim, data_volume) = match (pvc, dv) {
        (Some(pvc), None) => {
            let claim = pvc["claimName"].as_str().unwrap_or_default().to_string();
            ("persistentVolumeClaim", pvc.clone(), claim, None)
        }
        (None, Some(dv)) => {
            let dv_name = dv["name"].as_str().unwrap_or_default().to_string();
            ("dataVolume", dv.clone(), dv_name.clone(), Some(dv_name))
        }
        _ => {
            return Err(ApiError::BadRequest(
                "AddVolumeOptions requires exactly one of PersistentVolumeClaim or DataVolume to be set".into(),
            ))
        }
    };
    if claim.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "AddVolumeOptions for [{name}] names no claim or DataVolume"
        )));
    }
    inner["hotpluggable"] = json!(true);
    Ok(AddVolume {
        volume: json!({"name": name, key: inner}),
        disk,
        name,
        claim,
        data_volume,
        dry_run: dry_run_of(&options),
    })
}

/// Parses a `RemoveVolumeOptions` body: `(name, dry run)`.
///
/// # Errors
/// 400 for malformed JSON or a missing name.
pub fn parse_remove(body: &[u8]) -> ApiResult<(String, bool)> {
    let options: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("the RemoveVolumeOptions are not valid JSON: {e}"))
    })?;
    match options["name"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => Ok((name.to_string(), dry_run_of(&options))),
        None => Err(ApiError::BadRequest(
            "RemoveVolumeOptions requires name to be set".into(),
        )),
    }
}

fn conflict(target: Target, name: &str, detail: &str) -> ApiError {
    let resource = match target {
        Target::VirtualMachine => "virtualmachine",
        Target::VirtualMachineInstance => "virtualmachineinstance",
    };
    ApiError::conflict("kubevirt.io", resource, name, detail)
}

/// The claim a volume uses, if it is a PVC or DataVolume volume.
fn claim_of(volume: &Value) -> Option<&str> {
    volume["persistentVolumeClaim"]["claimName"]
        .as_str()
        .or_else(|| volume["dataVolume"]["name"].as_str())
}

fn is_hotpluggable(volume: &Value) -> bool {
    volume["persistentVolumeClaim"]["hotpluggable"] == true
        || volume["dataVolume"]["hotpluggable"] == true
}

/// Adds the volume and disk to the VMI spec at `spec` (a VMI's `spec` or a VM's
/// `spec.template.spec`).
///
/// # Errors
/// 409 with upstream's message when the name or the claim is already used.
fn add_to(spec: &mut Value, request: &AddVolume, target: Target, object: &str) -> ApiResult<()> {
    let name = &request.name;
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    if volumes.iter().any(|v| v["name"] == json!(name)) {
        return Err(conflict(
            target,
            object,
            &format!("Unable to add volume [{name}] because volume with that name already exists"),
        ));
    }
    if volumes
        .iter()
        .any(|v| claim_of(v) == Some(request.claim.as_str()))
    {
        return Err(conflict(
            target,
            object,
            &format!(
                "Unable to add volume source [{}] because it already exists",
                request.claim
            ),
        ));
    }
    let mut volumes = volumes;
    volumes.push(request.volume.clone());
    spec["volumes"] = json!(volumes);
    let disks = &mut spec["domain"]["devices"]["disks"];
    let mut list = disks.as_array().cloned().unwrap_or_default();
    list.retain(|d| d["name"] != json!(name));
    list.push(request.disk.clone());
    *disks = json!(list);
    Ok(())
}

/// Removes a hot-plugged volume and its disk from the VMI spec at `spec`.
///
/// # Errors
/// 409 when there is no such volume, or it is not hotpluggable (upstream's messages).
fn remove_from(spec: &mut Value, volume: &str, target: Target, object: &str) -> ApiResult<()> {
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    let Some(found) = volumes.iter().find(|v| v["name"] == json!(volume)) else {
        return Err(conflict(
            target,
            object,
            &format!("Unable to remove volume [{volume}] because it does not exist"),
        ));
    };
    if !is_hotpluggable(found) {
        return Err(conflict(
            target,
            object,
            &format!("Unable to remove volume [{volume}] because it is not hotpluggable"),
        ));
    }
    let kept: Vec<Value> = volumes
        .into_iter()
        .filter(|v| v["name"] != json!(volume))
        .collect();
    spec["volumes"] = json!(kept);
    if let Some(disks) = spec["domain"]["devices"]["disks"].as_array_mut() {
        disks.retain(|d| d["name"] != json!(volume));
    }
    Ok(())
}

fn strip_rv(obj: &mut Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
}

fn resource(api: &Api, plural: &str) -> ApiResult<std::sync::Arc<crate::registry::ResourceInfo>> {
    api.registry
        .by_group_resource("kubevirt.io", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural}.kubevirt.io is not served")))
}

fn vmi_spec(vmi: &Value) -> Value {
    vmi["spec"].clone()
}

fn vmi_running(vmi: &Value) -> bool {
    vmi.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
}

/// What a request changes.
enum Change<'a> {
    Add(&'a AddVolume),
    Remove(&'a str),
}

impl Change<'_> {
    fn apply(&self, spec: &mut Value, target: Target, object: &str) -> ApiResult<()> {
        match self {
            Change::Add(request) => add_to(spec, request, target, object),
            Change::Remove(volume) => remove_from(spec, volume, target, object),
        }
    }

    /// The entry of a VM's `status.volumeRequests` that asks the VM controller for it.
    fn recorded(&self) -> Value {
        match self {
            Change::Add(request) => {
                let mut source = request.volume.clone();
                if let Some(fields) = source.as_object_mut() {
                    fields.remove("name");
                }
                json!({"addVolumeOptions": {
                    "name": request.name,
                    "disk": request.disk,
                    "volumeSource": source,
                }})
            }
            Change::Remove(volume) => json!({"removeVolumeOptions": {"name": volume}}),
        }
    }
}

/// The VM template spec as it will be once the VM controller has handled the requests
/// already in `status.volumeRequests` (a request that would fail is skipped, as the
/// controller skips it), so a new request is checked against that.
fn with_pending_requests(vm: &Value) -> Value {
    let mut spec = vm["spec"]["template"]["spec"].clone();
    let pending = vm["status"]["volumeRequests"].as_array();
    for request in pending.into_iter().flatten() {
        let options = &request["addVolumeOptions"];
        if options.is_object() {
            let parsed = serde_json::to_vec(options)
                .ok()
                .and_then(|body| parse_add(&body).ok());
            if let Some(add) = parsed {
                let _skipped = add_to(&mut spec, &add, Target::VirtualMachine, "");
            }
        } else if let Some(volume) = request["removeVolumeOptions"]["name"].as_str() {
            let _skipped = remove_from(&mut spec, volume, Target::VirtualMachine, "");
        }
    }
    spec
}

/// `PUT …/{virtualmachines,virtualmachineinstances}/{name}/addvolume`.
///
/// # Errors
/// 404 for a missing VM/VMI, 400 for a missing claim, 422 for one that cannot become
/// usable, 409 for a VMI that is not running or a name already in use.
pub async fn add(
    api: &Api,
    user: &UserInfo,
    ns: &str,
    name: &str,
    target: Target,
    request: &AddVolume,
) -> ApiResult<()> {
    change(
        api,
        user,
        ns,
        name,
        target,
        Change::Add(request),
        request.dry_run,
    )
    .await
}

/// `PUT …/{virtualmachines,virtualmachineinstances}/{name}/removevolume`.
///
/// # Errors
/// 404 for a missing VM/VMI, 409 for a volume that does not exist or was not hot-plugged.
pub async fn remove(
    api: &Api,
    user: &UserInfo,
    ns: &str,
    name: &str,
    target: Target,
    volume: &str,
    dry_run: bool,
) -> ApiResult<()> {
    change(api, user, ns, name, target, Change::Remove(volume), dry_run).await
}

/// A VMI request edits the VMI spec (the node agent acts on it); a VM request is checked
/// against the VM and recorded in `status.volumeRequests`, which the VM controller applies
/// to the template and to a running VMI, then clears (upstream's split).
async fn change(
    api: &Api,
    user: &UserInfo,
    ns: &str,
    name: &str,
    target: Target,
    change: Change<'_>,
    dry_run: bool,
) -> ApiResult<()> {
    let object = resource(api, target.plural())?;
    // The addressed object must exist (404 as upstream) before anything else is checked.
    let current = api.get(&object, ns, name, "v1").await?;
    if target == Target::VirtualMachineInstance && !vmi_running(&current) {
        return Err(conflict(target, name, "VMI is not running"));
    }
    if let Change::Add(request) = &change {
        claim::check(api, ns, (&object.kind, name), request).await?;
    }
    let ctx = crate::vm_actions::virt_api_ctx(user, dry_run);
    let (spec_of, sub): (fn(&Value) -> Value, _) = match target {
        Target::VirtualMachine => (with_pending_requests, Subresource::Status),
        Target::VirtualMachineInstance => (vmi_spec, Subresource::Main),
    };
    api.write_loop(
        &object,
        ns,
        name,
        &ctx,
        "v1",
        false,
        |old| {
            let mut spec = spec_of(old);
            // Checked (409s) against what the spec is or will be.
            change.apply(&mut spec, target, name)?;
            let mut new = old.clone();
            match target {
                Target::VirtualMachine => {
                    let mut requests = old["status"]["volumeRequests"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    requests.push(change.recorded());
                    if !new["status"].is_object() {
                        new["status"] = json!({});
                    }
                    new["status"]["volumeRequests"] = json!(requests);
                }
                Target::VirtualMachineInstance => new["spec"] = spec,
            }
            strip_rv(&mut new);
            Ok(new)
        },
        sub,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_options_default_to_a_scsi_disk_and_mark_the_source_hotpluggable() {
        let body = br#"{"name":"d1","disk":{"disk":{},"serial":"S1"},
            "volumeSource":{"dataVolume":{"name":"d1"}}}"#;
        let request = parse_add(body).expect("valid");
        assert_eq!(request.disk["disk"]["bus"], "scsi");
        assert_eq!(request.disk["name"], "d1");
        assert_eq!(request.volume["dataVolume"]["hotpluggable"], true);
        assert_eq!(request.data_volume.as_deref(), Some("d1"));
        assert!(!request.dry_run);
    }

    #[test]
    fn add_options_refuse_virtio_and_missing_parts_with_upstreams_words() {
        let virtio = br#"{"name":"d","disk":{"disk":{"bus":"virtio"}},
            "volumeSource":{"persistentVolumeClaim":{"claimName":"c"}}}"#;
        let e = parse_add(virtio).expect_err("virtio");
        assert!(
            e.to_string().contains("requires disk bus to be 'scsi'"),
            "{e}"
        );
        let e = parse_add(br#"{"disk":{},"volumeSource":{}}"#).expect_err("no name");
        assert!(e.to_string().contains("requires name to be set"), "{e}");
        let e = parse_add(br#"{"name":"d","volumeSource":{}}"#).expect_err("no disk");
        assert!(e.to_string().contains("disk to not be nil"), "{e}");
        let e = parse_add(br#"{"name":"d","disk":{},"volumeSource":{}}"#).expect_err("none");
        assert!(e.to_string().contains("exactly one of"), "{e}");
    }

    #[test]
    fn only_hotplugged_volumes_can_be_removed() {
        let request = parse_add(
            br#"{"name":"hp","disk":{},"volumeSource":{"persistentVolumeClaim":{"claimName":"c"}}}"#,
        )
        .expect("valid");
        let mut spec = json!({"domain": {"devices": {"disks": [{"name": "root"}]}},
            "volumes": [{"name": "root", "persistentVolumeClaim": {"claimName": "root"}}]});
        let vmi = Target::VirtualMachineInstance;
        add_to(&mut spec, &request, vmi, "x").expect("added");
        assert_eq!(spec["domain"]["devices"]["disks"][1]["disk"]["bus"], "scsi");
        let e = add_to(&mut spec, &request, vmi, "x").expect_err("twice");
        assert!(
            e.to_string()
                .contains("volume with that name already exists"),
            "{e}"
        );
        let e = remove_from(&mut spec, "root", vmi, "x").expect_err("cold");
        assert!(
            e.to_string().contains("because it is not hotpluggable"),
            "{e}"
        );
        let e = remove_from(&mut spec, "nope", vmi, "x").expect_err("missing");
        assert!(e.to_string().contains("because it does not exist"), "{e}");
        remove_from(&mut spec, "hp", vmi, "x").expect("removed");
        assert_eq!(spec["volumes"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            spec["domain"]["devices"]["disks"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn a_vm_request_is_recorded_and_checked_against_the_pending_ones() {
        let request = parse_add(
            br#"{"name":"hp","disk":{"serial":"S"},"volumeSource":{"dataVolume":{"name":"dv"}}}"#,
        )
        .expect("valid");
        let recorded = Change::Add(&request).recorded();
        assert_eq!(
            recorded,
            json!({"addVolumeOptions": {"name": "hp",
                "disk": {"name": "hp", "serial": "S", "disk": {"bus": "scsi"}},
                "volumeSource": {"dataVolume": {"name": "dv", "hotpluggable": true}}}})
        );
        let mut vm = json!({"spec": {"template": {"spec": {
            "domain": {"devices": {"disks": [{"name": "root"}]}},
            "volumes": [{"name": "root", "containerDisk": {"image": "x"}}]}}},
            "status": {"volumeRequests": [recorded]}});
        let mut spec = with_pending_requests(&vm);
        assert_eq!(spec["volumes"][1]["dataVolume"]["name"], "dv");
        // A second add of the same name while the first is pending is a conflict.
        let e = Change::Add(&request)
            .apply(&mut spec, Target::VirtualMachine, "vm")
            .expect_err("pending twice");
        assert!(
            e.to_string()
                .contains("volume with that name already exists"),
            "{e}"
        );
        // A pending removal makes the volume unknown to the next removal.
        vm["status"]["volumeRequests"]
            .as_array_mut()
            .expect("a list")
            .push(Change::Remove("hp").recorded());
        let mut spec = with_pending_requests(&vm);
        assert_eq!(spec["volumes"].as_array().map(Vec::len), Some(1));
        let e = Change::Remove("hp")
            .apply(&mut spec, Target::VirtualMachine, "vm")
            .expect_err("removed twice");
        assert!(e.to_string().contains("because it does not exist"), "{e}");
    }
}
