//! The QMP client: connection, greeting, capability negotiation, id-tagged commands and
//! the event stream.
//!
//! Three parties share one connection. A *reader task* owns the read half: it routes each
//! reply to the caller waiting on its `id` (a oneshot channel in the pending map) and each
//! event to a broadcast channel. A *writer task* owns the write half, so a request is
//! always written whole even if the caller that issued it is cancelled mid-write. Callers
//! hold a cheap [`QmpClient`] handle and may issue commands concurrently.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::codec::{self, Message};
use crate::commands::VersionInfo;
use crate::error::{Error, Result};
use crate::events::{Event, EventKind, EventStream, ShutdownInfo};

/// Tunables of a [`QmpClient`].
#[derive(Debug, Clone)]
pub struct QmpOptions {
    /// How long [`QmpClient::connect_with`] keeps retrying while the socket does not exist
    /// yet or refuses connections (QEMU still starting). Zero means one attempt.
    pub connect_timeout: Duration,
    /// How long to wait for the greeting after connecting.
    pub greeting_timeout: Duration,
    /// Default time a command may take; see [`QmpClient::execute_with_timeout`].
    pub command_timeout: Duration,
    /// Events buffered per subscriber before the slowest one starts missing events.
    pub event_buffer: usize,
    /// How many recent events [`Closed::recent_events`] keeps.
    pub event_history: usize,
}

impl Default for QmpOptions {
    fn default() -> Self {
        QmpOptions {
            connect_timeout: Duration::from_secs(5),
            greeting_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            event_buffer: 256,
            event_history: 32,
        }
    }
}

/// The greeting QEMU sends on connect: `{"QMP": {"version": .., "capabilities": [..]}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Greeting {
    /// QEMU's version.
    pub version: VersionInfo,
    /// Protocol capabilities QEMU offers (e.g. `oob`); none are enabled by this client.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// When each handshake step finished, for start-up latency measurements.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeTimings {
    /// The socket connected.
    pub connected: Instant,
    /// The greeting was read.
    pub greeting: Instant,
    /// `qmp_capabilities` was acknowledged: commands may be issued from here on.
    pub negotiated: Instant,
}

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// QEMU closed the socket (it exited, or closed the monitor).
    Eof,
    /// Reading failed, e.g. the connection was reset because QEMU was killed.
    Error(String),
}

/// What the client knew when the connection ended; see [`QmpClient::closed`].
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    /// How the connection ended.
    pub reason: CloseReason,
    /// The data of the last `SHUTDOWN` event seen on this connection, if any.
    pub last_shutdown: Option<ShutdownInfo>,
    /// The most recent events, oldest first (at most [`QmpOptions::event_history`]).
    pub recent_events: Vec<Event>,
}

impl Closed {
    /// True when QEMU went away without announcing a `SHUTDOWN`: it crashed or was killed.
    /// (`quit`, `system_powerdown` and guest power-off all emit `SHUTDOWN` first.)
    ///
    /// # Caveats
    /// With `set-action shutdown=pause` QEMU stays alive after `SHUTDOWN`; killing it
    /// later is then not reported as a crash. Check [`Closed::last_shutdown`]'s reason
    /// (e.g. `guest-panic`) and [`Closed::recent_events`] for the finer distinctions.
    pub fn is_crash(&self) -> bool {
        self.last_shutdown.is_none()
    }

    /// True if an event called `name` is among [`Closed::recent_events`].
    pub fn saw_event(&self, name: &str) -> bool {
        self.recent_events.iter().any(|event| event.name == name)
    }
}

/// A connected, negotiated QMP session. Cloning is cheap and shares the connection; the
/// connection closes when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct QmpClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    outbound: mpsc::Sender<Outbound>,
    closed: watch::Receiver<Option<Arc<Closed>>>,
    greeting: Greeting,
    connected: Instant,
    greeting_at: Instant,
    negotiated: OnceLock<Instant>,
    options: QmpOptions,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer task ends by itself once `outbound` is dropped.
        self.reader.abort();
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    closed: watch::Sender<Option<Arc<Closed>>>,
}

