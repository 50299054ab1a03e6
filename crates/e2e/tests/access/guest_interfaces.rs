//! The guest agent's view of the network in the VMI status (issue 7 item 6): the pod
//! network's entry gains the guest's interface name and `guest-agent` as a source, and a
//! supported agent raises no `AgentVersionNotSupported`.

use oxivirt_e2e::wait_until;
use serde_json::Value;

use crate::common::{get, shared_guest, vm, wait_vmi_running, BOOT};

#[test]
fn vmi_status_lists_the_guest_reported_interface_of_the_pod_network() {
    let server = shared_guest();
    let k = server.kubectl();
    k.apply(&vm("ifaces", None, true));
    wait_vmi_running(&k, "ifaces");
    let entry = wait_until(
        "the guest agent's interface in the VMI status",
        BOOT,
        || {
            let vmi = get(&k, "vmi", "ifaces")?;
            let entry = vmi["status"]["interfaces"].as_array()?.first()?.clone();
            entry["interfaceName"].is_string().then_some((vmi, entry))
        },
    );
    let (vmi, entry) = entry;
    assert_eq!(entry["name"], "default", "{entry}");
    assert_eq!(entry["interfaceName"], "eth0", "{entry}");
    assert_eq!(entry["infoSource"], "domain, guest-agent", "{entry}");
    // Masquerade: the address users reach the VM by is the Pod's, as upstream reports it.
    let pod_ip = k.jsonpath(
        &["pods", "-l", "vm.kubevirt.io/name=ifaces"],
        "{.items[0].status.podIP}",
    );
    assert_eq!(entry["ipAddress"], Value::from(pod_ip.trim()), "{entry}");
    let conditions = vmi["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "AgentConnected" && c["status"] == "True"),
        "{conditions:?}"
    );
    assert!(
        !conditions
            .iter()
            .any(|c| c["type"] == "AgentVersionNotSupported"),
        "the test guest's qemu-guest-agent has every command upstream requires: {conditions:?}"
    );
    k.ok(&["delete", "vm", "ifaces", "--wait=false"]);
}
