//! Defaults the mutating admission writes, as `kubectl get -o json` shows them: a minimal VMI
//! gets upstream's VMI defaults (`shared/reference/kubevirt/UPSTREAM-FACTS.md` §5), a VM
//! template only the VM mutator's, and a DataVolume CDI's.

use oxivirt_e2e::{Kubectl, SharedServer};
use serde_json::{json, Value};

static SERVER: SharedServer = SharedServer::new();

/// Creates namespace `name` and `manifest` in it (no kubectl schema download: defaults are
/// what is under test); returns the created object as stored.
fn create_in(k: &Kubectl, name: &str, manifest: &str, resource: &str, object: &str) -> Value {
    let namespace = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n");
    k.run_stdin(&["create", "--validate=false", "-f", "-"], &namespace)
        .ok();
    k.run_stdin(
        &["create", "--validate=false", "-n", name, "-f", "-"],
        manifest,
    )
    .ok();
    k.json(&["get", resource, object, "-n", name])
}

const MINIMAL_VMI: &str = r##"apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: minimal}
spec:
  domain:
    devices:
      disks:
      - name: installer
        cdrom: {}
    resources: {requests: {memory: 128Mi}}
  readinessProbe: {tcpSocket: {port: 22}}
  volumes:
  - name: rootdisk
    containerDisk: {image: quay.io/containerdisks/fedora:latest}
  - name: installer
    containerDisk: {image: quay.io/containerdisks/fedora:41}
  - name: cloudinit
    cloudInitNoCloud: {userData: "#cloud-config\n"}
"##;

#[test]
fn a_minimal_vmi_gets_q35_host_model_the_pod_network_a_disk_per_volume_and_a_firmware_uuid() {
    let server = SERVER.get();
    let k = server.kubectl();
    let vmi = create_in(
        &k,
        "def-vmi",
        MINIMAL_VMI,
        "virtualmachineinstance",
        "minimal",
    );
    let spec = &vmi["spec"];
    let domain = &spec["domain"];
    assert_eq!(domain["machine"]["type"], "q35", "{vmi}");
    assert_eq!(domain["cpu"]["model"], "host-model", "{vmi}");
    for (field, value) in [("sockets", 1), ("cores", 1), ("threads", 1)] {
        assert_eq!(domain["cpu"][field], value, "cpu.{field}: {vmi}");
    }
    assert_eq!(
        domain["memory"]["guest"], "128Mi",
        "memory.guest from the request"
    );
    assert_eq!(
        domain["devices"]["interfaces"],
        json!([{"name": "default", "masquerade": {}}]),
        "{vmi}"
    );
    assert_eq!(
        spec["networks"],
        json!([{"name": "default", "pod": {}}]),
        "{vmi}"
    );
    // A disk for every volume, on the amd64 default bus; the CD-ROM read-only with a closed tray.
    assert_eq!(
        domain["devices"]["disks"],
        json!([
            {"name": "installer", "cdrom": {"bus": "sata", "readonly": true, "tray": "closed"}},
            {"name": "rootdisk", "disk": {"bus": "sata"}},
            {"name": "cloudinit", "disk": {"bus": "sata"}},
        ]),
        "{vmi}"
    );
    assert_eq!(
        spec["volumes"][0]["containerDisk"]["imagePullPolicy"], "Always",
        ":latest is always pulled"
    );
    assert_eq!(
        spec["volumes"][1]["containerDisk"]["imagePullPolicy"],
        "IfNotPresent"
    );
    // Upstream's legacy firmware UUID: UUIDv5 of the VMI name in KubeVirt's namespace
    // 6a1a24a1-4061-4607-8bf4-a3963d0c5895.
    assert_eq!(
        domain["firmware"]["uuid"],
        "56230eeb-f821-56d6-baba-ec3714983448"
    );
    let probe = &spec["readinessProbe"];
    for (field, value) in [
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ] {
        assert_eq!(probe[field], value, "readinessProbe.{field}: {vmi}");
    }
    assert_eq!(
        vmi["metadata"]["finalizers"],
        json!(["kubevirt.io/foregroundDeleteVirtualMachine"])
    );
    // Admission starts every VMI in Pending; the VMI controller may already have moved on.
    assert_eq!(
        vmi.pointer("/status/phaseTransitionTimestamps/0/phase"),
        Some(&json!("Pending")),
        "{vmi}"
    );
}

