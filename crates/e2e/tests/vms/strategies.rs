//! Run strategies against what really happens to a guest (issue 4 item 8): a guest that
//! powers itself off, and a QEMU killed with SIGKILL.

use std::time::Duration;

use oxivirt_e2e::{qemu_pids, wait_until, Kubectl, Server};

use crate::common::{get, virtctl, vm, wait_vm_status, wait_vmi_running, BOOT};

/// User data whose `runcmd` powers the guest off as soon as it has booted.
const POWEROFF: &str = "#cloud-config\nruncmd:\n  - poweroff\n";

fn vmi_uid(k: &Kubectl, name: &str) -> Option<String> {
    get(k, "vmi", name)?["metadata"]["uid"]
        .as_str()
        .map(str::to_string)
}

fn vmi_phase(k: &Kubectl, name: &str) -> Option<String> {
    get(k, "vmi", name)?["status"]["phase"]
        .as_str()
        .map(str::to_string)
}

fn kill_qemu(server: &Server, name: &str) {
    let pids = wait_until(&format!("the QEMU of {name}"), BOOT, || {
        let pids = qemu_pids(&server.data_dir(), "default", name);
        (!pids.is_empty()).then_some(pids)
    });
    for pid in pids {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("kill -KILL {pid}"))
            .status()
            .expect("sh");
        assert!(status.success(), "kill -9 {pid}");
    }
}

#[test]
fn a_guest_poweroff_ends_rerun_on_failure_and_restarts_always() {
    let server = Server::start();
    let k = server.kubectl();
    k.create(&vm("rerun", "RerunOnFailure", Some(POWEROFF)));
    k.create(&vm("always", "Always", Some(POWEROFF)));

    // RerunOnFailure: a clean guest shutdown is success; the VM stops and stays stopped
    // (a failure would have brought a new VMI instead). The succeeded VMI is removed at once,
    // so its end is read from its Events.
    let rerun = wait_until("a VMI for rerun", BOOT, || vmi_uid(&k, "rerun"));
    wait_until("VM rerun to stop after its guest powered off", BOOT, || {
        let stopped = get(&k, "vm", "rerun")?["status"]["printableStatus"] == "Stopped";
        let same = vmi_uid(&k, "rerun").is_none_or(|uid| uid == rerun);
        (stopped && same).then_some(())
    });
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=VirtualMachineInstance,involvedObject.name=rerun",
        "-o",
        "jsonpath={range .items[*]}{.type} {.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        !events.contains("Warning"),
        "a guest shutdown is no failure:\n{events}"
    );

    // Always: the same shutdown brings a new VMI.
    let first = wait_until("a first VMI for always", BOOT, || vmi_uid(&k, "always"));
    wait_until(
        "a new VMI for always after its guest powered off",
        BOOT,
        || {
            let uid = vmi_uid(&k, "always")?;
            (uid != first).then_some(())
        },
    );
    virtctl(&server, &["stop", "always"]).ok();
    wait_vm_status(&k, "always", "Stopped");

    // Still stopped: RerunOnFailure did not bring its VM back in the meantime (its
    // succeeded VMI is cleaned up, as upstream's controller stops it).
    std::thread::sleep(Duration::from_secs(2));
    let phase = vmi_phase(&k, "rerun");
    assert!(
        matches!(phase.as_deref(), None | Some("Succeeded")),
        "{phase:?}"
    );
    assert_eq!(
        get(&k, "vm", "rerun").expect("vm")["status"]["printableStatus"],
        "Stopped"
    );
}

#[test]
fn killing_qemu_restarts_always_and_rerun_on_failure_but_not_manual() {
    let server = Server::start();
    let k = server.kubectl();
    for (name, strategy) in [
        ("always", "Always"),
        ("rerun", "RerunOnFailure"),
        ("manual", "Manual"),
    ] {
        k.create(&vm(name, strategy, None));
    }
    virtctl(&server, &["start", "manual"]).ok();
    let mut before = Vec::new();
    for name in ["always", "rerun", "manual"] {
        before.push(wait_vmi_running(&k, name));
    }
    for name in ["always", "rerun", "manual"] {
        kill_qemu(&server, name);
    }
    // The crash is a failure: the VMI fails and the two restarting strategies start anew.
    for (name, old) in [("always", &before[0]), ("rerun", &before[1])] {
        wait_until(
            &format!("{name} to be restarted after its QEMU was killed"),
            BOOT,
            || {
                let uid = wait_vmi_running(&k, name);
                (&uid != old).then_some(())
            },
        );
    }
    wait_until("manual's VMI to fail", BOOT, || {
        (vmi_phase(&k, "manual")? == "Failed").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        vmi_uid(&k, "manual").as_deref(),
        Some(before[2].as_str()),
        "Manual is not restarted"
    );
    assert_eq!(vmi_phase(&k, "manual").as_deref(), Some("Failed"));
    // The user is told why in an Event on the VMI.
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=VirtualMachineInstance,involvedObject.name=manual",
        "-o",
        "jsonpath={range .items[*]}{.type} {.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(events.lines().any(|l| l.starts_with("Warning")), "{events}");
}
