use serde_json::{json, Value};

use super::*;
use crate::names::SUBDOMAIN_MSG;

/// A valid defaulted spec: one containerDisk, masquerade on the pod network, 1Gi.
fn base() -> Value {
    json!({
        "architecture": "amd64",
        "domain": {
            "machine": {"type": "q35"},
            "resources": {"requests": {"memory": "1Gi"}},
            "devices": {
                "disks": [{"name": "containerdisk", "disk": {"bus": "virtio"}}],
                "interfaces": [{"name": "default", "masquerade": {}}],
            },
        },
        "networks": [{"name": "default", "pod": {}}],
        "volumes": [{"name": "containerdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora"}}],
    })
}

fn causes(spec: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    validate_spec(spec, "spec", &mut out);
    out
}

fn messages(spec: &Value) -> Vec<String> {
    causes(spec).into_iter().map(|c| c.message).collect()
}

#[test]
fn a_plain_spec_is_valid() {
    assert_eq!(causes(&base()), vec![]);
}

#[test]
fn disk_names_are_subdomains_of_at_most_253_characters() {
    let mut spec = base();
    spec["domain"]["devices"]["disks"][0]["name"] = json!("my-disk.1");
    spec["volumes"][0]["name"] = json!("my-disk.1");
    assert_eq!(causes(&spec), vec![]);

    spec["domain"]["devices"]["disks"][0]["name"] = json!("Bad_Name");
    spec["volumes"][0]["name"] = json!("Bad_Name");
    let c = causes(&spec);
    assert_eq!(c[0].field, "spec.domain.devices.disks[0].name");
    assert_eq!(
        c[0].message,
        format!("Invalid value: \"Bad_Name\": {SUBDOMAIN_MSG}")
    );
    assert!(c.iter().any(|c| c.field == "spec.volumes[0].name"));

    let long = "a".repeat(254);
    spec["domain"]["devices"]["disks"][0]["name"] = json!(long);
    spec["volumes"][0]["name"] = json!(long);
    assert!(messages(&spec)
        .iter()
        .any(|m| m.ends_with("must be no more than 253 characters")));
}

#[test]
fn duplicate_disk_names_are_rejected() {
    let mut spec = base();
    spec["domain"]["devices"]["disks"] =
        json!([{"name": "containerdisk"}, {"name": "containerdisk"}]);
    let c = causes(&spec);
    assert_eq!(
        c,
        vec![Cause::invalid(
            "spec.domain.devices.disks[1].name",
            "spec.domain.devices.disks[1] and spec.domain.devices.disks[0] must not have the same Name."
        )]
    );
}

#[test]
fn disk_without_volume_is_rejected() {
    let mut spec = base();
    spec["domain"]["devices"]["disks"][0]["name"] = json!("rootdisk");
    let c = causes(&spec);
    assert_eq!(
        c,
        vec![Cause::invalid(
            "spec.domain.devices.disks[0].name",
            "spec.domain.devices.disks[0].name 'rootdisk' not found."
        )]
    );
}

#[test]
fn boot_orders_are_positive_and_unique_across_disks_and_interfaces() {
    let mut spec = base();
    spec["domain"]["devices"]["disks"][0]["bootOrder"] = json!(1);
    spec["domain"]["devices"]["interfaces"][0]["bootOrder"] = json!(1);
    assert_eq!(
        causes(&spec),
        vec![Cause::invalid(
            "spec.domain.devices.interfaces[0].bootOrder",
            "Boot order for spec.domain.devices.interfaces[0].bootOrder already set for a different device."
        )]
    );
    spec["domain"]["devices"]["interfaces"][0]["bootOrder"] = json!(0);
    assert_eq!(
        messages(&spec),
        vec!["spec.domain.devices.interfaces[0] must have a boot order > 0, if supplied"]
    );
}

#[test]
fn hugepages_must_be_2mi_or_1gi_and_divide_memory() {
    let mut spec = base();
    spec["domain"]["memory"] = json!({"hugepages": {"pageSize": "2Mi"}});
    spec["domain"]["resources"]["requests"]["memory"] = json!("4Gi");
    assert_eq!(causes(&spec), vec![]);

    spec["domain"]["memory"]["hugepages"]["pageSize"] = json!("4Mi");
    assert_eq!(
        messages(&spec),
        vec!["Unsupported value: \"4Mi\": supported values: \"2Mi\", \"1Gi\""]
    );

    spec["domain"]["memory"]["hugepages"]["pageSize"] = json!("1Gi");
    spec["domain"]["resources"]["requests"]["memory"] = json!("500Mi");
    assert_eq!(
        messages(&spec),
        vec!["spec.domain.resources.requests.memory '500Mi' must be equal to or larger than page size \
              spec.domain.memory.hugepages.pageSize '1Gi'"]
    );

    spec["domain"]["resources"]["requests"]["memory"] = json!("1536Mi");
    assert_eq!(
        messages(&spec),
        vec![
            "spec.domain.resources.requests.memory '1536Mi' is not a multiple of the page size \
              spec.domain.memory.hugepages.pageSize '1Gi'"
        ]
    );
}

