//! VMs on persistent disks: `dataVolumeTemplates` imported while the VM shows
//! `Provisioning`, then booted by real QEMU (TCG) from the imported disk.

use std::time::Duration;

use oxivirt_e2e::{wait_until, Server};

use crate::common::{have, test_guest, FileServer, Serve};

/// Whether some launcher's console printed the guest's banner.
pub(crate) fn guest_ready(server: &Server) -> bool {
    let Ok(pods) = std::fs::read_dir(server.data_dir().join("pods")) else {
        return false;
    };
    pods.flatten().any(|pod| {
        std::fs::read(pod.path().join("console.log"))
            .is_ok_and(|log| String::from_utf8_lossy(&log).contains("OXIVIRT-TEST-GUEST READY"))
    })
}

#[test]
fn a_vm_from_data_volume_templates_shows_provisioning_then_boots_the_imported_disk() {
    if !have(&["qemu-img", "qemu-system-x86_64"]) {
        return;
    }
    let Some(guest) = test_guest() else { return };
    let server = Server::start();
    // Slow enough (4 MiB/s for 17 MiB) that the import is seen in progress.
    let http = FileServer::start(
        &guest,
        Serve {
            basic_auth: None,
            rate: 4 << 20,
        },
    );
    let kubectl = server.kubectl();
    kubectl.apply(&format!(
        r#"{{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {{"name": "vm-dv"}},
        "spec": {{"runStrategy": "Always",
          "dataVolumeTemplates": [{{"metadata": {{"name": "vm-dv-root"}},
            "spec": {{"source": {{"http": {{"url": "{}"}}}}, "storage": {{"resources": {{"requests": {{"storage": "200Mi"}}}}}}}}}}],
          "template": {{"spec": {{
            "domain": {{"devices": {{"disks": [{{"name": "root", "disk": {{"bus": "virtio"}}}}]}},
                       "resources": {{"requests": {{"memory": "256Mi"}}}}}},
            "volumes": [{{"name": "root", "dataVolume": {{"name": "vm-dv-root"}}}}]}}}}}}}}"#,
        http.url("disk.qcow2")
    ));
    let (mut seen, mut progress) = (Vec::new(), Vec::new());
    wait_until(
        "the guest boots from the imported disk",
        Duration::from_secs(240),
        || {
            let status = kubectl.jsonpath(&["vm", "vm-dv"], "{.status.printableStatus}");
            if seen.last() != Some(&status) {
                seen.push(status);
            }
            let run = kubectl.run(&[
                "get",
                "dv",
                "vm-dv-root",
                "-o",
                "jsonpath={.status.progress}",
            ]);
            if run.status.success() && progress.last() != Some(&run.stdout) {
                progress.push(run.stdout);
            }
            guest_ready(&server).then_some(())
        },
    );
    assert!(
        seen.iter().any(|s| s == "Provisioning"),
        "printable statuses seen: {seen:?}"
    );
    // Progress as CDI writes it: "NN.NN%" while importing, "100.0%" at the end.
    let partial = progress.iter().any(|p| {
        p.strip_suffix('%')
            .and_then(|n| n.parse::<f64>().ok())
            .is_some_and(|n| {
                n > 0.0 && n < 100.0 && p.split('.').nth(1).is_some_and(|d| d.len() == 3)
            })
    });
    assert!(partial, "progress values seen: {progress:?}");
    assert_eq!(progress.last().map(String::as_str), Some("100.0%"));
    assert_eq!(
        kubectl.jsonpath(&["dv", "vm-dv-root"], "{.status.phase}"),
        "Succeeded"
    );
    let owner = kubectl.jsonpath(&["dv", "vm-dv-root"], "{.metadata.ownerReferences[0].kind}");
    assert_eq!(owner, "VirtualMachine");
    // The disk is persistent: the launcher got the claim's disk.img, not an overlay.
    let pv = kubectl.jsonpath(&["pvc", "vm-dv-root"], "{.spec.volumeName}");
    let dir = kubectl.jsonpath(&["pv", &pv], "{.spec.hostPath.path}");
    let launch = std::fs::read_dir(server.data_dir().join("pods"))
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read_to_string(p.path().join("launch.json")).ok())
        .next()
        .expect("a launch.json");
    assert!(launch.contains(&format!("{dir}/disk.img")), "{launch}");
    kubectl.ok(&["delete", "vm", "vm-dv", "--wait=false"]);
}

#[test]
fn a_vm_cloning_a_data_source_boots_and_the_golden_image_stays_untouched() {
    if !have(&["qemu-img", "qemu-system-x86_64"]) {
        return;
    }
    let Some(guest) = test_guest() else { return };
    let server = Server::start();
    let http = FileServer::start(&guest, Serve::default());
    let kubectl = server.kubectl();
    kubectl.apply(&crate::common::data_volume(
        "golden",
        &format!(r#"{{"http": {{"url": "{}"}}}}"#, http.url("disk.qcow2")),
        "200Mi",
    ));
    kubectl.apply(r#"{"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataSource", "metadata": {"name": "test-guest"},
        "spec": {"source": {"pvc": {"name": "golden", "namespace": "default"}}}}"#);
    crate::common::wait_for(
        &kubectl,
        &["get", "datasource", "test-guest"],
        "{.status.conditions[0].status}",
        "True",
        Duration::from_secs(240),
    );
    kubectl.apply(
        r#"{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm-ds"},
        "spec": {"runStrategy": "Always",
          "dataVolumeTemplates": [{"metadata": {"name": "vm-ds-root"},
            "spec": {"sourceRef": {"kind": "DataSource", "name": "test-guest"}, "storage": {"resources": {"requests": {"storage": "200Mi"}}}}}],
          "template": {"spec": {
            "domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]},
                       "resources": {"requests": {"memory": "256Mi"}}},
            "volumes": [{"name": "root", "dataVolume": {"name": "vm-ds-root"}}]}}}}"#,
    );
    wait_until("the clone boots", Duration::from_secs(240), || {
        guest_ready(&server).then_some(())
    });
    assert_eq!(
        kubectl.jsonpath(
            &["dv", "vm-ds-root"],
            "{.metadata.annotations.cdi\\.kubevirt\\.io/cloneType}"
        ),
        "csi-clone"
    );
    kubectl.ok(&["delete", "vm", "vm-ds", "--wait=false"]);
    // The golden image still reads as the guest's disk, whatever the clone's guest wrote.
    let golden = crate::common::volume_dir(&server, "golden");
    crate::common::sh(&format!(
        "qemu-img compare -q -U -f qcow2 -F raw {} {}",
        golden.join("disk.img").display(),
        guest.join("disk.raw").display()
    ));
}
