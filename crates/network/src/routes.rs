//! Cross-node pod routes, flannel's host-gw mode: every node routes each other node's pod
//! prefix via that node's InternalIP (nodes share an L2 segment: hosts on one network, or
//! network namespaces joined by a bridge). Nodes on the same host (same InternalIP) need no
//! route: their bridges are both connected to it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::sync::Notify;

use crate::cidr::Cidr;
use crate::exec;
use crate::node::NodeNetwork;

/// (pod prefix, via) for every other node that needs a route from `own_ip`.
pub fn wanted(nodes: &[Node], own_name: &str, own_ip: &str) -> BTreeMap<Cidr, String> {
    nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(own_name))
        .filter_map(|n| {
            let cidr: Cidr = n.spec.as_ref()?.pod_cidr.as_ref()?.parse().ok()?;
            let ip = n
                .status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .find(|a| a.type_ == "InternalIP")?
                .address
                .clone();
            (ip != own_ip).then_some((cidr, ip))
        })
        .collect()
}

/// The gateway for a route to `node_ip`'s Pods: the node itself when it is on a connected
/// network, else the router this host reaches it through (a node in a network namespace
/// behind its host), as `ip route get` says.
async fn next_hop(node_ip: &str) -> String {
    match exec::ip(None, &["-o", "route", "get", node_ip]).await {
        Ok(out) => gateway_of(&out).unwrap_or(node_ip).to_string(),
        Err(_) => node_ip.to_string(),
    }
}

/// The `via` of one `ip -o route get` line, if the destination is not on-link.
fn gateway_of(route: &str) -> Option<&str> {
    let mut words = route.split_whitespace();
    words.find(|w| *w == "via")?;
    words.next()
}

/// Keeps the routes to other nodes' pod prefixes until the task is dropped.
///
/// # Errors
/// Never in practice: failures are logged and retried on the next change.
pub async fn run(
    client: kube::Client,
    node: Arc<NodeNetwork>,
    own_name: String,
    own_ip: String,
) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let nodes = crate::services::mirror(Api::<Node>::all(client), (), changed.clone()).await;
    let mut installed: BTreeMap<Cidr, String> = BTreeMap::new();
    loop {
        let list: Vec<Node> = nodes.state().iter().map(|n| n.as_ref().clone()).collect();
        let want = wanted(&list, &own_name, &own_ip);
        for (cidr, via) in &want {
            if installed.get(cidr) == Some(via) || *cidr == node.pod_cidr {
                continue;
            }
            let hop = next_hop(via).await;
            match exec::ip(None, &["route", "replace", &cidr.to_string(), "via", &hop]).await {
                Ok(_) => {
                    tracing::info!(%cidr, %via, %hop, "route to another node's Pods");
                    installed.insert(*cidr, via.clone());
                }
                Err(e) => {
                    tracing::warn!(%cidr, %via, error = %e, "cannot route to another node's Pods")
                }
            }
        }
        let stale: Vec<Cidr> = installed
            .keys()
            .filter(|c| !want.contains_key(c))
            .copied()
            .collect();
        for cidr in stale {
            let _ = exec::ip(None, &["route", "del", &cidr.to_string()]).await;
            installed.remove(&cidr);
        }
        changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: &str, ip: &str) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}),
        )
        .unwrap()
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
    }

    #[test]
    fn other_hosts_get_routes_and_same_host_nodes_do_not() {
        let nodes = [
            node("a", "10.244.1.0/24", "192.0.2.1"),
            node("b", "10.244.2.0/24", "192.0.2.2"),
            node("c", "10.244.3.0/24", "192.0.2.1"),
        ];
        let want = wanted(&nodes, "a", "192.0.2.1");
        assert_eq!(want.len(), 1);
        assert_eq!(
            want.get(&"10.244.2.0/24".parse().unwrap())
                .map(String::as_str),
            Some("192.0.2.2")
        );
    }
}
