//! Dual stack end to end (issue 6 items 1/3/4, manual §8.2.2 and §8.3.2): a server with an
//! IPv6 pod and Service range; VMs whose guests set the manual's `fd10:0:2::2/120`; Services
//! with `PreferDualStack`, `RequireDualStack` and `ipFamilies: [IPv6]` get IPv6 ClusterIPs
//! that lead, from the host and from another guest, to the guest's HTTP server; Endpoints
//! hold the primary family, EndpointSlices one per family; the node's cluster DNS answers
//! AAAA, and `kube-dns` is dual-stack: a guest asks its IPv6 ClusterIP over UDP and TCP.
//! The node switched IPv6 forwarding on without taking Router Advertisements from the host.
//! (With br_netfilter hooking bridged IPv6, as on the CI host, guest → ClusterIP → guest on
//! one bridge is switched at layer 2 and would pass without forwarding; the network crate's
//! `tests/ipv6_forwarding.rs` checks the routed case.)

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use oxivirt_e2e::wait_until;
use serde_json::json;

use crate::dns::guest_ssh;
use crate::support::{self, EnvServer};

/// `kube-dns`'s IPv6 ClusterIP: the 10th address of the default IPv6 Service range.
const KUBE_DNS6: &str = "fd00:10:96::a";

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

/// A DNS question of `qtype` for `name`.
fn dns_packet(name: &str, qtype: u16) -> Vec<u8> {
    let mut packet = vec![0x4f, 0x58, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        packet.push(u8::try_from(label.len()).expect("a short label"));
        packet.extend_from_slice(label.as_bytes());
    }
    packet.extend_from_slice(&[0]);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet
}

/// The A/AAAA addresses in `reply` to `query` (an empty list for NODATA), None for another
/// id or an error such as NXDOMAIN.
fn dns_addresses(query: &[u8], reply: &[u8]) -> Option<Vec<IpAddr>> {
    if reply.get(..2)? != [0x4f, 0x58] || reply.get(3)? & 0x0f != 0 {
        return None;
    }
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    // Skip the question: our own name, then type and class.
    let mut i = query.len();
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

/// One DNS question of `qtype` for `name` over UDP to `server`; the A/AAAA addresses of the
/// answer (an empty list for NODATA), None without an answer or for NXDOMAIN.
fn dns_query(server: (Ipv4Addr, u16), name: &str, qtype: u16) -> Option<Vec<IpAddr>> {
    let packet = dns_packet(name, qtype);
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    socket.send_to(&packet, server).ok()?;
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).ok()?;
    dns_addresses(&packet, &buf[..n])
}

/// The same question over TCP from the guest at `guest` (busybox `nc`, the bytes written
/// as `printf` octal escapes and read back through `od`) to `server` port 53.
fn dns_query_tcp_from_guest(
    guest: &str,
    server: &str,
    name: &str,
    qtype: u16,
) -> Option<Vec<IpAddr>> {
    let packet = dns_packet(name, qtype);
    let mut framed = u16::try_from(packet.len()).ok()?.to_be_bytes().to_vec();
    framed.extend_from_slice(&packet);
    let escaped: String = framed.iter().map(|b| format!("\\{b:03o}")).collect();
    // The pause keeps the connection open until the answer is in; `timeout` then ends nc.
    let command =
        format!("(printf '{escaped}'; sleep 2) | timeout 4 nc {server} 53 | od -An -v -tx1");
    let hex = guest_ssh(guest, &command)?;
    let bytes: Vec<u8> = hex
        .split_whitespace()
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect();
    dns_addresses(&packet, bytes.get(2..)?)
}

/// `all/forwarding` and the `accept_ra` of the host's interfaces but oxivirt's (`ox…`).
fn ipv6_conf() -> (String, Vec<(String, String)>) {
    let read = |path: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{path}"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let mut interfaces: Vec<(String, String)> = std::fs::read_dir("/proc/sys/net/ipv6/conf")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("ox") && n != "all" && n != "lo")
        .map(|n| {
            let value = read(&format!("{n}/accept_ra"));
            (n, value)
        })
        .collect();
    interfaces.sort();
    (read("all/forwarding"), interfaces)
}

