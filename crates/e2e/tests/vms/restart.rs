//! Restarting the server (API, controllers and the local node agent) leaves running guests
//! untouched, and the restarted agent takes them over (issue 4 items 3 and 8).

use oxivirt_e2e::{qemu_pids, wait_until, Server};

use crate::common::{
    console_log, get, virtctl, vm, wait_banner, wait_vm_status, wait_vmi_running, BOOT,
};

#[test]
fn running_guests_survive_a_server_restart_and_are_managed_afterwards() {
    let mut server = Server::start();
    let k = server.kubectl();
    k.create(&vm("steady", "Always", None));
    let uid = wait_vmi_running(&k, "steady");
    wait_banner(&k, "steady");
    let pids = qemu_pids(&server.data_dir(), "default", "steady");
    assert_eq!(pids.len(), 1, "{pids:?}");

    server.stop();
    assert_eq!(
        qemu_pids(&server.data_dir(), "default", "steady"),
        pids,
        "QEMU runs on without its managers"
    );
    server.restart();
    let k = server.kubectl();

    assert_eq!(wait_vmi_running(&k, "steady"), uid, "the same VMI");
    assert_eq!(
        qemu_pids(&server.data_dir(), "default", "steady"),
        pids,
        "the same QEMU"
    );
    assert_eq!(
        console_log(&k, "steady")
            .matches("OXIVIRT-TEST-GUEST READY")
            .count(),
        1,
        "no reboot"
    );
    // The re-adopted guest obeys: pause through the new agent endpoint, then stop.
    virtctl(&server, &["pause", "vm", "steady"]).ok();
    wait_vm_status(&k, "steady", "Paused");
    virtctl(&server, &["unpause", "vm", "steady"]).ok();
    virtctl(&server, &["stop", "steady"]).ok();
    wait_vm_status(&k, "steady", "Stopped");
    wait_until("QEMU to be gone after stop", BOOT, || {
        qemu_pids(&server.data_dir(), "default", "steady")
            .is_empty()
            .then_some(())
    });
    // The VM shows Stopped once its VMI has finished; the VMI object goes right after.
    wait_until("the stopped VMI to be deleted", BOOT, || {
        get(&k, "vmi", "steady").is_none().then_some(())
    });
}
