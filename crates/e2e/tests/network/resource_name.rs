//! The NAD annotation `k8s.v1.cni.cncf.io/resourceName: bridge.network.kubevirt.io/<bridge>`
//! (manual §8.5.2): only nodes with that bridge are eligible. A VM on such a NAD waits,
//! unschedulable with the reason, while no node has the bridge, and starts once one does.

use std::process::Command;
use std::time::Duration;

use oxivirt_e2e::wait_until;
use serde_json::{json, Value};

use crate::secondary::{vm_on, HostBridge};
use crate::support::{self, NetServer};

fn get(k: &oxivirt_e2e::Kubectl, kind: &str, name: &str) -> Option<Value> {
    let run = k.run(&["get", kind, name, "-o", "json"]);
    run.status
        .success()
        .then(|| serde_json::from_str(&run.stdout).ok())?
}

#[test]
fn a_vm_on_a_nad_whose_bridge_no_node_has_waits_unschedulable_until_a_node_has_it() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let bridge = HostBridge::new();
    let resource = format!("bridge.network.kubevirt.io/{}", bridge.0);
    let config = json!({"cniVersion": "0.3.1", "name": "marked", "type": "cnv-bridge",
                        "bridge": bridge.0});
    k.create(
        &json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": "marked",
                             "annotations": {"k8s.v1.cni.cncf.io/resourceName": resource}},
                "spec": {"config": config.to_string()}})
        .to_string(),
    );
    k.create(&vm_on("marked-vm", "marked", "192.168.77.1").to_string());
    let unschedulable = std::panic::catch_unwind(|| {
        wait_until(
            "VM marked-vm to be ErrorUnschedulable",
            Duration::from_secs(60),
            || {
                (get(&k, "vm", "marked-vm")?["status"]["printableStatus"] == "ErrorUnschedulable")
                    .then_some(())
            },
        )
    });
    if unschedulable.is_err() {
        panic!(
            "VM marked-vm is not ErrorUnschedulable:\n{}\n{}\n{}",
            k.run(&["get", "vm,vmi", "-o", "yaml"]).stdout,
            k.run(&["get", "pods", "-o", "yaml"]).stdout,
            k.run(&["get", "events"]).stdout
        );
    }
    let vmi = get(&k, "vmi", "marked-vm").expect("the VMI exists");
    let condition = vmi["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled").cloned())
        .expect("a PodScheduled condition");
    assert_eq!(condition["reason"], "Unschedulable", "{condition}");
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("Insufficient {resource}")),
        "{message}"
    );
    let pod = k.json(&["get", "pods", "-l", "vm.kubevirt.io/name=marked-vm"]);
    let compute = pod["items"][0]["spec"]["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "compute").cloned())
        .expect("a compute container");
    assert_eq!(
        compute["resources"]["requests"][&resource], "1",
        "{compute}"
    );
    assert_eq!(compute["resources"]["limits"][&resource], "1", "{compute}");

    // The node gets the bridge (as an NNCP would make it): it is advertised, the VM starts.
    let made = Command::new("sh")
        .args([
            "-c",
            &format!(
                "ip link add {0} type bridge && ip link set {0} up",
                bridge.0
            ),
        ])
        .status()
        .unwrap();
    assert!(made.success(), "cannot create bridge {}", bridge.0);
    let node = k.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let started = std::time::Instant::now();
    wait_until(
        "the node to advertise the bridge",
        Duration::from_secs(30),
        || {
            let node = get(&k, "node", &node)?;
            (node["status"]["allocatable"][&resource] == "1k").then_some(())
        },
    );
    eprintln!(
        "bridge advertised {:?} after it was made",
        started.elapsed()
    );
    support::wait_guest_ready(&k, "marked-vm");
    wait_until("VMI marked-vm Running", Duration::from_secs(30), || {
        (get(&k, "vmi", "marked-vm")?["status"]["phase"] == "Running").then_some(())
    });
    // Removing the bridge withdraws the resource.
    let _ = Command::new("ip").args(["link", "del", &bridge.0]).status();
    wait_until(
        "the node to withdraw the bridge",
        Duration::from_secs(30),
        || {
            let node = get(&k, "node", &node)?;
            node["status"]["allocatable"]
                .get(&resource)
                .is_none()
                .then_some(())
        },
    );
}
