//! Cluster network settings: defaults of common Kubernetes distributions (ARCHITECTURE §7),
//! each overridable through the environment of `oxivirt server` / `oxivirt agent`.

use std::net::Ipv4Addr;

use crate::cidr::Cidr;

/// The cluster-wide network settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// Pod addresses; each node takes one /24 (`OXIVIRT_POD_CIDR`, default 10.244.0.0/16).
    pub cluster_cidr: Cidr,
    /// ClusterIPs (`OXIVIRT_SERVICE_CIDR`, default 10.96.0.0/12).
    pub service_cidr: Cidr,
    /// The ClusterIP of Service `kube-system/kube-dns` (`OXIVIRT_CLUSTER_DNS`, default 10.96.0.10).
    pub cluster_dns: Ipv4Addr,
    /// The DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// NodePorts (`OXIVIRT_NODE_PORTS`, default 30000-32767).
    pub node_ports: (u16, u16),
    /// LoadBalancer IPs, bound on the node that runs the proxy (`OXIVIRT_LB_POOL`,
    /// default 10.99.0.0/24 — a stand-in for MetalLB's address pool).
    pub load_balancer_pool: Cidr,
    /// MTU of pod interfaces.
    pub mtu: u32,
    /// `OXIVIRT_POD_NETWORK=off` turns the pod network off (VMs then run without NICs).
    pub enabled: bool,
    /// Dual stack: the IPv6 pod range, a /56 or shorter (`OXIVIRT_POD_CIDR_V6`, e.g.
    /// `fd00:10:244::/56`); each node takes the /64 numbered like its IPv4 /24.
    pub cluster_cidr_v6: Option<(std::net::Ipv6Addr, u8)>,
    /// Dual-stack Services: the IPv6 ClusterIP range (`OXIVIRT_SERVICE_CIDR_V6`, /64 to
    /// /120). When only the IPv6 pod range is set it defaults to [`DEFAULT_SERVICE_CIDR_V6`]:
    /// a dual-stack pod network with single-stack Services is not what a user configuring
    /// dual stack expects.
    pub service_cidr_v6: Option<(std::net::Ipv6Addr, u8)>,
    /// The IPv6 ClusterIP of `kube-dns` on dual-stack clusters (`OXIVIRT_CLUSTER_DNS_V6`,
    /// default the 10th address of the IPv6 Service range, `fd00:10:96::a`, as 10.96.0.10
    /// is of the IPv4 one). Fixed rather than random so a guest's static IPv6 configuration
    /// (the manual's cloud-init `networkData`) can name its resolver.
    pub cluster_dns_v6: Option<std::net::Ipv6Addr>,
}

/// The IPv6 Service range of dual-stack clusters when none is set (kind's default).
pub const DEFAULT_SERVICE_CIDR_V6: (std::net::Ipv6Addr, u8) = (
    std::net::Ipv6Addr::new(0xfd00, 0x10, 0x96, 0, 0, 0, 0, 0),
    112,
);

/// `ADDR/LEN` as an IPv6 prefix with `min <= LEN <= max`.
pub(crate) fn parse_v6(text: &str, min: u8, max: u8) -> Option<(std::net::Ipv6Addr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let (addr, len) = (addr.parse().ok()?, len.parse::<u8>().ok()?);
    (min..=max).contains(&len).then_some((addr, len))
}

/// The network address of `addr` in a /`len` IPv6 prefix.
pub(crate) fn v6_network(addr: std::net::Ipv6Addr, len: u8) -> std::net::Ipv6Addr {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    std::net::Ipv6Addr::from(u128::from(addr) & mask)
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            cluster_cidr: Cidr::new(Ipv4Addr::new(10, 244, 0, 0), 16),
            service_cidr: Cidr::new(Ipv4Addr::new(10, 96, 0, 0), 12),
            cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
            cluster_domain: "cluster.local".into(),
            node_ports: (30000, 32767),
            load_balancer_pool: Cidr::new(Ipv4Addr::new(10, 99, 0, 0), 24),
            mtu: 1500,
            enabled: true,
            cluster_cidr_v6: None,
            service_cidr_v6: None,
            cluster_dns_v6: None,
        }
    }
}

