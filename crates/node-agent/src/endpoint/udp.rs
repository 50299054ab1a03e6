//! UDP port-forward on the agent's side: the API server's stream carries datagrams as a
//! 2-byte big-endian length and the bytes (`oxivirt_apiserver` `vmi_relay`), and each one
//! is sent from a socket connected to the Pod's port; each datagram coming back is framed
//! the same way. The socket lives as long as the stream.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::UdpSocket;

/// A socket connected to `ip:port`, for [`relay`].
///
/// # Errors
/// The socket cannot be made or connected (an address of the wrong family, say).
pub(super) async fn connect(ip: &str, port: u16) -> std::io::Result<UdpSocket> {
    let any = if ip.contains(':') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let socket = UdpSocket::bind(any).await?;
    socket.connect((ip, port)).await?;
    Ok(socket)
}

/// Moves framed datagrams between `stream` and `socket` until the stream ends.
pub(super) async fn relay(stream: DuplexStream, socket: UdpSocket) {
    let (mut rx, mut tx) = tokio::io::split(stream);
    let outgoing = async {
        let mut buffer = vec![0u8; usize::from(u16::MAX)];
        loop {
            let Ok(len) = rx.read_u16().await else { break };
            let datagram = &mut buffer[..usize::from(len)];
            if rx.read_exact(datagram).await.is_err() {
                break;
            }
            // A refused or dropped datagram is UDP's normal loss, not the stream's end.
            let _ = socket.send(datagram).await;
        }
    };
    let incoming = async {
        let mut buffer = vec![0u8; usize::from(u16::MAX) + 2];
        loop {
            let len = match socket.recv(&mut buffer[2..]).await {
                Ok(len) => len,
                // ICMP port unreachable surfaces as a refused receive: keep listening.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(_) => break,
            };
            let len16 = u16::try_from(len).unwrap_or(u16::MAX);
            buffer[..2].copy_from_slice(&len16.to_be_bytes());
            if tx
                .write_all(&buffer[..2 + usize::from(len16)])
                .await
                .is_err()
            {
                break;
            }
        }
    };
    tokio::select! {
        () = outgoing => {}
        () = incoming => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn framed_datagrams_reach_the_port_and_replies_come_back_framed() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            for _ in 0..2 {
                let (n, from) = echo.recv_from(&mut buf).await.unwrap();
                let mut reply = b"echo:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                echo.send_to(&reply, from).await.unwrap();
            }
        });
        let (mut api_side, agent_side) = tokio::io::duplex(1 << 16);
        let socket = connect("127.0.0.1", port).await.unwrap();
        tokio::spawn(relay(agent_side, socket));
        // Two datagrams written back to back keep their boundaries.
        api_side
            .write_all(&[0, 3, b'o', b'n', b'e', 0, 3, b't', b'w', b'o'])
            .await
            .unwrap();
        for want in [&b"echo:one"[..], b"echo:two"] {
            let len = api_side.read_u16().await.unwrap();
            let mut got = vec![0u8; usize::from(len)];
            api_side.read_exact(&mut got).await.unwrap();
            assert_eq!(got, want);
        }
    }
}
