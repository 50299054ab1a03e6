//! Tests of [`super::expand_spec`], starting from the manual's `rhel-9-minimal` VM (§7.1.4.2).

use serde_json::{json, Value};

use super::*;
use crate::content::{common_cluster_instancetypes, common_cluster_preferences};

fn instancetype(name: &str) -> Value {
    common_cluster_instancetypes()
        .into_iter()
        .find(|it| it["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} is shipped"))
}

fn preference(name: &str) -> Value {
    common_cluster_preferences()
        .into_iter()
        .find(|p| p["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} is shipped"))
}

/// The manual's "RHEL VM manifest" (§7.1.4.2), verbatim.
fn rhel_9_minimal() -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": { "name": "rhel-9-minimal" },
        "spec": {
            "dataVolumeTemplates": [{
                "metadata": { "name": "rhel-9-minimal-volume" },
                "spec": {
                    "sourceRef": {
                        "kind": "DataSource",
                        "name": "rhel9",
                        "namespace": "openshift-virtualization-os-images",
                    },
                    "storage": {},
                },
            }],
            "instancetype": { "name": "u1.medium" },
            "preference": { "name": "rhel.9" },
            "running": true,
            "template": {
                "spec": {
                    "domain": { "devices": {} },
                    "volumes": [{ "dataVolume": { "name": "rhel-9-minimal-volume" }, "name": "rootdisk" }],
                },
            },
        },
    })
}

fn expand(vm: &Value, it: &str, pref: &str) -> Result<Value> {
    expand_spec(vm, Some(&instancetype(it)), Some(&preference(pref)))
}

#[test]
fn rhel_9_minimal_expands_to_one_socket_and_4gi() {
    let vm = expand(&rhel_9_minimal(), "u1.medium", "rhel.9").expect("expands");
    let domain = &vm["spec"]["template"]["spec"]["domain"];
    assert_eq!(
        domain["cpu"],
        json!({ "cores": 1, "sockets": 1, "threads": 1 })
    );
    assert_eq!(domain["memory"], json!({ "guest": "4Gi" }));
    assert!(vm["spec"].get("instancetype").is_none());
    assert!(vm["spec"].get("preference").is_none());
    assert_eq!(vm["spec"]["running"], true);
}

#[test]
fn rhel_9_minimal_gets_the_rhel_9_preferences() {
    let vm = expand(&rhel_9_minimal(), "u1.medium", "rhel.9").expect("expands");
    let spec = &vm["spec"]["template"]["spec"];
    let devices = &spec["domain"]["devices"];
    assert_eq!(
        devices["disks"],
        json!([{ "name": "rootdisk", "disk": { "bus": "virtio" }, "dedicatedIOThread": true }])
    );
    assert_eq!(
        devices["interfaces"],
        json!([{ "name": "default", "masquerade": {}, "model": "virtio" }])
    );
    assert_eq!(spec["networks"], json!([{ "name": "default", "pod": {} }]));
    assert_eq!(devices["rng"], json!({}));
    assert_eq!(
        spec["domain"]["firmware"],
        json!({ "bootloader": { "efi": { "secureBoot": true } } })
    );
    assert_eq!(spec["domain"]["features"], json!({ "smm": {} }));
    assert_eq!(
        vm["spec"]["template"]["metadata"]["annotations"],
        json!({ "vm.kubevirt.io/os": "linux" })
    );
}

#[test]
fn the_expanded_vm_is_valid_against_the_virtualmachine_crd() {
    for (it, pref) in [
        ("u1.medium", "rhel.9"),
        ("cx1.large", "windows.11"),
        ("o1.small", "fedora"),
    ] {
        let vm = expand(&rhel_9_minimal(), it, pref).expect("expands");
        assert_eq!(
            crate::content::tests::problems(&vm),
            Vec::<String>::new(),
            "{it} + {pref}"
        );
    }
}

#[test]
fn template_sockets_conflict_with_the_instancetype() {
    let mut vm = rhel_9_minimal();
    vm["spec"]["template"]["spec"]["domain"]["cpu"] = json!({ "sockets": 2 });
    let err = expand(&vm, "u1.medium", "rhel.9").expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "VM field(s) spec.template.spec.domain.cpu.sockets conflicts with selected instance type"
    );
}