#[derive(Debug)]
struct State {
    pending: HashMap<u64, oneshot::Sender<Reply>>,
    events: Option<broadcast::Sender<Event>>,
    history: VecDeque<Event>,
    history_len: usize,
    last_shutdown: Option<ShutdownInfo>,
    closed: bool,
}

#[derive(Debug)]
enum Reply {
    Return(Value),
    Error { class: String, desc: String },
    WriteFailed(io::Error),
}

#[derive(Debug)]
struct Outbound {
    id: u64,
    line: Vec<u8>,
}

impl QmpClient {
    /// Connects to QEMU's QMP socket with default [`QmpOptions`], reads the greeting and
    /// negotiates capabilities.
    ///
    /// # Errors
    /// [`Error::Connect`] if the socket cannot be opened within the connect timeout;
    /// [`Error::Timeout`], [`Error::Closed`] or [`Error::Protocol`] if the handshake fails.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_with(path, QmpOptions::default()).await
    }

    /// Like [`QmpClient::connect`] with explicit options. Retries while the socket is
    /// missing or refusing, up to [`QmpOptions::connect_timeout`].
    ///
    /// # Errors
    /// As for [`QmpClient::connect`].
    pub async fn connect_with(path: impl AsRef<Path>, options: QmpOptions) -> Result<Self> {
        let stream = connect_unix(path.as_ref(), options.connect_timeout).await?;
        Self::from_stream(stream, options).await
    }

    /// Runs the handshake over an already connected stream (e.g. a socket pair whose other
    /// end was passed to QEMU as a file descriptor).
    ///
    /// # Errors
    /// As for [`QmpClient::connect`], minus [`Error::Connect`].
    pub async fn from_stream(stream: UnixStream, options: QmpOptions) -> Result<Self> {
        let connected = Instant::now();
        let (read, write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let greeting = tokio::time::timeout(options.greeting_timeout, read_greeting(&mut reader))
            .await
            .map_err(|_| Error::timeout("greeting", options.greeting_timeout))??;
        let greeting_at = Instant::now();

        let (closed_tx, closed_rx) = watch::channel(None);
        let (events, _) = broadcast::channel(options.event_buffer.max(1));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: HashMap::new(),
                events: Some(events),
                history: VecDeque::new(),
                history_len: options.event_history,
                last_shutdown: None,
                closed: false,
            }),
            closed: closed_tx,
        });
        let (outbound, outbound_rx) = mpsc::channel(64);
        tokio::spawn(write_loop(write, outbound_rx, shared.clone()));
        let reader = tokio::spawn(read_loop(reader, shared.clone()));
        let client = QmpClient {
            inner: Arc::new(Inner {
                shared,
                outbound,
                closed: closed_rx,
                greeting,
                connected,
                greeting_at,
                negotiated: OnceLock::new(),
                options,
                next_id: AtomicU64::new(1),
                reader,
            }),
        };
        client.execute("qmp_capabilities", None).await?;
        // Set exactly once, here, before the client is returned: `set` cannot fail.
        let _ = client.inner.negotiated.set(Instant::now());
        Ok(client)
    }

    /// The greeting QEMU sent.
    pub fn greeting(&self) -> &Greeting {
        &self.inner.greeting
    }

    /// When the handshake steps completed.
    pub fn timings(&self) -> HandshakeTimings {
        let greeting = self.inner.greeting_at;
        HandshakeTimings {
            connected: self.inner.connected,
            greeting,
            negotiated: self.inner.negotiated.get().copied().unwrap_or(greeting),
        }
    }

    /// The options this client was built with.
    pub fn options(&self) -> &QmpOptions {
        &self.inner.options
    }

    /// Runs `command` with the default command timeout and returns QEMU's `return` value.
    /// Pass `None` for no arguments, or a JSON object.
    ///
    /// # Errors
    /// [`Error::Command`] if QEMU refuses, [`Error::Timeout`], [`Error::Closed`] if the
    /// connection ends first, [`Error::Io`] on other socket failures.
    pub async fn execute(
        &self,
        command: &str,
        arguments: impl Into<Option<Value>>,
    ) -> Result<Value> {
        let timeout = self.inner.options.command_timeout;
        self.execute_with_timeout(command, arguments, timeout).await
    }

    /// Like [`QmpClient::execute`] with an explicit timeout.
    ///
    /// # Guarantees
    /// Cancel-safe: dropping the future forgets the reply, and the request is still
    /// written whole, so the connection stays usable.
    ///
    /// # Errors
    /// As for [`QmpClient::execute`].
    pub async fn execute_with_timeout(
        &self,
        command: &str,
        arguments: impl Into<Option<Value>>,
        timeout: Duration,
    ) -> Result<Value> {
        let shared = &self.inner.shared;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = shared.lock();
            if state.closed {
                return Err(Error::closed(command));
            }
            state.pending.insert(id, tx);
        }
        let _forget = PendingGuard { shared, id };
        let line =
            codec::encode_command(command, arguments.into().as_ref(), Some(&Value::from(id)));
        tracing::debug!(command, id, "qmp execute");
        let exchange = async {
            self.inner
                .outbound
                .send(Outbound { id, line })
                .await
                .map_err(|_| Error::closed(command))?;
            rx.await.map_err(|_| Error::closed(command))
        };
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::timeout(command, timeout))??;
        match reply {
            Reply::Return(value) => Ok(value),
            Reply::Error { class, desc } => Err(Error::Command {
                command: command.to_owned(),
                class,
                desc,
            }),
            Reply::WriteFailed(source) => Err(Error::from_io(command, source)),
        }
    }

    /// Runs `command` and decodes its `return` value into `T`.
    ///
    /// # Errors
    /// As for [`QmpClient::execute`], plus [`Error::Decode`] if the reply has another shape.
    pub async fn execute_as<T: DeserializeOwned>(
        &self,
        command: &str,
        arguments: impl Into<Option<Value>>,
    ) -> Result<T> {
        let value = self.execute(command, arguments).await?;
        serde_json::from_value(value).map_err(|e| Error::decode(command, e))
    }

    /// Subscribes to events emitted from now on. See [`EventStream`].
    pub fn events(&self) -> EventStream {
        match &self.inner.shared.lock().events {
            Some(events) => EventStream::new(events.subscribe()),
            None => EventStream::ended(),
        }
    }

    /// The most recent events, oldest first.
    pub fn recent_events(&self) -> Vec<Event> {
        self.inner.shared.lock().history.iter().cloned().collect()
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.borrow().is_some()
    }

    /// Waits until the connection ends (QEMU exited, crashed or closed the socket) and
    /// says how, with the last events seen. Returns at once if it already ended.
    pub async fn closed(&self) -> Closed {
        let mut closed = self.inner.closed.clone();
        // An error means the sender is gone; it lives in `Shared`, which `self` keeps alive.
        let info = closed
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|info| info.clone());
        info.map_or_else(reader_gone, |info| (*info).clone())
    }
}