#[test]
fn hugepages_fall_back_to_guest_memory_without_a_request() {
    let mut spec = base();
    spec["domain"]["resources"] = json!({});
    spec["domain"]["memory"] = json!({"guest": "500Mi", "hugepages": {"pageSize": "1Gi"}});
    assert_eq!(causes(&spec)[0].field, "spec.domain.memory.guest");
}

#[test]
fn memory_request_may_not_exceed_limit() {
    let mut spec = base();
    spec["domain"]["resources"] =
        json!({"requests": {"memory": "64M"}, "limits": {"memory": "32Mi"}});
    assert_eq!(
        causes(&spec),
        vec![Cause::invalid(
            "spec.domain.resources.requests.memory",
            "spec.domain.resources.requests.memory '64M' is greater than spec.domain.resources.limits.memory '32Mi'"
        )]
    );
}

#[test]
fn malformed_and_negative_quantities_are_rejected() {
    let mut spec = base();
    spec["domain"]["resources"] = json!({"requests": {"memory": "lots", "cpu": "-1"}});
    let c = causes(&spec);
    assert!(c[0]
        .message
        .starts_with("Invalid value: \"lots\": quantities must match"));
    assert_eq!(
        c[1].message,
        "spec.domain.resources.requests.cpu '-1': must be greater than or equal to 0."
    );
}

#[test]
fn secure_boot_requires_smm() {
    let mut spec = base();
    spec["domain"]["firmware"] = json!({"bootloader": {"efi": {"secureBoot": true}}});
    assert_eq!(
        causes(&spec),
        vec![Cause::invalid(
            "spec.domain",
            "spec.domain has EFI SecureBoot enabled. SecureBoot requires SMM, which is currently disabled."
        )]
    );
    spec["domain"]["features"] = json!({"smm": {"enabled": false}});
    assert_eq!(causes(&spec).len(), 1);
    spec["domain"]["features"] = json!({"smm": {"enabled": true}});
    assert_eq!(causes(&spec), vec![]);
    spec["domain"]["features"] = json!({});
    spec["domain"]["firmware"] = json!({"bootloader": {"efi": {"secureBoot": false}}});
    assert_eq!(causes(&spec), vec![]);
}

#[test]
fn efi_and_bios_are_mutually_exclusive() {
    let mut spec = base();
    spec["domain"]["firmware"] = json!({"bootloader": {"bios": {}, "efi": {"secureBoot": false}}});
    assert_eq!(
        messages(&spec),
        vec!["spec.domain.firmware.bootloader has both EFI and BIOS configured, but they are mutually exclusive."]
    );
}

#[test]
fn disk_buses_follow_upstream() {
    let mut spec = base();
    spec["domain"]["devices"]["disks"] = json!([
        {"name": "containerdisk", "cdrom": {"bus": "virtio"}},
    ]);
    assert_eq!(
        messages(&spec),
        vec!["Bus type virtio is invalid for CD-ROM device"]
    );
    spec["domain"]["devices"]["disks"] = json!([{"name": "containerdisk", "disk": {"bus": "ide"}}]);
    assert_eq!(messages(&spec), vec!["IDE bus is not supported"]);
    spec["domain"]["devices"]["disks"] =
        json!([{"name": "containerdisk", "disk": {"bus": "nvme"}}]);
    assert_eq!(
        messages(&spec),
        vec!["spec.domain.devices.disks[0] is set with an unrecognized bus nvme, must be one of: [virtio scsi sata usb]"]
    );
    spec["domain"]["devices"]["disks"] =
        json!([{"name": "containerdisk", "disk": {}, "cdrom": {}}]);
    assert_eq!(
        messages(&spec),
        vec!["spec.domain.devices.disks[0] can only have a single target type defined"]
    );
}

#[test]
fn lun_disks_need_pvc_or_datavolume_volumes() {
    let mut spec = base();
    spec["domain"]["devices"]["disks"] = json!([{"name": "containerdisk", "lun": {"bus": "scsi"}}]);
    assert_eq!(
        messages(&spec),
        vec!["spec.domain.devices.disks[0].lun can only be mapped to a DataVolume or PersistentVolumeClaim volume."]
    );
}

#[test]
fn volumes_need_exactly_one_source_and_unique_names() {
    let mut spec = base();
    spec["volumes"] = json!([
        {"name": "containerdisk", "containerDisk": {"image": "x"}, "emptyDisk": {"capacity": "1Gi"}},
        {"name": "containerdisk", "dataVolume": {}},
    ]);
    let m = messages(&spec);
    assert!(m.contains(&"spec.volumes[0] must have exactly one source type set".to_string()));
    assert!(
        m.contains(&"spec.volumes[1] and spec.volumes[0] must not have the same Name.".to_string())
    );
    assert!(m.contains(&"DataVolume 'name' must be set".to_string()));
}

