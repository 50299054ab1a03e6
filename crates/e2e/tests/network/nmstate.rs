//! NodeNetworkConfigurationPolicy on the node (the manual's §8.5.1 bridge with a port, STP
//! off, IPv4 off), its status, and the NodeNetworkState.

use std::process::Command;
use std::time::Duration;

use oxivirt_e2e::wait_until;
use serde_json::json;

use crate::support::NetServer;

/// A veth pair standing in for the node's `eth1`, and the bridge the policy makes.
struct Links(Vec<String>);

impl Drop for Links {
    fn drop(&mut self) {
        for link in &self.0 {
            let _ = Command::new("ip").args(["link", "del", link]).status();
        }
    }
}

fn condition(
    k: &oxivirt_e2e::Kubectl,
    policy: &str,
    kind: &str,
) -> Option<(String, String, String)> {
    let v = k.json(&["get", "nncp", policy]);
    let c = v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)?
        .clone();
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    ))
}

#[test]
fn a_bridge_policy_is_applied_on_the_node_and_reported() {
    crate::skip_unless_possible!();
    // This binary's servers may change host links: the test uses only `oxt…` names.
    std::env::set_var("OXIVIRT_NMSTATE", "enact");
    let tag = format!("{:04x}", std::process::id() & 0xffff);
    let (port, peer, bridge) = (
        format!("oxtn{tag}a"),
        format!("oxtn{tag}b"),
        format!("oxtn{tag}br"),
    );
    let _links = Links(vec![port.clone(), bridge.clone()]);
    let ok = Command::new("ip")
        .args(["link", "add", &port, "type", "veth", "peer", "name", &peer])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cannot create the test veth");
    let server = NetServer::start();
    let k = server.kubectl();
    let policy = json!({"apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
        "metadata": {"name": "br1-eth1-policy"},
        "spec": {"desiredState": {"interfaces": [{
            "name": bridge, "description": "Linux bridge with eth1 as a port", "type": "linux-bridge",
            "state": "up", "ipv4": {"enabled": false},
            "bridge": {"options": {"stp": {"enabled": false}}, "port": [{"name": port}]}}]}}});
    k.create(&policy.to_string());
    let (status, reason, _) = wait_until(
        "the policy to be Available",
        Duration::from_secs(30),
        || condition(&k, "br1-eth1-policy", "Available").filter(|c| c.0 == "True"),
    );
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "SuccessfullyConfigured")
    );
    let link = Command::new("ip")
        .args(["-d", "link", "show", &port])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains(&format!("master {bridge}")), "{link}");
    let stp = std::fs::read_to_string(format!("/sys/class/net/{bridge}/bridge/stp_state")).unwrap();
    assert_eq!(stp.trim(), "0");
    let state = wait_until(
        "the NodeNetworkState to show the bridge",
        Duration::from_secs(90),
        || {
            let nns = k.json(&["get", "nns", "-o", "json"]);
            let found = nns["items"][0]["status"]["currentState"]["interfaces"]
                .as_array()?
                .iter()
                .find(|i| i["name"] == bridge.as_str())
                .cloned();
            found
        },
    );
    assert_eq!(state["type"], "linux-bridge");

    // A VLAN on an interface that does not exist cannot be made: the policy says so.
    let bad = json!({"apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
        "metadata": {"name": "vlan-policy"},
        "spec": {"desiredState": {"interfaces": [{"name": format!("oxtn{tag}.9"), "type": "vlan", "state": "up",
            "vlan": {"base-iface": format!("oxtn{tag}missing"), "id": 9}}]}}});
    k.create(&bad.to_string());
    let (status, reason, message) = wait_until(
        "the VLAN policy to be Degraded",
        Duration::from_secs(30),
        || condition(&k, "vlan-policy", "Degraded").filter(|c| c.0 == "True"),
    );
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "FailedToConfigure")
    );
    assert!(message.contains("vlan"), "{message}");
}
