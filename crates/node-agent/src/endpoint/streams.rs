//! Raw byte streams for the API server's websocket subresources: the serial console
//! (`console.sock` of the launcher), VNC (QEMU's `vnc.sock`) and port-forward (TCP to the
//! Pod's address). The HTTP connection is upgraded to [`AGENT_STREAM_UPGRADE`] and then
//! carries the bytes both ways untouched.
//!
//! One console (and one VNC) session per VM at a time, as upstream: a new session closes the
//! previous one, whose client then tells its user it was disconnected.
//!
//! [`AGENT_STREAM_UPGRADE`]: oxivirt_api::well_known::AGENT_STREAM_UPGRADE

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

/// The live exclusive sessions, keyed by the socket they hold.
#[derive(Default)]
pub(crate) struct Sessions {
    active: Mutex<HashMap<PathBuf, (u64, oneshot::Sender<()>)>>,
    next: AtomicU64,
}

impl Sessions {
    /// Registers a session on `socket`, closing the one before it; returns its id and the
    /// signal that a newer session took over.
    fn take_over(&self, socket: &PathBuf) -> (u64, oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (kick, kicked) = oneshot::channel();
        let previous = match self.active.lock() {
            Ok(mut active) => active.insert(socket.clone(), (id, kick)),
            Err(poisoned) => poisoned.into_inner().insert(socket.clone(), (id, kick)),
        };
        if let Some((_, previous)) = previous {
            let _ = previous.send(());
        }
        (id, kicked)
    }

    fn release(&self, socket: &PathBuf, id: u64) {
        let mut active = match self.active.lock() {
            Ok(active) => active,
            Err(poisoned) => poisoned.into_inner(),
        };
        if active
            .get(socket)
            .is_some_and(|(current, _)| *current == id)
        {
            active.remove(socket);
        }
    }
}

/// Copies bytes both ways between the upgraded connection and `target` until either side
/// closes or, for an exclusive session, a newer session takes over.
pub(crate) async fn bridge<T>(
    upgraded: Upgraded,
    mut target: T,
    exclusive: Option<(&Sessions, PathBuf)>,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut client = TokioIo::new(upgraded);
    let Some((sessions, socket)) = exclusive else {
        let _ = copy_both_ways(&mut client, &mut target).await;
        return;
    };
    let (id, kicked) = sessions.take_over(&socket);
    tokio::select! {
        _ = copy_both_ways(&mut client, &mut target) => {}
        _ = kicked => tracing::info!(socket = %socket.display(), "a newer session took over"),
    }
    sessions.release(&socket, id);
}

/// Buffers of 64 KiB each way (tokio's default is 8 KiB): a port-forward moving bulk data
/// then crosses the TLS hop and the API server's websocket in 8× fewer, larger pieces.
async fn copy_both_ways<A, B>(a: &mut A, b: &mut B) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(a, b, 64 << 10, 64 << 10).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_session_closes_the_previous_one_only() {
        let sessions = Sessions::default();
        let socket = PathBuf::from("/run/x/console.sock");
        let (first, mut first_kicked) = sessions.take_over(&socket);
        let (second, mut second_kicked) = sessions.take_over(&socket);
        assert!(
            first_kicked.try_recv().is_ok(),
            "the first session is told to close"
        );
        // The first session's late release must not drop the second's registration.
        sessions.release(&socket, first);
        let (_third, _) = sessions.take_over(&socket);
        assert!(second_kicked.try_recv().is_ok());
        sessions.release(&socket, second);
    }
}
