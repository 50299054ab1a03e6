//! Cross-node pod routes, flannel's host-gw mode: every node routes each other node's pod
//! prefixes via that node's InternalIP of the same family (nodes share an L2 segment: hosts
//! on one network, or network namespaces joined by a bridge). Dual-stack nodes publish an
//! IPv4 and an IPv6 prefix in `spec.podCIDRs` and an InternalIP of each family; each family
//! is routed on its own. Nodes on the same host (same InternalIP) need no route: their
//! bridges are both connected to it.
//!
//! Packets from other nodes' Pods, and from outside the cluster to NodePorts and
//! LoadBalancer IPs, enter through the interface holding this node's InternalIP (the uplink)
//! and are routed on to the node bridge, so the node switches forwarding on for its uplink
//! alone, per family (IPv4: `conf/<uplink>/forwarding`; IPv6: see [`crate::forwarding`]), as
//! Kubernetes asks of a node's administrator (`ip_forward=1`) but without making every other
//! interface of the host a router.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::sync::Notify;

use crate::cidr::Cidr;
use crate::exec;
use crate::node::NodeNetwork;

/// One pod prefix of a node, of either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodPrefix {
    /// An IPv4 prefix (a node's /24).
    V4(Cidr),
    /// An IPv6 prefix (a node's /64).
    V6(Ipv6Addr, u8),
}

impl PodPrefix {
    /// Parses `a.b.c.d/n` or `x:y::/n`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(cidr) = text.parse::<Cidr>() {
            return Some(PodPrefix::V4(cidr));
        }
        let (addr, len) = crate::config::parse_v6(text, 0, 128)?;
        Some(PodPrefix::V6(addr, len))
    }

    fn is_v6(self) -> bool {
        matches!(self, PodPrefix::V6(..))
    }

    /// `ip`'s family flag for this prefix.
    fn family(self) -> &'static str {
        if self.is_v6() {
            "-6"
        } else {
            "-4"
        }
    }
}

impl fmt::Display for PodPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PodPrefix::V4(cidr) => write!(f, "{cidr}"),
            PodPrefix::V6(addr, len) => write!(f, "{addr}/{len}"),
        }
    }
}

/// A node's pod prefixes: `spec.podCIDRs`, else `spec.podCIDR`.
fn pod_prefixes(node: &Node) -> Vec<PodPrefix> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    let listed = spec.pod_cidrs.as_deref().unwrap_or_default();
    let texts: Vec<&String> = if listed.is_empty() {
        spec.pod_cidr.iter().collect()
    } else {
        listed.iter().collect()
    };
    texts
        .into_iter()
        .filter_map(|t| PodPrefix::parse(t))
        .collect()
}

/// A node's InternalIP addresses.
fn internal_ips(node: &Node) -> Vec<IpAddr> {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// (pod prefix, via) for every prefix of every other node that needs a route from a host
/// whose InternalIPs are `own_ips`: each prefix via the node's InternalIP of its family.
pub fn wanted(nodes: &[Node], own_name: &str, own_ips: &[IpAddr]) -> BTreeMap<PodPrefix, IpAddr> {
    let mut out = BTreeMap::new();
    for node in nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(own_name))
    {
        let ips = internal_ips(node);
        for prefix in pod_prefixes(node) {
            let via = ips.iter().find(|ip| ip.is_ipv6() == prefix.is_v6());
            if let Some(via) = via.filter(|ip| !own_ips.contains(ip)) {
                out.insert(prefix, *via);
            }
        }
    }
    out
}

/// The gateway for a route to `node_ip`'s Pods: the node itself when it is on a connected
/// network, else the router this host reaches it through (a node in a network namespace
/// behind its host), as `ip route get` says.
async fn next_hop(node_ip: IpAddr) -> IpAddr {
    let target = node_ip.to_string();
    match exec::ip(None, &["-o", "route", "get", &target]).await {
        Ok(out) => gateway_of(&out)
            .and_then(|g| g.parse().ok())
            .unwrap_or(node_ip),
        Err(_) => node_ip,
    }
}

/// The `via` of one `ip -o route get` line, if the destination is not on-link.
fn gateway_of(route: &str) -> Option<&str> {
    let mut words = route.split_whitespace();
    words.find(|w| *w == "via")?;
    words.next()
}

/// The interface holding `address` (`ip -o addr show to ADDR`: `4: eth0    inet6 …`).
fn interface_of(addr_show: &str) -> Option<&str> {
    addr_show.split_whitespace().nth(1)
}

/// Switches forwarding on for packets entering through the interface holding `own_ip`.
async fn enable_uplink_forwarding(own_ip: IpAddr, state_dir: &Path) -> Result<String, String> {
    let (family, target) = exec::host_prefix(&own_ip);
    let out = exec::ip(None, &[family, "-o", "addr", "show", "to", &target])
        .await
        .map_err(|e| format!("finding the interface of {own_ip}: {e}"))?;
    let uplink = interface_of(&out)
        .ok_or_else(|| format!("no interface holds {own_ip}"))?
        .to_string();
    let switched = if own_ip.is_ipv6() {
        crate::forwarding::enable_for_node(&uplink, state_dir).map(drop)
    } else {
        crate::forwarding::enable_ipv4(&uplink)
    };
    switched.map_err(|e| match std::error::Error::source(&e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    })?;
    Ok(uplink)
}

