//! The Service proxy's nftables table (kube-proxy's nftables mode, reduced): ClusterIPs,
//! LoadBalancer and external IPs, and NodePorts on every local address are DNATed to a
//! random ready endpoint; the cluster DNS address is DNATed to the node's DNS server.
//! Pure: the proxy loads the text (`nft -f -` replaces the whole table in one transaction).
//!
//! Dual stack: the same rules for the IPv6 ClusterIPs go in a second table (`ip6`,
//! [`ruleset_v6`]), leading to the Pods' IPv6 addresses (the Service's IPv6 EndpointSlice).

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::cidr::Cidr;

/// What the node contributes to the rules.
#[derive(Debug, Clone)]
pub struct NodeSide {
    /// The table name.
    pub table: String,
    /// The node bridge (traffic from the node's Pods).
    pub bridge: String,
    /// The node's pod prefix.
    pub pod_cidr: Cidr,
    /// The cluster DNS ClusterIP and where the node's DNS server listens.
    pub dns: Option<(Ipv4Addr, Ipv4Addr, u16)>,
}

fn protocol(p: &Value) -> Option<&'static str> {
    match p["protocol"].as_str().unwrap_or("TCP") {
        "TCP" => Some("tcp"),
        "UDP" => Some("udp"),
        "SCTP" => Some("sctp"),
        _ => None,
    }
}

/// The ready (ip, port) backends of service port `port` in `endpoints`.
fn ready_backends(port: &Value, endpoints: Option<&Value>) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Some(ep) = endpoints else { return out };
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        let ports = subset["ports"].as_array().cloned().unwrap_or_default();
        let target = ports.iter().find(|p| {
            p["name"].as_str().unwrap_or_default() == port["name"].as_str().unwrap_or_default()
                && p["protocol"].as_str().unwrap_or("TCP")
                    == port["protocol"].as_str().unwrap_or("TCP")
        });
        let Some(number) = target.and_then(|t| t["port"].as_u64()) else {
            continue;
        };
        for a in subset["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = a["ip"].as_str() {
                out.push((ip.to_string(), number));
            }
        }
    }
    out.sort();
    out
}

/// What differs between the IPv4 and the IPv6 table.
struct Family {
    /// nftables family and address keyword: `ip` or `ip6`.
    nft: &'static str,
    /// Whether a front address belongs to this family.
    owns: fn(&str) -> bool,
    /// A DNAT target.
    target: fn(&str, u64) -> String,
}

const IPV4: Family = Family {
    nft: "ip",
    owns: |ip| ip.parse::<Ipv4Addr>().is_ok(),
    target: |ip, port| format!("{ip}:{port}"),
};

const IPV6: Family = Family {
    nft: "ip6",
    owns: |ip| ip.parse::<Ipv6Addr>().is_ok(),
    target: |ip, port| format!("[{ip}]:{port}"),
};

/// The whole table for `services` with their Endpoints (`endpoints_of` by namespace/name).
pub fn ruleset(
    node: &NodeSide,
    services: &[Value],
    endpoints_of: &dyn Fn(&str, &str) -> Option<Value>,
) -> String {
    let dns = node
        .dns
        .map(|(cluster_dns, listen, port)| {
            dns_rules(
                &IPV4,
                &node.bridge,
                &cluster_dns.to_string(),
                &listen.to_string(),
                port,
            )
        })
        .unwrap_or_default();
    let pod_range = node.pod_cidr.to_string();
    table(
        &IPV4,
        (&node.table, &node.bridge, &pod_range),
        &dns,
        services,
        endpoints_of,
    )
}

/// What the node contributes to the IPv6 table.
#[derive(Debug, Clone)]
pub struct NodeSide6 {
    /// The table name (`ip6 <table>`).
    pub table: String,
    /// The node bridge.
    pub bridge: String,
    /// The node's IPv6 /64.
    pub pod_prefix: Ipv6Addr,
    /// `kube-dns`'s IPv6 ClusterIP and where the node's DNS server listens on IPv6.
    pub dns: Option<(Ipv6Addr, Ipv6Addr, u16)>,
}

