//! PVC clones: native (qcow2 overlays, O(1)) within a class and namespace, host-assisted
//! copy across namespaces; a clone boots and neither side sees the other's writes.

use std::time::{Duration, Instant};

use oxivirt_e2e::Server;

use crate::common::{data_volume, have, sh, test_guest, volume_dir, wait_for, FileServer, Serve};

const WAIT: Duration = Duration::from_secs(240);

#[test]
fn clones_are_overlays_in_one_namespace_and_copies_across_namespaces() {
    if !have(&["qemu-img"]) {
        return;
    }
    let Some(guest) = test_guest() else { return };
    let server = Server::start();
    let http = FileServer::start(&guest, Serve::default());
    let kubectl = server.kubectl();
    kubectl.apply(&data_volume(
        "golden",
        &format!(r#"{{"http": {{"url": "{}"}}}}"#, http.url("disk.qcow2")),
        "200Mi",
    ));
    wait_for(
        &kubectl,
        &["get", "dv", "golden"],
        "{.status.phase}",
        "Succeeded",
        WAIT,
    );
    wait_for(
        &kubectl,
        &["get", "storageprofile", "hostpath-csi-basic"],
        "{.status.cloneStrategy}",
        "csi-clone",
        WAIT,
    );

    let started = Instant::now();
    kubectl.apply(&data_volume(
        "copy1",
        r#"{"pvc": {"name": "golden", "namespace": "default"}}"#,
        "200Mi",
    ));
    wait_for(
        &kubectl,
        &["get", "dv", "copy1"],
        "{.status.phase}",
        "Succeeded",
        WAIT,
    );
    eprintln!(
        "native clone of a 200Mi volume: {:?} end to end",
        started.elapsed()
    );
    assert_eq!(
        kubectl.jsonpath(
            &["dv", "copy1"],
            "{.metadata.annotations.cdi\\.kubevirt\\.io/cloneType}"
        ),
        "csi-clone"
    );
    let events = kubectl.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=copy1",
    ]);
    assert!(
        events.contains("Successfully cloned from default/golden into default/copy1"),
        "{events}"
    );
    let (source, target) = (volume_dir(&server, "golden"), volume_dir(&server, "copy1"));
    for dir in [&source, &target] {
        assert_eq!(
            std::fs::read_to_string(dir.join(".disk-format")).unwrap(),
            "qcow2"
        );
    }
    // Both read as the guest's disk; a write to one is not seen by the other.
    let raw = guest.join("disk.raw");
    sh(&format!(
        "qemu-img compare -q -f qcow2 -F raw {} {}",
        target.join("disk.img").display(),
        raw.display()
    ));
    sh(&format!(
        "qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' {} >/dev/null",
        target.join("disk.img").display()
    ));
    sh(&format!(
        "qemu-img compare -q -f qcow2 -F raw {} {}",
        source.join("disk.img").display(),
        raw.display()
    ));

    kubectl.create_namespace("other");
    kubectl.apply(
        &data_volume(
            "copy2",
            r#"{"pvc": {"name": "golden", "namespace": "default"}}"#,
            "200Mi",
        )
        .replace(
            r#""name": "copy2""#,
            r#""name": "copy2", "namespace": "other""#,
        ),
    );
    wait_for(
        &kubectl,
        &["get", "dv", "copy2", "-n", "other"],
        "{.status.phase}",
        "Succeeded",
        WAIT,
    );
    assert_eq!(
        kubectl.jsonpath(
            &["dv", "copy2", "-n", "other"],
            "{.metadata.annotations.cdi\\.kubevirt\\.io/cloneType}"
        ),
        "copy"
    );
    let fallback = kubectl.jsonpath(
        &["dv", "copy2", "-n", "other"],
        "{.metadata.annotations.cdi\\.kubevirt\\.io/cloneFallbackReason}",
    );
    assert!(!fallback.is_empty());
    let volume = kubectl.jsonpath(&["pvc", "copy2", "-n", "other"], "{.spec.volumeName}");
    let copied =
        std::path::PathBuf::from(kubectl.jsonpath(&["pv", &volume], "{.spec.hostPath.path}"))
            .join("disk.img");
    sh(&format!(
        "qemu-img compare -q -f raw -F raw {} {}",
        copied.display(),
        raw.display()
    ));

    // Deleting every user of a base removes it.
    kubectl.ok(&["delete", "dv", "golden", "copy1"]);
    let bases = server.data_dir().join("storage/local/.bases");
    oxivirt_e2e::wait_until("clone bases are collected", WAIT, || {
        (std::fs::read_dir(&bases).map(|d| d.count()).unwrap_or(0) == 0).then_some(())
    });
}
