//! Two nodes: the server's own and a second `oxivirt agent` on the same host, each with its
//! pod prefix and bridge; a guest on one reaches a guest on the other by pod IP.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use oxivirt_e2e::{oxivirt_bin, wait_until};
use serde_json::json;

use crate::support::{self, NetServer};

/// The second node's agent, killed when the test ends.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn guest_ssh(ip: &str, command: &str) -> Option<String> {
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
        .arg(support::ssh_key_path())
        .arg(format!("root@{ip}"))
        .arg(command)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn an_agent_joined_with_user_credentials_refuses_to_start_and_names_the_right_ones() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let dir = server.server.data_dir().join("node-user");
    let out = Command::new(oxivirt_bin())
        .arg("agent")
        .arg("--kubeconfig")
        .arg(server.server.kubeconfig())
        .args(["--node-name", "node-user", "--data-dir"])
        .arg(&dir)
        .env("OXIVIRT_ACCEL", "tcg")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the agent ran with admin credentials: {stderr}"
    );
    assert!(
        stderr.contains("components.kubeconfig") && stderr.contains("Scheduled"),
        "{stderr}"
    );
    assert!(
        !server.kubectl().exists(&["node", "node-user"]),
        "the refused agent registered a Node"
    );
}

#[test]
fn guests_on_two_nodes_reach_each_other_by_pod_ip() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let first = k.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let node2_dir = server.server.data_dir().join("node2");
    std::fs::create_dir_all(&node2_dir).unwrap();
    let log = std::fs::File::create(server.server.scratch().join("node2.log")).unwrap();
    let _agent = Agent(
        Command::new(oxivirt_bin())
            .arg("agent")
            .arg("--kubeconfig")
            .arg(server.server.data_dir().join("components.kubeconfig"))
            .args(["--node-name", "node2", "--data-dir"])
            .arg(&node2_dir)
            .env("OXIVIRT_ACCEL", "tcg")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start the second agent"),
    );
    let cidrs = wait_until(
        "two nodes with pod prefixes",
        Duration::from_secs(60),
        || {
            let out = k.ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"]);
            let list: Vec<String> = out.split_whitespace().map(str::to_string).collect();
            (list.len() == 2).then_some(list)
        },
    );
    assert_ne!(cidrs[0], cidrs[1], "two nodes share a pod prefix");
    for (name, node) in [("one", first.as_str()), ("two", "node2")] {
        let vm = support::vm(
            name,
            json!({"app": name}),
            &[80],
            json!({"nodeSelector": {"kubernetes.io/hostname": node}}),
        );
        k.create(&vm.to_string());
    }
    let pod_one = support::wait_guest_ready(&k, "one");
    let pod_two = support::wait_guest_ready(&k, "two");
    wait_until("VMI two Running on node2", Duration::from_secs(30), || {
        let out = k.ok(&[
            "get",
            "vmi",
            "two",
            "-o",
            "jsonpath={.status.phase} {.status.nodeName}",
        ]);
        (out == "Running node2").then_some(())
    });
    let ip = |pod: &str| k.ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]);
    let (one, two) = (ip(&pod_one), ip(&pod_two));
    assert_eq!(
        k.ok(&["get", "pod", &pod_two, "-o", "jsonpath={.spec.nodeName}"]),
        "node2"
    );
    let prefix = |ip: &str| {
        ip.rsplit_once('.')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default()
    };
    assert_ne!(
        prefix(&one),
        prefix(&two),
        "both Pods got addresses of one node"
    );
    let body = wait_until("one → two by pod IP", Duration::from_secs(60), || {
        guest_ssh(&one, &format!("wget -qO- http://{two}/")).filter(|b| !b.is_empty())
    });
    assert_eq!(body, "two:80");
}