/// The IPv6 table (`ip6 <table>`) for the Services' IPv6 ClusterIPs, LoadBalancer and
/// external IPs and their NodePorts on the node's IPv6 addresses, and `kube-dns`'s IPv6
/// ClusterIP; `endpoints6_of` gives a Service's IPv6 endpoints in the shape of Endpoints.
pub fn ruleset_v6(
    node: &NodeSide6,
    services: &[Value],
    endpoints6_of: &dyn Fn(&str, &str) -> Option<Value>,
) -> String {
    let dns = node
        .dns
        .map(|(cluster_dns, listen, port)| {
            dns_rules(
                &IPV6,
                &node.bridge,
                &cluster_dns.to_string(),
                &listen.to_string(),
                port,
            )
        })
        .unwrap_or_default();
    let pod_range = format!("{}/64", node.pod_prefix);
    table(
        &IPV6,
        (&node.table, &node.bridge, &pod_range),
        &dns,
        services,
        endpoints6_of,
    )
}

/// Prerouting rules sending the node's Pods' DNS traffic for the cluster DNS address to the
/// node's DNS server, over UDP and TCP. Only from the bridge: several clusters on one host
/// share `10.96.0.10`, and each node's Pods must reach their own cluster's DNS.
fn dns_rules(family: &Family, bridge: &str, cluster_dns: &str, listen: &str, port: u16) -> String {
    let mut out = String::new();
    let f = family.nft;
    let target = (family.target)(listen, u64::from(port));
    for proto in ["udp", "tcp"] {
        let _ = writeln!(
            out,
            "\t\tiifname \"{bridge}\" {f} daddr {cluster_dns} {proto} dport 53 dnat to {target}"
        );
    }
    out
}

