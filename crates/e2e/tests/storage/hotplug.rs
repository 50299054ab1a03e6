//! Disk hot-plug (manual 7.15.1): the real `virtctl addvolume`/`removevolume` attach a
//! blank DataVolume to a running guest under real QEMU (TCG) on the virtio-scsi bus; the
//! guest sees the disk with the given serial, keeps it across a reboot, and loses it when
//! it is removed.

use std::process::{Command, Output};
use std::time::Duration;

use oxivirt_e2e::{guest_registry, virtctl_bin, wait_until, Kubectl, Server};
use serde_json::json;

use crate::common::{data_volume, have, test_guest, wait_for};

/// Generous bounds for a loaded 2-core machine (upper bounds only).
const BOOT: Duration = Duration::from_secs(240);
const ATTACH: Duration = Duration::from_secs(90);

/// A user-data script that, from every boot on, prints the guest's SCSI disks with their
/// serials (VPD page 0x80; the guest has no udev for `/dev/disk/by-id`) every second.
const PROBE: &str = r#"#!/bin/sh
( while true; do
    l=""
    for d in /sys/block/sd*; do
      [ -e "$d" ] || continue
      s=$(tr -cd 'A-Za-z0-9-' < $d/device/vpd_pg80 2>/dev/null)
      l="$l ${d##*/}=$s"
    done
    echo "HPSCAN[$l ]"
    sleep 1
  done ) > /dev/console 2>&1 &
"#;

pub(crate) fn virtctl(server: &Server, args: &[&str]) -> Output {
    Command::new(virtctl_bin())
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args)
        .output()
        .expect("run virtctl")
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Everything the launchers' consoles printed.
fn console(server: &Server) -> String {
    let Ok(pods) = std::fs::read_dir(server.data_dir().join("pods")) else {
        return String::new();
    };
    pods.flatten()
        .filter_map(|pod| std::fs::read(pod.path().join("console.log")).ok())
        .map(|log| String::from_utf8_lossy(&log).into_owned())
        .collect()
}

/// The `HPSCAN` lines printed after byte `from` of the console.
fn scans(server: &Server, from: usize) -> Vec<String> {
    let log = console(server);
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("HPSCAN["))
        .map(str::to_string)
        .collect()
}

pub(crate) fn banners(server: &Server) -> usize {
    console(server).matches("OXIVIRT-TEST-GUEST READY").count()
}

/// Waits for the first guest's banner on the server's consoles.
pub(crate) fn wait_guest_booted(server: &Server) {
    wait_until("the guest boots", BOOT, || {
        (banners(server) >= 1).then_some(())
    });
}

pub(crate) fn vm(name: &str) -> String {
    json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name},
        "spec": {"runStrategy": "Always", "template": {"spec": {
            "terminationGracePeriodSeconds": 5,
            "domain": {
                "devices": {"disks": [
                    {"name": "root", "disk": {"bus": "virtio"}},
                    {"name": "cloudinit", "disk": {"bus": "virtio"}}]},
                "resources": {"requests": {"memory": "128Mi"}}},
            "volumes": [
                {"name": "root", "containerDisk": {"image": guest_registry().image()}},
                {"name": "cloudinit", "cloudInitNoCloud": {"userData": PROBE}}]}}}
    })
    .to_string()
}