/// A host made of a network namespace `oxi-h<pid>` joined to this machine by a veth pair
/// (`oxh<pid>a` here with `.1`, `oxh<pid>b` inside with `.2` of a /24 of 10.213.0.0/16,
/// and `::1`/`::2` of `fd00:213:<n>::/64`), its default routes through this machine, which
/// routes for it (forwarding on its end of the link, as a router between hosts would).
/// Forwarding inside is left to the node agent. Removed when dropped.
struct NsHost {
    netns: String,
    host_link: String,
    host_ip: String,
    ip: String,
    ip6: String,
}

impl NsHost {
    fn create() -> Self {
        let pid = std::process::id();
        let third = pid % 200 + 20;
        let host = NsHost {
            netns: format!("oxi-h{pid}"),
            host_link: format!("oxh{pid}a"),
            host_ip: format!("10.213.{third}.1"),
            ip: format!("10.213.{third}.2"),
            ip6: format!("fd00:213:{third}::2"),
        };
        let (ns, a, b) = (&host.netns, &host.host_link, format!("oxh{pid}b"));
        // IPv6 forwarding for this end of the link only, where the kernel has the switch.
        let force = format!("/proc/sys/net/ipv6/conf/{a}/force_forwarding");
        let script = format!(
            "set -e; ip netns add {ns}; ip link add {a} type veth peer name {b}; \
             ip link set {b} netns {ns}; ip addr add {}/24 dev {a}; \
             ip -6 addr add fd00:213:{third}::1/64 dev {a} nodad; ip link set {a} up; \
             sysctl -qw net.ipv4.conf.{a}.forwarding=1; if [ -e {force} ]; then echo 1 > {force}; fi; \
             ip -n {ns} link set lo up; ip -n {ns} addr add {}/24 dev {b}; \
             ip -n {ns} -6 addr add {}/64 dev {b} nodad; ip -n {ns} link set {b} up; \
             ip -n {ns} route add default via {}; ip -n {ns} -6 route add default via fd00:213:{third}::1",
            host.host_ip, host.ip, host.ip6, host.host_ip
        );
        let out = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert!(
            out.status.success(),
            "cannot make the namespace host: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        host
    }
}

impl Drop for NsHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .status();
    }
}