/// The node forwards IPv6 for its Pods: through `force_forwarding` on its bridge where the
/// kernel has it (the host's own settings untouched), else host-wide after every interface
/// that took Router Advertisements was told to keep taking them (`accept_ra` 1 → 2).
/// Interfaces that came or went meanwhile (other tests on the host) are not compared.
fn assert_ipv6_forwarding(before: &(String, Vec<(String, String)>), bridge: &str) {
    let after = ipv6_conf();
    let force = format!("/proc/sys/net/ipv6/conf/{bridge}/force_forwarding");
    let host_wide = match std::fs::read_to_string(&force) {
        _ if before.0 == "1" => false, // forwarding already: nothing to change
        Ok(value) => {
            assert_eq!(value.trim(), "1", "{force}");
            false
        }
        Err(_) => true,
    };
    let expected_forwarding = if host_wide { "1" } else { before.0.as_str() };
    assert_eq!(after.0, expected_forwarding, "net.ipv6.conf.all.forwarding");
    for (name, was) in &before.1 {
        let Some((_, now)) = after.1.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let expected = if host_wide && was == "1" { "2" } else { was };
        assert_eq!(now, expected, "net.ipv6.conf.{name}.accept_ra (was {was})");
    }
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
    let host_before = ipv6_conf();
    let server = EnvServer::start(&[
        ("OXIVIRT_POD_CIDR_V6", "fd00:10:244::/56"),
        ("OXIVIRT_SERVICE_CIDR_V6", "fd00:10:96::/112"),
    ]);
    let k = server.kubectl();
    // The manual's §8.2.2 networkData: IPv4 by DHCP, the guest's IPv6 set statically.
    let network_data = json!(
        "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n    addresses: [ fd10:0:2::2/120 ]\n    gateway6: fd10:0:2::1\n"
    );
    let mut vm = support::vm(
        "web6",
        json!({"app": "web6"}),
        &[80],
        json!({"hostname": "web6", "subdomain": "hl6"}),
    );
    vm["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"]["networkData"] =
        network_data.clone();
    k.create(&vm.to_string());
    // A second guest, the client of the Pod → IPv6 ClusterIP → Pod checks.
    let mut client = support::vm("client6", json!({"app": "client6"}), &[], json!({}));
    client["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"]["networkData"] =
        network_data;
    k.create(&client.to_string());
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

    // The node forwards IPv6 for its Pods without costing the host its own IPv6.
    let note = k.ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].metadata.annotations.oxivirt\\.io/pod-network}",
    ]);
    let bridge = note
        .split_whitespace()
        .last()
        .filter(|b| b.starts_with("oxb"))
        .unwrap_or_else(|| panic!("no node bridge in the annotation {note:?}"));
    assert_ipv6_forwarding(&host_before, bridge);

    // Guest → IPv6 ClusterIP → the other guest: routed by the node between two Pods.
    let client_pod = support::wait_guest_ready(&k, "client6");
    let client_ip = k.ok(&["get", "pod", &client_pod, "-o", "jsonpath={.status.podIP}"]);
    let body = wait_until(
        "web6 from the client guest through the IPv6 ClusterIP",
        Duration::from_secs(90),
        || {
            guest_ssh(
                &client_ip,
                // busybox 1.35's `wget -T` crashes; `timeout` bounds it instead.
                &format!("timeout 5 wget -qO- http://[{cluster_ip6}]:8080/"),
            )
            .filter(|b| !b.trim().is_empty())
        },
    );
    assert_eq!(body.trim(), "web6:80");

    // kube-dns is dual-stack, and its IPv6 ClusterIP answers the guest over UDP and TCP.
    let kube_dns = k.json(&["get", "service", "-n", "kube-system", "kube-dns"]);
    assert_eq!(
        (
            &kube_dns["spec"]["ipFamilyPolicy"],
            &kube_dns["spec"]["ipFamilies"],
            &kube_dns["spec"]["clusterIPs"]
        ),
        (
            &json!("PreferDualStack"),
            &json!(["IPv4", "IPv6"]),
            &json!(["10.96.0.10", KUBE_DNS6])
        )
    );
    let name = "web6.default.svc.cluster.local";
    let lookup = wait_until(
        "AAAA from kube-dns's IPv6 ClusterIP over UDP, asked by the guest",
        Duration::from_secs(30),
        || {
            guest_ssh(
                &client_ip,
                &format!("nslookup -type=AAAA {name} {KUBE_DNS6}"),
            )
            .filter(|out| {
                // busybox: "Name:\t<name>" then "Address: <ip>" per record.
                out.lines().any(|l| {
                    l.starts_with("Address")
                        && l.split_whitespace().last() == Some(cluster_ip6.to_string().as_str())
                })
            })
        },
    );
    assert!(
        lookup.contains(KUBE_DNS6),
        "the answer came from elsewhere:\n{lookup}"
    );
    let tcp = wait_until(
        "AAAA from kube-dns's IPv6 ClusterIP over TCP, asked by the guest",
        Duration::from_secs(30),
        || dns_query_tcp_from_guest(&client_ip, KUBE_DNS6, name, 28).filter(|a| !a.is_empty()),
    );
    assert_eq!(tcp, [IpAddr::V6(cluster_ip6)]);
    let a = dns_query_tcp_from_guest(&client_ip, KUBE_DNS6, name, 1);
    assert_eq!(
        a,
        Some(vec![IpAddr::V4(web6_ips[0].parse().expect("IPv4"))])
    );
}
