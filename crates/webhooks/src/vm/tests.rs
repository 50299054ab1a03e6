use serde_json::{json, Value};

use super::*;
use crate::testing::{messages, run, FakeCluster};

const USER: &str = "alice";

fn vm() -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "vm-cirros", "namespace": "default"},
        "spec": {
            "runStrategy": "Always",
            "template": {"spec": {
                "domain": {"devices": {"disks": [{"name": "containerdisk", "disk": {"bus": "virtio"}}]},
                           "resources": {"requests": {"memory": "128Mi"}}},
                "volumes": [{"name": "containerdisk", "containerDisk": {"image": "quay.io/kubevirt/cirros-container-disk-demo"}}],
            }},
        },
    })
}

fn admit_vm(cluster: &FakeCluster, obj: &mut Value) -> Outcome {
    run(cluster, "kubevirt.io", "VirtualMachine", None, USER, obj)
}

#[test]
fn vm_template_gets_only_the_vm_mutator_defaults() {
    let mut obj = vm();
    let out = admit_vm(&FakeCluster::default(), &mut obj);
    assert!(out.allowed(), "{out:?}");
    let spec = &obj["spec"]["template"]["spec"];
    assert_eq!(spec["architecture"], "amd64");
    assert_eq!(spec["domain"]["machine"], json!({"type": "q35"}));
    assert_eq!(
        spec["domain"]["firmware"]["uuid"],
        uuid_v5(&FIRMWARE_UUID_NAMESPACE, "vm-cirros")
    );
    assert_eq!(
        spec["domain"]["firmware"]["serial"],
        uuid_v5(&FIRMWARE_UUID_NAMESPACE, "default/vm-cirros")
    );
    assert!(
        spec["domain"].get("cpu").is_none(),
        "CPU defaults wait for the VMI"
    );
    assert!(
        spec.get("networks").is_none(),
        "the pod interface waits for the VMI"
    );
}

#[test]
fn vm_firmware_ids_are_only_set_on_create() {
    let old = vm();
    let mut new = old.clone();
    let out = run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachine",
        Some(&old),
        USER,
        &mut new,
    );
    assert!(out.allowed());
    assert!(new["spec"]["template"]["spec"]["domain"]
        .get("firmware")
        .is_none());
}

#[test]
fn vm_with_running_and_run_strategy_is_rejected() {
    let mut obj = vm();
    obj["spec"]["running"] = json!(true);
    let out = admit_vm(&FakeCluster::default(), &mut obj);
    assert_eq!(
        out.causes,
        vec![Cause::invalid(
            "spec.running",
            "Running and RunStrategy are mutually exclusive"
        )]
    );
}