/// The volume `name` of a VM's template, if it has it.
fn template_volume(vm: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    vm["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == name).cloned())
}

fn hotplug_status(kubectl: &Kubectl, vmi: &str, volume: &str) -> serde_json::Value {
    let vmi = kubectl.json(&["get", "vmi", vmi]);
    vmi["status"]["volumeStatus"]
        .as_array()
        .and_then(|s| s.iter().find(|e| e["name"] == volume).cloned())
        .unwrap_or_default()
}

#[test]
fn a_hot_plugged_blank_data_volume_appears_in_the_guest_survives_a_reboot_and_goes_away() {
    if !have(&["qemu-img", "qemu-system-x86_64", "docker-registry"]) {
        return;
    }
    if test_guest().is_none() {
        return;
    }
    let server = Server::start();
    let kubectl = server.kubectl();
    kubectl.apply(&data_volume("hp-data", r#"{"blank": {}}"#, "64Mi"));
    kubectl.apply(&vm("hp-vm"));
    wait_for(
        &kubectl,
        &["get", "dv", "hp-data"],
        "{.status.phase}",
        "Succeeded",
        BOOT,
    );
    wait_guest_booted(&server);

    // A volume the VM was defined with cannot be unplugged; an unknown one cannot be added.
    let refused = virtctl(&server, &["removevolume", "hp-vm", "--volume-name=root"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("Unable to remove volume [root] because it is not hotpluggable"),
        "{}",
        text(&refused)
    );
    let refused = virtctl(&server, &["addvolume", "hp-vm", "--volume-name=nothing"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("Volume nothing is not a DataVolume or PersistentVolumeClaim"),
        "{}",
        text(&refused)
    );

    let started = std::time::Instant::now();
    let added = virtctl(
        &server,
        &[
            "addvolume",
            "hp-vm",
            "--volume-name=hp-data",
            "--serial=HPDATA01",
        ],
    );
    assert!(added.status.success(), "{}", text(&added));
    assert_eq!(
        String::from_utf8_lossy(&added.stdout).trim(),
        "Successfully submitted add volume request to VM hp-vm for volume hp-data"
    );
    let from = console(&server).len();
    let status = wait_until("the volume is Ready in the VMI status", ATTACH, || {
        let status = hotplug_status(&kubectl, "hp-vm", "hp-data");
        (status["phase"] == "Ready").then_some(status)
    });
    assert_eq!(status["reason"], "VolumeReady");
    assert_eq!(
        status["message"],
        "Successfully attach hotplugged volume hp-data to VM"
    );
    assert!(status.get("hotplugVolume").is_some(), "{status}");
    wait_until("the guest sees the disk", ATTACH, || {
        scans(&server, from)
            .iter()
            .any(|l| l.contains("=HPDATA01"))
            .then_some(())
    });
    eprintln!(
        "addvolume to the guest seeing the disk: {} ms",
        started.elapsed().as_millis()
    );
    // The VMI has the disk on the scsi bus; the VM was not changed (no --persist).
    let vmi = kubectl.json(&["get", "vmi", "hp-vm"]);
    let disk = vmi["spec"]["domain"]["devices"]["disks"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "hp-data").cloned())
        .expect("the VMI has the disk");
    assert_eq!(disk["disk"]["bus"], "scsi");
    assert_eq!(disk["serial"], "HPDATA01");
    let vm = kubectl.json(&["get", "vm", "hp-vm"]);
    assert!(
        !vm["spec"]["template"]["spec"]
            .to_string()
            .contains("hp-data"),
        "{vm}"
    );

    // A guest reboot keeps the disk.
    let rebooted = virtctl(&server, &["soft-reboot", "hp-vm"]);
    assert!(rebooted.status.success(), "{}", text(&rebooted));
    wait_until("the guest boots again", BOOT, || {
        (banners(&server) >= 2).then_some(())
    });
    let log = console(&server);
    let second = log
        .rfind("OXIVIRT-TEST-GUEST READY")
        .expect("a second banner");
    wait_until("the rebooted guest sees the disk", ATTACH, || {
        scans(&server, second)
            .iter()
            .any(|l| l.contains("=HPDATA01"))
            .then_some(())
    });

    let removed = virtctl(&server, &["removevolume", "hp-vm", "--volume-name=hp-data"]);
    assert!(removed.status.success(), "{}", text(&removed));
    assert_eq!(
        String::from_utf8_lossy(&removed.stdout).trim(),
        "Successfully submitted remove volume request to VM hp-vm for volume hp-data"
    );
    let from = console(&server).len();
    wait_until("the disk is gone from the guest", ATTACH, || {
        let lines = scans(&server, from);
        // Two scans in a row without it: the second began after the unplug.
        (lines.len() >= 2
            && lines[lines.len() - 2..]
                .iter()
                .all(|l| !l.contains("HPDATA01")))
        .then_some(())
    });
    wait_until("the volume leaves the VMI status", ATTACH, || {
        hotplug_status(&kubectl, "hp-vm", "hp-data")
            .is_null()
            .then_some(())
    });
    kubectl.ok(&["delete", "vm", "hp-vm", "--wait=false"]);
}

/// The console of the launcher Pod started last.
fn newest_console(server: &Server) -> String {
    let Ok(pods) = std::fs::read_dir(server.data_dir().join("pods")) else {
        return String::new();
    };
    pods.flatten()
        .filter_map(|pod| {
            let started = std::fs::metadata(pod.path().join("launch.json"))
                .and_then(|m| m.modified())
                .ok()?;
            Some((started, pod.path()))
        })
        .max()
        .and_then(|(_, dir)| std::fs::read(dir.join("console.log")).ok())
        .map(|log| String::from_utf8_lossy(&log).into_owned())
        .unwrap_or_default()
}

#[test]
fn a_persisted_hot_plugged_claim_joins_the_vm_spec_and_is_there_after_a_vm_restart() {
    if !have(&["qemu-img", "qemu-system-x86_64", "docker-registry"]) {
        return;
    }
    if test_guest().is_none() {
        return;
    }
    let server = Server::start();
    let kubectl = server.kubectl();
    kubectl.apply(
        r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "hp-pvc",
            "annotations": {"cdi.kubevirt.io/storage.bind.immediate.requested": "true"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}}"#,
    );
    kubectl.apply(&vm("hp-keep"));
    wait_for(
        &kubectl,
        &["get", "pvc", "hp-pvc"],
        "{.status.phase}",
        "Bound",
        BOOT,
    );
    wait_guest_booted(&server);
    let added = virtctl(
        &server,
        &["addvolume", "hp-keep", "--volume-name=hp-pvc", "--persist"],
    );
    assert!(added.status.success(), "{}", text(&added));
    // The VM's template keeps the disk, on the scsi bus, with the claim as a hotpluggable
    // source, once the VM controller has handled the recorded request.
    let vm = wait_until("the VM controller applies the request", ATTACH, || {
        let vm = kubectl.json(&["get", "vm", "hp-keep"]);
        template_volume(&vm, "hp-pvc").map(|_| vm)
    });
    let spec = &vm["spec"]["template"]["spec"];
    let volume = template_volume(&vm, "hp-pvc").expect("the VM spec has the volume");
    assert_eq!(
        volume["persistentVolumeClaim"],
        json!({"claimName": "hp-pvc", "hotpluggable": true})
    );
    assert!(
        spec["domain"]["devices"]["disks"]
            .to_string()
            .contains(r#""bus":"scsi""#),
        "{spec}"
    );
    // The serial defaults to the volume name.
    wait_until("the running guest sees the disk", ATTACH, || {
        newest_console(&server)
            .lines()
            .any(|l| l.contains("HPSCAN[") && l.contains("=hp-pvc"))
            .then_some(())
    });
    // The running VMI has the disk already: the template change asks for no restart.
    let conditions = kubectl.json(&["get", "vm", "hp-keep"])["status"]["conditions"].clone();
    assert!(
        !conditions.to_string().contains("RestartRequired"),
        "{conditions}"
    );
    let first = kubectl.jsonpath(&["vmi", "hp-keep"], "{.metadata.uid}");
    let restarted = virtctl(&server, &["restart", "hp-keep"]);
    assert!(restarted.status.success(), "{}", text(&restarted));
    wait_until("a new VMI runs", BOOT, || {
        let run = kubectl.run(&[
            "get",
            "vmi",
            "hp-keep",
            "-o",
            "jsonpath={.metadata.uid} {.status.phase}",
        ]);
        (run.stdout.split(' ').next() != Some(first.as_str()) && run.stdout.ends_with("Running"))
            .then_some(())
    });
    wait_until("the restarted guest boots with the disk", BOOT, || {
        let log = newest_console(&server);
        (log.contains("OXIVIRT-TEST-GUEST READY")
            && log
                .lines()
                .any(|l| l.contains("HPSCAN[") && l.contains("=hp-pvc")))
        .then_some(())
    });
    let status = wait_until("the persisted volume is reported Ready", ATTACH, || {
        let status = hotplug_status(&kubectl, "hp-keep", "hp-pvc");
        (status["phase"] == "Ready").then_some(status)
    });
    assert_eq!(status["reason"], "VolumeReady");

    let removed = virtctl(
        &server,
        &[
            "removevolume",
            "hp-keep",
            "--volume-name=hp-pvc",
            "--persist",
        ],
    );
    assert!(removed.status.success(), "{}", text(&removed));
    let vm = wait_until("the VM controller applies the removal", ATTACH, || {
        let vm = kubectl.json(&["get", "vm", "hp-keep"]);
        template_volume(&vm, "hp-pvc").is_none().then_some(vm)
    });
    assert!(
        !vm["spec"]["template"]["spec"]
            .to_string()
            .contains("hp-pvc"),
        "{vm}"
    );
    assert!(vm["status"].get("volumeRequests").is_none(), "{vm}");
    let from = newest_console(&server).len();
    wait_until("the disk is gone from the guest", ATTACH, || {
        let log = newest_console(&server);
        let lines: Vec<&str> = log
            .get(from..)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("HPSCAN["))
            .collect();
        (lines.len() >= 2
            && lines[lines.len() - 2..]
                .iter()
                .all(|l| !l.contains("hp-pvc")))
        .then_some(())
    });
    kubectl.ok(&["delete", "vm", "hp-keep", "--wait=false"]);
}

/// A blank DataVolume on the default `WaitForFirstConsumer` class (no immediate-bind
/// annotation), so it waits for a consumer until the hot-plug makes the VMI one.
fn waiting_blank_data_volume(name: &str) -> String {
    json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
        "metadata": {"name": name},
        "spec": {"source": {"blank": {}},
                 "storage": {"resources": {"requests": {"storage": "64Mi"}}}}
    })
    .to_string()
}

#[test]
fn a_data_volume_waiting_for_its_first_consumer_is_hot_plugged_through_the_vm_request_list() {
    if !have(&["qemu-img", "qemu-system-x86_64", "docker-registry"]) {
        return;
    }
    if test_guest().is_none() {
        return;
    }
    let server = Server::start();
    let kubectl = server.kubectl();
    kubectl.apply(&waiting_blank_data_volume("hp-wffc"));
    // A claim on its way out cannot be hot-plugged: held by a finalizer while deleted.
    kubectl.apply(
        r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "hp-going",
            "finalizers": ["example.com/hold"]},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}}"#,
    );
    kubectl.ok(&["delete", "pvc", "hp-going", "--wait=false"]);
    kubectl.apply(&vm("hp-wffc-vm"));
    wait_for(
        &kubectl,
        &["get", "dv", "hp-wffc"],
        "{.status.phase}",
        "WaitForFirstConsumer",
        BOOT,
    );
    wait_guest_booted(&server);

    let refused = virtctl(
        &server,
        &[
            "addvolume",
            "hp-wffc-vm",
            "--volume-name=hp-going",
            "--persist",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains(
            "volumeSource.persistentVolumeClaim.claimName: Unable to add volume [hp-going]: \
             PersistentVolumeClaim default/hp-going is being deleted"
        ),
        "{}",
        text(&refused)
    );

    let started = std::time::Instant::now();
    let added = virtctl(
        &server,
        &[
            "addvolume",
            "hp-wffc-vm",
            "--volume-name=hp-wffc",
            "--serial=HPWFFC01",
            "--persist",
        ],
    );
    assert!(added.status.success(), "{}", text(&added));
    let from = console(&server).len();
    let mut seen = Vec::new();
    let status = wait_until("the volume is Ready in the VMI status", BOOT, || {
        let status = hotplug_status(&kubectl, "hp-wffc-vm", "hp-wffc");
        let phase = format!("{} {}", status["phase"], status["reason"]);
        if seen.last() != Some(&phase) {
            seen.push(phase);
        }
        (status["phase"] == "Ready").then_some(status)
    });
    eprintln!("volume phases seen: {seen:?}");
    assert_eq!(status["reason"], "VolumeReady");
    wait_until("the guest sees the disk", ATTACH, || {
        scans(&server, from)
            .iter()
            .any(|l| l.contains("=HPWFFC01"))
            .then_some(())
    });
    eprintln!(
        "addvolume of a waiting DataVolume to the guest seeing the disk: {} ms",
        started.elapsed().as_millis()
    );
    // The claim was provisioned on the node running the VMI, and populated.
    let node = kubectl.jsonpath(&["vmi", "hp-wffc-vm"], "{.status.nodeName}");
    assert!(!node.is_empty());
    let pvc = kubectl.json(&["get", "pvc", "hp-wffc"]);
    assert_eq!(
        pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        node.as_str(),
        "{pvc}"
    );
    assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
    assert_eq!(
        kubectl.jsonpath(&["dv", "hp-wffc"], "{.status.phase}"),
        "Succeeded"
    );
    // The request went through the VM: its template has the disk, its list is empty.
    let vm = kubectl.json(&["get", "vm", "hp-wffc-vm"]);
    let volume = template_volume(&vm, "hp-wffc").expect("the VM spec has the volume");
    assert_eq!(
        volume["dataVolume"],
        json!({"name": "hp-wffc", "hotpluggable": true})
    );
    assert!(
        vm["status"]["volumeRequests"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{vm}"
    );
    // Without --persist (the VMI alone) a waiting DataVolume is hot-plugged the same way.
    kubectl.apply(&waiting_blank_data_volume("hp-wffc2"));
    wait_for(
        &kubectl,
        &["get", "dv", "hp-wffc2"],
        "{.status.phase}",
        "WaitForFirstConsumer",
        BOOT,
    );
    let from = console(&server).len();
    let added = virtctl(
        &server,
        &[
            "addvolume",
            "hp-wffc-vm",
            "--volume-name=hp-wffc2",
            "--serial=HPWFFC02",
        ],
    );
    assert!(added.status.success(), "{}", text(&added));
    wait_until("the guest sees the second disk", BOOT, || {
        scans(&server, from)
            .iter()
            .any(|l| l.contains("=HPWFFC02"))
            .then_some(())
    });
    wait_until("the second volume is Ready", ATTACH, || {
        (hotplug_status(&kubectl, "hp-wffc-vm", "hp-wffc2")["phase"] == "Ready").then_some(())
    });
    let vm = kubectl.json(&["get", "vm", "hp-wffc-vm"]);
    assert!(template_volume(&vm, "hp-wffc2").is_none(), "{vm}");

    // The same name again is a conflict, as upstream.
    let again = virtctl(
        &server,
        &[
            "addvolume",
            "hp-wffc-vm",
            "--volume-name=hp-wffc",
            "--persist",
        ],
    );
    assert!(!again.status.success());
    assert!(
        text(&again).contains(
            "Unable to add volume [hp-wffc] because volume with that name already exists"
        ),
        "{}",
        text(&again)
    );
    kubectl.ok(&[
        "patch",
        "pvc",
        "hp-going",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    kubectl.ok(&["delete", "vm", "hp-wffc-vm", "--wait=false"]);
}
