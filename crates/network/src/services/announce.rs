//! LoadBalancer IPs bound on a node, as MetalLB's layer-2 mode does upstream: each IP is a
//! local address of exactly one node, so that node answers ARP/NDP for it on its link and
//! traffic from outside the cluster arrives where the Service rules DNAT it.
//!
//! The node is chosen among the nodes of the Service's ready endpoints (no extra hop for the
//! traffic, and a node that runs none of the VMs never answers for the IP) by rendezvous
//! hashing of (IP, node name): every node computes the same choice from the same Endpoints,
//! without talking to the others, and an IP moves only when its node stops being a candidate.
//! The addresses live on the node bridge as host addresses (/32, /128): a local address on
//! any interface is answered for on every link (`arp_ignore=0`, the default), and the bridge
//! exists on every node with a pod network (this kernel may lack the `dummy` link type).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use crate::exec;
use crate::node::stable_hash;

/// The LoadBalancer IPs this node (`own`) binds: those of `LoadBalancer` Services whose
/// chosen node it is.
pub fn announced_here(
    svcs: &[Value],
    endpoints_of: &dyn Fn(&str, &str) -> Option<Value>,
    own: &str,
) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for svc in svcs.iter().filter(|s| s["spec"]["type"] == "LoadBalancer") {
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        let endpoints = endpoints_of(ns, name);
        let candidates = endpoint_nodes(endpoints.as_ref());
        for ing in svc["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(ip) = ing["ip"].as_str().and_then(|ip| ip.parse::<IpAddr>().ok()) else {
                continue;
            };
            if chosen(&ip, &candidates) == Some(own) {
                out.insert(ip);
            }
        }
    }
    out
}

/// The nodes of the ready addresses of `endpoints`.
fn endpoint_nodes(endpoints: Option<&Value>) -> BTreeSet<&str> {
    endpoints
        .into_iter()
        .flat_map(|ep| ep["subsets"].as_array().into_iter().flatten())
        .flat_map(|subset| subset["addresses"].as_array().into_iter().flatten())
        .filter_map(|a| a["nodeName"].as_str())
        .collect()
}

/// The node that binds `ip`: the highest hash of (IP, node) among `candidates`.
fn chosen<'a>(ip: &IpAddr, candidates: &BTreeSet<&'a str>) -> Option<&'a str> {
    candidates
        .iter()
        .max_by_key(|node| stable_hash(&format!("{ip} {node}")))
        .copied()
}

/// The addresses bound on the node bridge, kept equal to what [`announced_here`] says.
#[derive(Debug)]
pub struct Binder {
    bridge: String,
    bound: BTreeSet<IpAddr>,
}

impl Binder {
    /// A binder for the node bridge `bridge`. Host addresses (/32, /128) on it are
    /// LoadBalancer IPs an earlier run of the node bound: they are removed, and bound again
    /// as the Services say.
    pub async fn new(bridge: &str) -> Self {
        if let Ok(out) = exec::ip(None, &["-o", "addr", "show", "dev", bridge]).await {
            for address in stale_host_addresses(&out) {
                let _ = exec::ip(None, &["addr", "del", address, "dev", bridge]).await;
            }
        }
        Binder {
            bridge: bridge.to_string(),
            bound: BTreeSet::new(),
        }
    }

    /// Binds what `wanted` adds and unbinds what it no longer lists; failures are logged
    /// and retried on the next call.
    pub async fn sync(&mut self, wanted: &BTreeSet<IpAddr>) {
        let new: Vec<IpAddr> = wanted.difference(&self.bound).copied().collect();
        for ip in &new {
            let (family, address) = exec::host_prefix(ip);
            let mut args = vec![family, "addr", "replace", &address, "dev", &self.bridge];
            if ip.is_ipv6() {
                args.push("nodad");
            }
            match exec::ip(None, &args).await {
                Ok(_) => {
                    tracing::info!(%ip, "LoadBalancer IP bound on this node");
                    self.bound.insert(*ip);
                }
                Err(e) => tracing::warn!(%ip, error = %e, "cannot bind the LoadBalancer IP"),
            }
        }
        let stale: Vec<IpAddr> = self.bound.difference(wanted).copied().collect();
        for ip in stale {
            let (family, address) = exec::host_prefix(&ip);
            let _ = exec::ip(
                None,
                &[family, "addr", "del", &address, "dev", &self.bridge],
            )
            .await;
            tracing::info!(%ip, "LoadBalancer IP no longer bound on this node");
            self.bound.remove(&ip);
        }
    }
}

