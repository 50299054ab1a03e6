//! The masquerade binding inside a Pod's namespace, as upstream builds it: the guest sits
//! behind an in-Pod bridge on `vmNetworkCIDR` (default 10.0.2.0/24: gateway 10.0.2.1, guest
//! 10.0.2.2; on dual stack also `vmIPv6NetworkCIDR`, default fd10:0:2::/120: gateway
//! fd10:0:2::1, guest fd10:0:2::2); inbound connections to the pod IP are DNATed to the
//! guest — all ports, or only the interface's `ports` — except 49152/49153, which upstream
//! reserves; the guest's own traffic leaves masqueraded behind the pod IP.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::cidr::Cidr;

/// Ports upstream keeps for itself (libvirt migration): never forwarded to the guest.
pub const RESERVED_PORTS: [u16; 2] = [49152, 49153];
/// The table name inside the Pod's namespace.
pub const TABLE: &str = "oxivirt-masquerade";

/// Upstream's default `vmNetworkCIDR`.
const DEFAULT_NETWORK: Cidr = Cidr {
    addr: Ipv4Addr::new(10, 0, 2, 0),
    len: 24,
};
/// Upstream's default `vmIPv6NetworkCIDR`.
const DEFAULT_NETWORK6: (Ipv6Addr, u8) = (Ipv6Addr::new(0xfd10, 0, 2, 0, 0, 0, 0, 0), 120);

/// The guest's and the in-Pod gateway's addresses: the second and first host of the pod
/// network's `vmNetworkCIDR` and `vmIPv6NetworkCIDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The guest's IPv4 address.
    pub guest: Ipv4Addr,
    /// The in-Pod gateway (and DHCP server).
    pub gateway: Ipv4Addr,
    /// The IPv4 network.
    pub network: Cidr,
    /// The guest's IPv6 address (dual stack).
    pub guest6: Ipv6Addr,
    /// The in-Pod IPv6 gateway.
    pub gateway6: Ipv6Addr,
    /// The IPv6 network address.
    pub network6: Ipv6Addr,
    /// The IPv6 prefix length.
    pub prefix6: u8,
}

impl Default for Addresses {
    fn default() -> Self {
        Addresses::from_ranges(DEFAULT_NETWORK, DEFAULT_NETWORK6)
    }
}

impl Addresses {
    fn from_ranges(v4: Cidr, (v6, prefix6): (Ipv6Addr, u8)) -> Self {
        let network = Cidr::new(v4.network(), v4.len);
        let network6 = crate::config::v6_network(v6, prefix6);
        let nth6 = |n: u128| Ipv6Addr::from(u128::from(network6) + n);
        Addresses {
            gateway: Ipv4Addr::from(u32::from(network.addr) + 1),
            guest: Ipv4Addr::from(u32::from(network.addr) + 2),
            network,
            gateway6: nth6(1),
            guest6: nth6(2),
            network6,
            prefix6,
        }
    }

    /// The addresses of a VMI network (`networks[]` entry): its `pod.vmNetworkCIDR` and
    /// `pod.vmIPv6NetworkCIDR`, else upstream's defaults. The address part of a range may
    /// be any of its addresses (the manual's default is written `fd10:0:2::2/120`).
    ///
    /// # Errors
    /// A message naming the field that is not a range with room for a gateway and a guest
    /// (IPv4 /30 or wider, IPv6 /126 or wider).
    pub fn of_network(network: &Value) -> Result<Self, String> {
        let v4 = match network["pod"]["vmNetworkCIDR"].as_str() {
            None => DEFAULT_NETWORK,
            Some(text) => text
                .parse::<Cidr>()
                .ok()
                .filter(|c| c.len <= 30)
                .ok_or_else(|| {
                    format!("vmNetworkCIDR {text:?} is not an IPv4 range of /30 or wider")
                })?,
        };
        let v6 = match network["pod"]["vmIPv6NetworkCIDR"].as_str() {
            None => DEFAULT_NETWORK6,
            Some(text) => crate::config::parse_v6(text, 0, 126).ok_or_else(|| {
                format!("vmIPv6NetworkCIDR {text:?} is not an IPv6 range of /126 or wider")
            })?,
        };
        Ok(Addresses::from_ranges(v4, v6))
    }
}

/// One `ports` entry of the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port.
    pub port: u16,
}

/// The inbound DNAT rules of one family: `daddr` is `ip daddr A` or `ip6 daddr A`.
fn inbound_rules(pod_if: &str, daddr: &str, guest: &str, ports: &[Port]) -> String {
    let reserved = RESERVED_PORTS.map(|p| p.to_string()).join(", ");
    let mut inbound = String::new();
    if ports.is_empty() {
        inbound.push_str(&format!(
            "\t\tiifname \"{pod_if}\" {daddr} meta l4proto {{ tcp, udp }} th dport != {{ {reserved} }} dnat to {guest}\n"
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
                    "\t\tiifname \"{pod_if}\" {daddr} {proto} dport {{ {} }} dnat to {guest}\n",
                    list.join(", ")
                ));
            }
        }
    }
    inbound
}

