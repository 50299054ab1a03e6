use serde_json::{json, Value};

use super::*;
use crate::testing::{messages, run, FakeCluster};

const USER: &str = "alice";
const SYSTEM: &str = "system:oxivirt:virt-controller";

fn vmi() -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "testvmi", "namespace": "default"},
        "spec": {
            "domain": {"devices": {"disks": [{"name": "containerdisk", "disk": {"bus": "virtio"}}]},
                       "resources": {"requests": {"memory": "128Mi"}}},
            "volumes": [{"name": "containerdisk", "containerDisk": {"image": "quay.io/kubevirt/cirros-container-disk-demo"}}],
        },
    })
}

fn create(obj: &mut Value) -> Outcome {
    run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachineInstance",
        None,
        USER,
        obj,
    )
}

#[test]
fn vmi_create_gets_finalizer_pending_phase_and_status() {
    let mut obj = vmi();
    let out = create(&mut obj);
    assert!(out.allowed(), "{out:?}");
    assert_eq!(
        obj["metadata"]["finalizers"],
        json!(["kubevirt.io/foregroundDeleteVirtualMachine"])
    );
    assert_eq!(obj["status"]["phase"], "Pending");
    assert_eq!(
        obj["status"]["phaseTransitionTimestamps"][0]["phase"],
        "Pending"
    );
    assert_eq!(obj["status"]["memory"]["guestAtBoot"], "128Mi");
    assert_eq!(
        obj["status"]["currentCPUTopology"],
        json!({"sockets": 1, "cores": 1, "threads": 1})
    );
    assert_eq!(obj["status"]["runtimeUser"], 107);
    assert_eq!(obj["spec"]["domain"]["machine"]["type"], "q35");
}

#[test]
fn vmi_firmware_uuid_is_derived_from_the_name_like_upstream() {
    let mut obj = vmi();
    create(&mut obj);
    assert_eq!(
        obj["spec"]["domain"]["firmware"]["uuid"],
        uuid_v5(&FIRMWARE_UUID_NAMESPACE, "testvmi")
    );
    let mut again = obj.clone();
    create(&mut again);
    assert_eq!(
        again["metadata"]["finalizers"], obj["metadata"]["finalizers"],
        "finalizer added once"
    );
    assert_eq!(again["spec"], obj["spec"], "defaults are idempotent");
}

#[test]
fn vmi_kubevirt_cr_settings_drive_defaults() {
    let kv = json!({"spec": {"configuration": {"cpuModel": "Haswell-noTSX"}}});
    let cluster = FakeCluster::default().with(
        "kubevirt.io",
        "kubevirts",
        "openshift-cnv",
        "kubevirt-kubevirt-hyperconverged",
        kv,
    );
    let mut obj = vmi();
    run(
        &cluster,
        "kubevirt.io",
        "VirtualMachineInstance",
        None,
        USER,
        &mut obj,
    );
    assert_eq!(obj["spec"]["domain"]["cpu"]["model"], "Haswell-noTSX");
}

#[test]
fn vmi_without_any_memory_is_rejected() {
    let mut obj = vmi();
    obj["spec"]["domain"]["resources"] = json!({});
    let out = create(&mut obj);
    assert_eq!(
        messages(&out),
        vec!["no memory requested, at least one of 'spec.domain.memory.guest', 'spec.domain.memory.hugepages.size' \
              or 'spec.domain.resources.requests.memory' must be set"]
    );
}

#[test]
fn vmi_reserved_labels_are_refused_to_users() {
    let mut obj = vmi();
    obj["metadata"]["labels"] = json!({"kubevirt.io/nodeName": "node01"});
    let out = create(&mut obj);
    assert_eq!(
        messages(&out),
        vec![
            "creation of the following reserved kubevirt.io/ labels on a VMI object is prohibited"
        ]
    );
    let mut obj = vmi();
    obj["metadata"]["labels"] = json!({"kubevirt.io/nodeName": "node01"});
    assert!(run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachineInstance",
        None,
        SYSTEM,
        &mut obj
    )
    .allowed());
}

