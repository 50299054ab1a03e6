//! The masquerade binding inside a Pod's namespace, as upstream builds it: the guest sits
//! behind an in-Pod bridge on 10.0.2.0/24 (gateway 10.0.2.1, guest 10.0.2.2); inbound
//! connections to the pod IP are DNATed to the guest — all ports, or only the interface's
//! `ports` — except 49152/49153, which upstream reserves; the guest's own traffic leaves
//! masqueraded behind the pod IP.

use std::net::Ipv4Addr;

/// The guest address of the masquerade binding.
pub const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The in-Pod gateway of the masquerade binding.
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 1);
/// The masquerade network's prefix length.
pub const PREFIX: u8 = 24;
/// Ports upstream keeps for itself (libvirt migration): never forwarded to the guest.
pub const RESERVED_PORTS: [u16; 2] = [49152, 49153];
/// The guest's IPv6 address and the in-Pod gateway of dual-stack masquerade (upstream's
/// `vmIPv6NetworkCIDR` default).
pub const GUEST_IP6: &str = "fd10:0:2::2";
/// The gateway with its prefix, on the in-Pod bridge.
pub const GATEWAY_IP6_CIDR: &str = "fd10:0:2::1/120";
/// The table name inside the Pod's namespace.
pub const TABLE: &str = "oxivirt-masquerade";

/// One `ports` entry of the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port.
    pub port: u16,
}

/// The nftables script for the Pod's namespace (replaces the table atomically).
/// `ports` empty means every port (upstream: omitted `ports` opens all).
pub fn ruleset(pod_if: &str, pod_ip: Ipv4Addr, ports: &[Port]) -> String {
    let reserved = RESERVED_PORTS.map(|p| p.to_string()).join(", ");
    let mut inbound = String::new();
    if ports.is_empty() {
        inbound.push_str(&format!(
            "\t\tiifname \"{pod_if}\" ip daddr {pod_ip} meta l4proto {{ tcp, udp }} th dport != {{ {reserved} }} dnat to {GUEST_IP}\n"
        ));
    } else {
        for proto in ["tcp", "udp"] {
            let list: Vec<String> = ports
                .iter()
                .filter(|p| p.protocol == proto && !RESERVED_PORTS.contains(&p.port))
                .map(|p| p.port.to_string())
                .collect();
            if !list.is_empty() {
                inbound.push_str(&format!(
                    "\t\tiifname \"{pod_if}\" ip daddr {pod_ip} {proto} dport {{ {} }} dnat to {GUEST_IP}\n",
                    list.join(", ")
                ));
            }
        }
    }
    // Connections the Pod's namespace makes to its own pod IP (probes) reach the guest too.
    let local = inbound.replace(&format!("iifname \"{pod_if}\" "), "");
    format!(
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n\
         \tchain prerouting {{ type nat hook prerouting priority -100; policy accept;\n{inbound}\t}}\n\
         \tchain output {{ type nat hook output priority -100; policy accept;\n{local}\t}}\n\
         \tchain postrouting {{ type nat hook postrouting priority 100; policy accept;\n\
         \t\tip saddr {GUEST_IP} oifname \"{pod_if}\" masquerade\n\
         \t\toifname \"k6t-{pod_if}\" ip daddr {GUEST_IP} ip saddr != 10.0.2.0/24 snat to {GATEWAY_IP}\n\t}}\n}}\n"
    )
}

/// The IPv6 half of the binding: inbound to the Pod's IPv6 address reaches the guest's
/// `fd10:0:2::2` (same port rules), the guest's traffic leaves behind the Pod's address.
pub fn ruleset_v6(pod_if: &str, pod_ip6: std::net::Ipv6Addr, ports: &[Port]) -> String {
    let v4 = ruleset(pod_if, Ipv4Addr::UNSPECIFIED, ports);
    let table = format!("{TABLE}6");
    v4.replace(&format!("table ip {TABLE}"), &format!("table ip6 {table}"))
        .replace("ip daddr 0.0.0.0", &format!("ip6 daddr {pod_ip6}"))
        .replace(
            &format!("dnat to {GUEST_IP}"),
            &format!("dnat to {GUEST_IP6}"),
        )
        .replace(
            &format!("ip saddr {GUEST_IP}"),
            &format!("ip6 saddr {GUEST_IP6}"),
        )
        .replace(
            &format!("ip daddr {GUEST_IP} ip saddr != 10.0.2.0/24 snat to {GATEWAY_IP}"),
            &format!("ip6 daddr {GUEST_IP6} ip6 saddr != fd10:0:2::/120 snat to fd10:0:2::1"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_ports_open_everything_but_the_reserved_ones() {
        let rules = ruleset("eth0", Ipv4Addr::new(10, 244, 1, 5), &[]);
        assert!(
            rules.contains("th dport != { 49152, 49153 } dnat to 10.0.2.2"),
            "{rules}"
        );
        assert!(rules.contains("ip saddr 10.0.2.2 oifname \"eth0\" masquerade"));
    }

    #[test]
    fn listed_ports_are_the_only_ones_forwarded() {
        let ports = [
            Port {
                protocol: "tcp".into(),
                port: 80,
            },
            Port {
                protocol: "tcp".into(),
                port: 49152,
            },
            Port {
                protocol: "udp".into(),
                port: 53,
            },
        ];
        let rules = ruleset("eth0", Ipv4Addr::new(10, 244, 1, 5), &ports);
        assert!(rules.contains("tcp dport { 80 } dnat"), "{rules}");
        assert!(rules.contains("udp dport { 53 } dnat"), "{rules}");
        assert!(
            !rules.contains("49152 }"),
            "reserved port forwarded: {rules}"
        );
    }
}

#[cfg(test)]
mod nft_check {
    use super::*;

    /// The real `nft` parses the rules (check mode: nothing is loaded). Skipped without root.
    #[tokio::test]
    async fn nft_accepts_the_ruleset() {
        if let Some(reason) = crate::exec::unavailable_reason().await {
            eprintln!("skipped: {reason}");
            return;
        }
        let ports = [Port {
            protocol: "tcp".into(),
            port: 80,
        }];
        for rules in [
            ruleset("eth0", Ipv4Addr::new(10, 244, 1, 5), &[]),
            ruleset("eth0", Ipv4Addr::new(10, 244, 1, 5), &ports),
            ruleset_v6("eth0", "fd00:10:244:1::5".parse().unwrap(), &[]),
            ruleset_v6("eth0", "fd00:10:244:1::5".parse().unwrap(), &ports),
        ] {
            // `delete table` fails in check mode when the table does not exist: check the body.
            let body: String = rules.lines().skip(2).collect::<Vec<_>>().join("\n");
            crate::exec::run_with_input(None, "nft", &["-c", "-f", "-"], Some(&body))
                .await
                .unwrap_or_else(|e| panic!("{e}\n{body}"));
        }
    }
}