/// The host addresses (`a.b.c.d/32`, `x::y/128`) in `ip -o addr show` output.
fn stale_host_addresses(addr_show: &str) -> Vec<&str> {
    addr_show
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            words.next()
        })
        .filter(|a| a.ends_with("/32") || a.ends_with("/128"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lb(name: &str, ip: &str) -> Value {
        json!({"metadata": {"namespace": "default", "name": name},
               "spec": {"type": "LoadBalancer"},
               "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})
    }

    fn endpoints(nodes: &[&str]) -> Value {
        let addresses: Vec<Value> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"ip": format!("10.244.{i}.2"), "nodeName": n}))
            .collect();
        json!({"subsets": [{"addresses": addresses, "ports": [{"port": 80}]}]})
    }

    #[test]
    fn only_host_addresses_on_the_bridge_are_taken_for_earlier_bindings() {
        let out = "9: oxb1    inet 10.244.3.1/24 brd 10.244.3.255 scope global oxb1\\       valid_lft forever preferred_lft forever\n\
                   9: oxb1    inet 10.99.0.4/32 scope global oxb1\\       valid_lft forever preferred_lft forever\n\
                   9: oxb1    inet6 fd00:10:244:3::1/64 scope global nodad \\       valid_lft forever preferred_lft forever\n\
                   9: oxb1    inet6 fd00:99::4/128 scope global nodad \\       valid_lft forever preferred_lft forever\n";
        assert_eq!(
            stale_host_addresses(out),
            ["10.99.0.4/32", "fd00:99::4/128"]
        );
    }

    fn twenty_load_balancers() -> Vec<Value> {
        (1..=20)
            .map(|i| lb(&format!("s{i}"), &format!("10.99.0.{i}")))
            .collect()
    }

    #[test]
    fn one_node_of_the_ready_endpoints_binds_each_ip() {
        let svcs = twenty_load_balancers();
        let eps = endpoints(&["n1", "n2", "n3"]);
        let of = |_: &str, _: &str| Some(eps.clone());
        let per_node: Vec<BTreeSet<IpAddr>> = ["n1", "n2", "n3", "n4"]
            .iter()
            .map(|n| announced_here(&svcs, &of, n))
            .collect();
        // Every IP on exactly one node, never on a node without an endpoint.
        assert_eq!(per_node.iter().map(BTreeSet::len).sum::<usize>(), 20);
        assert!(per_node[3].is_empty());
        let all: BTreeSet<IpAddr> = per_node.iter().flatten().copied().collect();
        assert_eq!(all.len(), 20);
        // Rendezvous hashing spreads them: no node takes all 20.
        assert!(per_node.iter().all(|s| s.len() < 20), "{per_node:?}");
    }

    #[test]
    fn losing_a_candidate_moves_only_its_ips() {
        let svcs = twenty_load_balancers();
        let three = endpoints(&["n1", "n2", "n3"]);
        let two = endpoints(&["n1", "n2"]);
        let before = announced_here(&svcs, &|_: &str, _: &str| Some(three.clone()), "n1");
        let after = announced_here(&svcs, &|_: &str, _: &str| Some(two.clone()), "n1");
        assert!(before.is_subset(&after), "{before:?} {after:?}");
    }

    #[test]
    fn no_ready_endpoint_or_no_ip_binds_nothing() {
        let svcs = [
            lb("s", "10.99.0.1"),
            json!({"metadata": {"namespace": "default", "name": "c"},
            "spec": {"type": "ClusterIP"}}),
        ];
        assert!(announced_here(&svcs, &|_: &str, _: &str| None, "n1").is_empty());
        let eps = endpoints(&["n1"]);
        let of = |_: &str, name: &str| (name == "c").then(|| eps.clone());
        assert!(announced_here(&svcs, &of, "n1").is_empty());
        let of = |_: &str, _: &str| Some(eps.clone());
        assert_eq!(
            announced_here(&svcs, &of, "n1"),
            BTreeSet::from(["10.99.0.1".parse().unwrap()])
        );
    }
}
