//! The embedded cluster DNS (CoreDNS's `kubernetes` plugin, reduced), one per node:
//! `<svc>.<ns>.svc.<domain>` answers the ClusterIP, or the ready endpoint addresses of a
//! headless Service; `<hostname>.<svc>.<ns>.svc.<domain>` answers the endpoint with that
//! hostname (the manual's §8.4 records for VMs with `hostname`/`subdomain`). Other names
//! under the cluster domain are NXDOMAIN; everything else is relayed to the host's
//! resolvers (`/etc/resolv.conf`). Guests reach it as `kube-dns` (10.96.0.10), which the
//! Service proxy DNATs to this server's port on the node bridge; on dual-stack nodes also
//! as `kube-dns`'s IPv6 ClusterIP (`fd00:10:96::a`), DNATed to the bridge's IPv6 address.
//!
//! Dual stack: A records carry a name's IPv4 addresses and AAAA records its IPv6 ones (every
//! ClusterIP of `spec.clusterIPs`; for headless Services the ready endpoints of both
//! families). A name with addresses of the other family only answers NOERROR with no
//! records (NODATA), as CoreDNS does.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// Name (lowercase, no trailing dot) → its addresses (A and AAAA records).
pub type Records = HashMap<String, Vec<IpAddr>>;

/// How long answers may be cached: short, since endpoints move.
const TTL: u32 = 5;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;

/// The records the cluster's Services and Endpoints imply; `endpoints6_of` gives a
/// Service's IPv6 endpoints in the shape of Endpoints (None on single-stack clusters).
pub fn records(
    services: &[Value],
    endpoints_of: &dyn Fn(&str, &str) -> Option<Value>,
    endpoints6_of: &dyn Fn(&str, &str) -> Option<Value>,
    domain: &str,
) -> Records {
    let mut out: Records = HashMap::new();
    for svc in services {
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        let base = format!("{name}.{ns}.svc.{domain}");
        let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap_or_default();
        let ready: Vec<(IpAddr, Option<String>)> =
            [endpoints_of(ns, name), endpoints6_of(ns, name)]
                .iter()
                .flatten()
                .flat_map(|e| e["subsets"].as_array().cloned().unwrap_or_default())
                .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| {
                    let ip = a["ip"].as_str()?.parse().ok()?;
                    Some((ip, a["hostname"].as_str().map(str::to_lowercase)))
                })
                .collect();
        if cluster_ip == "None" {
            out.entry(base.clone())
                .or_default()
                .extend(ready.iter().map(|(ip, _)| *ip));
        } else {
            let ips = svc["spec"]["clusterIPs"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&svc["spec"]["clusterIP"]))
                .filter_map(|ip| ip.as_str()?.parse::<IpAddr>().ok());
            for ip in ips {
                out.entry(base.clone()).or_default().push(ip);
            }
        }
        for (ip, host) in &ready {
            if let Some(host) = host {
                out.entry(format!("{host}.{base}")).or_default().push(*ip);
            }
        }
    }
    for ips in out.values_mut() {
        ips.sort();
        ips.dedup();
    }
    out
}

/// A parsed question.
#[derive(Debug, PartialEq)]
struct Question {
    id: [u8; 2],
    flags: [u8; 2],
    name: String,
    qtype: u16,
    qclass: u16,
    /// The question section's bytes (echoed in the answer).
    raw: Vec<u8>,
}

fn parse(packet: &[u8]) -> Option<Question> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 || u16::from_be_bytes([packet[4], packet[5]]) != 1
    {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*packet.get(i)?);
        if len == 0 {
            i += 1;
            break;
        }
        if len > 63 {
            return None; // compression is not used in questions
        }
        labels.push(String::from_utf8_lossy(packet.get(i + 1..i + 1 + len)?).to_lowercase());
        i += 1 + len;
    }
    let tail = packet.get(i..i + 4)?;
    Some(Question {
        id: [packet[0], packet[1]],
        flags: [packet[2], packet[3]],
        name: labels.join("."),
        qtype: u16::from_be_bytes([tail[0], tail[1]]),
        qclass: u16::from_be_bytes([tail[2], tail[3]]),
        raw: packet[12..i + 4].to_vec(),
    })
}

