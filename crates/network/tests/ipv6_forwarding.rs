//! Host-wide IPv6 forwarding against the real kernel, in scratch network namespaces (the
//! host's own settings are never touched): a "router" namespace sends a Router
//! Advertisement over a veth, the "host" namespace learns its default route from it, and
//! `forwarding::enable` switches forwarding on without the route being purged — while
//! switching it on naively does purge it (so the check can see a loss); and a node
//! namespace whose bridge routes IPv6 (no br_netfilter shortcut) carries Pod → IPv6
//! ClusterIP → Pod through the Service proxy's own rules only once `forwarding::enable` ran.
//! Skipped, saying why, without root.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use oxivirt_network::forwarding::{self, Outcome};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a thread inside network namespace `ns` (its `/proc/sys/net` and sockets are
/// that namespace's).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("the namespace");
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        f()
    })
    .join()
    .expect("the namespace thread")
}

/// Scratch namespaces, deleted (with their links) however the test ends.
struct Scratch(Vec<String>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Sends one Router Advertisement (router lifetime 1800 s, no options) to all nodes out of
/// `dev` in namespace `ns`.
fn advertise(ns: &str, dev: &str) {
    let line = ip(&["-n", ns, "-o", "link", "show", "dev", dev]);
    let index: u32 = line
        .split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("an interface index");
    in_netns(ns, move || {
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).expect("raw");
        // Hosts accept advertisements only with hop limit 255 (RFC 4861 §6.1.2).
        socket.set_multicast_hops_v6(255).expect("hops");
        socket.set_multicast_if_v6(index).expect("interface");
        // Type 134, code 0, checksum (the kernel's), hop limit 64, flags 0, lifetime 1800,
        // reachable time and retransmit timer 0.
        let ra = [134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        let all_nodes = SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, index);
        socket
            .send_to(&ra, &SockAddr::from(all_nodes))
            .expect("sending the advertisement");
    });
}

fn default_route(ns: &str) -> String {
    ip(&["-n", ns, "-6", "route", "show", "default"])
}

/// Advertises until `ns` has a default route learned from it.
fn learn_default_route(host: &str, router: &str, dev: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        advertise(router, dev);
        std::thread::sleep(Duration::from_millis(200));
        let route = default_route(host);
        if route.contains("proto ra") {
            return route;
        }
        assert!(Instant::now() < deadline, "no route from the advertisement");
    }
}

fn sysctl(ns: &str, path: &str, value: Option<&str>) -> String {
    let full = format!("/proc/sys/net/ipv6/conf/{path}");
    let value = value.map(str::to_string);
    in_netns(ns, move || {
        if let Some(value) = value {
            std::fs::write(&full, value).expect("writing a sysctl");
        }
        std::fs::read_to_string(&full)
            .expect("reading a sysctl")
            .trim()
            .to_string()
    })
}

#[test]
fn host_wide_forwarding_keeps_the_default_route_learned_from_router_advertisements() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let id = std::process::id() % 100_000;
    let ns = (format!("h6t-host-{id}"), format!("h6t-rtr-{id}"));
    let _scratch = Scratch(vec![ns.0.clone(), ns.1.clone()]);
    let (host_if, router_if) = (format!("h6t{id}a"), format!("h6t{id}b"));
    for name in [&ns.0, &ns.1] {
        ip(&["netns", "add", name]);
    }
    ip(&[
        "-n", &ns.0, "link", "add", &host_if, "type", "veth", "peer", "name", &router_if, "netns",
        &ns.1,
    ]);
    // No duplicate address detection: the router's link-local source is usable at once.
    for (name, dev) in [(&ns.0, &host_if), (&ns.1, &router_if)] {
        sysctl(name, &format!("{dev}/accept_dad"), Some("0"));
        ip(&["-n", name, "link", "set", dev, "up"]);
    }
    if sysctl(&ns.0, "all/forwarding", None) != "0" {
        eprintln!("skipped: new namespaces forward IPv6 here (net.core.devconf_inherit_init_net?)");
        return;
    }
    let host_if_ra = format!("{host_if}/accept_ra");
    assert_eq!(sysctl(&ns.0, &host_if_ra, None), "1");

    // The check sees a purge: forwarding switched on naively loses the learned route.
    learn_default_route(&ns.0, &ns.1, &router_if);
    sysctl(&ns.0, "all/forwarding", Some("1"));
    assert_eq!(default_route(&ns.0), "", "the naive switch kept the route");
    sysctl(&ns.0, "all/forwarding", Some("0"));

    let before = learn_default_route(&ns.0, &ns.1, &router_if);
    let outcome = in_netns(&ns.0, || {
        forwarding::enable(Path::new(forwarding::CONF_DIR), "oxbnone")
    })
    .expect("enabling forwarding");
    let after = default_route(&ns.0);
    assert!(
        after.contains("proto ra"),
        "the route is gone: {before:?} -> {after:?}"
    );
    assert_eq!(sysctl(&ns.0, "all/forwarding", None), "1");
    assert_eq!(sysctl(&ns.0, &host_if_ra, None), "2");
    assert_eq!(
        outcome,
        Outcome::Host {
            accept_ra: vec!["default".into(), host_if.clone()]
        }
    );
    // And the host keeps taking advertisements while it forwards.
    ip(&["-n", &ns.0, "-6", "route", "del", "default"]);
    assert!(learn_default_route(&ns.0, &ns.1, &router_if).contains(&host_if));
}

