//! Rules of the KubeVirt kinds: VirtualMachine, VirtualMachineInstance (and VM templates),
//! instance types and presets.

use oxivirt_e2e::Kubectl;

use super::{create, refused, refused_command, setup, vm, vmi, SMALL_DOMAIN};

// ---- VirtualMachine ----

#[test]
fn vm_with_both_running_and_run_strategy_is_refused() {
    let (_s, k) = setup("val-running-and-strategy");
    let manifest = vm(
        "both",
        "  running: true\n  runStrategy: Always\n  template: {spec: {domain: {devices: {}, memory: {guest: 64Mi}}}}",
    );
    refused(
        &k,
        "val-running-and-strategy",
        &manifest,
        "spec.running: Running and RunStrategy are mutually exclusive",
    );
}

#[test]
fn vm_with_an_unknown_run_strategy_is_refused() {
    let (_s, k) = setup("val-bad-strategy");
    let manifest = vm(
        "odd",
        "  runStrategy: Sometimes\n  template: {spec: {domain: {devices: {}, memory: {guest: 64Mi}}}}",
    );
    refused(
        &k,
        "val-bad-strategy",
        &manifest,
        "Invalid RunStrategy (Sometimes)",
    );
}

#[test]
fn vm_without_a_template_is_refused() {
    let (_s, k) = setup("val-no-template");
    // Upstream's CRD schema requires `spec.template`, so the schema answers before the webhook.
    refused(
        &k,
        "val-no-template",
        &vm("bare", "  runStrategy: Halted"),
        "spec.template: Required value",
    );
}

#[test]
fn vm_with_running_alone_is_accepted_with_a_deprecation_warning() {
    let (_s, k) = setup("val-running-warning");
    let run = create(
        &k,
        "val-running-warning",
        &vm(
            "legacy",
            "  running: false\n  template: {spec: {domain: {devices: {}, memory: {guest: 64Mi}}}}",
        ),
    );
    let warning = "Warning: spec.running is deprecated, please use spec.runStrategy instead.";
    assert!(run.stderr.contains(warning), "{}", run.stderr);
    assert!(run
        .ok()
        .contains("virtualmachine.kubevirt.io/legacy created"));
}

#[test]
fn vm_with_an_instancetype_may_not_also_set_cpu_sockets() {
    let (_s, k) = setup("val-instancetype-cpu");
    let manifest = vm(
        "sized-twice",
        "  runStrategy: Halted\n  instancetype: {name: u1.medium}\n  template: {spec: {domain: {devices: {}, cpu: {sockets: 2}}}}",
    );
    refused(
        &k,
        "val-instancetype-cpu",
        &manifest,
        "VM field(s) spec.template.spec.domain.cpu.sockets conflicts with selected instance type",
    );
}

#[test]
fn vm_with_an_instancetype_may_not_also_request_memory() {
    let (_s, k) = setup("val-instancetype-memory");
    // The manual's acceptance test (ch07a.md, 7.1.2): u1.medium plus a memory request.
    let manifest = vm(
        "sized-twice",
        "  runStrategy: Halted\n  instancetype: {name: u1.medium}\n  template: {spec: {domain: {devices: {}, resources: {requests: {memory: 1Gi}}}}}",
    );
    refused(
        &k,
        "val-instancetype-memory",
        &manifest,
        "VM field(s) spec.template.spec.domain.resources.requests.memory conflicts with selected instance type",
    );
}

#[test]
fn vm_referring_to_a_missing_instancetype_is_refused() {
    let (_s, k) = setup("val-missing-instancetype");
    let manifest = vm(
        "orphan",
        "  runStrategy: Halted\n  instancetype: {name: no-such-type}\n  template: {spec: {domain: {devices: {}}}}",
    );
    refused(
        &k,
        "val-missing-instancetype",
        &manifest,
        r#"Failure to find instancetype: virtualmachineclusterinstancetypes.instancetype.kubevirt.io "no-such-type" not found"#,
    );
}