#[test]
fn vm_running_alone_is_accepted_with_a_deprecation_warning() {
    let mut obj = vm();
    obj["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("runStrategy");
    obj["spec"]["running"] = json!(false);
    let out = admit_vm(&FakeCluster::default(), &mut obj);
    assert!(out.allowed());
    assert_eq!(
        out.warnings,
        vec!["spec.running is deprecated, please use spec.runStrategy instead."]
    );
}

#[test]
fn vm_without_run_strategy_defaults_to_halted_and_bad_strategies_are_rejected() {
    let mut obj = vm();
    obj["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("runStrategy");
    assert!(admit_vm(&FakeCluster::default(), &mut obj).allowed());
    assert_eq!(obj["spec"]["runStrategy"], "Halted");
    obj["spec"]["runStrategy"] = json!("Sometimes");
    assert_eq!(
        messages(&admit_vm(&FakeCluster::default(), &mut obj)),
        vec!["Invalid RunStrategy (Sometimes)"]
    );
}

#[test]
fn vm_without_template_is_rejected() {
    let mut obj = json!({"metadata": {"name": "x"}, "spec": {"runStrategy": "Halted"}});
    let out = admit_vm(&FakeCluster::default(), &mut obj);
    assert_eq!(
        out.causes,
        vec![Cause::required(
            "spec.template",
            "missing virtual machine template."
        )]
    );
}

fn with_u1_medium() -> FakeCluster {
    FakeCluster::default().with(
        "instancetype.kubevirt.io",
        "virtualmachineclusterinstancetypes",
        "",
        "u1.medium",
        json!({"spec": {"cpu": {"guest": 1}, "memory": {"guest": "4Gi"}}}),
    )
}

#[test]
fn vm_with_instancetype_may_not_set_memory_or_cpu() {
    let mut obj = vm();
    obj["spec"]["instancetype"] = json!({"name": "u1.medium"});
    let out = admit_vm(&with_u1_medium(), &mut obj);
    assert_eq!(
        obj["spec"]["instancetype"]["kind"],
        "VirtualMachineClusterInstancetype"
    );
    assert_eq!(
        out.causes,
        vec![Cause::invalid(
            "spec.template.spec.domain.resources.requests.memory",
            "VM field(s) spec.template.spec.domain.resources.requests.memory conflicts with selected instance type"
        )]
    );

    let mut obj = vm();
    obj["spec"]["instancetype"] = json!({"name": "u1.medium"});
    obj["spec"]["template"]["spec"]["domain"]["resources"] = json!({});
    obj["spec"]["template"]["spec"]["domain"]["cpu"] = json!({"cores": 2});
    let out = admit_vm(&with_u1_medium(), &mut obj);
    assert_eq!(
        messages(&out),
        vec![
            "VM field(s) spec.template.spec.domain.cpu.cores conflicts with selected instance type"
        ]
    );

    let mut obj = vm();
    obj["spec"]["instancetype"] = json!({"name": "u1.medium"});
    obj["spec"]["template"]["spec"]["domain"]["resources"] = json!({});
    assert!(admit_vm(&with_u1_medium(), &mut obj).allowed());
}

#[test]
fn vm_with_missing_instancetype_or_preference_is_rejected() {
    let mut obj = vm();
    obj["spec"]["instancetype"] = json!({"name": "u1.nano"});
    let out = admit_vm(&FakeCluster::default(), &mut obj);
    assert_eq!(out.causes[0].field, "spec.instancetype");
    let mut obj = vm();
    obj["spec"]["template"]["spec"]["domain"]["resources"] = json!({});
    obj["spec"]["instancetype"] = json!({"name": "u1.medium"});
    obj["spec"]["preference"] = json!({"name": "fedora"});
    let out = admit_vm(&with_u1_medium(), &mut obj);
    assert_eq!(
        messages(&out),
        vec!["Failure to find preference: virtualmachineclusterpreferences.instancetype.kubevirt.io \"fedora\" not found"]
    );
}

#[test]
fn vm_template_spec_is_validated_with_template_paths() {
    let mut obj = vm();
    obj["spec"]["template"]["spec"]["domain"]["devices"]["disks"][0]["name"] = json!("Bad_Name");
    let out = admit_vm(&FakeCluster::default(), &mut obj);
    assert!(out
        .causes
        .iter()
        .any(|c| c.field == "spec.template.spec.domain.devices.disks[0].name"));
}

#[test]
fn vm_data_volume_templates_must_be_used_and_have_one_source() {
    let mut obj = vm();
    obj["spec"]["dataVolumeTemplates"] = json!([{
        "metadata": {"name": "fedora-dv"},
        "spec": {"storage": {"resources": {"requests": {"storage": "10Gi"}}},
                 "source": {"http": {"url": "https://example.com/f.qcow2"}, "registry": {"url": "docker://quay.io/f"}}},
    }]);
    let out = admit_vm(&FakeCluster::default(), &mut obj);
    assert_eq!(
        messages(&out),
        vec![
            "DataVolumeTemplate entry spec.dataVolumeTemplates[0] must be referenced in the VMI template's 'volumes' list",
            "Multiple Data volume sources",
        ]
    );
    assert_eq!(
        out.causes[1].field,
        "spec.dataVolumeTemplates[0].spec.source"
    );
}

#[test]
fn vm_architecture_comes_from_the_boot_data_source_label() {
    let cluster = FakeCluster::default().with(
        "cdi.kubevirt.io",
        "datasources",
        "openshift-virtualization-os-images",
        "fedora",
        json!({"metadata": {"labels": {"template.kubevirt.io/architecture": "arm64"}}}),
    );
    let mut obj = vm();
    obj["spec"]["dataVolumeTemplates"] = json!([{"metadata": {"name": "root"}, "spec": {
        "sourceRef": {"kind": "DataSource", "name": "fedora", "namespace": "openshift-virtualization-os-images"},
        "storage": {}}}]);
    obj["spec"]["template"]["spec"]["volumes"][0] =
        json!({"name": "containerdisk", "dataVolume": {"name": "root"}});
    let out = admit_vm(&cluster, &mut obj);
    assert!(out.allowed(), "{out:?}");
    assert_eq!(obj["spec"]["template"]["spec"]["architecture"], "arm64");
    assert_eq!(
        obj["spec"]["template"]["spec"]["domain"]["machine"]["type"],
        "virt"
    );
}

#[test]
fn vm_hotplug_requests_need_scsi_and_a_pvc_or_datavolume() {
    let mut obj = vm();
    obj["status"] = json!({"volumeRequests": [
        {"addVolumeOptions": {"name": "hp", "disk": {"disk": {"bus": "virtio"}}, "volumeSource": {"persistentVolumeClaim": {"claimName": "p"}}}},
        {"addVolumeOptions": {"name": "cd", "disk": {"disk": {"bus": "scsi"}}, "volumeSource": {"containerDisk": {"image": "x"}}}},
    ]});
    let out = admit_vm(&FakeCluster::default(), &mut obj);
    assert_eq!(
        messages(&out),
        vec![
            "AddVolume request for [hp] requires disk bus to be 'scsi'. [virtio] is not permitted",
            "volume cd is not a PVC or DataVolume"
        ]
    );
}

#[test]
fn vm_spec_is_locked_during_snapshot() {
    let mut old = vm();
    old["status"] = json!({"snapshotInProgress": "snap-1"});
    let mut new = old.clone();
    new["spec"]["runStrategy"] = json!("Halted");
    let out = run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachine",
        Some(&old),
        USER,
        &mut new,
    );
    assert_eq!(
        messages(&out),
        vec!["Cannot update VM spec until snapshot \"snap-1\" completes"]
    );
}

#[test]
fn replica_set_and_pool_templates_are_validated() {
    let mut rs = json!({"spec": {"template": {"spec": {"domain": {"devices": {"disks": [{"name": "missing"}]}}}}}});
    let out = run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachineInstanceReplicaSet",
        None,
        USER,
        &mut rs,
    );
    assert_eq!(
        messages(&out),
        vec!["spec.template.spec.domain.devices.disks[0].name 'missing' not found."]
    );
    let mut pool = json!({"spec": {"virtualMachineTemplate": {"spec": {"template": {"spec": {"domain": {"firmware": {"serial": "a b"}}}}}}}});
    let out = run(
        &FakeCluster::default(),
        "pool.kubevirt.io",
        "VirtualMachinePool",
        None,
        USER,
        &mut pool,
    );
    assert_eq!(
        out.causes[0].field,
        "spec.virtualMachineTemplate.spec.template.spec.domain.firmware.serial"
    );
}

#[test]
fn presets_are_accepted_with_a_deprecation_warning() {
    let mut preset = json!({"spec": {"selector": {}}});
    let out = run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachineInstancePreset",
        None,
        USER,
        &mut preset,
    );
    assert!(out.allowed());
    assert_eq!(out.warnings, vec!["kubevirt.io/v1 VirtualMachineInstancePresets is now deprecated and will be removed in v2."]);
}

#[test]
fn vm_restore_blocks_starting_until_it_completes() {
    let mut old = vm();
    old["spec"]["runStrategy"] = json!("Halted");
    old["status"] = json!({"restoreInProgress": "restore-1"});
    let mut new = old.clone();
    new["spec"]["runStrategy"] = json!("Always");
    let out = run(
        &FakeCluster::default(),
        "kubevirt.io",
        "VirtualMachine",
        Some(&old),
        USER,
        &mut new,
    );
    assert_eq!(
        messages(&out),
        vec!["Cannot start VM until restore \"restore-1\" completes"]
    );
}
