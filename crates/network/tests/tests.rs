//! Component tests of oxivirt-network against the real kernel (`ip`, `nft`, network
//! namespaces), without QEMU: a node network, a Pod attached with each binding, and what
//! detaching and shutting down leave behind (nothing); host-wide IPv6 forwarding in scratch
//! namespaces ([`ipv6_forwarding`]). Skipped, saying why, without root.

mod ipv6_forwarding;

use std::collections::BTreeMap;
use std::process::Command;

use oxivirt_network::{pod, NetworkConfig, NodeNetwork};
use serde_json::json;

fn sh(script: &str) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn vmi(binding: &str) -> serde_json::Value {
    json!({"metadata": {"name": "vm1", "namespace": "ns1", "uid": "4b1d0c0e-0000-4000-8000-000000000001"},
           "spec": {"domain": {"devices": {"interfaces": [{"name": "default", binding: {}, "ports": [{"port": 80}]}]}},
                    "networks": [{"name": "default", "pod": {}}]}})
}

/// Removes the node's host objects even when the test fails half-way.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let id = &self.0;
        sh(&format!(
            "for n in $(ip netns list | awk '{{print $1}}' | grep '^oxi-{id}-'); do ip netns del $n; done; \
             nft delete table ip oxi-{id} 2>/dev/null; ip link del oxb{id} 2>/dev/null; true"
        ));
    }
}

#[tokio::test]
async fn a_pod_is_plumbed_for_each_binding_and_leaves_nothing_behind() {
    if let Some(reason) = oxivirt_network::exec::unavailable_reason().await {
        eprintln!("skipped: {reason}");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let node = NodeNetwork::start(&NetworkConfig::default(), data.path(), &[])
        .await
        .unwrap();
    let _cleanup = Cleanup(node.id.clone());
    let (up, text) = sh(&format!("ip -br addr show {}", node.bridge));
    assert!(
        up && text.contains(&format!("{}/24", node.gateway)),
        "{text}"
    );

    let uid = "pod-uid-masq";
    let a = pod::attach(&node, uid, &vmi("masquerade"), &BTreeMap::new(), None)
        .await
        .unwrap();
    assert!(node.pod_cidr.contains(a.pod_ip));
    let ns = &a.netns;
    let (_, addrs) = sh(&format!("ip netns exec {ns} ip -br addr"));
    assert!(addrs.contains(&format!("{}/24", a.pod_ip)), "{addrs}");
    assert!(addrs.contains("10.0.2.1/24"), "{addrs}");
    let (_, links) = sh(&format!("ip netns exec {ns} ip -br link"));
    assert!(links.contains("tap0"), "{links}");
    let (_, rules) = sh(&format!(
        "ip netns exec {ns} nft list table ip oxivirt-masquerade"
    ));
    assert!(rules.contains("tcp dport 80 dnat to 10.0.2.2"), "{rules}");
    // Port 22 is not in `ports`: the Pod's own stack refuses it, which proves the host
    // reaches the pod IP (a missing route would time out instead).
    let refused = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from((a.pod_ip, 22)),
        std::time::Duration::from_secs(2),
    );
    assert_eq!(
        refused.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "the host cannot reach the pod IP"
    );
    // Attaching again (an agent restart) finds the same attachment.
    let again = pod::attach(&node, uid, &vmi("masquerade"), &BTreeMap::new(), None)
        .await
        .unwrap();
    assert_eq!(again, a);
    assert_eq!(
        a.plan.interfaces[0]
            .dhcp
            .as_ref()
            .unwrap()
            .address
            .to_string(),
        "10.0.2.2"
    );

    // An unprivileged QEMU's taps are its user's, so it can attach without CAP_NET_ADMIN.
    let b = pod::attach(
        &node,
        "pod-uid-bridge",
        &vmi("bridge"),
        &BTreeMap::new(),
        Some((107, 107)),
    )
    .await
    .unwrap();
    let (_, tap) = sh(&format!(
        "ip netns exec {} ip -details link show tap0",
        b.netns
    ));
    assert!(tap.contains("user 107 group "), "{tap}");
    assert_ne!(b.pod_ip, a.pod_ip);
    let lease = b.plan.interfaces[0].dhcp.clone().unwrap();
    assert_eq!(
        (lease.address, lease.gateway),
        (b.pod_ip, Some(node.gateway))
    );
    let (_, addrs) = sh(&format!("ip netns exec {} ip -br addr show eth0", b.netns));
    assert!(
        !addrs.contains(&b.pod_ip.to_string()),
        "the bridge binding left the pod IP on eth0: {addrs}"
    );

    pod::detach(&node, uid).await;
    pod::detach(&node, "pod-uid-bridge").await;
    let (_, netns) = sh("ip netns list");
    assert!(
        !netns.contains(ns.as_str()) && !netns.contains(&b.netns),
        "{netns}"
    );
    assert!(
        !sh(&format!("ip link show {}", a.host_veth)).0,
        "the host veth is left"
    );
    node.shutdown().await;
    assert!(
        !sh(&format!("ip link show {}", node.bridge)).0,
        "the node bridge is left"
    );
    assert!(
        !sh(&format!("nft list table ip {}", node.nat_table_name())).0,
        "the node table is left"
    );
}