#[test]
fn every_conflicting_field_is_reported() {
    let mut vm = rhel_9_minimal();
    let spec = &mut vm["spec"]["template"]["spec"];
    spec["domain"]["cpu"] = json!({ "cores": 2, "dedicatedCpuPlacement": true });
    spec["domain"]["memory"] = json!({ "guest": "1Gi" });
    spec["domain"]["resources"] = json!({ "requests": { "cpu": "1" } });
    let err = expand(&vm, "cx1.large", "rhel.9").expect_err("conflicts");
    assert_eq!(
        err,
        ExpandError::Conflicts {
            fields: [
                "domain.resources.requests.cpu",
                "domain.cpu.cores",
                "domain.cpu.dedicatedCPUPlacement",
                "domain.memory.guest",
            ]
            .iter()
            .map(|f| format!("spec.template.spec.{f}"))
            .collect()
        }
    );
}

#[test]
fn instancetype_annotations_conflict_only_when_the_values_differ() {
    let mut vm = rhel_9_minimal();
    vm["spec"]["template"]["metadata"] =
        json!({ "annotations": { "cpu-quota.crio.io": "disable" } });
    assert!(expand(&vm, "n1.medium", "rhel.9").is_ok());
    vm["spec"]["template"]["metadata"]["annotations"]["cpu-quota.crio.io"] = json!("enable");
    let err = expand(&vm, "n1.medium", "rhel.9").expect_err("conflicts");
    assert_eq!(
        err,
        ExpandError::Conflicts {
            fields: vec!["annotations.cpu-quota.crio.io".into()]
        }
    );
}

#[test]
fn preferences_never_override_what_the_template_sets() {
    let mut vm = rhel_9_minimal();
    let spec = &mut vm["spec"]["template"]["spec"];
    spec["domain"]["devices"]["disks"] = json!([{ "name": "rootdisk", "disk": { "bus": "sata" } }]);
    spec["domain"]["firmware"] = json!({ "bootloader": { "bios": {} } });
    spec["terminationGracePeriodSeconds"] = json!(10);
    let vm = expand(&vm, "u1.large", "windows.2k22.virtio").expect("expands");
    let spec = &vm["spec"]["template"]["spec"];
    assert_eq!(
        spec["domain"]["devices"]["disks"][0],
        json!({ "name": "rootdisk", "disk": { "bus": "sata" } })
    );
    assert_eq!(
        spec["domain"]["firmware"]["bootloader"],
        json!({ "bios": {} })
    );
    assert_eq!(spec["terminationGracePeriodSeconds"], 10);
    assert_eq!(
        spec["domain"]["devices"]["tpm"],
        json!({ "persistent": true })
    );
}

#[test]
fn windows_preferences_fill_clock_features_and_grace_period() {
    let vm = expand(&rhel_9_minimal(), "u1.large", "windows.11").expect("expands");
    let spec = &vm["spec"]["template"]["spec"];
    let domain = &spec["domain"];
    assert_eq!(
        domain["cpu"],
        json!({ "cores": 1, "sockets": 2, "threads": 1 })
    );
    assert_eq!(domain["clock"]["utc"], json!({}));
    assert_eq!(
        domain["clock"]["timer"]["hpet"],
        json!({ "present": false })
    );
    assert_eq!(
        domain["features"]["hyperv"]["spinlocks"],
        json!({ "spinlocks": 8191 })
    );
    assert_eq!(domain["features"]["acpi"], json!({}));
    assert_eq!(domain["devices"]["disks"][0]["disk"]["bus"], "sata");
    assert!(domain["devices"]["disks"][0]
        .get("dedicatedIOThread")
        .is_none());
    assert_eq!(domain["devices"]["interfaces"][0]["model"], "e1000e");
    assert_eq!(domain["devices"]["autoattachInputDevice"], true);
    assert_eq!(spec["terminationGracePeriodSeconds"], 3600);
}

#[test]
fn compute_exclusive_instancetypes_bring_their_cpu_and_memory_traits() {
    let vm = expand(&rhel_9_minimal(), "cx1.2xlarge", "rhel.9").expect("expands");
    let domain = &vm["spec"]["template"]["spec"]["domain"];
    assert_eq!(domain["cpu"]["sockets"], 8);
    assert_eq!(domain["cpu"]["dedicatedCpuPlacement"], true);
    assert_eq!(domain["cpu"]["isolateEmulatorThread"], true);
    assert_eq!(
        domain["cpu"]["numa"],
        json!({ "guestMappingPassthrough": {} })
    );
    assert_eq!(
        domain["memory"],
        json!({ "guest": "16Gi", "hugepages": { "pageSize": "2Mi" } })
    );
    assert_eq!(domain["ioThreadsPolicy"], "auto");
}

