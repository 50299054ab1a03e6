//! The qemu-guest-agent protocol, spoken over the host end of the agent's virtio-serial
//! channel (a Unix socket QEMU listens on).
//!
//! The agent protocol is QMP without a greeting, without capability negotiation and
//! without events, and with a harder problem: the host cannot see the guest side. The
//! agent may not be running yet, may restart with a reboot mid-reply, and a reply the
//! host gave up waiting for may arrive later. So the client:
//!
//! - opens the socket lazily and reopens it after it closes;
//! - synchronises before the first command and after any timeout or cancellation:
//!   it sends `0xFF` (the agent discards its partial input) and `guest-sync-delimited`
//!   with a fresh random id, then ignores everything until the agent's `0xFF` sentinel and
//!   the reply carrying that id;
//! - gives every command a timeout, because an absent agent never answers;
//! - tags requests with an `id` and skips replies carrying another one.
//!
//! Commands are serialised (one at a time), as the protocol requires.

mod commands;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Mutex;

use crate::codec::{self, AgentDecoder, Message, SENTINEL};
use crate::error::{Error, Result};

pub use commands::{
    AgentCommandInfo, AgentInfo, ExecCommand, ExecStatus, FilesystemInfo, FsfreezeStatus,
    GuestUser, IpAddress, IpAddressType, NetworkInterface, OsInfo,
};

/// Tunables of a [`GuestAgent`].
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// How long to retry opening the socket while it is missing or refusing.
    pub connect_timeout: Duration,
    /// How long a `guest-sync-delimited` may take. This is what a caller waits when the
    /// agent is not running, so keep it short.
    pub sync_timeout: Duration,
    /// Default time a command may take once the channel is in sync.
    pub command_timeout: Duration,
    /// Time allowed for `guest-fsfreeze-freeze` and `-thaw`, which sync every filesystem.
    pub freeze_timeout: Duration,
    /// Resynchronise before every command rather than only when the channel may be dirty
    /// (one extra round trip per command; libvirt's behaviour).
    pub sync_every_command: bool,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            connect_timeout: Duration::from_secs(1),
            sync_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(10),
            freeze_timeout: Duration::from_secs(60),
            sync_every_command: false,
        }
    }
}

/// A client of the guest agent behind one socket. Safe to share (`Arc`) between tasks;
/// commands queue and run one at a time.
#[derive(Debug)]
pub struct GuestAgent {
    path: PathBuf,
    options: AgentOptions,
    connection: Mutex<Option<Connection>>,
    seed: u64,
    counter: AtomicU64,
}

#[derive(Debug)]
struct Connection {
    stream: UnixStream,
    decoder: AgentDecoder,
    /// False whenever a reply may still be in flight: before the first sync, and from
    /// writing a request until its reply is read (so timeouts and cancellations leave it
    /// false and force a resync).
    in_sync: bool,
}

