//! `virtctl port-forward … udp/LOCAL[:REMOTE]`: as upstream, every local peer (address and
//! port) that sends a datagram gets its own `portforward/{port}/udp` stream; each datagram
//! is one websocket message, and each message that comes back is sent to that peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::{open_protocol, Target};

/// Datagrams a peer may have in flight before the oldest are dropped (UDP's loss).
const QUEUE: usize = 256;

/// Serves the local UDP socket until the process ends.
pub(super) async fn serve(
    socket: UdpSocket,
    client: kube::Client,
    target: Target,
    namespace: String,
    port: u16,
) {
    let socket = Arc::new(socket);
    let mut peers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buffer = vec![0u8; usize::from(u16::MAX)];
    loop {
        let (len, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(e) => {
                tracing::warn!(error = %e, "receiving a local datagram failed");
                continue;
            }
        };
        let datagram = buffer[..len].to_vec();
        peers.retain(|_, tx| !tx.is_closed());
        let sender = peers.entry(peer).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            let (socket, client, target, namespace) = (
                socket.clone(),
                client.clone(),
                target.clone(),
                namespace.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = relay(rx, socket, peer, &client, &target, &namespace, port).await {
                    eprintln!(
                        "error forwarding {peer}/udp to port {port}: {}",
                        crate::error::chain(&e)
                    );
                }
            });
            tx
        });
        // A full queue drops the datagram, as a congested network would.
        let _ = sender.try_send(datagram);
    }
}

/// One peer's stream: its datagrams out, the guest's back, until the stream closes.
async fn relay(
    mut datagrams: mpsc::Receiver<Vec<u8>>,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    client: &kube::Client,
    target: &Target,
    namespace: &str,
    port: u16,
) -> crate::error::Result<()> {
    let ws = open_protocol(client, target, namespace, port, "udp").await?;
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            datagram = datagrams.recv() => {
                let Some(datagram) = datagram else { break };
                if sink.send(Message::Binary(datagram.into())).await.is_err() {
                    break;
                }
            }
            message = stream.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    let _ = socket.send_to(&data, peer).await;
                }
                Some(Ok(Message::Text(text))) => {
                    let _ = socket.send_to(text.as_bytes(), peer).await;
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    Ok(())
}