#[test]
fn a_vm_gets_a_halted_run_strategy_and_its_template_only_the_vm_mutators_defaults() {
    let server = SERVER.get();
    let k = server.kubectl();
    let manifest = r#"apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: plain}
spec:
  template:
    spec:
      domain: {devices: {}, resources: {requests: {memory: 128Mi}}}
      volumes:
      - name: rootdisk
        containerDisk: {image: quay.io/containerdisks/fedora:latest}
"#;
    let vm = create_in(&k, "def-vm", manifest, "virtualmachine", "plain");
    assert_eq!(vm["spec"]["runStrategy"], "Halted", "{vm}");
    let template = &vm["spec"]["template"]["spec"];
    assert_eq!(template["domain"]["machine"]["type"], "q35", "{vm}");
    let firmware = &template["domain"]["firmware"];
    for field in ["uuid", "serial"] {
        let id = firmware[field].as_str().unwrap_or_default();
        assert_eq!(id.len(), 36, "firmware.{field} is a UUID: {vm}");
    }
    // CPU, interfaces and disks wait for the VMI, as upstream.
    assert!(template["domain"]["cpu"].is_null(), "{vm}");
    assert!(
        template["domain"]["devices"]["interfaces"].is_null(),
        "{vm}"
    );
    assert!(template["domain"]["devices"]["disks"].is_null(), "{vm}");
}

#[test]
fn a_vm_instancetype_and_preference_default_to_the_cluster_kinds() {
    let server = SERVER.get();
    let k = server.kubectl();
    let manifest = r#"apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: sized}
spec:
  runStrategy: Halted
  instancetype: {name: u1.small}
  preference: {name: fedora}
  template: {spec: {domain: {devices: {}}}}
"#;
    let vm = create_in(
        &k,
        "def-vm-instancetype",
        manifest,
        "virtualmachine",
        "sized",
    );
    assert_eq!(
        vm["spec"]["instancetype"]["kind"],
        "VirtualMachineClusterInstancetype"
    );
    assert_eq!(
        vm["spec"]["preference"]["kind"],
        "VirtualMachineClusterPreference"
    );
}

#[test]
fn a_minimal_data_volume_keeps_its_spec_and_gets_the_gc_annotation_only_when_cdi_config_asks() {
    let server = SERVER.get();
    let k = server.kubectl();
    let data_volume = |name: &str| {
        format!(
            "apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata: {{name: {name}}}\nspec:\n  source: {{blank: {{}}}}\n  storage: {{resources: {{requests: {{storage: 1Gi}}}}}}\n"
        )
    };
    let kept = create_in(&k, "def-dv", &data_volume("blank"), "datavolume", "blank");
    assert_eq!(
        kept["spec"],
        json!({"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}}),
        "CDI writes no spec defaults: {kept}"
    );
    let gc = "cdi.kubevirt.io/storage.deleteAfterCompletion";
    assert!(
        kept["metadata"]["annotations"][gc].is_null(),
        "garbage collection is off by default: {kept}"
    );

    // CDIConfig `dataVolumeTTLSeconds: 0` turns DataVolume garbage collection on.
    k.run_stdin(
        &["apply", "--validate=false", "-f", "-"],
        "apiVersion: cdi.kubevirt.io/v1beta1\nkind: CDIConfig\nmetadata: {name: config}\nspec: {dataVolumeTTLSeconds: 0}\n",
    )
    .ok();
    k.run_stdin(
        &["create", "--validate=false", "-n", "def-dv", "-f", "-"],
        &data_volume("collected"),
    )
    .ok();
    let collected = k.json(&["get", "datavolume", "collected", "-n", "def-dv"]);
    assert_eq!(
        collected["metadata"]["annotations"][gc], "true",
        "{collected}"
    );
}
