//! Hostile and broken images are refused with their reasons, and leave no disk behind.

use std::time::Duration;

use oxivirt_e2e::{wait_until, Server};

use crate::common::{condition, data_volume, have, sh, test_guest, volume_dir, FileServer, Serve};

#[test]
fn backing_files_oversized_truncated_and_bomb_images_are_refused_with_their_reasons() {
    if !have(&["qemu-img", "gzip"]) {
        return;
    }
    let Some(guest) = test_guest() else { return };
    let server = Server::start();
    let www = server.scratch().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let w = www.display();
    sh(&format!(
        "qemu-img create -q -f qcow2 -b /etc/passwd -F raw {w}/backing.qcow2 && \
         qemu-img create -q -f qcow2 -o data_file={w}/external.raw,data_file_raw=on {w}/datafile.qcow2 64M && \
         qemu-img create -q -f qcow2 {w}/big.qcow2 10G && \
         head -c 9000000 {} > {w}/truncated.qcow2 && \
         head -c 1073741824 /dev/zero | gzip -1 > {w}/bomb.raw.gz",
        guest.join("disk.qcow2").display()
    ));
    let http = FileServer::start(&www, Serve::default());
    let kubectl = server.kubectl();
    let cases = [
        ("backing", "backing.qcow2", "is invalid because it has backing file /etc/passwd"),
        ("datafile", "datafile.qcow2", "is invalid because it has an external data file"),
        ("big", "big.qcow2", "virtual image size 10737418240 is larger than the reported available storage 209715200. A larger PVC is required"),
        ("truncated", "truncated.qcow2", "image is corrupt or truncated"),
        ("bomb", "bomb.raw.gz", "A larger PVC is required"),
    ];
    for (name, file, _) in &cases {
        kubectl.apply(&data_volume(
            name,
            &format!(r#"{{"http": {{"url": "{}"}}}}"#, http.url(file)),
            "200Mi",
        ));
    }
    for (name, _, text) in &cases {
        wait_until(&format!("{name} refused"), Duration::from_secs(240), || {
            let (status, reason, message) = condition(&kubectl, name, "Running");
            (status == "False" && reason == "Error" && message.contains(text)).then_some(())
        });
        assert_ne!(
            kubectl.jsonpath(&["dv", name], "{.status.phase}"),
            "Succeeded"
        );
        let dir = volume_dir(&server, name);
        assert!(
            !dir.join("disk.img").exists(),
            "{name}: the volume stays unused"
        );
        assert!(
            !dir.join("disk.img.tmp").exists(),
            "{name}: no partial image is left"
        );
    }
}
