//! Dual stack end to end (issue 6 items 1/3/4, manual §8.2.2 and §8.3.2): a server with an
//! IPv6 pod and Service range; a VM whose guest sets the manual's `fd10:0:2::2/120`; Services
//! with `PreferDualStack`, `RequireDualStack` and `ipFamilies: [IPv6]` get IPv6 ClusterIPs
//! that lead, from the host, to the guest's HTTP server; Endpoints hold the primary family,
//! EndpointSlices one per family; the node's cluster DNS answers AAAA.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use oxivirt_e2e::wait_until;
use serde_json::json;

use crate::support::{self, EnvServer};

/// `curl -g` of `url` (IPv6 literals in brackets): the body on success.
fn curl6(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "-g", "--max-time", "3", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One DNS question of `qtype` for `name` over UDP to `server`; the A/AAAA addresses of the
/// answer (an empty list for NODATA), None without an answer or for NXDOMAIN.
fn dns_query(server: (Ipv4Addr, u16), name: &str, qtype: u16) -> Option<Vec<IpAddr>> {
    let mut packet = vec![0x4f, 0x58, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        packet.push(u8::try_from(label.len()).ok()?);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.extend_from_slice(&[0]);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    socket.send_to(&packet, server).ok()?;
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).ok()?;
    let reply = &buf[..n];
    if reply.get(..2)? != [0x4f, 0x58] || reply.get(3)? & 0x0f != 0 {
        return None;
    }
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    // Skip the question: our own name, then type and class.
    let mut i = packet.len();
    let mut out = Vec::new();
    for _ in 0..answers {
        // The owner name: a compression pointer or labels.
        if reply.get(i)? & 0xc0 == 0xc0 {
            i += 2;
        } else {
            while *reply.get(i)? != 0 {
                i += 1 + usize::from(reply[i]);
            }
            i += 1;
        }
        let rtype = u16::from_be_bytes([*reply.get(i)?, *reply.get(i + 1)?]);
        let len = usize::from(u16::from_be_bytes([*reply.get(i + 8)?, *reply.get(i + 9)?]));
        let data = reply.get(i + 10..i + 10 + len)?;
        match (rtype, len) {
            (1, 4) => out.push(IpAddr::from(<[u8; 4]>::try_from(data).ok()?)),
            (28, 16) => out.push(IpAddr::from(<[u8; 16]>::try_from(data).ok()?)),
            _ => {}
        }
        i += 10 + len;
    }
    Some(out)
}

/// The node's DNS server: it listens on the node bridge address (`.1` of the node's pod
/// prefix) at a port it picked; the Service proxy sends guests' `kube-dns:53` there.
fn node_dns(k: &oxivirt_e2e::Kubectl) -> (Ipv4Addr, u16) {
    let cidr = k.ok(&["get", "nodes", "-o", "jsonpath={.items[0].spec.podCIDR}"]);
    let network: Ipv4Addr = cidr
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no pod CIDR on the node: {cidr:?}"));
    let gateway = Ipv4Addr::from(u32::from(network) + 1);
    wait_until("the node's DNS server", Duration::from_secs(30), || {
        let out = Command::new("ss").args(["-Hlnu"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .find_map(|local| local.strip_prefix(&format!("{gateway}:"))?.parse().ok())
            .map(|port| (gateway, port))
    })
}

#[test]
fn dual_stack_services_lead_to_the_guest_over_ipv6_and_dns_answers_aaaa() {
    crate::skip_unless_possible!();
    let server = EnvServer::start(&[
        ("OXIVIRT_POD_CIDR_V6", "fd00:10:244::/56"),
        ("OXIVIRT_SERVICE_CIDR_V6", "fd00:10:96::/112"),
    ]);
    let k = server.kubectl();
    let mut vm = support::vm(
        "web6",
        json!({"app": "web6"}),
        &[80],
        json!({"hostname": "web6", "subdomain": "hl6"}),
    );
    // The manual's §8.2.2 networkData: IPv4 by DHCP, the guest's IPv6 set statically.
    vm["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"]["networkData"] = json!(
        "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n    addresses: [ fd10:0:2::2/120 ]\n    gateway6: fd10:0:2::1\n"
    );
    k.create(&vm.to_string());
    let service = |name: &str, extra: serde_json::Value| {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "web6"},
                     "ports": [{"name": "http", "port": 8080, "targetPort": 80, "protocol": "TCP"}]}});
        for (key, value) in extra.as_object().into_iter().flatten() {
            svc["spec"][key] = value.clone();
        }
        svc.to_string()
    };
    k.create(&service(
        "web6",
        json!({"ipFamilyPolicy": "PreferDualStack"}),
    ));
    k.create(&service("web6-only", json!({"ipFamilies": ["IPv6"]})));
    k.create(&service(
        "hl6",
        json!({"clusterIP": "None", "ipFamilyPolicy": "RequireDualStack"}),
    ));
    // A dual-stack cluster accepts RequireDualStack and gives PreferDualStack both families.
    let addresses = |name: &str| {
        wait_until(
            &format!("the addresses of Service {name}"),
            Duration::from_secs(10),
            || {
                let v = k.json(&["get", "service", name]);
                let ips: Vec<String> = v["spec"]["clusterIPs"]
                    .as_array()?
                    .iter()
                    .filter_map(|ip| ip.as_str().map(str::to_string))
                    .collect();
                let families = v["spec"]["ipFamilies"].clone();
                let policy = v["spec"]["ipFamilyPolicy"].as_str()?.to_string();
                (!ips.is_empty()).then_some((ips, families, policy))
            },
        )
    };
    let (web6_ips, families, policy) = addresses("web6");
    assert_eq!(families, json!(["IPv4", "IPv6"]));
    assert_eq!(policy, "PreferDualStack");
    assert_eq!(web6_ips.len(), 2, "{web6_ips:?}");
    let cluster_ip6: Ipv6Addr = web6_ips[1].parse().expect("an IPv6 ClusterIP");
    assert_eq!(
        cluster_ip6.segments()[..7],
        [0xfd00, 0x10, 0x96, 0, 0, 0, 0]
    );
    let (only_ips, families, policy) = addresses("web6-only");
    assert_eq!(
        (families, policy.as_str()),
        (json!(["IPv6"]), "SingleStack")
    );
    assert_eq!(only_ips.len(), 1);
    assert!(only_ips[0].parse::<Ipv6Addr>().is_ok(), "{only_ips:?}");
    let (hl_ips, families, _) = addresses("hl6");
    assert_eq!(
        (hl_ips, families),
        (vec!["None".to_string()], json!(["IPv4", "IPv6"]))
    );

    let pod = support::wait_guest_ready(&k, "web6");
    let pod_ips = k.ok(&["get", "pod", &pod, "-o", "jsonpath={.status.podIPs[*].ip}"]);
    let pod_ips: Vec<&str> = pod_ips.split_whitespace().collect();
    assert_eq!(pod_ips.len(), 2, "{pod_ips:?}");
    let (pod_ip, pod_ip6) = (pod_ips[0], pod_ips[1]);
    let reported = wait_until(
        "both families in the VMI's status.interfaces",
        Duration::from_secs(30),
        || {
            let v = k.json(&["get", "vmi", "web6"]);
            let list = v["status"]["interfaces"][0]["ipAddresses"].clone();
            (list.as_array()?.len() == 2).then_some(list)
        },
    );
    assert_eq!(reported, json!([pod_ip, pod_ip6]));

    // From the host, through the IPv6 ClusterIPs, to the guest's httpd on fd10:0:2::2.
    let body = wait_until(
        "the guest through the IPv6 ClusterIP",
        Duration::from_secs(60),
        || curl6(&format!("http://[{cluster_ip6}]:8080/")),
    );
    assert_eq!(body, "web6:80");
    let body = wait_until(
        "the guest through the IPv4 ClusterIP of the same Service",
        Duration::from_secs(10),
        || curl6(&format!("http://{}:8080/", web6_ips[0])),
    );
    assert_eq!(body, "web6:80");
    let body = wait_until(
        "the guest through the IPv6-only Service",
        Duration::from_secs(10),
        || curl6(&format!("http://[{}]:8080/", only_ips[0])),
    );
    assert_eq!(body, "web6:80");

    // Endpoints carry the primary family; the EndpointSlices one family each.
    assert_eq!(
        k.ok(&[
            "get",
            "endpoints",
            "web6",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip}"
        ]),
        pod_ip
    );
    assert_eq!(
        k.ok(&[
            "get",
            "endpoints",
            "web6-only",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip}"
        ]),
        pod_ip6
    );
    let slices = k.json(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web6",
    ]);
    let mut by_family: Vec<(String, String)> = slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["addressType"].as_str().unwrap_or_default().to_string(),
                s["endpoints"][0]["addresses"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    by_family.sort();
    assert_eq!(
        by_family,
        [
            ("IPv4".to_string(), pod_ip.to_string()),
            ("IPv6".to_string(), pod_ip6.to_string())
        ]
    );

    // The cluster DNS answers AAAA (and still A) for the Service, the headless Service and
    // the VM's hostname under it.
    let dns = node_dns(&k);
    let v6 = |s: &str| IpAddr::V6(s.parse().expect("IPv6"));
    let aaaa = wait_until("AAAA for the Service", Duration::from_secs(10), || {
        dns_query(dns, "web6.default.svc.cluster.local", 28).filter(|a| !a.is_empty())
    });
    assert_eq!(aaaa, [IpAddr::V6(cluster_ip6)]);
    let a = dns_query(dns, "web6.default.svc.cluster.local", 1).unwrap_or_default();
    assert_eq!(a, [IpAddr::V4(web6_ips[0].parse().expect("IPv4"))]);
    let headless = wait_until(
        "AAAA for the headless Service",
        Duration::from_secs(10),
        || dns_query(dns, "hl6.default.svc.cluster.local", 28).filter(|a| !a.is_empty()),
    );
    assert_eq!(headless, [v6(pod_ip6)]);
    let host = dns_query(dns, "web6.hl6.default.svc.cluster.local", 28).unwrap_or_default();
    assert_eq!(host, [v6(pod_ip6)]);
    let only = dns_query(dns, "web6-only.default.svc.cluster.local", 1);
    assert_eq!(only, Some(vec![]), "an IPv6-only Service has no A record");
}