/// One family's table: `node` is (table, bridge, pod range), `dns` extra prerouting rules.
fn table(
    family: &Family,
    node: (&str, &str, &str),
    dns: &str,
    services: &[Value],
    endpoints_of: &dyn Fn(&str, &str) -> Option<Value>,
) -> String {
    let f = family.nft;
    let mut matches = String::new();
    let mut chains = String::new();
    let mut sorted: Vec<&Value> = services.iter().collect();
    sorted.sort_by_key(|s| {
        (
            s["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            s["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    });
    for (n, svc) in sorted.iter().enumerate() {
        let spec = &svc["spec"];
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        // Every ClusterIP of this family (`clusterIPs`; `clusterIP` is the first of them).
        let mut front_ips: Vec<String> = spec["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&spec["clusterIP"]))
            .filter_map(Value::as_str)
            .filter(|ip| (family.owns)(ip))
            .map(str::to_string)
            .collect();
        front_ips.dedup();
        for ing in svc["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(ip) = ing["ip"].as_str().filter(|ip| (family.owns)(ip)) {
                front_ips.push(ip.to_string());
            }
        }
        for ip in spec["externalIPs"].as_array().into_iter().flatten() {
            if let Some(ip) = ip.as_str().filter(|ip| (family.owns)(ip)) {
                front_ips.push(ip.to_string());
            }
        }
        let endpoints = endpoints_of(ns, name);
        for (m, port) in spec["ports"].as_array().into_iter().flatten().enumerate() {
            let (Some(proto), Some(number)) = (protocol(port), port["port"].as_u64()) else {
                continue;
            };
            // Endpoints of an IPv6-primary Service hold IPv6 addresses: never in the ip table.
            let backends: Vec<(String, u64)> = ready_backends(port, endpoints.as_ref())
                .into_iter()
                .filter(|(ip, _)| (family.owns)(ip))
                .collect();
            if backends.is_empty() {
                continue;
            }
            let chain = format!("svc-{n}-{m}");
            let _ = writeln!(chains, "\t# {ns}/{name} port {number}/{proto}");
            let _ = writeln!(chains, "\tchain {chain} {{");
            if backends.len() == 1 {
                let (ip, p) = &backends[0];
                let _ = writeln!(
                    chains,
                    "\t\tmeta l4proto {proto} dnat to {}",
                    (family.target)(ip, *p)
                );
            } else {
                let arms: Vec<String> = (0..backends.len())
                    .map(|i| format!("{i} : goto {chain}-{i}"))
                    .collect();
                let _ = writeln!(
                    chains,
                    "\t\tnumgen random mod {} vmap {{ {} }}",
                    backends.len(),
                    arms.join(", ")
                );
            }
            let _ = writeln!(chains, "\t}}");
            if backends.len() > 1 {
                for (i, (ip, p)) in backends.iter().enumerate() {
                    let _ = writeln!(
                        chains,
                        "\tchain {chain}-{i} {{\n\t\tmeta l4proto {proto} dnat to {}\n\t}}",
                        (family.target)(ip, *p)
                    );
                }
            }
            for ip in &front_ips {
                let _ = writeln!(
                    matches,
                    "\t\t{f} daddr {ip} {proto} dport {number} goto {chain}"
                );
            }
            if let Some(node_port) = port["nodePort"].as_u64().filter(|p| *p > 0) {
                let _ = writeln!(
                    matches,
                    "\t\tfib daddr type local {proto} dport {node_port} goto {chain}"
                );
            }
        }
    }
    let (t, br, pods) = node;
    format!(
        "table {f} {t}\ndelete table {f} {t}\ntable {f} {t} {{\n\
         \tchain services {{\n{matches}\t}}\n\
         \tchain prerouting {{ type nat hook prerouting priority -100; policy accept;\n{dns}\t\tjump services\n\t}}\n\
         \tchain output {{ type nat hook output priority -100; policy accept;\n\t\tjump services\n\t}}\n\
         \tchain postrouting {{ type nat hook postrouting priority 100; policy accept;\n\
         \t\tct status dnat {f} saddr {pods} oifname \"{br}\" masquerade\n\t}}\n{chains}}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> NodeSide {
        NodeSide {
            table: "oxi-test-svc".into(),
            bridge: "oxbtest".into(),
            pod_cidr: "10.244.1.0/24".parse().unwrap(),
            dns: Some((
                Ipv4Addr::new(10, 96, 0, 10),
                Ipv4Addr::new(10, 244, 1, 1),
                53,
            )),
        }
    }

    fn node6() -> NodeSide6 {
        NodeSide6 {
            table: "oxi-test-svc6".into(),
            bridge: "oxbtest".into(),
            pod_prefix: "fd00:10:244:1::".parse().unwrap(),
            dns: Some((
                "fd00:10:96::a".parse().unwrap(),
                "fd00:10:244:1::1".parse().unwrap(),
                5353,
            )),
        }
    }

    fn services() -> (Vec<Value>, Value) {
        let svc = json!({"metadata": {"namespace": "ns", "name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.5.5",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.99.0.1"}]}}});
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.244.1.2"}, {"ip": "10.244.1.3"}],
                                     "notReadyAddresses": [{"ip": "10.244.1.4"}],
                                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]});
        (vec![svc], ep)
    }

    #[test]
    fn cluster_ip_load_balancer_and_node_port_lead_to_ready_endpoints_only() {
        let (svcs, ep) = services();
        let rules = ruleset(&node(), &svcs, &|_, _| Some(ep.clone()));
        assert!(
            rules.contains("ip daddr 10.96.5.5 tcp dport 80 goto svc-0-0"),
            "{rules}"
        );
        assert!(rules.contains("ip daddr 10.99.0.1 tcp dport 80 goto svc-0-0"));
        assert!(rules.contains("fib daddr type local tcp dport 30080 goto svc-0-0"));
        assert!(rules.contains("numgen random mod 2 vmap"));
        assert!(
            rules.contains("dnat to 10.244.1.2:8080") && rules.contains("dnat to 10.244.1.3:8080")
        );
        assert!(
            !rules.contains("10.244.1.4"),
            "a not-ready address got traffic"
        );
        assert!(rules.contains("ip daddr 10.96.0.10 udp dport 53 dnat to 10.244.1.1:53"));
    }

    #[test]
    fn a_service_without_ready_endpoints_gets_no_rule() {
        let (svcs, _) = services();
        let rules = ruleset(&node(), &svcs, &|_, _| None);
        assert!(!rules.contains("svc-0-0"), "{rules}");
    }

    #[test]
    fn ipv6_cluster_ips_lead_to_the_pods_ipv6_addresses_in_their_own_table() {
        let svc = json!({"metadata": {"namespace": "ns", "name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.5.5",
                     "clusterIPs": ["10.96.5.5", "fd00:10:96::5"],
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let ep6 = json!({"subsets": [{"addresses": [{"ip": "fd00:10:244:1::2"}],
                                      "ports": [{"port": 8080, "protocol": "TCP"}]}]});
        let rules = ruleset_v6(&node6(), std::slice::from_ref(&svc), &|_, _| {
            Some(ep6.clone())
        });
        assert!(rules.starts_with("table ip6 oxi-test-svc6\n"), "{rules}");
        assert!(
            rules.contains("ip6 daddr fd00:10:96::5 tcp dport 80 goto svc-0-0"),
            "{rules}"
        );
        assert!(rules.contains("dnat to [fd00:10:244:1::2]:8080"), "{rules}");
        assert!(!rules.contains("10.96.5.5"), "{rules}");
        assert!(rules.contains("ip6 saddr fd00:10:244:1::/64 oifname \"oxbtest\" masquerade"));
        // kube-dns's IPv6 ClusterIP leads the node's Pods to the DNS server's IPv6 socket.
        for proto in ["udp", "tcp"] {
            let rule = format!(
                "iifname \"oxbtest\" ip6 daddr fd00:10:96::a {proto} dport 53 dnat to [fd00:10:244:1::1]:5353"
            );
            assert!(rules.contains(&rule), "{rules}");
        }
        // The IPv4 table takes the IPv4 entry even when the IPv6 one is primary.
        let mut v6_primary = svc;
        v6_primary["spec"]["clusterIP"] = json!("fd00:10:96::5");
        v6_primary["spec"]["clusterIPs"] = json!(["fd00:10:96::5", "10.96.5.5"]);
        v6_primary["spec"]["ports"][0]["name"] = json!("http");
        let (_, ep) = services();
        let rules = ruleset(&node(), &[v6_primary], &|_, _| Some(ep.clone()));
        assert!(rules.contains("ip daddr 10.96.5.5 tcp dport 80"), "{rules}");
        assert!(!rules.contains("fd00:10:96::5"), "{rules}");
        // An IPv6-only Service's Endpoints (IPv6 addresses) put nothing in the ip table.
        let only6 = json!({"metadata": {"namespace": "ns", "name": "six"},
            "spec": {"clusterIP": "fd00:10:96::6", "clusterIPs": ["fd00:10:96::6"],
                     "ports": [{"port": 80, "protocol": "TCP"}]}});
        let rules = ruleset(&node(), &[only6], &|_, _| Some(ep6.clone()));
        assert!(!rules.contains("fd00:10:244:1::2"), "{rules}");
    }

    /// The real `nft` parses the table (check mode, nothing loaded). Skipped without root.
    #[tokio::test]
    async fn nft_accepts_the_ruleset() {
        if let Some(reason) = crate::exec::unavailable_reason().await {
            eprintln!("skipped: {reason}");
            return;
        }
        let (svcs, ep) = services();
        let ep6 = json!({"subsets": [{"addresses": [{"ip": "fd00:10:244:1::2"}, {"ip": "fd00:10:244:1::3"}],
                                      "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]});
        let mut dual = svcs.clone();
        dual[0]["spec"]["clusterIPs"] = json!(["10.96.5.5", "fd00:10:96::5"]);
        for rules in [
            ruleset(&node(), &svcs, &|_, _| Some(ep.clone())),
            ruleset_v6(&node6(), &dual, &|_, _| Some(ep6.clone())),
        ] {
            let body: String = rules.lines().skip(2).collect::<Vec<_>>().join("\n");
            crate::exec::run_with_input(None, "nft", &["-c", "-f", "-"], Some(&body))
                .await
                .unwrap_or_else(|e| panic!("{e}\n{body}"));
        }
    }
}
