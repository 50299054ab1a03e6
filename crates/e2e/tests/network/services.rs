//! Services in front of VMs: `virtctl expose` with ClusterIP, NodePort and LoadBalancer,
//! Endpoints/EndpointSlices, and ssh to the guest's dropbear through a NodePort.

use std::process::Command;
use std::time::{Duration, Instant};

use oxivirt_e2e::{virtctl_bin, wait_until};
use serde_json::json;

use crate::support::{self, curl, NetServer};

/// Runs `virtctl args…` against `server`; its stdout.
pub(crate) fn virtctl(server: &NetServer, args: &[&str]) -> String {
    let out = Command::new(virtctl_bin())
        .arg("--kubeconfig")
        .arg(server.server.kubeconfig())
        .args(args)
        .output()
        .expect("cannot run virtctl");
    assert!(
        out.status.success(),
        "virtctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn virtctl_expose_makes_the_guest_reachable_by_cluster_ip_node_port_load_balancer_and_ssh() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    k.create(&support::vm("db", json!({"app": "db"}), &[80], json!({})).to_string());
    let pod = support::wait_guest_ready(&k, "db");

    let started = Instant::now();
    let said = virtctl(
        &server,
        &[
            "expose",
            "vm",
            "db",
            "--name",
            "db-http",
            "--port",
            "8080",
            "--target-port",
            "80",
        ],
    );
    assert_eq!(said, "Service db-http successfully exposed for vm db");
    let cluster_ip = support::wait_service_field(&k, "a ClusterIP", "db-http", "{.spec.clusterIP}");
    let body = wait_until(
        "the guest through the ClusterIP",
        Duration::from_secs(10),
        || curl(&format!("http://{cluster_ip}:8080/")),
    );
    eprintln!(
        "ClusterIP Service reachable {:?} after virtctl expose",
        started.elapsed()
    );
    assert_eq!(body, "db:80");

    let pod_ip = k.ok(&["get", "pod", &pod, "-o", "jsonpath={.status.podIP}"]);
    assert_eq!(
        k.ok(&[
            "get",
            "endpoints",
            "db-http",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}"
        ]),
        pod_ip
    );
    assert_eq!(
        k.ok(&[
            "get",
            "endpoints",
            "db-http",
            "-o",
            "jsonpath={.subsets[0].ports[0].port}"
        ]),
        "80"
    );
    let slice = k.json(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=db-http",
    ]);
    assert_eq!(
        slice["items"][0]["endpoints"][0]["addresses"][0],
        pod_ip.as_str()
    );
    assert_eq!(
        slice["items"][0]["endpoints"][0]["conditions"]["ready"],
        true
    );

    virtctl(
        &server,
        &[
            "expose", "vm", "db", "--name", "db-np", "--type", "NodePort", "--port", "80",
        ],
    );
    let node_ip = k.ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].status.addresses[0].address}",
    ]);
    let node_port =
        support::wait_service_field(&k, "a NodePort", "db-np", "{.spec.ports[0].nodePort}");
    let port: u16 = node_port.parse().unwrap();
    assert!(
        (30000..=32767).contains(&port),
        "NodePort {port} out of range"
    );
    let body = wait_until(
        "the guest through the NodePort",
        Duration::from_secs(10),
        || curl(&format!("http://{node_ip}:{node_port}/")),
    );
    assert_eq!(body, "db:80");

    virtctl(
        &server,
        &[
            "expose",
            "vmi",
            "db",
            "--name",
            "db-lb",
            "--type",
            "LoadBalancer",
            "--port",
            "8081",
            "--target-port",
            "80",
        ],
    );
    let lb_ip = support::wait_service_field(
        &k,
        "a LoadBalancer IP",
        "db-lb",
        "{.status.loadBalancer.ingress[0].ip}",
    );
    let body = wait_until(
        "the guest through the LoadBalancer IP",
        Duration::from_secs(10),
        || curl(&format!("http://{lb_ip}:8081/")),
    );
    assert_eq!(body, "db:80");

    virtctl(
        &server,
        &[
            "expose", "vm", "db", "--name", "db-ssh", "--type", "NodePort", "--port", "22",
        ],
    );
    let ssh_port = support::wait_service_field(
        &k,
        "the ssh NodePort",
        "db-ssh",
        "{.spec.ports[0].nodePort}",
    );
    let key = support::ssh_key_path();
    let hostname = wait_until("ssh through the NodePort", Duration::from_secs(30), || {
        let out = Command::new("ssh")
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
            ])
            .arg("-i")
            .arg(&key)
            .args(["-p", &ssh_port, &format!("root@{node_ip}"), "hostname"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    assert_eq!(hostname, "db");

    // Deleting the Service removes its rules: the ClusterIP no longer leads to the guest
    // (this host's network may still answer for unknown addresses, so compare the body).
    k.ok(&["delete", "svc", "db-http"]);
    wait_until(
        "the deleted Service to stop leading to the guest",
        Duration::from_secs(10),
        || (curl(&format!("http://{cluster_ip}:8080/")).as_deref() != Some("db:80")).then_some(()),
    );
}

#[test]
fn a_single_stack_cluster_refuses_require_dual_stack_and_gives_prefer_dual_stack_one_ipv4_address()
{
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let service = |name: &str, extra: serde_json::Value| {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]}});
        for (key, value) in extra.as_object().into_iter().flatten() {
            svc["spec"][key] = value.clone();
        }
        svc.to_string()
    };
    let refused = k.run_stdin(
        &["create", "-f", "-"],
        &service("required", json!({"ipFamilyPolicy": "RequireDualStack"})),
    );
    assert!(!refused.status.success(), "RequireDualStack was accepted");
    assert!(
        refused.stderr.contains("The Service \"required\" is invalid: spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"),
        "{}",
        refused.stderr
    );
    let refused = k.run_stdin(
        &["create", "-f", "-"],
        &service("six", json!({"ipFamilies": ["IPv6"]})),
    );
    assert!(
        refused.stderr.contains(
            "spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"
        ),
        "{}",
        refused.stderr
    );
    k.create(&service(
        "preferred",
        json!({"ipFamilyPolicy": "PreferDualStack"}),
    ));
    let families = wait_until("the Service's addresses", Duration::from_secs(10), || {
        let out = k.ok(&[
            "get",
            "service",
            "preferred",
            "-o",
            "jsonpath={.spec.ipFamilies} {.spec.clusterIPs}",
        ]);
        out.contains("IPv4").then_some(out)
    });
    assert!(families.starts_with("[\"IPv4\"] [\"10."), "{families}");
}
