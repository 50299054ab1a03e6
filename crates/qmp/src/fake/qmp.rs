//! A fake QMP server with a simulated run state.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{
    bind, lock, not_found, parse_request, send_reply, write_loop, FakeReply, Outbound, Outbox,
};
use super::{ReceivedCommand, Recorder, Script};
use crate::codec;
use crate::codec::base64;
use crate::commands::{RunState, VersionTriple};
use crate::events::Event;

/// A valid 1×1 black PNG, written by the fake `screendump`.
const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x3A, 0x7E, 0x9B,
    0x55, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x60, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x01, 0x48, 0xAF, 0xA4, 0x71, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

/// How the simulated guest reacts to `system_powerdown` (the ACPI power button).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerdownBehavior {
    /// A running guest powers off after `delay`: `SHUTDOWN` (guest, `guest-shutdown`),
    /// then QEMU exits. A paused guest ignores the button, as a real one would.
    Shutdown {
        /// Time the guest takes to shut down.
        delay: Duration,
    },
    /// The guest ignores ACPI (no OS, or one without acpid): only `POWERDOWN` is emitted.
    Ignore,
}

/// Start-up settings of a [`FakeQmpServer`].
#[derive(Debug, Clone)]
pub struct FakeQmpOptions {
    /// Version in the greeting and `query-version`.
    pub version: VersionTriple,
    /// Run state before any command (QEMU started with `-S` is `Prelaunch`).
    pub initial_state: RunState,
    /// Reaction to `system_powerdown`.
    pub powerdown: PowerdownBehavior,
}

impl Default for FakeQmpOptions {
    fn default() -> Self {
        FakeQmpOptions {
            version: VersionTriple {
                major: 7,
                minor: 2,
                micro: 0,
            },
            initial_state: RunState::Prelaunch,
            powerdown: PowerdownBehavior::Shutdown {
                delay: Duration::from_millis(10),
            },
        }
    }
}

/// A fake QEMU monitor on a Unix socket.
///
/// Built in: `qmp_capabilities` (required first, as in QEMU), `query-status`, `cont`,
/// `stop`, `system_powerdown`, `system_reset`, `quit`, `query-version`, `set-action`,
/// `device_add`/`device_del` (with `DEVICE_DELETED`), `blockdev-add`/`blockdev-del`,
/// `query-block` (empty), `ringbuf-read`, `screendump` (writes a 1×1 PNG),
/// `query-cpus-fast`, `human-monitor-command`, `migrate`/`query-migrate`. Anything else is
/// `CommandNotFound` unless scripted. Events a command causes are sent before its reply,
/// as QEMU does. After `quit`, a powerdown shutdown or [`FakeQmpServer::crash`] the fake
/// "exits": connections close and the socket is removed.
#[derive(Debug)]
pub struct FakeQmpServer {
    shared: Arc<Shared>,
    path: PathBuf,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    recorder: Recorder,
    exited: watch::Sender<bool>,
    version: VersionTriple,
}

#[derive(Debug)]
struct State {
    run_state: RunState,
    powerdown: PowerdownBehavior,
    script: Script,
    /// Negotiated connections: they receive events.
    listeners: Vec<Outbox>,
    /// Every open connection: closed on exit.
    connections: Vec<Outbox>,
    devices: BTreeSet<String>,
    nodes: BTreeSet<String>,
    ringbufs: HashMap<String, VecDeque<u8>>,
    migrated: bool,
}

impl FakeQmpServer {
    /// Listens on `path` with default options.
    ///
    /// # Errors
    /// If the socket cannot be bound.
    pub async fn start(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::start_with(path, FakeQmpOptions::default()).await
    }

