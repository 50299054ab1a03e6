//! Service addresses, as the Kubernetes API server allocates them: a ClusterIP from the
//! service range (Service `kube-system/kube-dns` gets the cluster DNS address), NodePorts
//! for NodePort and LoadBalancer Services, and a LoadBalancer IP from the configured pool
//! (written to `status.loadBalancer.ingress`, MetalLB's job upstream). Pure: the caller
//! passes what is taken and applies the returned patches.
//!
//! Dual stack: `spec.clusterIPs[i]` comes from the range of `spec.ipFamilies[i]` (admission
//! has already defaulted and checked the families against the cluster's ranges; this side
//! only fills in addresses that are missing).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::Rng;
use serde_json::{json, Value};

use crate::config::NetworkConfig;

/// The namespace and name of the cluster DNS Service.
pub const DNS_SERVICE: (&str, &str) = ("kube-system", "kube-dns");

/// What other Services hold.
#[derive(Debug, Default, Clone)]
pub struct Taken {
    /// ClusterIPs.
    pub cluster_ips: HashSet<Ipv4Addr>,
    /// IPv6 ClusterIPs.
    pub cluster_ips6: HashSet<Ipv6Addr>,
    /// NodePorts.
    pub node_ports: HashSet<u16>,
    /// LoadBalancer IPs.
    pub lb_ips: HashSet<Ipv4Addr>,
}

impl Taken {
    /// Records what `svc` holds.
    pub fn add(&mut self, svc: &Value) {
        for ip in svc["spec"]["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&svc["spec"]["clusterIP"]))
        {
            match ip.as_str().and_then(|s| s.parse().ok()) {
                Some(IpAddr::V4(ip)) => {
                    self.cluster_ips.insert(ip);
                }
                Some(IpAddr::V6(ip)) => {
                    self.cluster_ips6.insert(ip);
                }
                None => {}
            }
        }
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(port) = p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()) {
                self.node_ports.insert(port);
            }
        }
        for ing in svc["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(ip) = ing["ip"].as_str().and_then(|s| s.parse().ok()) {
                self.lb_ips.insert(ip);
            }
        }
    }
}

/// Why an address could not be allocated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// The range has no free address or port.
    #[error("Service {service}: no free {what} left in {range}")]
    Exhausted {
        service: String,
        what: &'static str,
        range: String,
    },
    /// The Service asks for an IP family the cluster has no range for (admission refuses
    /// this; a Service stored before the cluster lost its IPv6 range can still ask).
    #[error("Service {service}: no {family} Service range is configured")]
    NoRange { service: String, family: String },
}