/// Serves `reply` on `[::]:port` in namespace `ns` for `for_how_long`, on its own thread.
fn serve_tcp(ns: &str, port: u16, reply: &'static [u8], for_how_long: Duration) {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("the namespace");
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        let listener = std::net::TcpListener::bind(("::", port)).expect("listening");
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = Instant::now() + for_how_long;
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = std::io::Write::write_all(&mut stream, reply);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
}

/// What `to` answers a TCP connection from namespace `ns`, or None.
fn fetch(ns: &str, to: SocketAddrV6) -> Option<String> {
    in_netns(ns, move || {
        let mut stream =
            std::net::TcpStream::connect_timeout(&to.into(), Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stream, &mut text).ok()?;
        Some(text)
    })
}

#[test]
fn a_pod_reaches_another_through_an_ipv6_cluster_ip_once_the_node_forwards_ipv6() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let id = std::process::id() % 100_000;
    let (node, pod_a, pod_b) = (
        format!("h6s-node-{id}"),
        format!("h6s-a-{id}"),
        format!("h6s-b-{id}"),
    );
    let _scratch = Scratch(vec![node.clone(), pod_a.clone(), pod_b.clone()]);
    for name in [&node, &pod_a, &pod_b] {
        ip(&["netns", "add", name]);
    }
    // Bridged IPv6 traffic must not take br_netfilter's shortcut, which switches a packet
    // DNATed to a neighbour on the same bridge at layer 2 and so needs no forwarding; this
    // node routes it, as a host without br_netfilter does.
    let brnf = "/proc/sys/net/bridge/bridge-nf-call-ip6tables";
    let host_brnf = std::fs::read_to_string(brnf).ok();
    in_netns(&node, move || {
        if Path::new(brnf).exists() {
            std::fs::write(brnf, "0").expect("bridge-nf-call-ip6tables");
        }
    });
    if std::fs::read_to_string(brnf).ok() != host_brnf {
        // Not per namespace on this kernel: put the host's value back.
        if let Some(value) = &host_brnf {
            let _ = std::fs::write(brnf, value);
        }
        eprintln!("skipped: bridge-nf-call-ip6tables is not per network namespace here");
        return;
    }
    let bridge = "h6sbr0";
    ip(&["-n", &node, "link", "add", bridge, "type", "bridge"]);
    ip(&["-n", &node, "link", "set", bridge, "up"]);
    ip(&[
        "-n",
        &node,
        "-6",
        "addr",
        "add",
        "fd77::1/64",
        "dev",
        bridge,
        "nodad",
    ]);
    for (pod, address, port) in [
        (&pod_a, "fd77::a/64", "h6sva"),
        (&pod_b, "fd77::b/64", "h6svb"),
    ] {
        ip(&[
            "-n", &node, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", pod,
        ]);
        ip(&["-n", &node, "link", "set", port, "master", bridge, "up"]);
        ip(&["-n", pod, "link", "set", "eth0", "up"]);
        ip(&[
            "-n", pod, "-6", "addr", "add", address, "dev", "eth0", "nodad",
        ]);
        ip(&["-n", pod, "-6", "route", "add", "default", "via", "fd77::1"]);
    }
    // The Service proxy's own IPv6 table: ClusterIP fd00:10:96::77:8080 → pod B port 80.
    let svc = serde_json::json!({"metadata": {"namespace": "ns", "name": "web"},
        "spec": {"clusterIP": "10.96.7.7", "clusterIPs": ["10.96.7.7", "fd00:10:96::77"],
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}});
    let endpoints = serde_json::json!({"subsets": [{"addresses": [{"ip": "fd77::b"}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]});
    let side = oxivirt_network::services::rules::NodeSide6 {
        table: "h6s-svc6".into(),
        bridge: bridge.into(),
        pod_prefix: "fd77::".parse().expect("a prefix"),
        dns: None,
    };
    let rules = oxivirt_network::services::rules::ruleset_v6(&side, &[svc], &|_, _| {
        Some(endpoints.clone())
    });
    let mut nft = Command::new("ip")
        .args(["netns", "exec", &node, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    std::io::Write::write_all(&mut nft.stdin.take().expect("stdin"), rules.as_bytes())
        .expect("the rules");
    let out = nft.wait_with_output().expect("nft");
    assert!(
        out.status.success(),
        "{}\n{rules}",
        String::from_utf8_lossy(&out.stderr)
    );
    serve_tcp(&pod_b, 80, b"pod b", Duration::from_secs(30));
    let cluster_ip = SocketAddrV6::new("fd00:10:96::77".parse().expect("an address"), 8080, 0, 0);
    let direct = SocketAddrV6::new("fd77::b".parse().expect("an address"), 80, 0, 0);
    assert_eq!(
        fetch(&pod_a, direct).as_deref(),
        Some("pod b"),
        "pod to pod on the bridge"
    );
    if sysctl(&node, "all/forwarding", None) != "0" {
        eprintln!("skipped: new namespaces forward IPv6 here (net.core.devconf_inherit_init_net?)");
        return;
    }
    assert_eq!(fetch(&pod_a, cluster_ip), None, "routed without forwarding");
    let outcome = in_netns(&node, move || {
        forwarding::enable(Path::new(forwarding::CONF_DIR), bridge)
    })
    .expect("enabling forwarding");
    assert_eq!(
        fetch(&pod_a, cluster_ip).as_deref(),
        Some("pod b"),
        "{outcome:?}"
    );
}