#[test]
fn vm_data_volume_template_with_two_sources_is_refused() {
    let (_s, k) = setup("val-dv-template");
    let manifest = vm(
        "two-sources",
        "  runStrategy: Halted
  dataVolumeTemplates:
  - metadata: {name: root}
    spec: {source: {blank: {}, http: {url: 'http://example.com/disk.img'}}, storage: {resources: {requests: {storage: 1Gi}}}}
  template: {spec: {domain: {devices: {}, memory: {guest: 64Mi}}, volumes: [{name: root, dataVolume: {name: root}}]}}",
    );
    refused(
        &k,
        "val-dv-template",
        &manifest,
        "spec.dataVolumeTemplates[0].spec.source: Multiple Data volume sources",
    );
}

/// `virtctl addvolume --persist` writes `status.volumeRequests`; hotplug rules apply there.
fn vm_with_volume_request(k: &Kubectl, namespace: &str, request: &str) -> String {
    create(
        k,
        namespace,
        &vm(
            "hotplug",
            "  runStrategy: Halted\n  template: {spec: {domain: {devices: {}, memory: {guest: 64Mi}}}}",
        ),
    )
    .ok();
    let patch = format!(r#"{{"status":{{"volumeRequests":[{{"addVolumeOptions":{request}}}]}}}}"#);
    k.run(&[
        "patch",
        "vm",
        "hotplug",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ])
    .fails()
}

#[test]
fn vm_hotplug_request_for_a_container_disk_is_refused() {
    let (_s, k) = setup("val-vm-hotplug-containerdisk");
    let err = vm_with_volume_request(
        &k,
        "val-vm-hotplug-containerdisk",
        r#"{"name":"hp","disk":{"name":"hp","disk":{"bus":"scsi"}},"volumeSource":{"containerDisk":{"image":"quay.io/containerdisks/fedora:latest"}}}"#,
    );
    assert!(
        err.contains("volume hp is not a PVC or DataVolume"),
        "{err}"
    );
}

#[test]
fn vm_hotplug_request_on_a_virtio_bus_is_refused() {
    let (_s, k) = setup("val-vm-hotplug-virtio");
    let err = vm_with_volume_request(
        &k,
        "val-vm-hotplug-virtio",
        r#"{"name":"hp","disk":{"name":"hp","disk":{"bus":"virtio"}},"volumeSource":{"persistentVolumeClaim":{"claimName":"data"}}}"#,
    );
    assert!(
        err.contains(
            "AddVolume request for [hp] requires disk bus to be 'scsi'. [virtio] is not permitted"
        ),
        "{err}"
    );
}

#[test]
fn vmi_presets_are_accepted_with_a_deprecation_warning() {
    let (_s, k) = setup("val-preset");
    let run = create(
        &k,
        "val-preset",
        "apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstancePreset\nmetadata: {name: small}\nspec:\n  selector: {matchLabels: {size: small}}\n  domain: {devices: {}, memory: {guest: 64Mi}}\n",
    );
    assert!(
        run.stderr
            .contains("kubevirt.io/v1 VirtualMachineInstancePresets is now deprecated"),
        "{}",
        run.stderr
    );
    run.ok();
}

// ---- VMI spec (also VM templates) ----

#[test]
fn interface_without_a_network_is_refused() {
    let (_s, k) = setup("val-interface");
    let manifest = vmi(
        "lonely-nic",
        "  domain: {devices: {interfaces: [{name: blue, bridge: {}}]}, memory: {guest: 64Mi}}",
    );
    refused(
        &k,
        "val-interface",
        &manifest,
        "spec.domain.devices.interfaces[0].name 'blue' not found.",
    );
}

#[test]
fn a_masquerade_port_out_of_range_is_refused_rather_than_opening_every_port() {
    let (_s, k) = setup("val-port");
    let manifest = vm(
        "wide-open",
        "  runStrategy: Halted\n  template: {spec: {domain: {devices: {interfaces: [{name: default, masquerade: {}, ports: [{port: 70000}]}]}, memory: {guest: 64Mi}}, networks: [{name: default, pod: {}}]}}",
    );
    refused(
        &k,
        "val-port",
        &manifest,
        "spec.template.spec.domain.devices.interfaces[0].ports[0].port: Port field must be in range 0 < x < 65536.",
    );
}

#[test]
fn state_absent_on_the_pod_network_is_refused() {
    let (_s, k) = setup("val-absent");
    let manifest = vm(
        "no-pod-nic",
        "  runStrategy: Halted\n  template: {spec: {domain: {devices: {interfaces: [{name: default, masquerade: {}, state: absent}]}, memory: {guest: 64Mi}}, networks: [{name: default, pod: {}}]}}",
    );
    refused(
        &k,
        "val-absent",
        &manifest,
        "\"default\" interface's state \"absent\" is not supported on default networks",
    );
}

#[test]
fn network_without_an_interface_is_refused() {
    let (_s, k) = setup("val-network");
    let manifest = vmi(
        "lonely-net",
        &format!("{SMALL_DOMAIN}\n  networks: [{{name: blue, pod: {{}}}}]"),
    );
    refused(
        &k,
        "val-network",
        &manifest,
        "spec.networks[0].name 'blue' not found.",
    );
}

#[test]
fn disk_name_that_is_not_a_dns_subdomain_is_refused() {
    let (_s, k) = setup("val-disk-name");
    let manifest = vmi(
        "bad-name",
        "  domain: {devices: {disks: [{name: Bad_Disk, disk: {}}]}, memory: {guest: 64Mi}}\n  volumes: [{name: Bad_Disk, emptyDisk: {capacity: 1Gi}}]",
    );
    refused(
        &k,
        "val-disk-name",
        &manifest,
        r#"spec.domain.devices.disks[0].name: Invalid value: "Bad_Disk": a lowercase RFC 1123 subdomain"#,
    );
}

#[test]
fn duplicate_disk_names_are_refused() {
    let (_s, k) = setup("val-duplicate-disks");
    let manifest = vmi(
        "twins",
        "  domain: {devices: {disks: [{name: d, disk: {}}, {name: d, disk: {}}]}, memory: {guest: 64Mi}}\n  volumes: [{name: d, emptyDisk: {capacity: 1Gi}}]",
    );
    refused(
        &k,
        "val-duplicate-disks",
        &manifest,
        "spec.domain.devices.disks[1] and spec.domain.devices.disks[0] must not have the same Name.",
    );
}

#[test]
fn disk_without_a_volume_is_refused() {
    let (_s, k) = setup("val-disk-volume");
    let manifest = vmi(
        "no-volume",
        "  domain: {devices: {disks: [{name: data, disk: {}}]}, memory: {guest: 64Mi}}",
    );
    refused(
        &k,
        "val-disk-volume",
        &manifest,
        "spec.domain.devices.disks[0].name 'data' not found.",
    );
}

#[test]
fn boot_order_zero_is_refused() {
    let (_s, k) = setup("val-boot-zero");
    let manifest = vmi(
        "boot-zero",
        "  domain: {devices: {disks: [{name: a, bootOrder: 0, disk: {}}]}, memory: {guest: 64Mi}}\n  volumes: [{name: a, emptyDisk: {capacity: 1Gi}}]",
    );
    refused(
        &k,
        "val-boot-zero",
        &manifest,
        "spec.domain.devices.disks[0] must have a boot order > 0, if supplied",
    );
}

#[test]
fn boot_order_shared_by_a_disk_and_an_interface_is_refused() {
    let (_s, k) = setup("val-boot-duplicate");
    let manifest = vmi(
        "boot-twice",
        "  domain:
    devices:
      disks: [{name: a, bootOrder: 1, disk: {}}]
      interfaces: [{name: default, bootOrder: 1, masquerade: {}}]
    memory: {guest: 64Mi}
  networks: [{name: default, pod: {}}]
  volumes: [{name: a, emptyDisk: {capacity: 1Gi}}]",
    );
    refused(
        &k,
        "val-boot-duplicate",
        &manifest,
        "Boot order for spec.domain.devices.interfaces[0].bootOrder already set for a different device.",
    );
}

#[test]
fn hugepages_of_a_size_other_than_2mi_or_1gi_are_refused() {
    let (_s, k) = setup("val-hugepages-size");
    let manifest = vmi(
        "huge",
        "  domain: {devices: {}, memory: {guest: 1Gi, hugepages: {pageSize: 4Mi}}}",
    );
    refused(
        &k,
        "val-hugepages-size",
        &manifest,
        r#"spec.domain.memory.hugepages.pageSize: Unsupported value: "4Mi": supported values: "2Mi", "1Gi""#,
    );
}

#[test]
fn memory_that_is_not_a_multiple_of_the_hugepage_size_is_refused() {
    let (_s, k) = setup("val-hugepages-multiple");
    // The manual's rule (ch07c.md, hugepages): the request must divide into whole pages.
    let manifest = vmi(
        "uneven",
        "  domain: {devices: {}, memory: {hugepages: {pageSize: 1Gi}}, resources: {requests: {memory: 1500Mi}}}",
    );
    refused(
        &k,
        "val-hugepages-multiple",
        &manifest,
        "spec.domain.resources.requests.memory '1500Mi' is not a multiple of the page size spec.domain.memory.hugepages.pageSize '1Gi'",
    );
}

#[test]
fn memory_request_above_the_limit_is_refused() {
    let (_s, k) = setup("val-memory-limit");
    let manifest = vmi(
        "greedy",
        "  domain: {devices: {}, resources: {requests: {memory: 1Gi}, limits: {memory: 512Mi}}}",
    );
    refused(
        &k,
        "val-memory-limit",
        &manifest,
        "spec.domain.resources.requests.memory '1Gi' is greater than spec.domain.resources.limits.memory '512Mi'",
    );
}

#[test]
fn probe_period_not_above_its_timeout_is_refused() {
    let (_s, k) = setup("val-probe");
    let manifest = vmi(
        "probed",
        &format!("{SMALL_DOMAIN}\n  readinessProbe: {{tcpSocket: {{port: 22}}, periodSeconds: 5, timeoutSeconds: 5}}"),
    );
    refused(
        &k,
        "val-probe",
        &manifest,
        "spec.readinessProbe.periodSeconds: Invalid value: 5: must be greater than spec.readinessProbe.timeoutSeconds (5)",
    );
}

#[test]
fn secure_boot_without_smm_is_refused() {
    let (_s, k) = setup("val-secure-boot");
    let manifest = vmi(
        "secure",
        "  domain: {devices: {}, memory: {guest: 64Mi}, firmware: {bootloader: {efi: {secureBoot: true}}}, features: {smm: {enabled: false}}}",
    );
    refused(
        &k,
        "val-secure-boot",
        &manifest,
        "spec.domain has EFI SecureBoot enabled. SecureBoot requires SMM, which is currently disabled.",
    );
}

#[test]
fn efi_and_bios_together_are_refused() {
    let (_s, k) = setup("val-efi-bios");
    let manifest = vmi(
        "both-firmwares",
        "  domain: {devices: {}, memory: {guest: 64Mi}, firmware: {bootloader: {efi: {secureBoot: false}, bios: {}}}}",
    );
    refused(
        &k,
        "val-efi-bios",
        &manifest,
        "spec.domain.firmware.bootloader has both EFI and BIOS configured, but they are mutually exclusive.",
    );
}

#[test]
fn machine_type_outside_the_q35_family_is_refused() {
    let (_s, k) = setup("val-machine");
    let manifest = vmi(
        "old-machine",
        "  domain: {devices: {}, memory: {guest: 64Mi}, machine: {type: pc-i440fx-2.5}}",
    );
    refused(
        &k,
        "val-machine",
        &manifest,
        "spec.domain.machine.type is not supported: pc-i440fx-2.5",
    );
}

#[test]
fn vmi_without_any_memory_is_refused() {
    let (_s, k) = setup("val-no-memory");
    refused(
        &k,
        "val-no-memory",
        &vmi("empty", "  domain: {devices: {}}"),
        "no memory requested, at least one of 'spec.domain.memory.guest', 'spec.domain.memory.hugepages.size' or 'spec.domain.resources.requests.memory' must be set",
    );
}

#[test]
fn reserved_kubevirt_labels_on_a_vmi_are_refused_to_users() {
    let (_s, k) = setup("val-reserved-label");
    let manifest = format!(
        "apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata: {{name: labelled, labels: {{kubevirt.io/nodeName: node1}}}}\nspec:\n{SMALL_DOMAIN}\n"
    );
    refused(
        &k,
        "val-reserved-label",
        &manifest,
        "creation of the following reserved kubevirt.io/ labels on a VMI object is prohibited",
    );
}

#[test]
fn vmi_spec_is_immutable_for_users_while_labels_stay_editable() {
    let ns = "val-vmi-immutable";
    let (_s, k) = setup(ns);
    create(&k, ns, &vmi("fixed", SMALL_DOMAIN)).ok();
    refused_command(
        &k,
        &[
            "patch",
            "vmi",
            "fixed",
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"domain":{"memory":{"guest":"128Mi"}}}}"#,
        ],
        "spec: update of VMI object is restricted",
    );
    let out = k.ok(&["label", "vmi", "fixed", "-n", ns, "tier=web"]);
    assert!(out.contains("labeled"), "{out}");
}