#[test]
fn cloud_init_needs_data_and_respects_size_limits() {
    let mut spec = base();
    spec["volumes"] = json!([
        {"name": "containerdisk", "cloudInitNoCloud": {}},
    ]);
    assert_eq!(
        messages(&spec),
        vec!["spec.volumes[0].cloudInitNoCloud must have at least one userdatasource or one networkdatasource set."]
    );
    spec["volumes"][0]["cloudInitNoCloud"] = json!({"userData": "x".repeat(2049)});
    assert_eq!(
        messages(&spec),
        vec!["spec.volumes[0].cloudInitNoCloud userdata exceeds 2048 byte limit. Should use UserDataSecretRef for larger data."]
    );
}

#[test]
fn machine_types_outside_the_q35_family_are_rejected() {
    let mut spec = base();
    spec["domain"]["machine"]["type"] = json!("pc-q35-rhel9.4.0");
    assert_eq!(causes(&spec), vec![]);
    spec["domain"]["machine"]["type"] = json!("pc-i440fx-2.12");
    assert_eq!(
        messages(&spec),
        vec!["spec.domain.machine.type is not supported: pc-i440fx-2.12 (allowed values: [q35* pc-q35*])"]
    );
}

#[test]
fn firmware_and_disk_serials_use_libvirt_characters() {
    let mut spec = base();
    spec["domain"]["firmware"] = json!({"serial": "bad serial"});
    assert_eq!(
        messages(&spec),
        vec!["spec.domain.firmware.serial must be made up of the following characters [A-Za-z0-9_.+-], if specified"]
    );
}

#[test]
fn cpu_feature_policies_and_emulator_thread_isolation() {
    let mut spec = base();
    spec["domain"]["cpu"] =
        json!({"features": [{"name": "vmx", "policy": "maybe"}], "isolateEmulatorThread": true});
    let c = causes(&spec);
    assert_eq!(
        c[0],
        Cause::not_supported(
            "spec.domain.cpu.features[0].policy",
            "CPU feature vmx uses policy maybe that is not supported."
        )
    );
    assert_eq!(
        c[1].message,
        "IsolateEmulatorThread should be only set in combination with DedicatedCPUPlacement"
    );
}

#[test]
fn start_strategy_must_be_paused_without_liveness_probe() {
    let mut spec = base();
    spec["startStrategy"] = json!("Later");
    assert_eq!(
        messages(&spec),
        vec!["spec.startStrategy is set with an unrecognized option: Later"]
    );
}

#[test]
fn paths_follow_the_template_prefix() {
    let mut spec = base();
    spec["domain"]["devices"]["disks"][0]["name"] = json!("other");
    let mut out = Vec::new();
    validate_spec(&spec, "spec.template.spec", &mut out);
    assert_eq!(
        out[0].field,
        "spec.template.spec.domain.devices.disks[0].name"
    );
}

#[test]
fn other_spec_rules_use_upstream_messages() {
    let check = |edit: &dyn Fn(&mut Value), expected: &str| {
        let mut spec = base();
        edit(&mut spec);
        let m = messages(&spec);
        assert!(
            m.iter().any(|m| m == expected),
            "expected {expected:?}, got {m:?}"
        );
    };
    check(
        &|s| s["evictionStrategy"] = json!("Sometimes"),
        "spec.evictionStrategy is set with an unrecognized option: Sometimes",
    );
    check(
        &|s| s["dnsPolicy"] = json!("Custom"),
        "DNSPolicy: Custom is not supported, valid values: [ClusterFirstWithHostNet ClusterFirst Default None ]",
    );
    check(
        &|s| s["architecture"] = json!("riscv64"),
        "unsupported architecture: riscv64",
    );
    check(
        &|s| s["domain"]["cpu"] = json!({"sockets": 8, "maxSockets": 4}),
        "Number of sockets in CPU topology is greater than the maximum sockets allowed",
    );
    check(
        &|s| {
            s["domain"]["devices"]["inputs"] =
                json!([{"name": "t", "bus": "ps2", "type": "tablet"}])
        },
        "Input device can have only virtio or usb bus.",
    );
    check(
        &|s| s["volumes"][0] = json!({"name": "containerdisk", "hostDisk": {"type": "File"}}),
        "spec.volumes[0].hostDisk.path is required for hostDisk volume",
    );
    check(
        &|s| s["volumes"][0] = json!({"name": "containerdisk", "secret": {}}),
        "spec.volumes[0].secret.secretName is a required field",
    );
    check(
        &|s| s["volumes"][0]["containerDisk"]["path"] = json!("/disk/../etc"),
        "spec.volumes[0].containerDisk must be an absolute path to a file without relative components",
    );
    check(
        &|s| s["hostname"] = json!("Bad_Host"),
        &format!(
            "spec.hostname does not conform to the kubernetes DNS_LABEL rules : {}",
            crate::names::LABEL_MSG
        ),
    );
    check(
        &|s| s["domain"]["devices"]["disks"][0]["errorPolicy"] = json!("panic"),
        "spec.domain.devices.disks[0].errorPolicy has invalid value \"panic\"",
    );
}
