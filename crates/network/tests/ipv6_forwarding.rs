//! Host-wide IPv6 forwarding against the real kernel, in scratch network namespaces (the
//! host's own settings are never touched): a "router" namespace sends a Router
//! Advertisement over a veth, the "host" namespace learns its default route from it, and
//! `forwarding::enable` switches forwarding on without the route being purged — while
//! switching it on naively does purge it (so the check can see a loss). Skipped, saying
//! why, without root.

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

/// The scratch namespaces, deleted (with their veth) however the test ends.
struct Namespaces {
    host: String,
    router: String,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.host, &self.router] {
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
    let ns = Namespaces {
        host: format!("h6t-host-{id}"),
        router: format!("h6t-rtr-{id}"),
    };
    let (host_if, router_if) = (format!("h6t{id}a"), format!("h6t{id}b"));
    for name in [&ns.host, &ns.router] {
        ip(&["netns", "add", name]);
    }
    ip(&[
        "-n", &ns.host, "link", "add", &host_if, "type", "veth", "peer", "name", &router_if,
        "netns", &ns.router,
    ]);
    // No duplicate address detection: the router's link-local source is usable at once.
    for (name, dev) in [(&ns.host, &host_if), (&ns.router, &router_if)] {
        sysctl(name, &format!("{dev}/accept_dad"), Some("0"));
        ip(&["-n", name, "link", "set", dev, "up"]);
    }
    if sysctl(&ns.host, "all/forwarding", None) != "0" {
        eprintln!("skipped: new namespaces forward IPv6 here (net.core.devconf_inherit_init_net?)");
        return;
    }
    let host_if_ra = format!("{host_if}/accept_ra");
    assert_eq!(sysctl(&ns.host, &host_if_ra, None), "1");

    // The check sees a purge: forwarding switched on naively loses the learned route.
    learn_default_route(&ns.host, &ns.router, &router_if);
    sysctl(&ns.host, "all/forwarding", Some("1"));
    assert_eq!(
        default_route(&ns.host),
        "",
        "the naive switch kept the route"
    );
    sysctl(&ns.host, "all/forwarding", Some("0"));

    let before = learn_default_route(&ns.host, &ns.router, &router_if);
    let outcome = in_netns(&ns.host, || {
        forwarding::enable(Path::new(forwarding::CONF_DIR), "oxbnone")
    })
    .expect("enabling forwarding");
    let after = default_route(&ns.host);
    assert!(
        after.contains("proto ra"),
        "the route is gone: {before:?} -> {after:?}"
    );
    assert_eq!(sysctl(&ns.host, "all/forwarding", None), "1");
    assert_eq!(sysctl(&ns.host, &host_if_ra, None), "2");
    assert_eq!(
        outcome,
        Outcome::Host {
            accept_ra: vec!["default".into(), host_if.clone()]
        }
    );
    // And the host keeps taking advertisements while it forwards.
    ip(&["-n", &ns.host, "-6", "route", "del", "default"]);
    assert!(learn_default_route(&ns.host, &ns.router, &router_if).contains(&host_if));
}
