//! Block volume mode: a loop device over a sparse file in the volume's directory, imported
//! into in place by the importer and booted by QEMU as a `host_device`.

use std::path::Path;
use std::time::Duration;

use oxivirt_e2e::{wait_until, Server};

use crate::common::{have, sh, test_guest, wait_for, FileServer, Serve};

const WAIT: Duration = Duration::from_secs(240);

/// Detaches the test's loop device if a failure left it attached (the server's data
/// directory goes with the test; a device would keep its deleted file alive).
struct Detach {
    device: String,
    sysfs: String,
    backing: String,
}

impl Drop for Detach {
    fn drop(&mut self) {
        let attached = std::fs::read_to_string(&self.sysfs)
            .is_ok_and(|b| b.trim().trim_end_matches(" (deleted)") == self.backing);
        if attached {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &self.device])
                .status();
        }
    }
}

#[test]
fn a_block_data_volume_is_a_loop_device_that_imports_boots_and_is_released() {
    if !have(&["qemu-img", "qemu-system-x86_64", "losetup"]) {
        return;
    }
    if !Path::new("/dev/loop-control").exists() {
        eprintln!("skipped: no loop devices here");
        return;
    }
    let Some(guest) = test_guest() else { return };
    let server = Server::start();
    let http = FileServer::start(&guest, Serve::default());
    let kubectl = server.kubectl();
    kubectl.apply(&format!(
        r#"{{"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {{"name": "blk",
              "annotations": {{"cdi.kubevirt.io/storage.bind.immediate.requested": "true"}}}},
            "spec": {{"source": {{"http": {{"url": "{}"}}}},
              "storage": {{"volumeMode": "Block", "resources": {{"requests": {{"storage": "200Mi"}}}}}}}}}}"#,
        http.url("disk.qcow2")
    ));
    wait_for(
        &kubectl,
        &["get", "dv", "blk"],
        "{.status.phase}",
        "Succeeded",
        WAIT,
    );
    let pv_name = kubectl.jsonpath(&["pvc", "blk"], "{.spec.volumeName}");
    let pv = kubectl.json(&["get", "pv", &pv_name]);
    assert_eq!(pv["spec"]["volumeMode"], "Block");
    assert_eq!(pv["spec"]["hostPath"]["type"], "BlockDevice");
    let device = pv["spec"]["hostPath"]["path"].as_str().unwrap().to_string();
    assert!(device.starts_with("/dev/loop"), "{device}");
    let backing = pv["metadata"]["annotations"]["storage.oxivirt.io/loop-backing-file"]
        .as_str()
        .unwrap()
        .to_string();
    let sysfs = format!(
        "/sys/block/{}/loop/backing_file",
        device.trim_start_matches("/dev/")
    );
    let _cleanup = Detach {
        device: device.clone(),
        sysfs: sysfs.clone(),
        backing: backing.clone(),
    };
    assert_eq!(std::fs::read_to_string(&sysfs).unwrap().trim(), backing);
    // The image was converted onto the device itself.
    sh(&format!(
        "qemu-img compare -q -f raw -F qcow2 {device} {}",
        guest.join("disk.qcow2").display()
    ));
    kubectl.apply(
        r#"{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm-blk"},
        "spec": {"runStrategy": "Always", "template": {"spec": {
            "domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]},
                       "resources": {"requests": {"memory": "256Mi"}}},
            "volumes": [{"name": "root", "dataVolume": {"name": "blk"}}]}}}}"#,
    );
    wait_until("the guest boots from the Block volume", WAIT, || {
        crate::vm::guest_ready(&server).then_some(())
    });
    // Released: the device is detached and the backing directory removed.
    kubectl.ok(&["delete", "vm", "vm-blk", "--wait=true", "--timeout=120s"]);
    kubectl.ok(&["delete", "dv", "blk"]);
    wait_until("the Block volume is released", WAIT, || {
        let detached = std::fs::read_to_string(&sysfs)
            .map(|b| b.trim() != backing)
            .unwrap_or(true);
        (detached && !Path::new(&backing).exists() && !kubectl.exists(&["pv", &pv_name]))
            .then_some(())
    });
}

#[test]
fn virtctl_uploads_into_a_block_data_volume_and_a_shared_class_refuses_block() {
    if !have(&["qemu-img", "losetup"]) || !Path::new("/dev/loop-control").exists() {
        return;
    }
    let server = Server::start();
    let kubectl = server.kubectl();
    let base = server.scratch().join("blk");
    let b = base.display();
    sh(&format!(
        "qemu-img create -f raw {b}.raw 16M >/dev/null && printf 'BLOCK-UPLOAD' | dd of={b}.raw conv=notrunc status=none && qemu-img convert -O qcow2 {b}.raw {b}.qcow2"
    ));
    let image = format!("{b}.qcow2");
    let out = std::process::Command::new(oxivirt_e2e::virtctl_bin())
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args([
            "image-upload",
            "dv",
            "blk-up",
            "--size=32Mi",
            "--volume-mode=block",
            "--insecure",
            "--image-path",
            &image,
        ])
        .output()
        .expect("run virtctl");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let pv_name = kubectl.jsonpath(&["pvc", "blk-up"], "{.spec.volumeName}");
    let pv = kubectl.json(&["get", "pv", &pv_name]);
    let device = pv["spec"]["hostPath"]["path"].as_str().unwrap().to_string();
    let backing = pv["metadata"]["annotations"]["storage.oxivirt.io/loop-backing-file"]
        .as_str()
        .unwrap()
        .to_string();
    let _cleanup = Detach {
        sysfs: format!(
            "/sys/block/{}/loop/backing_file",
            device.trim_start_matches("/dev/")
        ),
        device: device.clone(),
        backing,
    };
    let mut head = vec![0u8; 12];
    std::io::Read::read_exact(&mut std::fs::File::open(&device).unwrap(), &mut head).unwrap();
    assert_eq!(&head, b"BLOCK-UPLOAD");
    // A shared directory is no place for a node's loop device.
    kubectl.apply(&format!(
        r#"{{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {{"name": "shared"}},
            "provisioner": "kubevirt.io/hostpath-provisioner", "volumeBindingMode": "Immediate",
            "parameters": {{"sharedPath": "{}"}}}}"#,
        server.scratch().join("shared").display()
    ));
    kubectl.apply(
        r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "shared-blk"},
            "spec": {"storageClassName": "shared", "volumeMode": "Block", "accessModes": ["ReadWriteOnce"],
              "resources": {"requests": {"storage": "32Mi"}}}}"#,
    );
    wait_until("ProvisioningFailed for a shared Block claim", WAIT, || {
        let events = kubectl.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=shared-blk,reason=ProvisioningFailed",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        events
            .contains("a Block volume is a loop device of one node")
            .then_some(())
    });
    kubectl.ok(&["delete", "dv", "blk-up"]);
}
