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
    /// `guest-get-users`: who is logged in to the guest (reply `data`: the agent's list).
    Userlist,
    /// `guest-get-fsinfo`: the guest's mounted filesystems (reply `data`: the agent's list).
    Filesystemlist,
    /// `guest-fsfreeze-freeze`; thawed again automatically after `unfreezeTimeoutSeconds`
    /// unless an `unfreeze` comes first (0 or absent: never).
    Freeze {
        /// Seconds until the launcher thaws the filesystems by itself.
        #[serde(rename = "unfreezeTimeoutSeconds", default)]
        unfreeze_timeout_seconds: Option<u64>,
    },
    /// `guest-fsfreeze-thaw`.
    Unfreeze,
    /// `guest-network-get-interfaces`: the guest's NICs and addresses (reply `data`).
    Interfaces,
    /// `guest-info`: the agent's version and commands (reply `data`).
    Guestinfo,
    /// Makes `user`'s `~/.ssh/authorized_keys` hold exactly `keys` (through the guest agent).
    Sshkeys {
        /// The guest user.
        user: String,
        /// The public keys, one per entry.
        keys: Vec<String>,
    },
    /// `guest-set-user-password` for `user` (plain text).
    Setpassword {
        /// The guest user.
        user: String,
        /// The password.
        password: String,
    },
    /// Hot-plugs a disk on the virtio-scsi controller (`blockdev-add`, `device_add`).
    Addvolume(crate::hotplug::HotplugDisk),
    /// Unplugs a disk (`device_del`, `blockdev-del`).
    Removevolume {
        /// The volume (and disk) name.
        name: String,
    },
    /// The disks QEMU has (reply `data`: `[{"name", "hotplugged"}]`).
    Volumes,
    /// Starts `dump-guest-memory` into `path` (detached).
    Dumpmemory {
        /// The file to write, on the dump claim.
        path: String,
    },
    /// `query-dump` (reply `data`: QEMU's `DumpQueryResult`).
    Dumpstatus,
}

impl Request {
    /// Whether this request is carried out by the guest agent, off the VM actor (a guest
    /// agent command may take up to a minute and must not hold up QMP work).
    pub fn is_guest_agent(&self) -> bool {
        matches!(
            self,
            Request::Userlist
                | Request::Filesystemlist
                | Request::Freeze { .. }
                | Request::Unfreeze
                | Request::Interfaces
                | Request::Guestinfo
                | Request::Sshkeys { .. }
                | Request::Setpassword { .. }
        )
    }
}

/// [`Reply::reason`] when the guest agent does not answer on its channel.
pub const AGENT_NOT_CONNECTED: &str = "AgentNotConnected";

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
    /// A machine-readable cause of a failure, e.g. [`AGENT_NOT_CONNECTED`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What a guest agent query answered, as the agent spells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Reply {
    /// Success without data.
    pub fn ok() -> Self {
        Reply {
            ok: true,
            error: None,
            status: None,
            reason: None,
            data: None,
        }
    }

    /// Failure with a message.
    pub fn error(message: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(message.into()),
            status: None,
            reason: None,
            data: None,
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
        assert_eq!(
            parse(r#"{"command":"freeze","unfreezeTimeoutSeconds":300}"#),
            Request::Freeze {
                unfreeze_timeout_seconds: Some(300)
            }
        );
        assert!(parse(r#"{"command":"filesystemlist"}"#).is_guest_agent());
        assert!(!parse(r#"{"command":"pause"}"#).is_guest_agent());
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
