//! NIC hot-plug (the manual's §8.9) without live migration: an interface added to a running
//! VM's spec reaches the VMI's spec, the VM says `RestartRequired`, and after `virtctl
//! restart` the guest has the NIC with its KubeMacPool MAC; `state: absent` and a restart
//! take it away, and dropping the absent interface from the spec needs no restart.

use std::process::Command;
use std::time::Duration;

use oxivirt_e2e::{virtctl_bin, wait_until, Kubectl};
use serde_json::{json, Value};

use crate::secondary::{guest_ssh, nad, HostBridge};
use crate::support::{self, NetServer};

fn virtctl(server: &NetServer, args: &[&str]) {
    let out = Command::new(virtctl_bin())
        .arg("--kubeconfig")
        .arg(server.server.kubeconfig())
        .args(args)
        .output()
        .expect("cannot run virtctl");
    assert!(
        out.status.success(),
        "virtctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn patch(k: &Kubectl, ops: Value) {
    k.ok(&[
        "patch",
        "vm",
        "hp",
        "--type",
        "json",
        "-p",
        &ops.to_string(),
    ]);
}

fn restart_required(k: &Kubectl) -> Option<Value> {
    let vm = k.json(&["get", "vm", "hp"]);
    vm["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "RestartRequired" && c["status"] == "True")
        .cloned()
}

/// Waits for the VM controller to have looked at the VM's current generation.
fn settled(k: &Kubectl) -> Value {
    wait_until("the VM status to catch up", Duration::from_secs(30), || {
        let vm = k.json(&["get", "vm", "hp"]);
        (vm["status"]["desiredGeneration"] == vm["metadata"]["generation"]).then_some(vm)
    })
}

/// `virtctl restart`, then the new launcher Pod once its guest is ready.
fn restart(server: &NetServer, k: &Kubectl, old_pod: &str) -> String {
    virtctl(server, &["restart", "hp"]);
    wait_until("the old launcher Pod to go", support::BOOT_TIMEOUT, || {
        (!k.exists(&["pod", old_pod])).then_some(())
    });
    support::wait_guest_ready(k, "hp")
}

fn guest(k: &Kubectl, pod: &str, command: &str) -> (bool, String) {
    let ip = k.ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]);
    wait_until("ssh to the guest", Duration::from_secs(60), || {
        let (ok, out) = guest_ssh(&ip, command);
        // 255: ssh itself failed (dropbear not up yet); anything else is the command's.
        (ok || !out.contains("Connection")).then_some((ok, out))
    })
}

#[test]
fn an_interface_added_to_a_running_vm_applies_at_restart_and_state_absent_removes_it() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let bridge = HostBridge::new();
    k.create(&nad("hotplug-net", &bridge.0, 0, false).to_string());
    let vm = support::vm(
        "hp",
        json!({"app": "hp"}),
        &[],
        json!({
            "domain": {
                "devices": {
                    "disks": [{"name": "root", "disk": {"bus": "virtio"}}, {"name": "cloudinit", "disk": {"bus": "virtio"}}],
                    "interfaces": [{"name": "default", "masquerade": {}}]
                },
                "resources": {"requests": {"memory": "256Mi"}}
            },
            "networks": [{"name": "default", "pod": {}}]
        }),
    );
    k.create(&vm.to_string());
    let pod = support::wait_guest_ready(&k, "hp");
    assert!(restart_required(&k).is_none());

    patch(
        &k,
        json!([
            {"op": "add", "path": "/spec/template/spec/domain/devices/interfaces/-",
             "value": {"name": "sec", "bridge": {}}},
            {"op": "add", "path": "/spec/template/spec/networks/-",
             "value": {"name": "sec", "multus": {"networkName": "hotplug-net"}}}
        ]),
    );
    let mac = k.ok(&[
        "get",
        "vm",
        "hp",
        "-o",
        "jsonpath={.spec.template.spec.domain.devices.interfaces[1].macAddress}",
    ]);
    assert!(mac.starts_with("02:"), "KubeMacPool gave no MAC: {mac:?}");
    let condition = wait_until("RestartRequired", Duration::from_secs(30), || {
        restart_required(&k)
    });
    assert_eq!(
        condition["message"],
        "a non-live-updatable field was changed in the template spec"
    );
    // The VMI's spec has the interface and its network, as upstream's VM controller puts them.
    let vmi = wait_until(
        "the VMI spec to get the interface",
        Duration::from_secs(30),
        || {
            let vmi = k.json(&["get", "vmi", "hp"]);
            let ifaces = vmi["spec"]["domain"]["devices"]["interfaces"]
                .as_array()?
                .clone();
            ifaces.iter().any(|i| i["name"] == "sec").then_some(vmi)
        },
    );
    assert!(
        vmi["spec"]["networks"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n["multus"]["networkName"] == "hotplug-net")),
        "{}",
        vmi["spec"]
    );

    let pod = restart(&server, &k, &pod);
    let (ok, out) = guest(&k, &pod, "cat /sys/class/net/eth1/address");
    // ssh's own warnings share the output: the MAC is a line of its own.
    assert!(
        ok && out.lines().any(|l| l.trim() == mac),
        "eth1 of the restarted guest, want {mac}: {out}"
    );
    settled(&k);
    assert!(
        restart_required(&k).is_none(),
        "RestartRequired after the restart"
    );

    patch(
        &k,
        json!([{"op": "add", "path": "/spec/template/spec/domain/devices/interfaces/1/state",
                "value": "absent"}]),
    );
    wait_until(
        "RestartRequired for the unplug",
        Duration::from_secs(30),
        || restart_required(&k),
    );
    wait_until(
        "the VMI interface to be absent",
        Duration::from_secs(30),
        || {
            let vmi = k.json(&["get", "vmi", "hp"]);
            (vmi["spec"]["domain"]["devices"]["interfaces"][1]["state"] == "absent").then_some(())
        },
    );
    let pod = restart(&server, &k, &pod);
    let (present, out) = guest(&k, &pod, "test -e /sys/class/net/eth1 && echo present");
    assert!(
        !present,
        "eth1 is still there after state: absent and a restart: {out}"
    );
    settled(&k);
    assert!(
        restart_required(&k).is_none(),
        "RestartRequired after the restart"
    );

    // Gone from the guest: dropping it from the spec changes nothing that runs.
    patch(
        &k,
        json!([
            {"op": "remove", "path": "/spec/template/spec/domain/devices/interfaces/1"},
            {"op": "remove", "path": "/spec/template/spec/networks/1"}
        ]),
    );
    let vm = settled(&k);
    assert!(
        restart_required(&k).is_none(),
        "dropping an absent interface asked for a restart: {}",
        vm["status"]
    );
}