fn reader_gone() -> Closed {
    Closed {
        reason: CloseReason::Error("qmp reader task ended".to_owned()),
        last_shutdown: None,
        recent_events: Vec::new(),
    }
}

/// Removes a pending entry when the caller stops waiting (timeout or cancellation).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().pending.remove(&self.id);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn resolve(&self, id: Option<Value>, reply: Reply) {
        let Some(id) = id.as_ref().and_then(Value::as_u64) else {
            tracing::warn!(?id, ?reply, "qmp reply without a usable id");
            return;
        };
        match self.lock().pending.remove(&id) {
            // The caller may have just given up; nothing to do then.
            Some(waiter) => drop(waiter.send(reply)),
            None => tracing::debug!(id, "qmp reply for a command no longer awaited"),
        }
    }

    fn publish(&self, event: Event) {
        tracing::debug!(event = %event.name, "qmp event");
        let mut state = self.lock();
        if let EventKind::Shutdown(info) = event.kind() {
            state.last_shutdown = Some(info);
        }
        if state.history_len > 0 {
            if state.history.len() == state.history_len {
                state.history.pop_front();
            }
            state.history.push_back(event.clone());
        }
        if let Some(events) = &state.events {
            // No subscribers is fine: the event is still in the history.
            let _ = events.send(event);
        }
    }

    fn close(&self, reason: CloseReason) {
        let closed = {
            let mut state = self.lock();
            if state.closed {
                return;
            }
            state.closed = true;
            // Dropping the waiters' senders fails them with `Error::Closed`; dropping the
            // broadcast sender ends every event stream after its buffered events.
            state.pending.clear();
            state.events = None;
            Closed {
                reason,
                last_shutdown: state.last_shutdown.clone(),
                recent_events: state.history.iter().cloned().collect(),
            }
        };
        tracing::debug!(reason = ?closed.reason, crash = closed.is_crash(), "qmp connection closed");
        self.closed.send_replace(Some(Arc::new(closed)));
    }

    fn fail_write(&self, id: u64, error: io::Error) {
        if let Some(waiter) = self.lock().pending.remove(&id) {
            let _ = waiter.send(Reply::WriteFailed(error));
        }
    }
}