/// The nftables script of one family for the Pod's namespace (replaces the table
/// atomically). `ports` empty means every port (upstream: omitted `ports` opens all).
fn family_ruleset(
    family: &str,
    table: &str,
    pod_if: &str,
    pod_ip: &str,
    (guest, gateway, network): (&str, &str, &str),
    ports: &[Port],
) -> String {
    let inbound = inbound_rules(pod_if, &format!("{family} daddr {pod_ip}"), guest, ports);
    // Connections the Pod's namespace makes to its own pod IP (probes) reach the guest too.
    let local = inbound.replace(&format!("iifname \"{pod_if}\" "), "");
    format!(
        "table {family} {table}\ndelete table {family} {table}\ntable {family} {table} {{\n\
         \tchain prerouting {{ type nat hook prerouting priority -100; policy accept;\n{inbound}\t}}\n\
         \tchain output {{ type nat hook output priority -100; policy accept;\n{local}\t}}\n\
         \tchain postrouting {{ type nat hook postrouting priority 100; policy accept;\n\
         \t\t{family} saddr {guest} oifname \"{pod_if}\" masquerade\n\
         \t\toifname \"k6t-{pod_if}\" {family} daddr {guest} {family} saddr != {network} snat to {gateway}\n\t}}\n}}\n"
    )
}

/// The IPv4 half of the binding.
pub fn ruleset(pod_if: &str, pod_ip: Ipv4Addr, ports: &[Port], at: &Addresses) -> String {
    let (guest, gateway) = (at.guest.to_string(), at.gateway.to_string());
    let network = at.network.to_string();
    family_ruleset(
        "ip",
        TABLE,
        pod_if,
        &pod_ip.to_string(),
        (&guest, &gateway, &network),
        ports,
    )
}

/// The IPv6 half of the binding: inbound to the Pod's IPv6 address reaches the guest's
/// IPv6 address (same port rules), the guest's traffic leaves behind the Pod's address.
pub fn ruleset_v6(pod_if: &str, pod_ip6: Ipv6Addr, ports: &[Port], at: &Addresses) -> String {
    let (guest, gateway) = (at.guest6.to_string(), at.gateway6.to_string());
    let network = format!("{}/{}", at.network6, at.prefix6);
    family_ruleset(
        "ip6",
        &format!("{TABLE}6"),
        pod_if,
        &pod_ip6.to_string(),
        (&guest, &gateway, &network),
        ports,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_ports_open_everything_but_the_reserved_ones() {
        let rules = ruleset(
            "eth0",
            Ipv4Addr::new(10, 244, 1, 5),
            &[],
            &Addresses::default(),
        );
        assert!(
            rules.contains("th dport != { 49152, 49153 } dnat to 10.0.2.2"),
            "{rules}"
        );
        assert!(rules.contains("ip saddr 10.0.2.2 oifname \"eth0\" masquerade"));
    }

    #[test]
    fn the_defaults_are_upstreams_and_the_ranges_can_be_changed() {
        let d = Addresses::default();
        assert_eq!(
            (d.gateway.to_string(), d.guest.to_string()),
            ("10.0.2.1".into(), "10.0.2.2".into())
        );
        assert_eq!(
            (d.gateway6.to_string(), d.guest6.to_string()),
            ("fd10:0:2::1".into(), "fd10:0:2::2".into())
        );
        assert_eq!(
            (d.network6.to_string(), d.prefix6),
            ("fd10:0:2::".into(), 120)
        );
        let net = serde_json::json!({"name": "default", "pod": {
            "vmNetworkCIDR": "10.11.12.0/24", "vmIPv6NetworkCIDR": "fd10:0:2::2/120"}});
        let a = Addresses::of_network(&net).unwrap();
        assert_eq!(
            (a.gateway.to_string(), a.guest.to_string()),
            ("10.11.12.1".into(), "10.11.12.2".into())
        );
        assert_eq!(
            a.guest6, d.guest6,
            "the manual writes the default range as fd10:0:2::2/120"
        );
        let rules = ruleset_v6("eth0", "fd00::5".parse().unwrap(), &[], &a);
        assert!(
            rules.contains("ip6 daddr fd10:0:2::2 ip6 saddr != fd10:0:2::/120 snat to fd10:0:2::1"),
            "{rules}"
        );
        let rules = ruleset("eth0", Ipv4Addr::new(10, 244, 1, 5), &[], &a);
        assert!(
            rules.contains("ip daddr 10.11.12.2 ip saddr != 10.11.12.0/24 snat to 10.11.12.1"),
            "{rules}"
        );
        for bad in [
            json_pod("vmNetworkCIDR", "10.11.12.0/31"),
            json_pod("vmNetworkCIDR", "banana"),
            json_pod("vmIPv6NetworkCIDR", "fd10::/127"),
        ] {
            assert!(Addresses::of_network(&bad).is_err(), "{bad}");
        }
    }

    fn json_pod(key: &str, value: &str) -> serde_json::Value {
        serde_json::json!({"pod": {key: value}})
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
        let rules = ruleset(
            "eth0",
            Ipv4Addr::new(10, 244, 1, 5),
            &ports,
            &Addresses::default(),
        );
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
            ruleset(
                "eth0",
                Ipv4Addr::new(10, 244, 1, 5),
                &[],
                &Addresses::default(),
            ),
            ruleset(
                "eth0",
                Ipv4Addr::new(10, 244, 1, 5),
                &ports,
                &Addresses::default(),
            ),
            ruleset_v6(
                "eth0",
                "fd00:10:244:1::5".parse().unwrap(),
                &[],
                &Addresses::default(),
            ),
            ruleset_v6(
                "eth0",
                "fd00:10:244:1::5".parse().unwrap(),
                &ports,
                &Addresses::default(),
            ),
        ] {
            // `delete table` fails in check mode when the table does not exist: check the body.
            let body: String = rules.lines().skip(2).collect::<Vec<_>>().join("\n");
            crate::exec::run_with_input(None, "nft", &["-c", "-f", "-"], Some(&body))
                .await
                .unwrap_or_else(|e| panic!("{e}\n{body}"));
        }
    }
}
