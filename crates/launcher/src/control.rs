//! `control.sock`: one JSON request per line in, one JSON reply per line out. Each request
//! becomes a [`Request`] sent to the VM actor with a oneshot for its reply, so the actor
//! alone touches QEMU.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::status::Status;

/// A command for the VM, as `control.sock` spells it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// Stop the vCPUs.
    Pause,
    /// Resume the vCPUs.
    Unpause,
    /// Hard reset.
    Reset,
    /// Reboot through the guest agent, else through an ACPI power-button press that is
    /// turned into a reset.
    Softreboot,
    /// Report the status.
    Status,
    /// ACPI power-button press, then kill after the grace period.
    Shutdown {
        /// Seconds to wait for the guest before killing QEMU; default the VMI's
        /// `terminationGracePeriodSeconds`.
        #[serde(rename = "graceSeconds", default)]
        grace_seconds: Option<u64>,
    },
    /// Kill QEMU at once.
    Kill,
}

/// The reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the command was carried out (or, for shutdown, started).
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The status, for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl Reply {
    /// Success without data.
    pub fn ok() -> Self {
        Reply {
            ok: true,
            error: None,
            status: None,
        }
    }

    /// Failure with a message.
    pub fn error(message: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(message.into()),
            status: None,
        }
    }
}

/// A request on its way to the actor, with the channel for its reply.
#[derive(Debug)]
pub struct Envelope {
    /// What to do.
    pub request: Request,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Reply>,
}

/// The `control.sock` server; stops serving (and removes the socket) when dropped.
#[derive(Debug)]
pub struct ControlServer {
    task: JoinHandle<()>,
    path: PathBuf,
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ControlServer {
    /// Binds `path` (replacing a stale socket) and forwards requests to `actor`.
    ///
    /// # Errors
    /// [`Error::Socket`] if the socket cannot be bound.
    pub fn start(path: &Path, actor: mpsc::Sender<Envelope>) -> Result<Self> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|source| Error::Socket {
            path: path.to_owned(),
            source,
        })?;
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(serve_client(stream, actor.clone()));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "control.sock accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(ControlServer {
            task,
            path: path.to_owned(),
        })
    }
}

async fn serve_client(stream: UnixStream, actor: mpsc::Sender<Envelope>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => dispatch(&actor, request).await,
            Err(error) => Reply::error(format!("bad request: {error}")),
        };
        let mut text = serde_json::to_string(&reply)
            .unwrap_or_else(|_| r#"{"ok":false,"error":"reply not serialisable"}"#.to_owned());
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            break;
        }
    }
}

/// Sends `request` to the actor and waits for its reply.
pub async fn dispatch(actor: &mpsc::Sender<Envelope>, request: Request) -> Reply {
    let (reply, answer) = oneshot::channel();
    if actor.send(Envelope { request, reply }).await.is_err() {
        return Reply::error("the vm is gone");
    }
    answer
        .await
        .unwrap_or_else(|_| Reply::error("the vm is gone"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_in_contract_spelling() {
        let parse = |text: &str| serde_json::from_str::<Request>(text).expect(text);
        assert_eq!(parse(r#"{"command":"pause"}"#), Request::Pause);
        assert_eq!(parse(r#"{"command":"softreboot"}"#), Request::Softreboot);
        assert_eq!(
            parse(r#"{"command":"shutdown","graceSeconds":5}"#),
            Request::Shutdown {
                grace_seconds: Some(5)
            }
        );
        assert_eq!(
            parse(r#"{"command":"shutdown"}"#),
            Request::Shutdown {
                grace_seconds: None
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"command":"explode"}"#).is_err());
    }

    #[test]
    fn replies_serialise_in_contract_spelling() {
        assert_eq!(
            serde_json::to_string(&Reply::ok()).expect("json"),
            r#"{"ok":true}"#
        );
        assert_eq!(
            serde_json::to_string(&Reply::error("no")).expect("json"),
            r#"{"ok":false,"error":"no"}"#
        );
    }

    #[tokio::test]
    async fn socket_round_trip_reaches_the_actor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("control.sock");
        let (tx, mut rx) = mpsc::channel(4);
        let _server = ControlServer::start(&path, tx).expect("bind");
        tokio::spawn(async move {
            while let Some(envelope) = rx.recv().await {
                let reply = match envelope.request {
                    Request::Pause => Reply::ok(),
                    _ => Reply::error("unexpected"),
                };
                let _ = envelope.reply.send(reply);
            }
        });
        let stream = UnixStream::connect(&path).await.expect("connect");
        let (read, mut write) = stream.into_split();
        write
            .write_all(b"{\"command\":\"pause\"}\nnot json\n")
            .await
            .expect("write");
        let mut lines = BufReader::new(read).lines();
        let first = lines.next_line().await.expect("read").expect("line");
        assert_eq!(first, r#"{"ok":true}"#);
        let second = lines.next_line().await.expect("read").expect("line");
        assert!(second.contains("bad request"), "{second}");
    }
}
