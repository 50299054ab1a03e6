//! Linux-bridge secondary networks (the manual's §8.5): VLAN isolation between VMs on
//! VLAN-tagged NADs, the MAC spoof check, and the NAD-in-the-VM's-namespace rule.

use std::process::Command;
use std::time::Duration;

use oxivirt_e2e::wait_until;
use serde_json::{json, Value};

use crate::support::{self, NetServer};

/// A host bridge for one test, deleted when the test ends.
pub(crate) struct HostBridge(pub(crate) String);

impl HostBridge {
    pub(crate) fn new() -> Self {
        let name = format!("oxt{:06x}", std::process::id() ^ (rand_seed() & 0xff_ffff));
        HostBridge(name)
    }
}

fn rand_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

impl Drop for HostBridge {
    fn drop(&mut self) {
        // The bridge and the per-VLAN bridges made for it (aliased `<bridge>.vlan<id>`).
        let script = format!(
            "for d in $(ip -o link show | grep 'alias {b}.vlan' | awk '{{print $2}}' | tr -d :); do ip link del $d; done; ip link del {b} 2>/dev/null; true",
            b = self.0
        );
        let _ = Command::new("sh").args(["-c", &script]).status();
    }
}

pub(crate) fn nad(name: &str, bridge: &str, vlan: u16, spoof: bool) -> Value {
    let config = json!({"cniVersion": "0.3.1", "name": name, "type": "cnv-bridge", "bridge": bridge,
                        "macspoofchk": spoof, "vlan": vlan, "preserveDefaultVlan": false});
    json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": name}, "spec": {"config": config.to_string()}})
}

/// A VM on the pod network (for ssh) and on `nad` with `address` on eth1.
pub(crate) fn vm_on(name: &str, nad: &str, address: &str) -> Value {
    let network_data = format!(
        "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n  eth1:\n    addresses: [{address}/24]\n"
    );
    let mut vm = support::vm(
        name,
        json!({"app": name}),
        &[],
        json!({
            "domain": {
                "devices": {
                    "disks": [{"name": "root", "disk": {"bus": "virtio"}}, {"name": "cloudinit", "disk": {"bus": "virtio"}}],
                    "interfaces": [{"name": "default", "masquerade": {}}, {"name": "sec", "bridge": {}}]
                },
                "resources": {"requests": {"memory": "256Mi"}}
            },
            "networks": [{"name": "default", "pod": {}}, {"name": "sec", "multus": {"networkName": nad}}]
        }),
    );
    vm["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"]["networkData"] =
        json!(network_data);
    vm
}

pub(crate) fn guest_ssh(ip: &str, command: &str) -> (bool, String) {
    let out = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
        ])
        .arg("-i")
        .arg(support::ssh_key_path())
        .arg(format!("root@{ip}"))
        .arg(command)
        .output()
        .expect("cannot run ssh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn pod_ip(k: &oxivirt_e2e::Kubectl, pod: &str) -> String {
    k.ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"])
}

#[test]
fn vms_on_one_vlan_reach_each_other_another_vlan_and_spoofed_macs_do_not() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let bridge = HostBridge::new();
    k.create(&nad("vlan100", &bridge.0, 100, true).to_string());
    k.create(&nad("vlan200", &bridge.0, 200, true).to_string());
    k.create(&vm_on("vlan-a", "vlan100", "192.168.77.1").to_string());
    k.create(&vm_on("vlan-b", "vlan100", "192.168.77.2").to_string());
    k.create(&vm_on("vlan-c", "vlan200", "192.168.77.3").to_string());
    let a = support::wait_guest_ready(&k, "vlan-a");
    support::wait_guest_ready(&k, "vlan-b");
    support::wait_guest_ready(&k, "vlan-c");
    let a_ip = pod_ip(&k, &a);

    let interfaces = k.json(&["get", "vmi", "vlan-a"])["status"]["interfaces"].clone();
    let sec = interfaces
        .as_array()
        .and_then(|l| l.iter().find(|i| i["name"] == "sec").cloned())
        .unwrap_or_else(|| panic!("no secondary interface in {interfaces}"));
    // The guest agent adds its own source once it has reported (issue 7's merge).
    let sources: Vec<&str> = sec["infoSource"]
        .as_str()
        .unwrap_or_default()
        .split(", ")
        .collect();
    assert!(
        sources.contains(&"domain") && sources.contains(&"multus-status"),
        "{sec}"
    );

    let (same_vlan, out) = wait_until(
        "vlan-a to reach vlan-b on VLAN 100",
        Duration::from_secs(60),
        || {
            let r = guest_ssh(&a_ip, "ping -c 2 -W 2 192.168.77.2");
            r.0.then_some(r)
        },
    );
    assert!(same_vlan, "{out}");
    let (other_vlan, out) = guest_ssh(&a_ip, "ping -c 3 -W 2 192.168.77.3");
    assert!(!other_vlan, "vlan-a reached vlan-c on another VLAN:\n{out}");

    // macspoofchk: with another source MAC, vlan-a's frames no longer get through.
    let (spoofed, out) = guest_ssh(
        &a_ip,
        "ip link set eth1 down && ip link set eth1 address 02:11:22:33:44:55 && ip link set eth1 up && ping -c 3 -W 2 192.168.77.2",
    );
    assert!(!spoofed, "a spoofed MAC got through:\n{out}");
}

#[test]
fn a_nad_missing_from_the_vms_namespace_fails_the_launcher_pod_with_a_clear_message() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    k.create(&vm_on("lost", "nowhere", "192.168.78.1").to_string());
    // The failed Pod is replaced by the VM controller at once, so its Warning Event (which
    // outlives it) carries the message.
    let message = wait_until("the launcher Pod to fail", Duration::from_secs(60), || {
        let events = k.json(&[
            "get",
            "events",
            "--field-selector",
            "reason=FailedCreatePodSandBox",
        ]);
        events["items"].as_array()?.iter().find_map(|e| {
            let name = e["involvedObject"]["name"].as_str().unwrap_or_default();
            (name.starts_with("virt-launcher-lost-") && e["type"] == "Warning")
                .then(|| e["message"].as_str().unwrap_or_default().to_string())
        })
    });
    assert!(
        message.contains("NetworkAttachmentDefinition default/nowhere not found")
            && message.contains("VM's namespace"),
        "{message}"
    );
}
