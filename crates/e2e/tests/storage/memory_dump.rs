//! Memory dumps (manual 3.2.2.7): the real `virtctl memory-dump get --create-claim` has
//! real QEMU write the running guest's memory as an ELF core into a new claim, tracked in
//! the VM's `status.memoryDumpRequest`; `virtctl memory-dump remove` forgets the request.

use std::io::Read;
use std::time::Duration;

use oxivirt_e2e::{wait_until, Server};

use crate::common::{have, test_guest, volume_dir};
use crate::hotplug::{text, virtctl, vm, wait_guest_booted};

const DUMP: Duration = Duration::from_secs(180);

#[test]
fn memory_dump_get_writes_the_guest_memory_into_a_new_claim_and_remove_forgets_it() {
    if !have(&["qemu-img", "qemu-system-x86_64", "docker-registry"]) {
        return;
    }
    if test_guest().is_none() {
        return;
    }
    let server = Server::start();
    let kubectl = server.kubectl();
    kubectl.apply(&vm("md-vm"));
    wait_guest_booted(&server);

    // Nothing to remove yet; a claim that does not exist is refused.
    let refused = virtctl(&server, &["memory-dump", "remove", "md-vm"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("memory dump request does not exist"),
        "{}",
        text(&refused)
    );
    let refused = virtctl(
        &server,
        &["memory-dump", "get", "md-vm", "--claim-name=nothing"],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("can't get pvc nothing"),
        "{}",
        text(&refused)
    );

    let started = std::time::Instant::now();
    let got = virtctl(
        &server,
        &[
            "memory-dump",
            "get",
            "md-vm",
            "--claim-name=md-dump",
            "--create-claim",
        ],
    );
    assert!(got.status.success(), "{}", text(&got));
    assert!(
        text(&got).contains("Successfully submitted memory dump request of VM md-vm"),
        "{}",
        text(&got)
    );
    // 128 MiB of guest memory and upstream's 100 MiB of overhead.
    assert_eq!(
        kubectl.jsonpath(&["pvc", "md-dump"], "{.spec.resources.requests.storage}"),
        "228Mi"
    );
    let request = wait_until("the dump completes", DUMP, || {
        let vm = kubectl.json(&["get", "vm", "md-vm"]);
        let request = vm["status"]["memoryDumpRequest"].clone();
        match request["phase"].as_str() {
            Some("Completed") => Some(request),
            Some("Failed") => panic!("the dump failed: {request}"),
            _ => None,
        }
    });
    eprintln!(
        "memory dump of a 128 MiB guest: {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(request["claimName"], "md-dump");
    assert!(request["startTimestamp"].is_string(), "{request}");
    assert!(request["endTimestamp"].is_string(), "{request}");
    let file = request["fileName"].as_str().expect("fileName").to_string();
    assert!(
        file.starts_with("md-vm-md-dump-") && file.ends_with(".memory.dump"),
        "{file}"
    );
    let path = volume_dir(&server, "md-dump").join(&file);
    let size = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len();
    assert!(size >= 128 << 20, "{size} bytes");
    let mut magic = [0u8; 4];
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .expect("read the dump");
    assert_eq!(&magic, b"\x7fELF", "an ELF core");

    let removed = virtctl(&server, &["memory-dump", "remove", "md-vm"]);
    assert!(removed.status.success(), "{}", text(&removed));
    assert_eq!(
        kubectl.jsonpath(&["vm", "md-vm"], "{.status.memoryDumpRequest}"),
        ""
    );
    kubectl.ok(&["delete", "vm", "md-vm", "--wait=false"]);
}
