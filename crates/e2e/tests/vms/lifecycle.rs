//! One VM through its whole life with `kubectl` and `virtctl` (issue 4 items 1, 4, 6, 8):
//! boot to the banner on the serial console, pause and unpause, stop, start, restart and
//! deletion, checking the QEMU process and the run directory along the way.

use std::path::Path;
use std::time::Duration;

use oxivirt_e2e::{qemu_pids, wait_until, Kubectl, Server};

use crate::common::{
    console_log, get, launcher_pod, virtctl, vm, wait_banner, wait_vm_status, wait_vmi_running,
    BOOT,
};

fn one_qemu(server: &Server, name: &str) -> u32 {
    wait_until(&format!("one QEMU for {name}"), BOOT, || {
        match qemu_pids(&server.data_dir(), "default", name).as_slice() {
            [pid] => Some(*pid),
            _ => None,
        }
    })
}

fn no_qemu(server: &Server, name: &str) {
    wait_until(&format!("the QEMU of {name} to be gone"), BOOT, || {
        qemu_pids(&server.data_dir(), "default", name)
            .is_empty()
            .then_some(())
    });
}

fn run_dirs(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("pods"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn condition(k: &Kubectl, name: &str, kind: &str) -> Option<serde_json::Value> {
    get(k, "vmi", name)?["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
}

#[test]
fn a_vm_boots_pauses_stops_starts_restarts_and_is_deleted_without_leftovers() {
    let server = Server::start();
    let k = server.kubectl();
    k.create(&vm("life", "Always", None));

    // Boot: Running, the banner on the serial console log, one QEMU named as upstream's.
    wait_vm_status(&k, "life", "Running");
    let first = wait_vmi_running(&k, "life");
    wait_banner(&k, "life");
    let pid = one_qemu(&server, "life");
    // QEMU is unprivileged: upstream's qemu user (107), as the agent decides on a host that
    // lets it (the harness opens the test directory for traversal).
    if oxivirt_e2e::unprivileged_qemu() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(
            uids.split_whitespace().skip(1).collect::<Vec<_>>(),
            ["107"; 4],
            "{uids}"
        );
    }
    let pod = launcher_pod(&k, "life");
    let compute = k.ok(&["logs", &pod, "-c", "compute"]);
    assert!(compute.contains("vm running"), "{compute}");
    let emulation = condition(&k, "life", "SoftwareEmulation").expect("TCG is reported");
    assert_eq!(emulation["status"], "True", "{emulation}");

    // Pause keeps the guest (same QEMU, same boot); a second pause is refused.
    let out = virtctl(&server, &["pause", "vm", "life"]).ok();
    assert_eq!(out.trim(), "VMI life was scheduled to pause");
    wait_vm_status(&k, "life", "Paused");
    let paused = condition(&k, "life", "Paused").expect("a Paused condition");
    assert_eq!(paused["reason"], "PausedByUser", "{paused}");
    let again = virtctl(&server, &["pause", "vmi", "life"]).fails();
    assert!(again.contains("VMI is already paused"), "{again}");
    virtctl(&server, &["unpause", "vm", "life"]).ok();
    wait_vm_status(&k, "life", "Running");
    // The guest agent answering after the pause shows the guest went on where it stopped.
    let info = wait_until("the guest agent to answer after unpause", BOOT, || {
        let run = virtctl(&server, &["guestosinfo", "life"]);
        run.status.success().then_some(run.stdout)
    });
    assert!(info.contains("\"id\": \"oxivirt-test-guest\""), "{info}");
    assert_eq!(qemu_pids(&server.data_dir(), "default", "life"), vec![pid]);
    assert_eq!(
        console_log(&k, "life")
            .matches("OXIVIRT-TEST-GUEST READY")
            .count(),
        1
    );
    let not_paused = virtctl(&server, &["unpause", "vm", "life"]).fails();
    assert!(not_paused.contains("VMI is not paused"), "{not_paused}");

    // Stop: the VMI and QEMU go away, the VM says Stopped.
    virtctl(&server, &["stop", "life"]).ok();
    wait_vm_status(&k, "life", "Stopped");
    wait_until("the VMI to be deleted", BOOT, || {
        get(&k, "vmi", "life").is_none().then_some(())
    });
    no_qemu(&server, "life");
    let pause_stopped = virtctl(&server, &["pause", "vm", "life"]).fails();
    assert!(pause_stopped.contains("not found"), "{pause_stopped}");

    // Start and restart: a new VMI each time, each with its own QEMU.
    virtctl(&server, &["start", "life"]).ok();
    let second = wait_vmi_running(&k, "life");
    assert_ne!(second, first);
    let second_pid = one_qemu(&server, "life");
    virtctl(&server, &["restart", "life"]).ok();
    let third = wait_until("a new VMI after restart", BOOT, || {
        let uid = wait_vmi_running(&k, "life");
        (uid != second).then_some(uid)
    });
    assert_ne!(third, first);
    wait_until("the old QEMU to be replaced", BOOT, || {
        let pids = qemu_pids(&server.data_dir(), "default", "life");
        (pids.len() == 1 && pids[0] != second_pid).then_some(())
    });

    // Deletion removes VMI, Pod, QEMU and the run directory.
    k.ok(&["delete", "vm", "life", "--wait=true", "--timeout=120s"]);
    wait_until("VMI and Pod to be gone", BOOT, || {
        let pods = k.ok(&["get", "pods", "-o", "name"]);
        (get(&k, "vmi", "life").is_none() && pods.trim().is_empty()).then_some(())
    });
    no_qemu(&server, "life");
    wait_until(
        "the run directory to be removed",
        Duration::from_secs(30),
        || (run_dirs(&server.data_dir()) == 0).then_some(()),
    );
}
