//! A VM on the pod network with the (default) masquerade binding.

use std::time::Duration;

use oxivirt_e2e::wait_until;
use serde_json::json;

use crate::support::{self, curl, NetServer};

#[test]
fn a_vm_gets_its_address_by_dhcp_and_the_host_reaches_it_through_the_pod_ip() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let vm = support::vm("web", json!({"app": "web"}), &[80, 49152, 49153], json!({}));
    k.create(&vm.to_string());
    let pod = support::wait_guest_ready(&k, "web");
    let log = k.ok(&["logs", &pod, "-c", "guest-console-log"]);
    assert!(
        log.contains("dhcp: eth0 10.0.2.2/24 via 10.0.2.1 dns 10.96.0.10"),
        "the guest did not get the masquerade lease from the launcher:\n{log}"
    );
    let pod_ip = k.ok(&["get", "pod", &pod, "-o", "jsonpath={.status.podIP}"]);
    let bridge_cidr = k.ok(&["get", "nodes", "-o", "jsonpath={.items[0].spec.podCIDR}"]);
    let prefix = bridge_cidr
        .rsplit_once('.')
        .map(|(p, _)| p)
        .unwrap_or_default()
        .to_string();
    assert!(
        pod_ip.starts_with(&prefix),
        "pod IP {pod_ip} is not in the node's {bridge_cidr}"
    );
    assert_eq!(
        k.ok(&["get", "pod", &pod, "-o", "jsonpath={.status.podIPs[0].ip}"]),
        pod_ip
    );
    let interfaces = wait_until("VMI status.interfaces", Duration::from_secs(30), || {
        let v = k.json(&["get", "vmi", "web"]);
        v["status"]["interfaces"]
            .as_array()
            .filter(|l| !l.is_empty())
            .cloned()
    });
    assert_eq!(interfaces[0]["name"], "default");
    assert_eq!(interfaces[0]["ipAddress"], pod_ip.as_str());
    assert_eq!(interfaces[0]["ipAddresses"], json!([pod_ip]));
    assert!(interfaces[0]["mac"].as_str().is_some_and(|m| m.len() == 17));
    // The VMI printer column IP shows it too.
    assert!(k.ok(&["get", "vmi", "web"]).contains(&pod_ip));

    let body = wait_until(
        "the guest's HTTP server through the pod IP",
        Duration::from_secs(30),
        || curl(&format!("http://{pod_ip}/")),
    );
    assert_eq!(body, "web:80");
    // Upstream reserves 49152/49153: the guest listens there, yet the pod IP does not forward.
    for reserved in [49152, 49153] {
        assert_eq!(
            curl(&format!("http://{pod_ip}:{reserved}/")),
            None,
            "reserved port {reserved} reached the guest"
        );
    }
}

#[test]
fn listed_ports_are_the_only_ones_forwarded_to_the_guest() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let extra = json!({
        "domain": {
            "devices": {
                "disks": [{"name": "root", "disk": {"bus": "virtio"}}, {"name": "cloudinit", "disk": {"bus": "virtio"}}],
                "interfaces": [{"name": "default", "masquerade": {}, "ports": [{"port": 8080}]}]
            },
            "resources": {"requests": {"memory": "256Mi"}}
        },
        // A masquerade network of the user's choice instead of 10.0.2.0/24.
        "networks": [{"name": "default", "pod": {"vmNetworkCIDR": "10.11.12.0/24"}}]
    });
    let vm = support::vm("ports", json!({"app": "ports"}), &[80, 8080], extra);
    k.create(&vm.to_string());
    let pod = support::wait_guest_ready(&k, "ports");
    let log = k.ok(&["logs", &pod, "-c", "guest-console-log"]);
    assert!(
        log.contains("dhcp: eth0 10.11.12.2/24 via 10.11.12.1"),
        "the guest did not get 10.11.12.2 from vmNetworkCIDR by DHCP:\n{log}"
    );
    let pod_ip = k.ok(&["get", "pod", &pod, "-o", "jsonpath={.status.podIP}"]);
    let body = wait_until(
        "port 8080 through the pod IP",
        Duration::from_secs(30),
        || curl(&format!("http://{pod_ip}:8080/")),
    );
    assert_eq!(body, "ports:8080");
    assert_eq!(
        curl(&format!("http://{pod_ip}:80/")),
        None,
        "port 80 is not in `ports` yet reached the guest"
    );
    // `virtctl expose` without --port serves the interface's listed ports.
    let said = crate::services::virtctl(&server, &["expose", "vm", "ports", "--name", "ports-svc"]);
    assert_eq!(said, "Service ports-svc successfully exposed for vm ports");
    assert_eq!(
        k.ok(&[
            "get",
            "svc",
            "ports-svc",
            "-o",
            "jsonpath={.spec.ports[*].port}"
        ]),
        "8080"
    );
    let cluster_ip =
        support::wait_service_field(&k, "a ClusterIP", "ports-svc", "{.spec.clusterIP}");
    let body = wait_until(
        "port 8080 through the introspected Service",
        Duration::from_secs(10),
        || curl(&format!("http://{cluster_ip}:8080/")),
    );
    assert_eq!(body, "ports:8080");
}