/// A setting in the environment that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {why}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    why: String,
}

impl NetworkConfig {
    /// The defaults with the `OXIVIRT_*` overrides of this process's environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that does not parse.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `get`.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = NetworkConfig::default();
        let bad = |name: &'static str, value: &str, why: String| ConfigError {
            name,
            value: value.into(),
            why,
        };
        if let Some(v) = get("OXIVIRT_POD_CIDR") {
            config.cluster_cidr = v
                .parse()
                .map_err(|e| bad("OXIVIRT_POD_CIDR", &v, format!("{e}")))?;
            if config.cluster_cidr.len > 24 {
                return Err(bad("OXIVIRT_POD_CIDR", &v, "must hold a /24".into()));
            }
        }
        if let Some(v) = get("OXIVIRT_SERVICE_CIDR") {
            config.service_cidr = v
                .parse()
                .map_err(|e| bad("OXIVIRT_SERVICE_CIDR", &v, format!("{e}")))?;
        }
        if let Some(v) = get("OXIVIRT_CLUSTER_DNS") {
            config.cluster_dns = v
                .parse()
                .map_err(|e| bad("OXIVIRT_CLUSTER_DNS", &v, format!("{e}")))?;
        } else if !config.service_cidr.contains(config.cluster_dns) {
            // A custom service range: the DNS takes its 10th address, as 10.96.0.10 is.
            config.cluster_dns = config.service_cidr.nth(10).unwrap_or(config.cluster_dns);
        }
        if let Some(v) = get("OXIVIRT_NODE_PORTS") {
            let range = v
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .filter(|(a, b): &(u16, u16)| a <= b)
                .ok_or_else(|| bad("OXIVIRT_NODE_PORTS", &v, "expected LOW-HIGH".into()))?;
            config.node_ports = range;
        }
        if let Some(v) = get("OXIVIRT_LB_POOL") {
            config.load_balancer_pool = v
                .parse()
                .map_err(|e| bad("OXIVIRT_LB_POOL", &v, format!("{e}")))?;
        }
        if let Some(v) = get("OXIVIRT_POD_CIDR_V6") {
            config.cluster_cidr_v6 = Some(parse_v6(&v, 0, 56).ok_or_else(|| {
                bad(
                    "OXIVIRT_POD_CIDR_V6",
                    &v,
                    "expected an IPv6 prefix of /56 or shorter".into(),
                )
            })?);
            config.service_cidr_v6 = Some(DEFAULT_SERVICE_CIDR_V6);
        }
        if let Some(v) = get("OXIVIRT_SERVICE_CIDR_V6") {
            config.service_cidr_v6 = Some(parse_v6(&v, 64, 120).ok_or_else(|| {
                bad(
                    "OXIVIRT_SERVICE_CIDR_V6",
                    &v,
                    "expected an IPv6 prefix from /64 to /120".into(),
                )
            })?);
        }
        if let Some((range, len)) = config.service_cidr_v6 {
            // The range is /64 to /120: at least 8 host bits, so the 10th address exists.
            let network = v6_network(range, len);
            let in_range = |ip: std::net::Ipv6Addr| v6_network(ip, len) == network;
            let tenth = std::net::Ipv6Addr::from(u128::from(network) | 10);
            config.cluster_dns_v6 = Some(match get("OXIVIRT_CLUSTER_DNS_V6") {
                Some(v) => v.parse().ok().filter(|ip| in_range(*ip)).ok_or_else(|| {
                    bad(
                        "OXIVIRT_CLUSTER_DNS_V6",
                        &v,
                        format!("expected an IPv6 address in {range}/{len}"),
                    )
                })?,
                None => tenth,
            });
        }
        if let Some(v) = get("OXIVIRT_POD_NETWORK") {
            config.enabled = !matches!(v.as_str(), "off" | "false" | "0");
        }
        Ok(config)
    }

    /// The Service IP families this cluster offers, primary first (`spec.ipFamilies`).
    pub fn service_families(&self) -> Vec<&'static str> {
        let mut families = vec!["IPv4"];
        if self.service_cidr_v6.is_some() {
            families.push("IPv6");
        }
        families
    }

    /// The search domains a guest in `namespace` gets (as a Pod's resolv.conf).
    pub fn search_domains(&self, namespace: &str, subdomain: Option<&str>) -> Vec<String> {
        let domain = &self.cluster_domain;
        let mut list = Vec::new();
        if let Some(sub) = subdomain.filter(|s| !s.is_empty()) {
            list.push(format!("{sub}.{namespace}.svc.{domain}"));
        }
        list.push(format!("{namespace}.svc.{domain}"));
        list.push(format!("svc.{domain}"));
        list.push(domain.clone());
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_those_of_common_distributions() {
        let c = NetworkConfig::from_lookup(|_| None).unwrap();
        assert_eq!(c.cluster_cidr.to_string(), "10.244.0.0/16");
        assert_eq!(c.service_cidr.to_string(), "10.96.0.0/12");
        assert_eq!(c.cluster_dns, Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(c.node_ports, (30000, 32767));
        assert!(c.enabled);
    }

    #[test]
    fn a_custom_service_range_moves_the_dns_address_into_it() {
        let c = NetworkConfig::from_lookup(|n| {
            (n == "OXIVIRT_SERVICE_CIDR").then(|| "10.123.0.0/16".to_string())
        })
        .unwrap();
        assert_eq!(c.cluster_dns, Ipv4Addr::new(10, 123, 0, 10));
    }

    #[test]
    fn invalid_settings_name_the_variable() {
        let e = NetworkConfig::from_lookup(|n| (n == "OXIVIRT_NODE_PORTS").then(|| "9-1".into()))
            .unwrap_err();
        assert!(e.to_string().contains("OXIVIRT_NODE_PORTS"), "{e}");
    }

    #[test]
    fn an_ipv6_pod_range_makes_services_dual_stack_too() {
        let c = NetworkConfig::from_lookup(|n| {
            (n == "OXIVIRT_POD_CIDR_V6").then(|| "fd00:10:244::/56".to_string())
        })
        .unwrap();
        assert_eq!(c.service_cidr_v6, Some(DEFAULT_SERVICE_CIDR_V6));
        assert_eq!(c.service_families(), ["IPv4", "IPv6"]);
        assert_eq!(c.cluster_dns_v6, Some("fd00:10:96::a".parse().unwrap()));
        assert_eq!(NetworkConfig::default().cluster_dns_v6, None);
        assert_eq!(NetworkConfig::default().service_families(), ["IPv4"]);
        let e = NetworkConfig::from_lookup(|n| {
            (n == "OXIVIRT_SERVICE_CIDR_V6").then(|| "fd00::/130".to_string())
        })
        .unwrap_err();
        assert!(e.to_string().contains("OXIVIRT_SERVICE_CIDR_V6"), "{e}");
    }

    #[test]
    fn the_ipv6_cluster_dns_follows_the_ipv6_service_range_and_must_lie_in_it() {
        let env = |dns: Option<&'static str>| {
            move |n: &str| match n {
                "OXIVIRT_SERVICE_CIDR_V6" => Some("fd00:7::100/120".to_string()),
                "OXIVIRT_CLUSTER_DNS_V6" => dns.map(str::to_string),
                _ => None,
            }
        };
        let c = NetworkConfig::from_lookup(env(None)).unwrap();
        assert_eq!(c.cluster_dns_v6, Some("fd00:7::10a".parse().unwrap()));
        let c = NetworkConfig::from_lookup(env(Some("fd00:7::153"))).unwrap();
        assert_eq!(c.cluster_dns_v6, Some("fd00:7::153".parse().unwrap()));
        let e = NetworkConfig::from_lookup(env(Some("fd00:8::1"))).unwrap_err();
        assert!(e.to_string().contains("OXIVIRT_CLUSTER_DNS_V6"), "{e}");
    }

    #[test]
    fn search_domains_start_with_the_subdomain() {
        let c = NetworkConfig::default();
        assert_eq!(
            c.search_domains("ns1", Some("sub")),
            [
                "sub.ns1.svc.cluster.local",
                "ns1.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
    }
}