impl GuestAgent {
    /// A client for the agent socket at `path`. No I/O happens until the first command.
    pub fn new(path: impl Into<PathBuf>, options: AgentOptions) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        GuestAgent {
            path: path.into(),
            options,
            connection: Mutex::new(None),
            seed: nanos ^ (u64::from(std::process::id()) << 32),
            counter: AtomicU64::new(1),
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options this client was built with.
    pub fn options(&self) -> &AgentOptions {
        &self.options
    }

    /// Runs `command` with the default command timeout.
    ///
    /// # Errors
    /// [`Error::Connect`] if the socket cannot be opened, [`Error::Timeout`] if the agent
    /// does not answer the sync or the command in time (usually: not running),
    /// [`Error::Command`] if the agent refuses (`CommandNotFound` also when disabled),
    /// [`Error::Closed`] if the socket closes (QEMU exited).
    pub async fn execute(
        &self,
        command: &str,
        arguments: impl Into<Option<Value>>,
    ) -> Result<Value> {
        self.execute_with_timeout(command, arguments, self.options.command_timeout)
            .await
    }

    /// Like [`GuestAgent::execute`] with an explicit timeout for the command itself (the
    /// sync, when needed, has [`AgentOptions::sync_timeout`] on top).
    ///
    /// # Guarantees
    /// Cancel-safe: a dropped call leaves the channel marked dirty and the next command
    /// resynchronises first.
    ///
    /// # Errors
    /// As for [`GuestAgent::execute`].
    pub async fn execute_with_timeout(
        &self,
        command: &str,
        arguments: impl Into<Option<Value>>,
        timeout: Duration,
    ) -> Result<Value> {
        let arguments = arguments.into();
        let wait = self.options.sync_timeout + timeout;
        let mut slot = tokio::time::timeout(wait, self.connection.lock())
            .await
            .map_err(|_| Error::timeout(command, wait))?;
        let result = self
            .exchange(&mut slot, command, arguments.as_ref(), timeout)
            .await;
        if matches!(result, Err(Error::Closed { .. } | Error::Io { .. })) {
            // Reopen on the next call: QEMU may have been restarted behind the same path.
            *slot = None;
        }
        result
    }

    /// Runs `command` and decodes its `return` value into `T`.
    pub(crate) async fn execute_as<T: DeserializeOwned>(
        &self,
        command: &str,
        arguments: impl Into<Option<Value>>,
        timeout: Duration,
    ) -> Result<T> {
        let value = self
            .execute_with_timeout(command, arguments, timeout)
            .await?;
        serde_json::from_value(value).map_err(|e| Error::decode(command, e))
    }

    /// Forces a `guest-sync-delimited` round trip now (e.g. to probe that the agent is up).
    ///
    /// # Errors
    /// As for [`GuestAgent::execute`].
    pub async fn sync(&self) -> Result<()> {
        let mut slot = self.connection.lock().await;
        let connection = self.connected(&mut slot).await?;
        let id = self.next_sync_id();
        let result = connection.sync(id, self.options.sync_timeout).await;
        if matches!(result, Err(Error::Closed { .. } | Error::Io { .. })) {
            *slot = None;
        }
        result
    }

    async fn exchange(
        &self,
        slot: &mut Option<Connection>,
        command: &str,
        arguments: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let sync_id = self.next_sync_id();
        let connection = self.connected(slot).await?;
        if !connection.in_sync || self.options.sync_every_command {
            connection
                .sync(sync_id, self.options.sync_timeout)
                .await
                .map_err(|error| match error {
                    // Report the caller's command: the sync is an implementation detail.
                    Error::Timeout { timeout, .. } => Error::timeout(command, timeout),
                    Error::Closed { .. } => Error::closed(command),
                    other => other,
                })?;
        }
        let id = Value::from(self.counter.fetch_add(1, Ordering::Relaxed));
        tracing::debug!(command, %id, "guest agent execute");
        connection.in_sync = false;
        let request = codec::encode_command(command, arguments, Some(&id));
        connection.write(command, &request).await?;
        let reply = tokio::time::timeout(timeout, connection.read_reply(command, &id))
            .await
            .map_err(|_| Error::timeout(command, timeout))?;
        if !matches!(reply, Err(Error::Closed { .. } | Error::Io { .. })) {
            // A reply, success or error, was read whole: the channel is clean again.
            connection.in_sync = true;
        }
        reply
    }

    async fn connected<'a>(&self, slot: &'a mut Option<Connection>) -> Result<&'a mut Connection> {
        if slot.is_none() {
            let stream =
                crate::client::connect_unix(&self.path, self.options.connect_timeout).await?;
            *slot = Some(Connection {
                stream,
                decoder: AgentDecoder::default(),
                in_sync: false,
            });
        }
        slot.as_mut().ok_or_else(|| Error::closed("connect"))
    }

    /// A fresh sync id: random-looking, never repeated by this client, and within the
    /// agent's signed 64-bit integer range.
    fn next_sync_id(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.seed
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            & 0x7FFF_FFFF_FFFF_FFFF
    }
}

impl Connection {
    async fn write(&mut self, command: &str, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| Error::from_io(command, e))
    }

    async fn next_line(&mut self, command: &str) -> Result<Vec<u8>> {
        let mut buffer = [0u8; 8192];
        loop {
            if let Some(line) = self.decoder.next_line() {
                return Ok(line);
            }
            let read = self
                .stream
                .read(&mut buffer)
                .await
                .map_err(|e| Error::from_io(command, e))?;
            if read == 0 {
                return Err(Error::closed(command));
            }
            self.decoder.push(&buffer[..read]);
        }
    }

    async fn sync(&mut self, id: u64, timeout: Duration) -> Result<()> {
        const COMMAND: &str = "guest-sync-delimited";
        self.in_sync = false;
        self.decoder.expect_sentinel();
        let mut request = vec![SENTINEL];
        request.extend(codec::encode_command(
            COMMAND,
            Some(&json!({ "id": id })),
            None,
        ));
        self.write(COMMAND, &request).await?;
        let wait = async {
            loop {
                let line = self.next_line(COMMAND).await?;
                match codec::parse_message(&line) {
                    Ok(Some(Message::Return { value, .. })) if value.as_u64() == Some(id) => {
                        return Ok(())
                    }
                    other => tracing::debug!(?other, "discarding stale guest agent data"),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::timeout(COMMAND, timeout))??;
        self.in_sync = true;
        Ok(())
    }

    async fn read_reply(&mut self, command: &str, id: &Value) -> Result<Value> {
        loop {
            let line = self.next_line(command).await?;
            // Replies without an id are accepted: the channel is in sync, so they are ours.
            match codec::parse_message(&line) {
                Ok(Some(Message::Return {
                    id: reply_id,
                    value,
                })) if reply_id.as_ref().is_none_or(|r| r == id) => return Ok(value),
                Ok(Some(Message::Error {
                    id: reply_id,
                    class,
                    desc,
                })) if reply_id.as_ref().is_none_or(|r| r == id) => {
                    return Err(Error::Command {
                        command: command.to_owned(),
                        class,
                        desc,
                    })
                }
                other => tracing::debug!(
                    ?other,
                    command,
                    "skipping guest agent data for another request"
                ),
            }
        }
    }
}
