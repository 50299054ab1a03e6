//! The launcher's DHCP server (RFC 2131): one fixed lease per NIC, as upstream's
//! virt-launcher serves its guest — address, netmask, router, DNS servers and search list
//! (option 119), host name, MTU. DISCOVER gets an OFFER, REQUEST for the lease an ACK,
//! REQUEST for anything else a NAK; other clients' MACs are ignored.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::cidr::Cidr;
use crate::plan::DhcpPlan;

const MAGIC: [u8; 4] = [99, 130, 83, 99];
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;
/// Leases last a day; the guest renews from the same fixed answer.
const LEASE_SECONDS: u32 = 86_400;

/// A request the server understood.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The transaction id.
    pub xid: [u8; 4],
    /// BOOTP flags (the broadcast bit).
    pub flags: [u8; 2],
    /// The client's hardware address.
    pub chaddr: [u8; 16],
    /// DHCP message type (option 53).
    pub kind: u8,
    /// Option 50, or `ciaddr` when renewing.
    pub requested: Option<Ipv4Addr>,
    /// The relay agent address (`giaddr`).
    pub giaddr: [u8; 4],
}

/// Parses a BOOTREQUEST carrying a DHCP message type; None for anything else.
pub fn parse(packet: &[u8]) -> Option<Request> {
    if packet.len() < 240 || packet[0] != 1 || packet[236..240] != MAGIC {
        return None;
    }
    let mut kind = None;
    let mut requested = None;
    let mut i = 240;
    while i < packet.len() {
        let code = packet[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(*packet.get(i + 1)?);
        let value = packet.get(i + 2..i + 2 + len)?;
        match code {
            53 if len == 1 => kind = Some(value[0]),
            50 if len == 4 => {
                requested = Some(Ipv4Addr::new(value[0], value[1], value[2], value[3]))
            }
            _ => {}
        }
        i += 2 + len;
    }
    let ciaddr = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let mut chaddr = [0u8; 16];
    chaddr.copy_from_slice(&packet[28..44]);
    Some(Request {
        xid: [packet[4], packet[5], packet[6], packet[7]],
        flags: [packet[10], packet[11]],
        chaddr,
        kind: kind?,
        requested: requested.or((!ciaddr.is_unspecified()).then_some(ciaddr)),
        giaddr: [packet[24], packet[25], packet[26], packet[27]],
    })
}

/// The MAC `aa:bb:…` as bytes.
pub fn mac_bytes(mac: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    parts.try_into().ok()
}

/// Option 119: search domains in DNS wire format (RFC 3397, without compression).
fn search_list(domains: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for domain in domains {
        for label in domain.split('.').filter(|l| !l.is_empty()) {
            let bytes = label.as_bytes();
            out.push(u8::try_from(bytes.len().min(63)).unwrap_or(63));
            out.extend_from_slice(&bytes[..bytes.len().min(63)]);
        }
        out.push(0);
    }
    out
}

fn option(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    // Long values (search lists) are split over repeated options (RFC 3396).
    for chunk in value.chunks(255) {
        out.push(code);
        out.push(u8::try_from(chunk.len()).unwrap_or(255));
        out.extend_from_slice(chunk);
    }
}

/// The reply to `request` for `lease` on the NIC with `mac`, or None when the request is
/// not ours to answer (another MAC, or a message type the server ignores).
pub fn reply(request: &Request, lease: &DhcpPlan, mac: [u8; 6]) -> Option<Vec<u8>> {
    if request.chaddr[..6] != mac {
        return None;
    }
    let kind = match request.kind {
        DISCOVER => OFFER,
        REQUEST if request.requested.is_none_or(|ip| ip == lease.address) => ACK,
        REQUEST => NAK,
        _ => return None,
    };
    let mut out = vec![0u8; 240];
    out[0] = 2; // BOOTREPLY
    out[1] = 1; // Ethernet
    out[2] = 6;
    out[4..8].copy_from_slice(&request.xid);
    out[10..12].copy_from_slice(&request.flags);
    if kind != NAK {
        out[16..20].copy_from_slice(&lease.address.octets());
    }
    out[20..24].copy_from_slice(&lease.server_ip.octets());
    out[24..28].copy_from_slice(&request.giaddr);
    out[28..44].copy_from_slice(&request.chaddr);
    out[236..240].copy_from_slice(&MAGIC);
    option(&mut out, 53, &[kind]);
    option(&mut out, 54, &lease.server_ip.octets());
    if kind != NAK {
        let cidr = Cidr::new(lease.address, lease.prefix);
        option(&mut out, 51, &LEASE_SECONDS.to_be_bytes());
        option(&mut out, 1, &cidr.netmask().octets());
        option(&mut out, 28, &cidr.broadcast().octets());
        if let Some(gw) = lease.gateway {
            option(&mut out, 3, &gw.octets());
        }
        if !lease.dns.is_empty() {
            let dns: Vec<u8> = lease.dns.iter().flat_map(|d| d.octets()).collect();
            option(&mut out, 6, &dns);
        }
        if let Some(first) = lease.search.first() {
            option(&mut out, 15, first.as_bytes());
            option(&mut out, 119, &search_list(&lease.search));
        }
        if let Some(host) = &lease.hostname {
            option(&mut out, 12, host.as_bytes());
        }
        let mtu = u16::try_from(lease.mtu).unwrap_or(1500);
        option(&mut out, 26, &mtu.to_be_bytes());
    }
    out.push(255);
    // Some clients drop replies shorter than a BOOTP packet (300 bytes).
    if out.len() < 300 {
        out.resize(300, 0);
    }
    Some(out)
}

/// Serves `lease` to `mac` on the interface named in the lease until the task is dropped.
///
/// # Errors
/// When the socket cannot be bound to the interface (missing, or no permission).
pub async fn serve(lease: DhcpPlan, mac: String) -> io::Result<()> {
    let mac_bytes = mac_bytes(&mac)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad MAC {mac}")))?;
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.bind_device(Some(lease.server_interface.as_bytes()))?;
    socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67).into())?;
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UdpSocket::from_std(socket.into())?;
    tracing::info!(interface = %lease.server_interface, address = %lease.address, %mac, "DHCP server ready");
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        let Some(request) = buf.get(..n).and_then(parse) else {
            continue;
        };
        let Some(answer) = reply(&request, &lease, mac_bytes) else {
            continue;
        };
        // The guest has no address yet: answer by broadcast (it listens on a raw socket).
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);
        if let Err(e) = socket.send_to(&answer, to).await {
            tracing::warn!(error = %e, %from, "cannot send the DHCP reply");
        } else {
            tracing::debug!(kind = request.kind, address = %lease.address, "DHCP reply sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> DhcpPlan {
        DhcpPlan {
            server_interface: "k6t-eth0".into(),
            server_ip: Ipv4Addr::new(10, 0, 2, 1),
            address: Ipv4Addr::new(10, 0, 2, 2),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(10, 0, 2, 1)),
            dns: vec![Ipv4Addr::new(10, 96, 0, 10)],
            search: vec!["ns.svc.cluster.local".into(), "cluster.local".into()],
            hostname: Some("vm1".into()),
            mtu: 1500,
        }
    }

    fn request(kind: u8, mac: [u8; 6], requested: Option<Ipv4Addr>) -> Vec<u8> {
        let mut p = vec![0u8; 240];
        p[0] = 1;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&[1, 2, 3, 4]);
        p[28..34].copy_from_slice(&mac);
        p[236..240].copy_from_slice(&MAGIC);
        p.extend_from_slice(&[53, 1, kind]);
        if let Some(ip) = requested {
            p.extend_from_slice(&[50, 4]);
            p.extend_from_slice(&ip.octets());
        }
        p.push(255);
        p
    }

    fn options(packet: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = 240;
        while packet[i] != 255 {
            let len = usize::from(packet[i + 1]);
            out.push((packet[i], packet[i + 2..i + 2 + len].to_vec()));
            i += 2 + len;
        }
        out
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0, 1, 2, 3];

    #[test]
    fn discover_gets_an_offer_with_address_router_dns_and_search() {
        let req = parse(&request(DISCOVER, MAC, None)).unwrap();
        let offer = reply(&req, &lease(), MAC).unwrap();
        assert_eq!(offer[0], 2);
        assert_eq!(&offer[4..8], &[1, 2, 3, 4]);
        assert_eq!(&offer[16..20], &[10, 0, 2, 2]);
        let opts = options(&offer);
        let get = |c: u8| opts.iter().find(|(k, _)| *k == c).map(|(_, v)| v.clone());
        assert_eq!(get(53).unwrap(), vec![OFFER]);
        assert_eq!(get(1).unwrap(), vec![255, 255, 255, 0]);
        assert_eq!(get(3).unwrap(), vec![10, 0, 2, 1]);
        assert_eq!(get(6).unwrap(), vec![10, 96, 0, 10]);
        assert_eq!(get(12).unwrap(), b"vm1".to_vec());
        assert_eq!(get(26).unwrap(), 1500u16.to_be_bytes().to_vec());
        let search = get(119).unwrap();
        assert!(
            search.starts_with(b"\x02ns\x03svc\x07cluster\x05local\x00"),
            "{search:?}"
        );
    }

    #[test]
    fn request_for_the_lease_is_acked_and_for_another_address_naked() {
        let ok = parse(&request(REQUEST, MAC, Some(Ipv4Addr::new(10, 0, 2, 2)))).unwrap();
        assert_eq!(options(&reply(&ok, &lease(), MAC).unwrap())[0].1, vec![ACK]);
        let wrong = parse(&request(REQUEST, MAC, Some(Ipv4Addr::new(10, 0, 2, 9)))).unwrap();
        let nak = reply(&wrong, &lease(), MAC).unwrap();
        assert_eq!(options(&nak)[0].1, vec![NAK]);
        assert_eq!(&nak[16..20], &[0, 0, 0, 0]);
    }

    #[test]
    fn other_macs_and_garbage_are_ignored() {
        let other = parse(&request(DISCOVER, [2, 0, 0, 0, 0, 1], None)).unwrap();
        assert!(reply(&other, &lease(), MAC).is_none());
        assert!(parse(&[0u8; 100]).is_none());
        assert_eq!(mac_bytes("52:54:00:01:02:03"), Some(MAC));
        assert_eq!(mac_bytes("52:54:00"), None);
    }
}