/// Adds a hotplugged volume and disk to a running-style VMI as an oxivirt component would
/// (users may not change a VMI spec at all); returns kubectl's stderr.
fn hotplug_as_component(k: &Kubectl, ns: &str, volume: &str, bus: &str) -> String {
    create(k, ns, &vmi("hotplug", SMALL_DOMAIN)).ok();
    let patch = format!(
        r#"[{{"op":"add","path":"/spec/volumes","value":[{{"name":"hp",{volume}}}]}},{{"op":"add","path":"/spec/domain/devices/disks","value":[{{"name":"hp","disk":{{"bus":"{bus}"}}}}]}}]"#
    );
    k.run(&[
        "patch",
        "vmi",
        "hotplug",
        "-n",
        ns,
        "--as=system:oxivirt:controller",
        // Components are authorised through their group's ClusterRoleBinding.
        "--as-group=system:oxivirt-components",
        "--type=json",
        "-p",
        &patch,
    ])
    .fails()
}

#[test]
fn hotplugged_container_disk_is_refused_even_for_oxivirt_components() {
    let ns = "val-vmi-hotplug-containerdisk";
    let (_s, k) = setup(ns);
    let err = hotplug_as_component(
        &k,
        ns,
        r#""containerDisk":{"image":"quay.io/containerdisks/fedora:latest"}"#,
        "scsi",
    );
    assert!(
        err.contains("volume hp is not a PVC or DataVolume"),
        "{err}"
    );
}

#[test]
fn hotplugged_disk_on_a_virtio_bus_is_refused() {
    let ns = "val-vmi-hotplug-virtio";
    let (_s, k) = setup(ns);
    let err = hotplug_as_component(
        &k,
        ns,
        r#""persistentVolumeClaim":{"claimName":"data","hotpluggable":true}"#,
        "virtio",
    );
    assert!(
        err.contains("hotplugged Disk hp does not use a scsi bus"),
        "{err}"
    );
}

// ---- Instance types ----

#[test]
fn instancetype_without_guest_memory_is_refused() {
    let (_s, k) = setup("val-instancetype-memory-guest");
    refused(
        &k,
        "val-instancetype-memory-guest",
        "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineInstancetype\nmetadata: {name: no-memory}\nspec:\n  cpu: {guest: 1}\n",
        "spec.memory: Required value",
    );
}

#[test]
fn instancetype_without_guest_cpus_is_refused() {
    let (_s, k) = setup("val-instancetype-cpu-guest");
    refused(
        &k,
        "val-instancetype-cpu-guest",
        "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineInstancetype\nmetadata: {name: no-cpu}\nspec:\n  memory: {guest: 1Gi}\n",
        "spec.cpu: Required value",
    );
}