/// Marks the connection closed however the reader task ends (EOF, error, abort, panic).
struct CloseOnDrop {
    shared: Arc<Shared>,
    reason: CloseReason,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let reason = std::mem::replace(&mut self.reason, CloseReason::Eof);
        self.shared.close(reason);
    }
}

async fn read_loop(mut reader: BufReader<OwnedReadHalf>, shared: Arc<Shared>) {
    let mut guard = CloseOnDrop {
        shared: shared.clone(),
        reason: CloseReason::Error("qmp client dropped".to_owned()),
    };
    let mut line = Vec::new();
    guard.reason = loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => break CloseReason::Eof,
            Ok(_) => dispatch(&shared, &line),
            Err(error) if crate::error::is_disconnect(&error) => break CloseReason::Eof,
            Err(error) => break CloseReason::Error(error.to_string()),
        }
    };
}

fn dispatch(shared: &Shared, line: &[u8]) {
    match codec::parse_message(line) {
        Ok(None) => {}
        Ok(Some(Message::Return { id, value })) => shared.resolve(id, Reply::Return(value)),
        Ok(Some(Message::Error {
            id: None,
            class,
            desc,
        })) => {
            tracing::warn!(%class, %desc, "qmp error not tied to a command");
        }
        Ok(Some(Message::Error { id, class, desc })) => {
            shared.resolve(id, Reply::Error { class, desc })
        }
        Ok(Some(Message::Event(event))) => shared.publish(event),
        Ok(Some(Message::Greeting(_))) => tracing::warn!("unexpected second qmp greeting"),
        Err(detail) => tracing::warn!(%detail, "ignoring undecodable qmp line"),
    }
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut outbound: mpsc::Receiver<Outbound>,
    shared: Arc<Shared>,
) {
    while let Some(Outbound { id, line }) = outbound.recv().await {
        if let Err(error) = writer.write_all(&line).await {
            shared.fail_write(id, error);
        }
    }
}

async fn read_greeting(reader: &mut BufReader<OwnedReadHalf>) -> Result<Greeting> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| Error::from_io("greeting", e))?;
        if read == 0 {
            return Err(Error::closed("greeting"));
        }
        match codec::parse_message(&line) {
            Ok(None) => continue,
            Ok(Some(Message::Greeting(greeting))) => return Ok(greeting),
            Ok(Some(other)) => {
                return Err(Error::Protocol {
                    detail: format!("expected the qmp greeting, got {other:?}"),
                })
            }
            Err(detail) => return Err(Error::Protocol { detail }),
        }
    }
}

/// Connects to a Unix socket, retrying while it is absent or refusing until `patience` ran out.
pub(crate) async fn connect_unix(path: &Path, patience: Duration) -> Result<UnixStream> {
    let deadline = Instant::now() + patience;
    let mut pause = Duration::from_millis(1);
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return Ok(stream),
            Err(source)
                if matches!(
                    source.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) && Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            Err(source) => {
                return Err(Error::Connect {
                    path: path.to_owned(),
                    source,
                })
            }
        }
    }
}