    /// Listens on `path` with `options`.
    ///
    /// # Errors
    /// If the socket cannot be bound.
    pub async fn start_with(path: impl AsRef<Path>, options: FakeQmpOptions) -> io::Result<Self> {
        let path = path.as_ref().to_owned();
        let listener = bind(&path)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                run_state: options.initial_state,
                powerdown: options.powerdown,
                script: Script::default(),
                listeners: Vec::new(),
                connections: Vec::new(),
                devices: BTreeSet::new(),
                nodes: BTreeSet::new(),
                ringbufs: HashMap::new(),
                migrated: false,
            }),
            recorder: Recorder::default(),
            exited: watch::channel(false).0,
            version: options.version,
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone(), path.clone()));
        Ok(FakeQmpServer {
            shared,
            path,
            accept,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The simulated run state.
    pub fn run_state(&self) -> RunState {
        lock(&self.shared.state).run_state
    }

    /// Sets the run state without emitting events.
    pub fn set_run_state(&self, run_state: RunState) {
        lock(&self.shared.state).run_state = run_state;
    }

    /// Changes the reaction to `system_powerdown`.
    pub fn set_powerdown_behavior(&self, behavior: PowerdownBehavior) {
        lock(&self.shared.state).powerdown = behavior;
    }

    /// Sends an event to every negotiated client.
    pub fn emit(&self, name: &str, data: Value) {
        self.shared.emit(Event::new(name, data));
    }

    /// Answers every future `command` with `reply`, replacing any built-in behaviour.
    pub fn script(&self, command: &str, reply: FakeReply) {
        lock(&self.shared.state)
            .script
            .always
            .insert(command.to_owned(), reply);
    }

    /// Answers the next `command` only with `reply` (queued after earlier one-shot replies).
    pub fn script_once(&self, command: &str, reply: FakeReply) {
        let mut state = lock(&self.shared.state);
        state
            .script
            .once
            .entry(command.to_owned())
            .or_default()
            .push_back(reply);
    }

    /// Appends bytes to a ring-buffer chardev called `device` (creating it), as guest
    /// console output would.
    pub fn push_ringbuf(&self, device: &str, bytes: &[u8]) {
        let mut state = lock(&self.shared.state);
        state
            .ringbufs
            .entry(device.to_owned())
            .or_default()
            .extend(bytes);
    }

    /// Ids of the devices added with `device_add` and not deleted.
    pub fn devices(&self) -> Vec<String> {
        lock(&self.shared.state).devices.iter().cloned().collect()
    }

    /// Node names added with `blockdev-add` and not deleted.
    pub fn block_nodes(&self) -> Vec<String> {
        lock(&self.shared.state).nodes.iter().cloned().collect()
    }

    /// Every command received, in order, from every connection.
    pub fn commands(&self) -> Vec<ReceivedCommand> {
        self.shared.recorder.all()
    }

    /// The names of [`FakeQmpServer::commands`].
    pub fn command_names(&self) -> Vec<String> {
        self.commands().into_iter().map(|c| c.name).collect()
    }

    /// The first received command called `name`, waiting up to `timeout` for it.
    pub async fn wait_for_command(&self, name: &str, timeout: Duration) -> Option<ReceivedCommand> {
        self.shared.recorder.wait_for(name, timeout).await
    }

    /// Simulates `kill -9` of QEMU: every connection drops with no `SHUTDOWN` event.
    pub fn crash(&self) {
        self.shared.exit();
    }

    /// True once the fake QEMU has "exited".
    pub fn has_exited(&self) -> bool {
        *self.shared.exited.borrow()
    }

    /// Waits up to `timeout` for the fake QEMU to exit; true if it did.
    pub async fn wait_exited(&self, timeout: Duration) -> bool {
        let mut exited = self.shared.exited.subscribe();
        tokio::time::timeout(timeout, exited.wait_for(|gone| *gone))
            .await
            .is_ok_and(|result| result.is_ok())
    }
}

impl Drop for FakeQmpServer {
    fn drop(&mut self) {
        self.shared.exit();
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Shared {
    fn emit(&self, event: Event) {
        let Ok(value) = serde_json::to_value(&event) else {
            return;
        };
        let line = codec::encode_line(&value);
        let mut state = lock(&self.state);
        state
            .listeners
            .retain(|outbox| outbox.send(Outbound::Bytes(line.clone())).is_ok());
    }

    /// The fake QEMU process ends: close every connection and stop listening.
    fn exit(&self) {
        let mut state = lock(&self.state);
        for outbox in state.connections.drain(..) {
            let _ = outbox.send(Outbound::Close);
        }
        state.listeners.clear();
        drop(state);
        self.exited.send_replace(true);
    }
}

async fn accept_loop(listener: tokio::net::UnixListener, shared: Arc<Shared>, path: PathBuf) {
    let mut exited = shared.exited.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => drop(tokio::spawn(serve(stream, shared.clone()))),
                Err(error) => {
                    tracing::warn!(%error, "fake qmp accept failed");
                    break;
                }
            },
            _ = exited.wait_for(|gone| *gone) => break,
        }
    }
    drop(listener);
    let _ = std::fs::remove_file(path);
}

