//! Config volumes as disks (manual §7.5.4; ch07a sysprep; issue 4 item 4): a ConfigMap, a
//! Secret, a ServiceAccount token and the downward API (labels and the Pod's memory request)
//! reach a real guest as ISO disks it finds by their `serial`; a missing `optional`
//! ConfigMap is an empty disk; sysprep ConfigMaps and Secrets arrive as CD-ROMs with
//! upstream's `unattendCD` label; a missing ConfigMap fails the VMI and its Pod with the
//! reason.

use oxivirt_e2e::wait_until;
use serde_json::{json, Value};

use crate::common::{console_log, get, launcher_pod, vm, wait_banner, wait_vmi_running, BOOT};

/// A user-data script that prints, for every ISO 9660 disk and CD-ROM, its serial (the
/// kernel's name for CD-ROMs), its volume label (primary descriptor, sector 16 offset 40)
/// and the first bytes of each file; and whether a TPM is there. The test guest has no
/// udev, so `/sys/block/*/serial` stands in for `/dev/disk/by-id/*<serial>`.
const PROBE: &str = r#"#!/bin/sh
for d in /sys/block/vd* /sys/block/sr*; do
  n=${d##*/}; s=$(cat $d/serial 2>/dev/null); [ -n "$s" ] || s=$n
  mkdir -p /mnt/$n
  mount -t iso9660 -o ro /dev/$n /mnt/$n 2>/dev/null || continue
  echo "DISK $s label=$(dd if=/dev/$n bs=1 skip=32808 count=32 2>/dev/null | tr -d ' ')"
  for f in $(cd /mnt/$n && find . -type f | sort); do
    echo "DISK $s ${f#./}=$(head -c 60 /mnt/$n/$f | tr '\n' '|')"
  done
  echo "DISK $s token-dots=$(tr -cd . < /mnt/$n/token 2>/dev/null | wc -c)"
  umount /mnt/$n
done
if [ -e /dev/tpm0 ]; then echo "TPM present"; else echo "TPM absent"; fi
"#;

fn disk(name: &str, serial: &str) -> Value {
    json!({"name": name, "serial": serial, "disk": {"bus": "virtio"}})
}

#[test]
fn config_map_secret_service_account_downward_api_and_sysprep_reach_the_guest_by_serial() {
    let server = oxivirt_e2e::Server::start();
    let k = server.kubectl();
    k.create_configmap("app-config", &[("greeting", "hello-from-configmap")]);
    k.create_configmap(
        "win-answers",
        &[("autounattend.xml", "<unattend>sysprep</unattend>")],
    );
    k.create(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-secret\ndata:\n  password: czNjcjN0\n",
    );
    k.create("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: vm-sa\n");
    k.create(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: win-secret\ndata:\n  Unattend.xml: PHVuYXR0ZW5kPmZyb20tc2VjcmV0PC91bmF0dGVuZD4=\n",
    );

    let mut manifest: Value = serde_json::from_str(&vm("cfg", "Always", Some(PROBE))).unwrap();
    let spec = &mut manifest["spec"]["template"]["spec"];
    for volume in [
        json!({"name": "app-config", "configMap": {"name": "app-config"}}),
        json!({"name": "app-secret", "secret": {"secretName": "app-secret", "volumeLabel": "appsecret"}}),
        json!({"name": "sa", "serviceAccount": {"serviceAccountName": "vm-sa"}}),
        json!({"name": "podinfo", "downwardAPI": {"fields": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
            {"path": "mem", "resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}},
        ]}}),
        json!({"name": "answers", "sysprep": {"configMap": {"name": "win-answers"}}}),
        json!({"name": "answers2", "sysprep": {"secret": {"name": "win-secret"}}}),
        json!({"name": "opt", "configMap": {"name": "not-there", "optional": true}}),
    ] {
        spec["volumes"].as_array_mut().unwrap().push(volume);
    }
    let disks = spec["domain"]["devices"]["disks"].as_array_mut().unwrap();
    disks.extend([
        disk("app-config", "D23YZ9"),
        disk("app-secret", "K3M8QF"),
        disk("sa", "SA0001"),
        disk("podinfo", "DAPI01"),
        json!({"name": "answers", "cdrom": {"bus": "scsi"}}),
        json!({"name": "answers2", "cdrom": {"bus": "scsi"}}),
        disk("opt", "OPT001"),
    ]);
    k.create(&manifest.to_string());

    wait_vmi_running(&k, "cfg");
    wait_banner(&k, "cfg");
    let log = console_log(&k, "cfg");
    for line in [
        "DISK D23YZ9 label=cfgdata",
        "DISK D23YZ9 greeting=hello-from-configmap",
        "DISK K3M8QF label=appsecret",
        "DISK K3M8QF password=s3cr3t",
        "DISK SA0001 label=cfgdata",
        "DISK SA0001 namespace=default",
        "DISK SA0001 ca.crt=-----BEGIN CERTIFICATE-----",
        // A JWT: header.payload.signature.
        "DISK SA0001 token-dots=2",
        "DISK DAPI01 app=cfg",
        "kubevirt.io=\"virt-launcher\"",
        "DISK sr0 label=unattendCD",
        "DISK sr0 autounattend.xml=<unattend>sysprep</unattend>",
        "DISK sr1 label=unattendCD",
        "DISK sr1 Unattend.xml=<unattend>from-secret</unattend>",
        // A missing optional ConfigMap is an empty volume.
        "DISK OPT001 label=cfgdata",
        "TPM absent",
    ] {
        assert!(
            log.contains(line),
            "missing {line:?} in the console log:\n{log}"
        );
    }
    // The launcher Pod requests the guest's 128 MiB plus upstream's overhead.
    let mem: u64 = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("DISK DAPI01 mem="))
        .and_then(|v| v.trim_end_matches('|').parse().ok())
        .unwrap_or_else(|| panic!("no memory request in the console log:\n{log}"));
    assert!(mem > 128, "{mem} MiB");
    let optional: Vec<&str> = log.lines().filter(|l| l.contains("DISK OPT001 ")).collect();
    assert_eq!(optional.len(), 2, "label and token-dots only: {optional:?}");
}

#[test]
fn a_missing_config_map_fails_the_vmi_and_its_pod_with_the_reason() {
    let server = oxivirt_e2e::Server::start();
    let k = server.kubectl();
    let mut manifest: Value = serde_json::from_str(&vm("nocfg", "Always", None)).unwrap();
    let template = manifest["spec"]["template"].take();
    let mut vmi = json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "nocfg"},
        "spec": template["spec"],
    });
    vmi["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "cfg", "configMap": {"name": "absent"}}));
    vmi["spec"]["domain"]["devices"]["disks"]
        .as_array_mut()
        .unwrap()
        .push(disk("cfg", "ABSENT"));
    k.create(&vmi.to_string());

    wait_until("VMI nocfg to fail", BOOT, || {
        (get(&k, "vmi", "nocfg")?["status"]["phase"] == "Failed").then_some(())
    });
    let pod = get(&k, "pod", &launcher_pod(&k, "nocfg")).expect("the launcher Pod");
    assert_eq!(pod["status"]["phase"], "Failed", "{pod}");
    assert_eq!(pod["status"]["reason"], "FailedMount", "{pod}");
    let message = pod["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(r#"volume "cfg" : configmap "absent" not found"#),
        "{message}"
    );
    let events = k.ok(&["get", "events"]);
    assert!(
        events.contains("FailedMount") && events.contains(r#"configmap "absent" not found"#),
        "{events}"
    );
}
