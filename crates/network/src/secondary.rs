//! Secondary networks on Linux bridges (the manual's §8.5 `cnv-bridge`, and §8.8's OVN
//! `layer2`/`localnet` topologies emulated as one bridge per network name): a veth from the
//! node bridge named in the NetworkAttachmentDefinition to `net<N>` in the Pod, joined to
//! the guest's tap through an in-Pod bridge. VLANs use the host bridge's VLAN filtering
//! (access port, `preserveDefaultVlan` keeps VLAN 1 on it too); `macspoofchk` drops frames
//! from the port whose source MAC is not the guest's (nftables, bridge family).

use serde_json::Value;

use crate::exec;
use crate::node::{stable_hash, NodeNetwork};

/// A NetworkAttachmentDefinition this node can realise.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeNetwork {
    /// The host bridge.
    pub bridge: String,
    /// Access VLAN of the port.
    pub vlan: Option<u16>,
    /// Drop frames whose source MAC is not the guest's.
    pub macspoofchk: bool,
    /// Keep the bridge's default VLAN (1) on the port as well (default true).
    pub preserve_default_vlan: bool,
    /// Link MTU.
    pub mtu: Option<u32>,
}

/// A NAD this node cannot use.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NadError {
    /// `spec.config` is not JSON.
    #[error("NetworkAttachmentDefinition {name}: spec.config is not JSON: {why}")]
    BadConfig { name: String, why: String },
    /// The CNI type has no implementation here.
    #[error("NetworkAttachmentDefinition {name}: CNI type {kind:?} is not supported (use cnv-bridge, bridge or ovn-k8s-cni-overlay)")]
    Unsupported { name: String, kind: String },
    /// IPAM in a NAD for VMs (the manual: not supported).
    #[error("NetworkAttachmentDefinition {name}: IPAM configuration is not supported for VMs")]
    Ipam { name: String },
}

/// Reads a NAD's `spec.config` (`name` is `namespace/name`, for messages).
///
/// # Errors
/// [`NadError`].
pub fn parse_nad(name: &str, config: &str) -> Result<BridgeNetwork, NadError> {
    let cfg: Value = serde_json::from_str(config).map_err(|e| NadError::BadConfig {
        name: name.into(),
        why: e.to_string(),
    })?;
    if cfg["ipam"].as_object().is_some_and(|i| !i.is_empty()) {
        return Err(NadError::Ipam { name: name.into() });
    }
    let kind = cfg["type"].as_str().unwrap_or_default();
    let bridge = match kind {
        "cnv-bridge" | "bridge" => cfg["bridge"].as_str().unwrap_or("cni0").to_string(),
        "ovn-k8s-cni-overlay" => {
            // One host bridge per network name: NADs in different namespaces naming the same
            // network share it, as OVN's logical switch does.
            let network = cfg["name"].as_str().unwrap_or(name);
            format!("oxn{:08x}", stable_hash(network) & 0xffff_ffff)
        }
        other => {
            return Err(NadError::Unsupported {
                name: name.into(),
                kind: other.into(),
            })
        }
    };
    let vlan = cfg["vlan"]
        .as_u64()
        .or_else(|| cfg["vlanID"].as_u64())
        .and_then(|v| u16::try_from(v).ok())
        .filter(|v| (1..4095).contains(v));
    Ok(BridgeNetwork {
        bridge,
        vlan,
        macspoofchk: cfg["macspoofchk"] == true,
        preserve_default_vlan: cfg["preserveDefaultVlan"].as_bool().unwrap_or(true),
        mtu: cfg["mtu"].as_u64().and_then(|m| u32::try_from(m).ok()),
    })
}

/// The host end of the veth of a Pod's secondary interface.
pub fn host_veth(pod_uid: &str, interface: &str) -> String {
    format!(
        "oxs{:08x}",
        stable_hash(&format!("{pod_uid}/{interface}")) & 0xffff_ffff
    )
}

/// The bridge-family table holding a Pod's MAC spoof checks.
pub fn spoof_table(node: &NodeNetwork, pod_uid: &str) -> String {
    format!("oxi-{}-{:08x}", node.id, stable_hash(pod_uid) & 0xffff_ffff)
}

/// The `macspoofchk` rules for the given (host port, guest MAC) pairs.
pub fn spoof_ruleset(table: &str, ports: &[(String, String)]) -> String {
    let rules: String = ports
        .iter()
        .map(|(port, mac)| format!("\t\tiifname \"{port}\" ether saddr != {mac} drop\n"))
        .collect();
    format!(
        "table bridge {table}\ndelete table bridge {table}\ntable bridge {table} {{\n\
         \tchain prerouting {{ type filter hook prerouting priority -300; policy accept;\n{rules}\t}}\n}}\n"
    )
}

async fn ensure_bridge(name: &str, mtu: u32, alias: Option<&str>) -> Result<(), exec::Error> {
    if exec::ip(None, &["link", "show", name]).await.is_err() {
        let made = exec::ip(None, &["link", "add", name, "type", "bridge"]).await;
        // Another Pod may have created it at the same moment.
        if made.is_err() && exec::ip(None, &["link", "show", name]).await.is_err() {
            made?;
        }
        exec::ip(None, &["link", "set", name, "mtu", &mtu.to_string()]).await?;
        if let Some(alias) = alias {
            exec::ip(None, &["link", "set", name, "alias", alias]).await?;
        }
    }
    exec::ip(None, &["link", "set", name, "up"]).await?;
    Ok(())
}