#[test]
fn overcommitted_instancetypes_request_half_the_guest_memory() {
    let vm = expand(&rhel_9_minimal(), "o1.small", "rhel.9").expect("expands");
    let domain = &vm["spec"]["template"]["spec"]["domain"];
    assert_eq!(domain["memory"]["guest"], "2Gi");
    assert_eq!(domain["resources"]["requests"]["memory"], "1Gi");
}

#[test]
fn gpu_instancetypes_attach_their_gpus() {
    let vm = expand(&rhel_9_minimal(), "gn1.xlarge", "rhel.9").expect("expands");
    let gpus = &vm["spec"]["template"]["spec"]["domain"]["devices"]["gpus"];
    assert_eq!(
        gpus,
        &json!([{ "name": "gpu1", "deviceName": "nvidia.com/A400" }])
    );
}

#[test]
fn spread_topology_splits_vcpus_across_sockets_cores_and_threads() {
    let vm = expand(&rhel_9_minimal(), "u1.2xlarge", "rhel.8.dpdk").expect("expands");
    let cpu = &vm["spec"]["template"]["spec"]["domain"]["cpu"];
    assert_eq!(cpu, &json!({ "cores": 2, "sockets": 2, "threads": 2 }));
}

#[test]
fn spread_topology_rejects_vcpus_it_cannot_divide() {
    let err = expand(&rhel_9_minimal(), "u1.large", "rhel.8.dpdk").expect_err("indivisible");
    assert!(matches!(err, ExpandError::SpreadTopology { .. }));
    assert!(err
        .to_string()
        .starts_with("2 vCPUs provided by the instance type are not divisible"));
}

#[test]
fn a_referenced_but_unsupplied_instancetype_is_an_error() {
    let err =
        expand_spec(&rhel_9_minimal(), None, Some(&preference("rhel.9"))).expect_err("missing");
    assert_eq!(
        err,
        ExpandError::MissingInstancetype {
            name: "u1.medium".into()
        }
    );
    let err = expand_spec(&rhel_9_minimal(), Some(&instancetype("u1.medium")), None)
        .expect_err("missing");
    assert_eq!(
        err,
        ExpandError::MissingPreference {
            name: "rhel.9".into()
        }
    );
}

#[test]
fn a_vm_without_instancetype_or_preference_comes_back_unchanged() {
    let mut vm = rhel_9_minimal();
    let spec = vm["spec"].as_object_mut().expect("spec");
    spec.remove("instancetype");
    spec.remove("preference");
    assert_eq!(expand_spec(&vm, None, None), Ok(vm));
}

#[test]
fn a_bare_spec_is_accepted_in_place_of_an_object() {
    let it = json!({ "cpu": { "guest": 4 }, "memory": { "guest": "1Gi" } });
    let mut vm = rhel_9_minimal();
    vm["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("preference");
    let vm = expand_spec(&vm, Some(&it), None).expect("expands");
    assert_eq!(
        vm["spec"]["template"]["spec"]["domain"]["cpu"]["sockets"],
        4
    );
}

#[test]
fn a_template_of_the_wrong_type_is_malformed() {
    let mut vm = rhel_9_minimal();
    vm["spec"]["template"]["spec"]["domain"] = json!("nope");
    let err = expand(&vm, "u1.medium", "rhel.9").expect_err("malformed");
    assert_eq!(
        err,
        ExpandError::Malformed {
            field: "spec.template.spec.domain".into()
        }
    );
}

#[test]
fn quantities_round_trip_in_binary_si() {
    assert_eq!(quantity_bytes("4Gi"), Some(4 << 30));
    assert_eq!(quantity_bytes("1.5Gi"), Some(3 << 29));
    assert_eq!(quantity_bytes("512Mi"), Some(512 << 20));
    assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
    assert_eq!(binary_si(2 << 30), "2Gi");
    assert_eq!(binary_si(3 << 29), "1536Mi");
    assert_eq!(binary_si(1000), "1000");
}