/// The `spec` merge patch that gives `svc` its ClusterIP and NodePorts (None: nothing to do).
/// Records what it hands out in `taken`.
///
/// # Errors
/// [`Error::Exhausted`].
pub fn spec_patch(
    svc: &Value,
    config: &NetworkConfig,
    taken: &mut Taken,
) -> Result<Option<Value>, Error> {
    let spec = &svc["spec"];
    let kind = spec["type"].as_str().unwrap_or("ClusterIP");
    if kind == "ExternalName" {
        return Ok(None);
    }
    let key = format!(
        "{}/{}",
        svc["metadata"]["namespace"].as_str().unwrap_or_default(),
        svc["metadata"]["name"].as_str().unwrap_or_default()
    );
    let mut patch = json!({});
    let families: Vec<String> = match spec["ipFamilies"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect(),
        _ => vec![family_of(spec["clusterIP"].as_str().unwrap_or_default()).to_string()],
    };
    let mut ips: Vec<String> = spec["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.as_str().map(str::to_string))
        .collect();
    if ips.is_empty() {
        if let Some(ip) = spec["clusterIP"].as_str().filter(|ip| !ip.is_empty()) {
            ips.push(ip.to_string());
        }
    }
    let before = ips.clone();
    if ips.first().map(String::as_str) != Some("None") {
        let ns_name = (
            svc["metadata"]["namespace"].as_str().unwrap_or_default(),
            svc["metadata"]["name"].as_str().unwrap_or_default(),
        );
        for family in families.iter().skip(ips.len()) {
            let ip = match family.as_str() {
                "IPv6" => {
                    let range = config.service_cidr_v6.ok_or_else(|| Error::NoRange {
                        service: key.clone(),
                        family: family.clone(),
                    })?;
                    if let Some(dns) = config.cluster_dns_v6.filter(|_| ns_name == DNS_SERVICE) {
                        ips.push(dns.to_string());
                        continue;
                    }
                    let ip = random_ip6(range, config.cluster_dns_v6, taken).ok_or_else(|| {
                        Error::Exhausted {
                            service: key.clone(),
                            what: "IPv6 ClusterIP",
                            range: format!("{}/{}", range.0, range.1),
                        }
                    })?;
                    taken.cluster_ips6.insert(ip);
                    ip.to_string()
                }
                _ if ns_name == DNS_SERVICE => config.cluster_dns.to_string(),
                _ => {
                    let ip = random_ip(config, taken).ok_or_else(|| Error::Exhausted {
                        service: key.clone(),
                        what: "ClusterIP",
                        range: config.service_cidr.to_string(),
                    })?;
                    taken.cluster_ips.insert(ip);
                    ip.to_string()
                }
            };
            ips.push(ip);
        }
    }
    if ips.is_empty() {
        // A headless Service written with `clusterIPs: []`: nothing to allocate.
        ips.push("None".into());
    }
    if ips != before || spec["clusterIPs"].as_array().is_none_or(Vec::is_empty) {
        patch["clusterIPs"] = json!(ips);
    }
    if spec["clusterIP"].as_str().unwrap_or_default().is_empty() {
        patch["clusterIP"] = json!(ips[0]);
    }
    if spec["ipFamilies"].as_array().is_none_or(Vec::is_empty) {
        patch["ipFamilies"] = json!(families);
    }
    if spec.get("ipFamilyPolicy").is_none() {
        // Admission defaults the policy; this covers Services stored before it did.
        let policy = if families.len() > 1 {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        patch["ipFamilyPolicy"] = json!(policy);
    }
    if matches!(kind, "NodePort" | "LoadBalancer") {
        let mut ports = spec["ports"].as_array().cloned().unwrap_or_default();
        let mut changed = false;
        for p in &mut ports {
            if p["nodePort"].as_u64().is_some_and(|n| n > 0) {
                continue;
            }
            let port = random_port(config, taken).ok_or_else(|| Error::Exhausted {
                service: key.clone(),
                what: "NodePort",
                range: format!("{}-{}", config.node_ports.0, config.node_ports.1),
            })?;
            taken.node_ports.insert(port);
            p["nodePort"] = json!(port);
            changed = true;
        }
        if changed {
            patch["ports"] = Value::Array(ports);
        }
        if spec.get("externalTrafficPolicy").is_none() {
            patch["externalTrafficPolicy"] = json!("Cluster");
        }
    }
    if spec.get("internalTrafficPolicy").is_none() {
        patch["internalTrafficPolicy"] = json!("Cluster");
    }
    Ok((patch != json!({})).then(|| json!({"spec": patch})))
}

/// The `status` patch giving a LoadBalancer Service its IP (None: nothing to do).
///
/// # Errors
/// [`Error::Exhausted`].
pub fn status_patch(
    svc: &Value,
    config: &NetworkConfig,
    taken: &mut Taken,
) -> Result<Option<Value>, Error> {
    if svc["spec"]["type"] != "LoadBalancer"
        || svc["status"]["loadBalancer"]["ingress"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    {
        return Ok(None);
    }
    let pool = config.load_balancer_pool;
    let wanted = svc["spec"]["loadBalancerIP"]
        .as_str()
        .and_then(|s| s.parse::<Ipv4Addr>().ok())
        .filter(|ip| pool.contains(*ip) && !taken.lb_ips.contains(ip));
    let ip = wanted
        .or_else(|| {
            (1..pool.size().saturating_sub(1))
                .filter_map(|n| pool.nth(n))
                .find(|ip| !taken.lb_ips.contains(ip))
        })
        .ok_or_else(|| Error::Exhausted {
            service: svc["metadata"]["name"].as_str().unwrap_or_default().into(),
            what: "LoadBalancer IP",
            range: pool.to_string(),
        })?;
    taken.lb_ips.insert(ip);
    Ok(Some(
        json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}}),
    ))
}

/// A random free ClusterIP (random, as Kubernetes allocates, so independent clusters on
/// one host rarely meet), never the network, broadcast or cluster DNS address.
fn random_ip(config: &NetworkConfig, taken: &Taken) -> Option<Ipv4Addr> {
    let range = config.service_cidr;
    let size = range.size();
    if size < 4 {
        return None;
    }
    let mut rng = rand::rng();
    let ok = |ip: &Ipv4Addr| !taken.cluster_ips.contains(ip) && *ip != config.cluster_dns;
    for _ in 0..64 {
        let ip = range.nth(rng.random_range(1..size - 1))?;
        if ok(&ip) {
            return Some(ip);
        }
    }
    (1..size - 1).filter_map(|n| range.nth(n)).find(ok)
}