/// The bridge a VLAN's ports join when the kernel has no bridge VLAN filtering
/// (CONFIG_BRIDGE_VLAN_FILTERING off): one bridge per (bridge, VLAN), aliased
/// `<bridge>.vlan<id>`. Ports of one VLAN share it, other VLANs cannot reach them; the
/// isolation holds on this host only (no tagged uplink without kernel VLAN support).
pub fn vlan_bridge(bridge: &str, vlan: u16) -> String {
    format!(
        "oxq{:08x}",
        stable_hash(&format!("{bridge}.{vlan}")) & 0xffff_ffff
    )
}

/// Makes sure the host bridge exists (the bridge CNI creates a missing one), with VLAN
/// filtering when a VLAN is asked for, and returns the bridge the Pod's port joins.
///
/// # Errors
/// The failed command.
pub async fn ensure_host_bridge(net: &BridgeNetwork, mtu: u32) -> Result<String, exec::Error> {
    let mtu = net.mtu.unwrap_or(mtu);
    ensure_bridge(&net.bridge, mtu, None).await?;
    let Some(vlan) = net.vlan else {
        return Ok(net.bridge.clone());
    };
    let filtering = exec::ip(
        None,
        &[
            "link",
            "set",
            &net.bridge,
            "type",
            "bridge",
            "vlan_filtering",
            "1",
        ],
    )
    .await;
    match filtering {
        Ok(_) => Ok(net.bridge.clone()),
        Err(exec::Error::Failed { stderr, .. }) if stderr.contains("not supported") => {
            let per_vlan = vlan_bridge(&net.bridge, vlan);
            ensure_bridge(&per_vlan, mtu, Some(&format!("{}.vlan{vlan}", net.bridge))).await?;
            Ok(per_vlan)
        }
        Err(e) => Err(e),
    }
}

/// Puts `port` on `net`'s VLAN as an access port (when it joined the VLAN-filtering
/// bridge itself, not a per-VLAN one).
///
/// # Errors
/// The failed command.
pub async fn set_vlan(net: &BridgeNetwork, joined: &str, port: &str) -> Result<(), exec::Error> {
    let Some(vlan) = net.vlan.filter(|_| joined == net.bridge) else {
        return Ok(());
    };
    let vid = vlan.to_string();
    if !net.preserve_default_vlan {
        // Ignore "not found": the port may not carry VLAN 1.
        let _ = exec::run(None, "bridge", &["vlan", "del", "dev", port, "vid", "1"]).await;
    }
    // Untagged frames of the guest enter on the VLAN and leave it untagged (an access port).
    exec::run(
        None,
        "bridge",
        &["vlan", "add", "dev", port, "vid", &vid, "pvid", "untagged"],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manuals_linux_bridge_nad_is_understood() {
        let cfg = r#"{"cniVersion": "0.3.1", "name": "bridge-network", "type": "cnv-bridge",
                      "bridge": "bridge-interface", "macspoofchk": true, "vlan": 100,
                      "preserveDefaultVlan": false}"#;
        let net = parse_nad("ns/bridge-network", cfg).unwrap();
        assert_eq!(net.bridge, "bridge-interface");
        assert_eq!(net.vlan, Some(100));
        assert!(net.macspoofchk && !net.preserve_default_vlan);
        let plain = parse_nad("ns/b", r#"{"type": "bridge", "bridge": "br1"}"#).unwrap();
        assert!(plain.preserve_default_vlan && plain.vlan.is_none() && !plain.macspoofchk);
    }

    #[test]
    fn layer2_networks_of_the_same_name_share_a_bridge() {
        let a = parse_nad(
            "a/l2",
            r#"{"type": "ovn-k8s-cni-overlay", "topology": "layer2", "name": "shared"}"#,
        )
        .unwrap();
        let b = parse_nad(
            "b/l2",
            r#"{"type": "ovn-k8s-cni-overlay", "topology": "layer2", "name": "shared"}"#,
        )
        .unwrap();
        assert_eq!(a.bridge, b.bridge);
        assert!(a.bridge.len() <= 15);
    }

    #[test]
    fn ipam_and_unknown_types_are_refused_with_the_nads_name() {
        let e = parse_nad(
            "ns/x",
            r#"{"type": "bridge", "ipam": {"type": "host-local"}}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("ns/x") && e.to_string().contains("IPAM"),
            "{e}"
        );
        let e = parse_nad("ns/y", r#"{"type": "macvlan"}"#).unwrap_err();
        assert!(e.to_string().contains("macvlan"), "{e}");
        assert!(parse_nad("ns/z", "not json").is_err());
    }

    #[test]
    fn spoof_rules_pin_each_port_to_its_guest_mac() {
        let rules = spoof_ruleset("oxi-1-2", &[("oxs1".into(), "02:00:00:00:00:01".into())]);
        assert!(
            rules.contains("iifname \"oxs1\" ether saddr != 02:00:00:00:00:01 drop"),
            "{rules}"
        );
    }
}