/// An authoritative answer: the A or AAAA records among `ips`, or NXDOMAIN when `ips` is
/// None.
fn answer(q: &Question, ips: Option<&[IpAddr]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&q.id);
    let rd = q.flags[0] & 0x01;
    out.push(0x84 | rd); // QR, AA, RD echoed
    out.push(if ips.is_some() { 0x80 } else { 0x83 }); // RA; NXDOMAIN
    let records: Vec<IpAddr> = ips
        .unwrap_or_default()
        .iter()
        .copied()
        .filter(|ip| {
            matches!(
                (q.qtype, ip),
                (TYPE_ANY, _) | (TYPE_A, IpAddr::V4(_)) | (TYPE_AAAA, IpAddr::V6(_))
            )
        })
        .collect();
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::try_from(records.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&q.raw);
    for ip in records {
        out.extend_from_slice(&[0xc0, 0x0c]);
        let data = match ip {
            IpAddr::V4(ip) => {
                out.extend_from_slice(&TYPE_A.to_be_bytes());
                ip.octets().to_vec()
            }
            IpAddr::V6(ip) => {
                out.extend_from_slice(&TYPE_AAAA.to_be_bytes());
                ip.octets().to_vec()
            }
        };
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&u16::try_from(data.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// The server's view of the records, swapped in by the Service proxy on every change.
#[derive(Clone, Default)]
pub struct Zone {
    records: Arc<RwLock<Records>>,
    domain: String,
}

impl Zone {
    /// An empty zone for `domain` (`cluster.local`).
    pub fn new(domain: &str) -> Self {
        Zone {
            records: Arc::default(),
            domain: domain.to_lowercase(),
        }
    }

    /// Replaces the records.
    pub fn set(&self, records: Records) {
        *self.records.write().unwrap_or_else(|p| p.into_inner()) = records;
    }

    /// The local answer for `q`, or None when it must be forwarded.
    fn resolve(&self, q: &Question) -> Option<Vec<u8>> {
        if q.qclass != CLASS_IN
            || !(q.name == self.domain || q.name.ends_with(&format!(".{}", self.domain)))
        {
            return None;
        }
        let records = self.records.read().unwrap_or_else(|p| p.into_inner());
        Some(answer(q, records.get(&q.name).map(Vec::as_slice)))
    }
}

/// The host's resolvers from `/etc/resolv.conf`.
fn upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

async fn forward(query: &[u8]) -> Option<Vec<u8>> {
    for upstream in upstreams() {
        let bind: SocketAddr = if upstream.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .ok()?;
        let Ok(socket) = UdpSocket::bind(bind).await else {
            continue;
        };
        if socket.send_to(query, upstream).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await
        {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

async fn respond(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let q = parse(query)?;
    match zone.resolve(&q) {
        Some(local) => Some(local),
        None => forward(query).await,
    }
}

/// Binds UDP and TCP on `address` (same port; 0 picks one) and serves until dropped.
/// Returns the port. A dual-stack node calls it once per family (the node bridge's IPv4
/// and IPv6 addresses), both serving the same zone.
///
/// # Errors
/// When the sockets cannot be bound.
pub async fn serve(zone: Zone, address: IpAddr, port: u16) -> std::io::Result<u16> {
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind((address, port)).await?;
        let chosen = udp.local_addr()?.port();
        match TcpListener::bind((address, chosen)).await {
            Ok(tcp) => {
                tokio::spawn(serve_udp(zone.clone(), Arc::new(udp)));
                tokio::spawn(serve_tcp(zone, tcp));
                return Ok(chosen);
            }
            Err(e) => last = Some(e),
        }
        if port != 0 {
            break;
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port for both UDP and TCP")))
}

async fn serve_udp(zone: Zone, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (zone, socket) = (zone.clone(), socket.clone());
        tokio::spawn(async move {
            if let Some(reply) = respond(&zone, &query).await {
                let _ = socket.send_to(&reply, from).await;
            }
        });
    }
}

async fn serve_tcp(zone: Zone, listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let zone = zone.clone();
        tokio::spawn(async move {
            let mut len = [0u8; 2];
            while stream.read_exact(&mut len).await.is_ok() {
                let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut query).await.is_err() {
                    return;
                }
                let Some(reply) = respond(&zone, &query).await else {
                    return;
                };
                let size = u16::try_from(reply.len()).unwrap_or(u16::MAX).to_be_bytes();
                if stream.write_all(&size).await.is_err() || stream.write_all(&reply).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::net::Ipv4Addr;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            p.push(u8::try_from(label.len()).unwrap());
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p
    }

    fn zone() -> Zone {
        let svcs = vec![
            json!({"metadata": {"namespace": "ns", "name": "web"}, "spec": {"clusterIP": "10.96.3.4"}}),
            json!({"metadata": {"namespace": "ns", "name": "sub"}, "spec": {"clusterIP": "None"}}),
        ];
        let ep = json!({"subsets": [{"addresses": [
            {"ip": "10.244.0.7", "hostname": "myvm"}, {"ip": "10.244.0.8"}]}]});
        let z = Zone::new("cluster.local");
        z.set(records(
            &svcs,
            &|_, n| (n == "sub").then(|| ep.clone()),
            &|_, _| None,
            "cluster.local",
        ));
        z
    }

    /// The addresses in an answer's A and AAAA records.
    fn addrs(reply: &[u8]) -> Vec<IpAddr> {
        let count = usize::from(u16::from_be_bytes([reply[6], reply[7]]));
        let mut i = 12;
        while reply[i] != 0 {
            i += 1 + usize::from(reply[i]);
        }
        i += 5;
        (0..count)
            .map(|_| {
                let len = usize::from(u16::from_be_bytes([reply[i + 10], reply[i + 11]]));
                let data = &reply[i + 12..i + 12 + len];
                i += 12 + len;
                match len {
                    4 => IpAddr::from(<[u8; 4]>::try_from(data).unwrap()),
                    _ => IpAddr::from(<[u8; 16]>::try_from(data).unwrap()),
                }
            })
            .collect()
    }

    /// One DNS exchange over TCP (two-byte length prefix each way).
    async fn ask_over_tcp(to: (&str, u16), query: &[u8]) -> Vec<u8> {
        let mut tcp = tokio::net::TcpStream::connect(to).await.unwrap();
        tcp.write_all(&u16::try_from(query.len()).unwrap().to_be_bytes())
            .await
            .unwrap();
        tcp.write_all(query).await.unwrap();
        let mut len = [0u8; 2];
        tcp.read_exact(&mut len).await.unwrap();
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        tcp.read_exact(&mut reply).await.unwrap();
        reply
    }

    fn ips(reply: &[u8]) -> Vec<Ipv4Addr> {
        addrs(reply)
            .into_iter()
            .map(|ip| match ip {
                IpAddr::V4(ip) => ip,
                IpAddr::V6(ip) => panic!("AAAA {ip} in an A answer"),
            })
            .collect()
    }

    #[test]
    fn dual_stack_names_answer_aaaa_with_their_ipv6_addresses() {
        let svcs = vec![
            json!({"metadata": {"namespace": "ns", "name": "web"},
                   "spec": {"clusterIP": "10.96.3.4", "clusterIPs": ["10.96.3.4", "fd00:10:96::34"]}}),
            json!({"metadata": {"namespace": "ns", "name": "sub"}, "spec": {"clusterIP": "None"}}),
        ];
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.244.0.7", "hostname": "myvm"}]}]});
        let ep6 =
            json!({"subsets": [{"addresses": [{"ip": "fd00:10:244::7", "hostname": "myvm"}]}]});
        let z = Zone::new("cluster.local");
        z.set(records(
            &svcs,
            &|_, n| (n == "sub").then(|| ep.clone()),
            &|_, n| (n == "sub").then(|| ep6.clone()),
            "cluster.local",
        ));
        let q = |name: &str, t| z.resolve(&parse(&query(name, t)).unwrap()).unwrap();
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        assert_eq!(
            addrs(&q("web.ns.svc.cluster.local", TYPE_AAAA)),
            [v6("fd00:10:96::34")]
        );
        assert_eq!(
            ips(&q("web.ns.svc.cluster.local", TYPE_A)),
            [Ipv4Addr::new(10, 96, 3, 4)]
        );
        assert_eq!(
            addrs(&q("sub.ns.svc.cluster.local", TYPE_AAAA)),
            [v6("fd00:10:244::7")]
        );
        assert_eq!(
            addrs(&q("myvm.sub.ns.svc.cluster.local", TYPE_AAAA)),
            [v6("fd00:10:244::7")]
        );
        assert_eq!(
            ips(&q("myvm.sub.ns.svc.cluster.local", TYPE_A)),
            [Ipv4Addr::new(10, 244, 0, 7)]
        );
    }

    #[test]
    fn services_headless_sets_and_vm_hostnames_resolve() {
        let z = zone();
        let q = |name: &str| z.resolve(&parse(&query(name, TYPE_A)).unwrap()).unwrap();
        assert_eq!(
            ips(&q("web.ns.svc.cluster.local")),
            [Ipv4Addr::new(10, 96, 3, 4)]
        );
        assert_eq!(
            ips(&q("sub.ns.svc.cluster.local")),
            [Ipv4Addr::new(10, 244, 0, 7), Ipv4Addr::new(10, 244, 0, 8)]
        );
        assert_eq!(
            ips(&q("MyVM.sub.ns.svc.cluster.local")),
            [Ipv4Addr::new(10, 244, 0, 7)]
        );
        let missing = q("nope.ns.svc.cluster.local");
        assert_eq!(missing[3] & 0x0f, 3, "NXDOMAIN");
        assert_eq!(&missing[..2], &[0x12, 0x34]);
    }

    #[test]
    fn names_outside_the_cluster_domain_are_forwarded_and_aaaa_of_an_ipv4_only_name_is_empty() {
        let z = zone();
        assert!(z
            .resolve(&parse(&query("example.com", TYPE_A)).unwrap())
            .is_none());
        let aaaa = z
            .resolve(&parse(&query("web.ns.svc.cluster.local", TYPE_AAAA)).unwrap())
            .unwrap();
        assert_eq!(aaaa[3] & 0x0f, 0);
        assert!(ips(&aaaa).is_empty());
    }

    #[tokio::test]
    async fn the_server_answers_over_udp_and_tcp() {
        let port = serve(zone(), Ipv4Addr::LOCALHOST.into(), 0).await.unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.send_to(
            &query("web.ns.svc.cluster.local", TYPE_A),
            ("127.0.0.1", port),
        )
        .await
        .unwrap();
        let mut buf = [0u8; 512];
        let n = udp.recv(&mut buf).await.unwrap();
        assert_eq!(ips(&buf[..n]), [Ipv4Addr::new(10, 96, 3, 4)]);
        let reply = ask_over_tcp(
            ("127.0.0.1", port),
            &query("myvm.sub.ns.svc.cluster.local", TYPE_A),
        )
        .await;
        assert_eq!(ips(&reply), [Ipv4Addr::new(10, 244, 0, 7)]);
    }

    #[tokio::test]
    async fn the_server_answers_on_an_ipv6_address_over_udp_and_tcp() {
        let svcs = vec![json!({"metadata": {"namespace": "ns", "name": "web"},
            "spec": {"clusterIP": "10.96.3.4", "clusterIPs": ["10.96.3.4", "fd00:10:96::34"]}})];
        let z = Zone::new("cluster.local");
        z.set(records(&svcs, &|_, _| None, &|_, _| None, "cluster.local"));
        let Ok(port) = serve(z, std::net::Ipv6Addr::LOCALHOST.into(), 0).await else {
            eprintln!("skipped: no IPv6 loopback here");
            return;
        };
        let v6 = IpAddr::V6("fd00:10:96::34".parse().unwrap());
        let udp = UdpSocket::bind("[::1]:0").await.unwrap();
        udp.send_to(&query("web.ns.svc.cluster.local", TYPE_AAAA), ("::1", port))
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = udp.recv(&mut buf).await.unwrap();
        assert_eq!(addrs(&buf[..n]), [v6]);
        let reply =
            ask_over_tcp(("::1", port), &query("web.ns.svc.cluster.local", TYPE_AAAA)).await;
        assert_eq!(addrs(&reply), [v6]);
    }
}