async fn serve(stream: UnixStream, shared: Arc<Shared>) {
    let (read, write) = stream.into_split();
    let (outbox, queue) = mpsc::unbounded_channel();
    tokio::spawn(write_loop(write, queue));
    {
        let mut state = lock(&shared.state);
        if *shared.exited.borrow() {
            return;
        }
        state.connections.push(outbox.clone());
    }
    let v = shared.version;
    let greeting = json!({"QMP": {"version": {"qemu": {"major": v.major, "minor": v.minor, "micro": v.micro},
        "package": "oxivirt-fake"}, "capabilities": ["oob"]}});
    let _ = outbox.send(Outbound::Bytes(codec::encode_line(&greeting)));

    let mut reader = BufReader::new(read);
    let mut exited = shared.exited.subscribe();
    let mut negotiated = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        tokio::select! {
            read = reader.read_until(b'\n', &mut line) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => handle_line(&shared, &outbox, &mut negotiated, &line),
            },
            _ = exited.wait_for(|gone| *gone) => break,
        }
    }
}

fn handle_line(shared: &Arc<Shared>, outbox: &Outbox, negotiated: &mut bool, line: &[u8]) {
    let Ok(request) = serde_json::from_slice::<Value>(line) else {
        if !line.trim_ascii().is_empty() {
            send_reply(
                outbox,
                FakeReply::error("GenericError", "JSON parse error"),
                None,
            );
        }
        return;
    };
    let Some(command) = parse_request(&request) else {
        send_reply(
            outbox,
            FakeReply::error("GenericError", "QMP input lacks member 'execute'"),
            None,
        );
        return;
    };
    shared.recorder.record(command.clone());
    let id = command.id.clone();
    if command.name == "qmp_capabilities" {
        let reply = if *negotiated {
            FakeReply::error(
                "CommandNotFound",
                "Capabilities negotiation is already complete, command ignored",
            )
        } else {
            *negotiated = true;
            lock(&shared.state).listeners.push(outbox.clone());
            FakeReply::ok(json!({}))
        };
        send_reply(outbox, reply, id);
        return;
    }
    if !*negotiated {
        let reply = FakeReply::error(
            "CommandNotFound",
            "Expecting capabilities negotiation with 'qmp_capabilities'",
        );
        send_reply(outbox, reply, id);
        return;
    }
    let scripted = lock(&shared.state).script.take(&command.name);
    if let Some(reply) = scripted {
        send_reply(outbox, reply, id);
        return;
    }
    let (reply, after) = builtin(shared, &command);
    send_reply(outbox, reply, id);
    match after {
        After::Nothing => {}
        After::Exit => shared.exit(),
        After::Later(delay, event, exit) => {
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                shared.emit(event);
                if exit {
                    shared.exit();
                }
            });
        }
    }
}

/// What happens after a built-in command's reply was queued.
enum After {
    Nothing,
    Exit,
    /// After a delay, emit the event, then maybe exit.
    Later(Duration, Event, bool),
}

fn ok() -> FakeReply {
    FakeReply::ok(json!({}))
}