fn created() -> Value {
    let mut obj = vmi();
    assert!(create(&mut obj).allowed());
    obj
}

#[test]
fn vmi_spec_is_immutable_for_users_but_labels_are_editable() {
    let old = created();
    let mut new = old.clone();
    new["metadata"]["labels"] = json!({"app": "web"});
    new["metadata"]["annotations"] = json!({"note": "x"});
    assert!(run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachineInstance",
        Some(&old),
        USER,
        &mut new
    )
    .allowed());

    let mut new = old.clone();
    new["spec"]["domain"]["cpu"]["sockets"] = json!(4);
    let out = run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachineInstance",
        Some(&old),
        USER,
        &mut new,
    );
    assert_eq!(
        out.causes,
        vec![Cause::not_supported(
            "spec",
            "update of VMI object is restricted"
        )]
    );

    let mut new = old.clone();
    new["spec"]["domain"]["cpu"]["sockets"] = json!(4);
    assert!(run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachineInstance",
        Some(&old),
        SYSTEM,
        &mut new
    )
    .allowed());
}

#[test]
fn vmi_status_written_by_users_is_reverted() {
    let old = created();
    let mut new = old.clone();
    new["status"]["phase"] = json!("Running");
    assert!(run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachineInstance",
        Some(&old),
        USER,
        &mut new
    )
    .allowed());
    assert_eq!(new["status"], old["status"]);
}

fn hotplug(volume: Value, disk: Value) -> Outcome {
    let old = created();
    let mut new = old.clone();
    new["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .push(volume);
    if !disk.is_null() {
        new["spec"]["domain"]["devices"]["disks"]
            .as_array_mut()
            .expect("disks")
            .push(disk);
    }
    run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachineInstance",
        Some(&old),
        SYSTEM,
        &mut new,
    )
}

#[test]
fn hotplugged_pvc_on_scsi_is_accepted() {
    let out = hotplug(
        json!({"name": "hp", "persistentVolumeClaim": {"claimName": "hp-pvc", "hotpluggable": true}}),
        json!({"name": "hp", "disk": {"bus": "scsi"}}),
    );
    assert!(out.allowed(), "{out:?}");
}

#[test]
fn hotplugged_container_disk_is_rejected() {
    let out = hotplug(
        json!({"name": "cd", "containerDisk": {"image": "x"}}),
        json!({"name": "cd", "disk": {"bus": "scsi"}}),
    );
    assert_eq!(
        out.causes,
        vec![Cause::invalid(
            "spec.volumes[1]",
            "volume cd is not a PVC or DataVolume"
        )]
    );
}

#[test]
fn hotplugged_virtio_disk_is_rejected() {
    let out = hotplug(
        json!({"name": "hp", "dataVolume": {"name": "hp-dv"}}),
        json!({"name": "hp", "disk": {"bus": "virtio"}}),
    );
    assert_eq!(
        out.causes,
        vec![Cause::invalid(
            "spec.domain.devices.disks[1]",
            "hotplugged Disk hp does not use a scsi bus"
        )]
    );
    let out = hotplug(
        json!({"name": "hp", "dataVolume": {"name": "hp-dv"}}),
        Value::Null,
    );
    assert_eq!(messages(&out), vec!["Disk hp does not exist"]);
    let out = hotplug(
        json!({"name": "hp", "dataVolume": {"name": "hp-dv"}}),
        json!({"name": "hp", "cdrom": {}}),
    );
    assert_eq!(
        messages(&out),
        vec!["Disk hp requires diskDevice of type 'disk' or 'lun' to be hotplugged."]
    );
}

#[test]
fn vmi_volume_without_disk_or_filesystem_is_rejected() {
    // Defaults add a disk for every volume, so this guards objects that skip them.
    let spec = json!({"volumes": [{"name": "data", "emptyDisk": {"capacity": "1Gi"}}, {"name": "dump", "memoryDump": {}}]});
    let mut out = Vec::new();
    validate_volumes_have_disks(&spec, &mut out);
    assert_eq!(
        out,
        vec![Cause::invalid(
            "spec.volumes[0].name",
            "spec.volumes[0].name 'data' not found."
        )]
    );
}