#[test]
fn with_the_bridge_binding_the_guest_owns_the_pod_ip() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let extra = json!({
        "domain": {
            "devices": {
                "disks": [{"name": "root", "disk": {"bus": "virtio"}}, {"name": "cloudinit", "disk": {"bus": "virtio"}}],
                "interfaces": [{"name": "default", "bridge": {}, "macAddress": "02:00:00:00:be:ef"}]
            },
            "resources": {"requests": {"memory": "256Mi"}}
        },
        "networks": [{"name": "default", "pod": {}}]
    });
    k.create(&support::vm("bridged", json!({"app": "bridged"}), &[80], extra).to_string());
    let pod = support::wait_guest_ready(&k, "bridged");
    let pod_ip = k.ok(&["get", "pod", &pod, "-o", "jsonpath={.status.podIP}"]);
    let gateway = k
        .ok(&["get", "nodes", "-o", "jsonpath={.items[0].spec.podCIDR}"])
        .replace(".0/24", ".1");
    let log = k.ok(&["logs", &pod, "-c", "guest-console-log"]);
    assert!(
        log.contains(&format!("dhcp: eth0 {pod_ip}/24 via {gateway}")),
        "the guest did not get the pod IP {pod_ip} by DHCP:\n{log}"
    );
    let interfaces = wait_until("VMI status.interfaces", Duration::from_secs(30), || {
        k.json(&["get", "vmi", "bridged"])["status"]["interfaces"]
            .as_array()
            .filter(|l| !l.is_empty())
            .cloned()
    });
    assert_eq!(interfaces[0]["mac"], "02:00:00:00:be:ef");
    assert_eq!(interfaces[0]["ipAddress"], pod_ip.as_str());
    let body = wait_until("the guest at the pod IP", Duration::from_secs(30), || {
        curl(&format!("http://{pod_ip}/"))
    });
    assert_eq!(body, "bridged:80");
}

#[test]
fn dual_stack_masquerade_routes_the_pods_ipv6_address_to_the_guests_fd10_0_2_2() {
    crate::skip_unless_possible!();
    let server = support::EnvServer::start(&[("OXIVIRT_POD_CIDR_V6", "fd00:10:244::/56")]);
    let k = server.kubectl();
    let mut vm = support::vm("v6", json!({"app": "v6"}), &[80], json!({}));
    // The manual's §8.2.2 networkData: IPv4 by DHCP, the guest's IPv6 set statically.
    vm["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"]["networkData"] = json!(
        "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n    addresses: [ fd10:0:2::2/120 ]\n    gateway6: fd10:0:2::1\n"
    );
    k.create(&vm.to_string());
    let pod = support::wait_guest_ready(&k, "v6");
    let ips = k.ok(&["get", "pod", &pod, "-o", "jsonpath={.status.podIPs[*].ip}"]);
    let ips: Vec<&str> = ips.split_whitespace().collect();
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert!(ips[1].starts_with("fd00:10:244:"), "{ips:?}");
    let addresses = wait_until(
        "both addresses in status.interfaces",
        Duration::from_secs(30),
        || {
            let v = k.json(&["get", "vmi", "v6"]);
            let list = v["status"]["interfaces"][0]["ipAddresses"]
                .as_array()?
                .clone();
            (list.len() == 2).then_some(list)
        },
    );
    assert_eq!(addresses[1], ips[1]);
    let body = wait_until(
        "the guest through the Pod's IPv6 address",
        Duration::from_secs(30),
        || {
            let out = std::process::Command::new("curl")
                .args([
                    "-s",
                    "-g",
                    "--max-time",
                    "3",
                    &format!("http://[{}]/", ips[1]),
                ])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        },
    );
    assert_eq!(body, "v6:80");
}