/// Keeps the routes to other nodes' pod prefixes until the task is dropped. `own_ips` are
/// this node's InternalIPs (one per family).
///
/// # Errors
/// Never in practice: failures are logged and retried on the next change.
pub async fn run(
    client: kube::Client,
    node: Arc<NodeNetwork>,
    own_name: String,
    own_ips: Vec<IpAddr>,
) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let nodes = crate::services::mirror(Api::<Node>::all(client), (), changed.clone()).await;
    let own_prefixes: Vec<PodPrefix> = std::iter::once(PodPrefix::V4(node.pod_cidr))
        .chain(node.pod_prefix_v6.map(|p| PodPrefix::V6(p, 64)))
        .collect();
    for own in own_ips.iter().filter(|ip| !ip.is_loopback()) {
        match enable_uplink_forwarding(*own, &node.state_dir).await {
            Ok(uplink) => {
                tracing::info!(%uplink, address = %own, "forwarding from the uplink to the node's Pods");
            }
            Err(e) => {
                tracing::warn!(address = %own, error = %e, "cannot forward from the uplink to the node's Pods")
            }
        }
    }
    let mut installed: BTreeMap<PodPrefix, IpAddr> = BTreeMap::new();
    loop {
        let list: Vec<Node> = nodes.state().iter().map(|n| n.as_ref().clone()).collect();
        let want = wanted(&list, &own_name, &own_ips);
        for (prefix, via) in &want {
            if installed.get(prefix) == Some(via) || own_prefixes.contains(prefix) {
                continue;
            }
            let hop = next_hop(*via).await.to_string();
            let target = prefix.to_string();
            let args = [prefix.family(), "route", "replace", &target, "via", &hop];
            match exec::ip(None, &args).await {
                Ok(_) => {
                    tracing::info!(%prefix, %via, %hop, "route to another node's Pods");
                    installed.insert(*prefix, *via);
                }
                Err(e) => {
                    tracing::warn!(%prefix, %via, error = %e, "cannot route to another node's Pods")
                }
            }
        }
        let stale: Vec<PodPrefix> = installed
            .keys()
            .filter(|c| !want.contains_key(c))
            .copied()
            .collect();
        for prefix in stale {
            let target = prefix.to_string();
            let _ = exec::ip(None, &[prefix.family(), "route", "del", &target]).await;
            installed.remove(&prefix);
        }
        changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidrs: &[&str], ips: &[&str]) -> Node {
        let addresses: Vec<_> = ips
            .iter()
            .map(|ip| json!({"type": "InternalIP", "address": ip}))
            .chain([json!({"type": "Hostname", "address": name})])
            .collect();
        serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs},
            "status": {"addresses": addresses}}))
        .unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_gateway_is_the_router_only_when_the_node_is_not_on_link() {
        assert_eq!(
            gateway_of("192.0.2.2 via 10.213.5.1 dev oxh1b src 10.213.5.2 uid 0 \\    cache"),
            Some("10.213.5.1")
        );
        assert_eq!(
            gateway_of("10.213.5.2 dev oxh1a src 10.213.5.1 uid 0"),
            None
        );
        assert_eq!(
            gateway_of("fd00::2 from :: via fd00:213:5::1 dev oxh1b proto kernel src fd00:213:5::2 metric 1024 pref medium"),
            Some("fd00:213:5::1")
        );
    }

    #[test]
    fn the_uplink_is_the_interface_holding_the_address() {
        assert_eq!(
            interface_of("4: eth0    inet6 fd00::2/64 scope global nodad \\       valid_lft forever preferred_lft forever"),
            Some("eth0")
        );
        assert_eq!(interface_of(""), None);
    }

    #[test]
    fn other_hosts_get_routes_and_same_host_nodes_do_not() {
        let nodes = [
            node("a", &["10.244.1.0/24"], &["192.0.2.1"]),
            node("b", &["10.244.2.0/24"], &["192.0.2.2"]),
            node("c", &["10.244.3.0/24"], &["192.0.2.1"]),
        ];
        let want = wanted(&nodes, "a", &[ip("192.0.2.1")]);
        assert_eq!(want.len(), 1);
        assert_eq!(
            want.get(&PodPrefix::parse("10.244.2.0/24").unwrap()),
            Some(&ip("192.0.2.2"))
        );
    }

    #[test]
    fn each_family_is_routed_via_the_internal_ip_of_that_family() {
        let nodes = [
            node(
                "a",
                &["10.244.1.0/24", "fd00:10:244:1::/64"],
                &["192.0.2.1", "2001:db8::1"],
            ),
            node(
                "b",
                &["10.244.2.0/24", "fd00:10:244:2::/64"],
                &["192.0.2.2", "2001:db8::2"],
            ),
            // An IPv4-only node gets no IPv6 route, and a prefix without an InternalIP of
            // its family gets none either.
            node(
                "c",
                &["10.244.3.0/24", "fd00:10:244:3::/64"],
                &["192.0.2.3"],
            ),
        ];
        let want = wanted(&nodes, "a", &[ip("192.0.2.1"), ip("2001:db8::1")]);
        let listed: Vec<(String, String)> = want
            .iter()
            .map(|(p, via)| (p.to_string(), via.to_string()))
            .collect();
        assert_eq!(
            listed,
            [
                ("10.244.2.0/24".to_string(), "192.0.2.2".to_string()),
                ("10.244.3.0/24".to_string(), "192.0.2.3".to_string()),
                ("fd00:10:244:2::/64".to_string(), "2001:db8::2".to_string()),
            ]
        );
    }

    #[test]
    fn prefixes_of_both_families_parse_and_print_back() {
        for text in ["10.244.7.0/24", "fd00:10:244:7::/64"] {
            assert_eq!(PodPrefix::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(PodPrefix::parse("fd00::/129"), None);
        assert_eq!(PodPrefix::parse("banana"), None);
    }
}