fn builtin(shared: &Arc<Shared>, command: &ReceivedCommand) -> (FakeReply, After) {
    let arg = |name: &str| {
        command
            .arguments
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut state = lock(&shared.state);
    let mut events = Vec::new();
    let mut after = After::Nothing;
    let reply = match command.name.as_str() {
        "query-status" => {
            let status = state.run_state;
            FakeReply::ok(
                json!({"status": status, "running": status == RunState::Running, "singlestep": false}),
            )
        }
        "cont" => {
            if state.run_state != RunState::Running {
                state.run_state = RunState::Running;
                events.push(Event::new("RESUME", Value::Null));
            }
            ok()
        }
        "stop" => {
            if state.run_state == RunState::Running {
                state.run_state = RunState::Paused;
                events.push(Event::new("STOP", Value::Null));
            }
            ok()
        }
        "system_powerdown" => {
            events.push(Event::new("POWERDOWN", Value::Null));
            if let (PowerdownBehavior::Shutdown { delay }, RunState::Running) =
                (state.powerdown, state.run_state)
            {
                let shutdown = Event::new(
                    "SHUTDOWN",
                    json!({"guest": true, "reason": "guest-shutdown"}),
                );
                after = After::Later(delay, shutdown, true);
            }
            ok()
        }
        "system_reset" => {
            events.push(Event::new(
                "RESET",
                json!({"guest": false, "reason": "host-qmp-system-reset"}),
            ));
            ok()
        }
        "quit" => {
            events.push(Event::new(
                "SHUTDOWN",
                json!({"guest": false, "reason": "host-qmp-quit"}),
            ));
            state.run_state = RunState::Shutdown;
            after = After::Exit;
            ok()
        }
        "query-version" => {
            let v = shared.version;
            FakeReply::ok(
                json!({"qemu": {"major": v.major, "minor": v.minor, "micro": v.micro}, "package": "oxivirt-fake"}),
            )
        }
        "set-action" => ok(),
        "human-monitor-command" => FakeReply::ok(json!("")),
        "device_add" => {
            let id = arg("id");
            if state.devices.insert(id.clone()) {
                ok()
            } else {
                FakeReply::error(
                    "GenericError",
                    &format!("Duplicate device ID '{id}' for device"),
                )
            }
        }
        "device_del" => {
            let id = arg("id");
            if state.devices.remove(&id) {
                let deleted = json!({"device": id, "path": format!("/machine/peripheral/{id}")});
                after = After::Later(Duration::ZERO, Event::new("DEVICE_DELETED", deleted), false);
                ok()
            } else {
                FakeReply::error("DeviceNotFound", &format!("Device '{id}' not found"))
            }
        }
        "blockdev-add" => {
            let node = arg("node-name");
            if state.nodes.insert(node.clone()) {
                ok()
            } else {
                FakeReply::error(
                    "GenericError",
                    &format!("node-name '{node}' is already in use"),
                )
            }
        }
        "blockdev-del" => {
            let node = arg("node-name");
            if state.nodes.remove(&node) {
                ok()
            } else {
                FakeReply::error(
                    "GenericError",
                    &format!("Failed to find node with node-name='{node}'"),
                )
            }
        }
        "query-block" => FakeReply::ok(json!([])),
        "ringbuf-read" => ringbuf_read(&mut state, command, &arg("device")),
        "screendump" => match std::fs::write(arg("filename"), TINY_PNG) {
            Ok(()) => ok(),
            Err(error) => FakeReply::error(
                "GenericError",
                &format!("failed to write screendump: {error}"),
            ),
        },
        "query-cpus-fast" => FakeReply::ok(
            json!([{"cpu-index": 0, "qom-path": "/machine/unattached/device[0]",
            "thread-id": std::process::id(), "props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "target": "x86_64"}]),
        ),
        "migrate" => {
            state.migrated = true;
            if state.run_state == RunState::Running {
                state.run_state = RunState::Postmigrate;
                events.push(Event::new("STOP", Value::Null));
            }
            ok()
        }
        "query-migrate" if state.migrated => {
            FakeReply::ok(json!({"status": "completed", "total-time": 1, "downtime": 1}))
        }
        "query-migrate" => FakeReply::ok(json!({})),
        other => not_found(other),
    };
    drop(state);
    for event in events {
        shared.emit(event);
    }
    (reply, after)
}

fn ringbuf_read(state: &mut State, command: &ReceivedCommand, device: &str) -> FakeReply {
    let Some(buffer) = state.ringbufs.get_mut(device) else {
        return FakeReply::error("GenericError", &format!("Device '{device}' not found"));
    };
    let size = command
        .arguments
        .get("size")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let take = buffer
        .len()
        .min(usize::try_from(size).unwrap_or(usize::MAX));
    let bytes: Vec<u8> = buffer.drain(..take).collect();
    let base64 = command.arguments.get("format").and_then(Value::as_str) == Some("base64");
    if base64 {
        FakeReply::ok(Value::from(base64::encode(&bytes)))
    } else {
        FakeReply::ok(Value::from(String::from_utf8_lossy(&bytes).into_owned()))
    }
}