/// Forwards TCP connections to `listen_ip:<returned port>` to `target` (the test registry
/// listens on loopback, which another network namespace cannot reach).
fn tcp_forward(listen_ip: &str, target: String) -> u16 {
    let listener = std::net::TcpListener::bind((listen_ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            let (mut c1, mut u1) = (conn.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (mut c2, mut u2) = (conn, upstream);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut u1);
                let _ = u1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// The manual's §8.2.2 networkData: IPv4 by DHCP, the guest's IPv6 set statically.
const DUAL_STACK_NETWORK_DATA: &str = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n    addresses: [ fd10:0:2::2/120 ]\n    gateway6: fd10:0:2::1\n";

/// Both nodes are dual stack: the IPv6 pod range of the cluster.
const POD_CIDR_V6: &str = "fd00:10:244::/56";

#[test]
fn a_guest_on_a_node_in_its_own_network_namespace_runs_and_reaches_the_first_node() {
    crate::skip_unless_possible!();
    let host = NsHost::create();
    let server = support::EnvServer::start_on(
        &format!("{}:0", host.host_ip),
        &[("OXIVIRT_POD_CIDR_V6", POD_CIDR_V6)],
    );
    let k = server.kubectl();
    let first = k.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    // The second node pulls the guest through the host's end of the veth: an insecure
    // registry as far as it knows, so HyperConverged must list it.
    let image = support::guest_image();
    let (registry, path) = image.split_once('/').unwrap();
    let port = tcp_forward(&host.host_ip, registry.to_string());
    let remote_registry = format!("{}:{port}", host.host_ip);
    k.ok(&[
        "patch",
        "hyperconverged",
        "kubevirt-hyperconverged",
        "-n",
        "openshift-cnv",
        "--type",
        "merge",
        "-p",
        &json!({"spec": {"storageImport": {"insecureRegistries": [remote_registry]}}}).to_string(),
    ]);
    let node2_dir = server.data_dir().join("node2");
    std::fs::create_dir_all(&node2_dir).unwrap();
    let log_path = server.data_dir().join("node2.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let agent = Agent(
        Command::new("ip")
            .args(["netns", "exec", &host.netns])
            .arg(oxivirt_bin())
            .arg("agent")
            .arg("--kubeconfig")
            .arg(server.data_dir().join("components.kubeconfig"))
            .args(["--node-name", "node2", "--data-dir"])
            .arg(&node2_dir)
            .env("OXIVIRT_ACCEL", "tcg")
            .env("OXIVIRT_POD_CIDR_V6", POD_CIDR_V6)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start the second agent"),
    );
    let node2_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // A dual-stack node: a pod prefix and an InternalIP of each family.
    let (prefixes, addresses) =
        wait_until("node2 with its addresses", Duration::from_secs(60), || {
            let out = k.run(&["get", "node", "node2", "-o", "json"]).stdout;
            let node: serde_json::Value = serde_json::from_str(&out).ok()?;
            let prefixes = node["spec"]["podCIDRs"].as_array()?.clone();
            let addresses: Vec<String> = node["status"]["addresses"]
                .as_array()?
                .iter()
                .filter(|a| a["type"] == "InternalIP")
                .filter_map(|a| a["address"].as_str().map(str::to_string))
                .collect();
            (prefixes.len() == 2).then_some((prefixes, addresses))
        });
    assert_eq!(
        addresses,
        [host.ip.clone(), host.ip6.clone()],
        "node2's InternalIPs are not its namespace's addresses"
    );
    assert!(
        prefixes[1]
            .as_str()
            .is_some_and(|p| p.starts_with("fd00:10:244:") && p.ends_with("::/64")),
        "{prefixes:?}"
    );
    let mut one = support::vm(
        "one",
        json!({"app": "one"}),
        &[80],
        json!({"nodeSelector": {"kubernetes.io/hostname": first}}),
    );
    one["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"]["networkData"] =
        json!(DUAL_STACK_NETWORK_DATA);
    k.create(&one.to_string());
    let mut two = support::vm(
        "two",
        json!({"app": "two"}),
        &[80],
        json!({"nodeSelector": {"kubernetes.io/hostname": "node2"}}),
    );
    two["spec"]["template"]["spec"]["volumes"][0]["containerDisk"]["image"] =
        json!(format!("{remote_registry}/{path}"));
    two["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"]["networkData"] =
        json!(DUAL_STACK_NETWORK_DATA);
    k.create(&two.to_string());
    let running = std::panic::catch_unwind(|| {
        wait_until("VMI two Running on node2", support::BOOT_TIMEOUT, || {
            let out = k
                .run(&[
                    "get",
                    "vmi",
                    "two",
                    "-o",
                    "jsonpath={.status.phase} {.status.nodeName}",
                ])
                .stdout;
            (out == "Running node2").then_some(())
        })
    });
    if running.is_err() {
        let run_dirs = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for f in {}/pods/*/*; do echo \"== $f\"; case $f in *.json|*.log|*.pid) tail -c 3000 $f;; esac; echo; done",
                node2_dir.display()
            ))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        panic!(
            "VMI two: {}\nnode2 run directories:\n{run_dirs}\nnode2 log:\n{}\nserver log:\n{}",
            k.run(&["get", "vmi", "two", "-o", "yaml"]).stdout,
            node2_log(),
            server.log()
        );
    }
    let pod_one = support::wait_guest_ready(&k, "one");
    let pod_two = support::wait_guest_ready(&k, "two");
    let ip = |pod: &str| k.ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]);
    let (ip_one, ip_two) = (ip(&pod_one), ip(&pod_two));
    // Both guests run under TCG beside the rest of the suite: their first SSH and HTTP
    // answers can take long on a loaded machine.
    let body = wait_until("two → one by pod IP", support::BOOT_TIMEOUT, || {
        guest_ssh(&ip_two, &format!("wget -qO- http://{ip_one}/")).filter(|b| !b.is_empty())
    });
    assert_eq!(body, "one:80");

    // The same over IPv6, both ways: each node routes the other's /64 via its IPv6
    // InternalIP, and the node in the namespace forwards what enters through its uplink.
    let ip6 = |pod: &str| {
        let ips = k.ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIPs[*].ip}"]);
        ips.split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("Pod {pod} has no IPv6 address: {ips:?}"))
            .to_string()
    };
    let (ip6_one, ip6_two) = (ip6(&pod_one), ip6(&pod_two));
    for (from, to, name) in [(&ip_two, &ip6_one, "one"), (&ip_one, &ip6_two, "two")] {
        let body = wait_until(
            &format!("{from} → {name} by pod IPv6 {to}"),
            Duration::from_secs(90),
            || {
                // busybox 1.35's `wget -T` crashes; `timeout` bounds it instead.
                guest_ssh(from, &format!("timeout 5 wget -qO- http://[{to}]/"))
                    .filter(|b| !b.is_empty())
            },
        );
        assert_eq!(body, format!("{name}:80"));
    }

    // From outside node2, through its link: a NodePort on its InternalIP, and a
    // LoadBalancer IP that node2 binds, being the only node with a ready endpoint.
    for (name, kind, port) in [("two-np", "NodePort", 80), ("two-lb", "LoadBalancer", 8082)] {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": kind, "selector": {"app": "two"},
                     "ports": [{"port": port, "targetPort": 80, "protocol": "TCP"}]}});
        k.create(&svc.to_string());
    }
    let node_port =
        support::wait_service_field(&k, "a NodePort", "two-np", "{.spec.ports[0].nodePort}");
    let body = wait_until(
        "two through node2's NodePort from this host",
        Duration::from_secs(30),
        || support::curl(&format!("http://{}:{node_port}/", host.ip)),
    );
    assert_eq!(body, "two:80");
    let lb_ip = support::wait_service_field(
        &k,
        "a LoadBalancer IP",
        "two-lb",
        "{.status.loadBalancer.ingress[0].ip}",
    );
    let local_here = |ip: &str| {
        let out = Command::new("ip")
            .args(["-o", "addr", "show", "to", &format!("{ip}/32")])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    };
    assert!(
        !local_here(&lb_ip),
        "the first node bound {lb_ip}, which has no endpoint on it"
    );
    // The address is on node2's link: this host asks for it by ARP there. Port 1 is not a
    // Service port, so only a node holding the address answers (with a reset).
    let routed = Command::new("ip")
        .args([
            "route",
            "replace",
            &format!("{lb_ip}/32"),
            "dev",
            &host.host_link,
        ])
        .status()
        .unwrap();
    assert!(routed.success());
    let answered = std::panic::catch_unwind(|| {
        wait_until(
            "node2 answering for the LoadBalancer IP",
            Duration::from_secs(30),
            || {
                let target = std::net::SocketAddr::new(lb_ip.parse().unwrap(), 1);
                let refused = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(1))
                    .map_err(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
                refused.is_err_and(|refused| refused).then_some(())
            },
        )
    });
    if answered.is_err() {
        let addresses = Command::new("ip")
            .args(["-n", &host.netns, "-o", "addr", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        panic!(
            "nobody answers for {lb_ip}\nnode2's addresses:\n{addresses}\nendpoints: {}\nnode2 log:\n{}",
            k.run(&["get", "endpoints", "two-lb", "-o", "json"]).stdout,
            node2_log()
        );
    }
    let body = wait_until(
        "two through the LoadBalancer IP",
        Duration::from_secs(30),
        || support::curl(&format!("http://{lb_ip}:8082/")),
    );
    assert_eq!(body, "two:80");
    drop(agent);
}