/// The family (`spec.ipFamilies` spelling) of a ClusterIP; IPv4 for none or `None`.
pub fn family_of(ip: &str) -> &'static str {
    if ip.parse::<Ipv6Addr>().is_ok() {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// A random free address of the IPv6 Service range `range`, never its first (the subnet
/// router anycast address) nor `reserved` (the cluster DNS). Random over at most 2^32
/// hosts: plenty, and cheap to draw.
fn random_ip6(
    range: (Ipv6Addr, u8),
    reserved: Option<Ipv6Addr>,
    taken: &Taken,
) -> Option<Ipv6Addr> {
    let host_bits = 128 - u32::from(range.1.min(128));
    let size: u128 = 1u128 << host_bits.min(32);
    if size < 4 {
        return None;
    }
    let base = u128::from(range.0) & !((1u128 << host_bits) - 1);
    let nth = |n: u128| Ipv6Addr::from(base | n);
    let mut rng = rand::rng();
    let free = |ip: &Ipv6Addr| !taken.cluster_ips6.contains(ip) && Some(*ip) != reserved;
    for _ in 0..64 {
        let ip = nth(rng.random_range(1..size));
        if free(&ip) {
            return Some(ip);
        }
    }
    (1..size).map(nth).find(free)
}

fn random_port(config: &NetworkConfig, taken: &Taken) -> Option<u16> {
    let (low, high) = config.node_ports;
    let mut rng = rand::rng();
    for _ in 0..64 {
        let port = rng.random_range(low..=high);
        if !taken.node_ports.contains(&port) {
            return Some(port);
        }
    }
    (low..=high).find(|p| !taken.node_ports.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, spec: Value) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}, "spec": spec})
    }

    #[test]
    fn a_cluster_ip_service_gets_a_free_address_in_the_range() {
        let config = NetworkConfig::default();
        let mut taken = Taken::default();
        let s = svc(
            "a",
            "web",
            json!({"type": "ClusterIP", "ports": [{"port": 80}]}),
        );
        let patch = spec_patch(&s, &config, &mut taken).unwrap().unwrap();
        let ip: Ipv4Addr = patch["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(config.service_cidr.contains(ip) && ip != config.cluster_dns);
        assert_eq!(patch["spec"]["clusterIPs"], json!([ip.to_string()]));
        assert!(taken.cluster_ips.contains(&ip));
        assert!(
            patch["spec"]["ports"].is_null(),
            "ClusterIP needs no NodePort"
        );
    }

    #[test]
    fn kube_dns_gets_the_cluster_dns_address_and_headless_gets_none() {
        let config = NetworkConfig::default();
        let mut taken = Taken::default();
        let dns = svc("kube-system", "kube-dns", json!({"ports": [{"port": 53}]}));
        let patch = spec_patch(&dns, &config, &mut taken).unwrap().unwrap();
        assert_eq!(patch["spec"]["clusterIP"], "10.96.0.10");
        let headless = svc(
            "a",
            "sub",
            json!({"clusterIP": "None", "ports": [{"port": 1}]}),
        );
        let patch = spec_patch(&headless, &config, &mut taken).unwrap().unwrap();
        assert_eq!(patch["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn a_dual_stack_kube_dns_gets_both_cluster_dns_addresses_and_nobody_else_its_ipv6_one() {
        let config = NetworkConfig {
            // Four IPv6 addresses: 0 (never), 1, 2 and 3; the DNS takes 2.
            service_cidr_v6: Some(("fd00:10:96::".parse().unwrap(), 126)),
            cluster_dns_v6: Some("fd00:10:96::2".parse().unwrap()),
            ..NetworkConfig::default()
        };
        let mut taken = Taken::default();
        let dns = svc(
            "kube-system",
            "kube-dns",
            json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"],
                   "ports": [{"port": 53}]}),
        );
        let patch = spec_patch(&dns, &config, &mut taken).unwrap().unwrap();
        assert_eq!(
            patch["spec"]["clusterIPs"],
            json!(["10.96.0.10", "fd00:10:96::2"])
        );
        // A single-stack kube-dns that turns dual-stack keeps its IPv4 address.
        let mut upgraded = dns.clone();
        upgraded["spec"]["clusterIPs"] = json!(["10.96.0.10"]);
        upgraded["spec"]["clusterIP"] = json!("10.96.0.10");
        let patch = spec_patch(&upgraded, &config, &mut taken).unwrap().unwrap();
        assert_eq!(
            patch["spec"]["clusterIPs"],
            json!(["10.96.0.10", "fd00:10:96::2"])
        );
        let mut given = Vec::new();
        for name in ["a", "b"] {
            let s = svc(
                "x",
                name,
                json!({"ipFamilies": ["IPv6"], "ports": [{"port": 1}]}),
            );
            let patch = spec_patch(&s, &config, &mut taken).unwrap().unwrap();
            given.push(patch["spec"]["clusterIP"].as_str().unwrap().to_string());
        }
        given.sort();
        assert_eq!(given, ["fd00:10:96::1", "fd00:10:96::3"]);
        let third = svc(
            "x",
            "c",
            json!({"ipFamilies": ["IPv6"], "ports": [{"port": 1}]}),
        );
        assert!(spec_patch(&third, &config, &mut taken).is_err());
    }

    #[test]
    fn dual_stack_services_get_one_cluster_ip_per_family_in_order() {
        let config = NetworkConfig {
            service_cidr_v6: Some(("fd00:10:96::".parse().unwrap(), 112)),
            ..NetworkConfig::default()
        };
        let mut taken = Taken::default();
        let s = svc(
            "a",
            "web",
            json!({"ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "PreferDualStack",
                   "ports": [{"port": 80}]}),
        );
        let patch = spec_patch(&s, &config, &mut taken).unwrap().unwrap();
        let ips = patch["spec"]["clusterIPs"].as_array().unwrap();
        let v6: Ipv6Addr = ips[0].as_str().unwrap().parse().unwrap();
        assert_eq!(v6.segments()[..7], [0xfd00, 0x10, 0x96, 0, 0, 0, 0]);
        assert!(ips[1].as_str().unwrap().starts_with("10."), "{ips:?}");
        assert_eq!(patch["spec"]["clusterIP"], ips[0]);
        assert!(taken.cluster_ips6.contains(&v6));
        // A ClusterIP chosen by the user stays first; the other family is added after it.
        let chosen = svc(
            "a",
            "fixed",
            json!({"clusterIP": "10.100.0.5", "ipFamilies": ["IPv4", "IPv6"],
                   "ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}),
        );
        let patch = spec_patch(&chosen, &config, &mut taken).unwrap().unwrap();
        assert_eq!(patch["spec"]["clusterIPs"][0], "10.100.0.5");
        assert_eq!(
            family_of(patch["spec"]["clusterIPs"][1].as_str().unwrap()),
            "IPv6"
        );
        let single = NetworkConfig::default();
        let err = spec_patch(&s, &single, &mut taken).unwrap_err();
        assert!(err.to_string().contains("no IPv6 Service range"), "{err}");
    }

    #[test]
    fn node_ports_are_unique_and_in_range() {
        let config = NetworkConfig {
            node_ports: (30000, 30001),
            ..NetworkConfig::default()
        };
        let mut taken = Taken::default();
        let s = svc(
            "a",
            "np",
            json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}),
        );
        let patch = spec_patch(&s, &config, &mut taken).unwrap().unwrap();
        let ports: HashSet<u64> = patch["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["nodePort"].as_u64().unwrap())
            .collect();
        assert_eq!(ports, HashSet::from([30000, 30001]));
        let more = svc(
            "a",
            "np2",
            json!({"type": "NodePort", "ports": [{"port": 80}]}),
        );
        let err = spec_patch(&more, &config, &mut taken).unwrap_err();
        assert!(err.to_string().contains("NodePort"), "{err}");
    }

    #[test]
    fn load_balancers_take_pool_addresses_once() {
        let config = NetworkConfig::default();
        let mut taken = Taken::default();
        let s = svc(
            "a",
            "lb",
            json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
        );
        let first = status_patch(&s, &config, &mut taken).unwrap().unwrap();
        assert_eq!(
            first["status"]["loadBalancer"]["ingress"][0]["ip"],
            "10.99.0.1"
        );
        let second = status_patch(&s, &config, &mut taken).unwrap().unwrap();
        assert_eq!(
            second["status"]["loadBalancer"]["ingress"][0]["ip"],
            "10.99.0.2"
        );
        let mut done = s.clone();
        done["status"] = first["status"].clone();
        assert!(status_patch(&done, &config, &mut taken).unwrap().is_none());
    }
}
