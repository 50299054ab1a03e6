//! A fake qemu-guest-agent, reached the way the host reaches the real one: a Unix socket.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{
    bind, lock, not_found, parse_request, send_reply, write_loop, FakeReply, Outbound, Outbox,
};
use super::{ReceivedCommand, Recorder, Script};
use crate::codec::base64;
use crate::codec::{self, SENTINEL};

/// How programs started with `guest-exec` end in the fake guest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FakeExecResult {
    /// Exit code.
    pub exit_code: i64,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
}

/// A fake guest agent on a Unix socket.
///
/// Built in: `guest-sync-delimited` (answers `0xFF` + reply), `guest-sync`, `guest-ping`,
/// `guest-info`, `guest-get-osinfo`, `guest-get-host-name`, `guest-get-users`,
/// `guest-get-fsinfo`, `guest-network-get-interfaces`, `guest-set-user-password`,
/// `guest-exec`/`guest-exec-status` (an `echo` prints its arguments; otherwise see
/// [`FakeGuestAgent::set_exec_result`]), `guest-fsfreeze-*`, `guest-ssh-*-authorized-keys`
/// and `guest-shutdown` (never answers, as in qemu-ga). Like qemu-ga 7.x it answers a
/// stray `0xFF` with a JSON parse error. [`FakeGuestAgent::set_responding`]`(false)`
/// simulates a guest whose agent is not running: input is swallowed, nothing is answered.
#[derive(Debug)]
pub struct FakeGuestAgent {
    shared: Arc<Shared>,
    path: PathBuf,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    recorder: Recorder,
}

#[derive(Debug)]
struct State {
    responding: bool,
    script: Script,
    connections: Vec<Outbox>,
    host_name: String,
    osinfo: Value,
    users: Value,
    fsinfo: Value,
    interfaces: Value,
    frozen: bool,
    next_pid: i64,
    exec_result: Option<FakeExecResult>,
    processes: HashMap<i64, FakeExecResult>,
    passwords: HashMap<String, (String, bool)>,
    authorized_keys: BTreeMap<String, Vec<String>>,
}

const BUILTINS: &[&str] = &[
    "guest-sync-delimited",
    "guest-sync",
    "guest-ping",
    "guest-info",
    "guest-get-osinfo",
    "guest-get-host-name",
    "guest-get-users",
    "guest-get-fsinfo",
    "guest-network-get-interfaces",
    "guest-set-user-password",
    "guest-exec",
    "guest-exec-status",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-thaw",
    "guest-fsfreeze-status",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-remove-authorized-keys",
    "guest-shutdown",
];

impl FakeGuestAgent {
    /// Listens on `path` with a small Linux guest's worth of answers.
    ///
    /// # Errors
    /// If the socket cannot be bound.
    pub async fn start(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_owned();
        let listener = bind(&path)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                responding: true,
                script: Script::default(),
                connections: Vec::new(),
                host_name: "fake-guest".to_owned(),
                osinfo: json!({"id": "debian", "name": "Debian GNU/Linux", "pretty-name": "Debian GNU/Linux 13 (trixie)",
                    "version-id": "13", "kernel-release": "6.12.0", "kernel-version": "#1 SMP", "machine": "x86_64"}),
                users: json!([]),
                fsinfo: json!([{"name": "vda1", "mountpoint": "/", "type": "ext4", "used-bytes": 1_048_576,
                    "total-bytes": 10_485_760, "disk": []}]),
                interfaces: json!([{"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [
                    {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]}]),
                frozen: false,
                next_pid: 1000,
                exec_result: None,
                processes: HashMap::new(),
                passwords: HashMap::new(),
                authorized_keys: BTreeMap::new(),
            }),
            recorder: Recorder::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FakeGuestAgent {
            shared,
            path,
            accept,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the "agent in the guest" answers at all.
    pub fn set_responding(&self, responding: bool) {
        lock(&self.shared.state).responding = responding;
    }

    /// Answers every future `command` with `reply`, replacing any built-in behaviour.
    pub fn script(&self, command: &str, reply: FakeReply) {
        lock(&self.shared.state)
            .script
            .always
            .insert(command.to_owned(), reply);
    }

    /// Answers the next `command` only with `reply`.
    pub fn script_once(&self, command: &str, reply: FakeReply) {
        let mut state = lock(&self.shared.state);
        state
            .script
            .once
            .entry(command.to_owned())
            .or_default()
            .push_back(reply);
    }

    /// Writes raw bytes to every connected client (e.g. a stale half reply).
    pub fn inject_raw(&self, bytes: &[u8]) {
        let mut state = lock(&self.shared.state);
        state
            .connections
            .retain(|outbox| outbox.send(Outbound::Bytes(bytes.to_vec())).is_ok());
    }

    /// Sets the `guest-get-host-name` answer.
    pub fn set_host_name(&self, host_name: &str) {
        lock(&self.shared.state).host_name = host_name.to_owned();
    }

    /// Sets the `guest-get-users` answer (a JSON array of `GuestUser`).
    pub fn set_users(&self, users: Value) {
        lock(&self.shared.state).users = users;
    }

    /// Sets the `guest-network-get-interfaces` answer.
    pub fn set_interfaces(&self, interfaces: Value) {
        lock(&self.shared.state).interfaces = interfaces;
    }

    /// How later `guest-exec` programs end (default: exit 0; `echo` prints its arguments).
    pub fn set_exec_result(&self, result: FakeExecResult) {
        lock(&self.shared.state).exec_result = Some(result);
    }

    /// The password last set for `user` and whether it was crypted.
    pub fn password(&self, user: &str) -> Option<(String, bool)> {
        lock(&self.shared.state).passwords.get(user).cloned()
    }

    /// The authorized keys of `user`.
    pub fn authorized_keys(&self, user: &str) -> Vec<String> {
        lock(&self.shared.state)
            .authorized_keys
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the guest filesystems are frozen.
    pub fn is_frozen(&self) -> bool {
        lock(&self.shared.state).frozen
    }

    /// Every command received, in order.
    pub fn commands(&self) -> Vec<ReceivedCommand> {
        self.shared.recorder.all()
    }

    /// The names of [`FakeGuestAgent::commands`].
    pub fn command_names(&self) -> Vec<String> {
        self.commands().into_iter().map(|c| c.name).collect()
    }

    /// The first received command called `name`, waiting up to `timeout` for it.
    pub async fn wait_for_command(&self, name: &str, timeout: Duration) -> Option<ReceivedCommand> {
        self.shared.recorder.wait_for(name, timeout).await
    }

    /// Closes every client connection (as QEMU exiting would).
    pub fn disconnect_all(&self) {
        let mut state = lock(&self.shared.state);
        for outbox in state.connections.drain(..) {
            let _ = outbox.send(Outbound::Close);
        }
    }
}

impl Drop for FakeGuestAgent {
    fn drop(&mut self) {
        self.disconnect_all();
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, shared.clone()));
    }
}

async fn serve(stream: UnixStream, shared: Arc<Shared>) {
    let (mut reader, write) = stream.into_split();
    let (outbox, queue) = mpsc::unbounded_channel();
    tokio::spawn(write_loop(write, queue));
    lock(&shared.state).connections.push(outbox.clone());
    let mut partial = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let responding = lock(&shared.state).responding;
        for &byte in &buffer[..read] {
            if byte == SENTINEL {
                // qemu-ga flushes its parser on 0xFF, and (7.x) reports it as a parse error.
                partial.clear();
                if responding {
                    send_reply(
                        &outbox,
                        FakeReply::error("GenericError", "JSON parse error, stray '\u{FFFD}'"),
                        None,
                    );
                }
            } else if byte == b'\n' {
                let line = std::mem::take(&mut partial);
                if responding {
                    handle_line(&shared, &outbox, &line);
                }
            } else {
                partial.push(byte);
            }
        }
    }
    // Only this connection's outbox is dropped here; the writer ends when it is released.
    let mut state = lock(&shared.state);
    state
        .connections
        .retain(|other| !other.same_channel(&outbox));
}

fn handle_line(shared: &Shared, outbox: &Outbox, line: &[u8]) {
    if line.trim_ascii().is_empty() {
        return;
    }
    let Some(command) = serde_json::from_slice::<Value>(line)
        .ok()
        .and_then(|r| parse_request(&r))
    else {
        send_reply(
            outbox,
            FakeReply::error("GenericError", "JSON parse error"),
            None,
        );
        return;
    };
    shared.recorder.record(command.clone());
    let id = command.id.clone();
    let mut state = lock(&shared.state);
    if let Some(reply) = state.script.take(&command.name) {
        drop(state);
        send_reply(outbox, reply, id);
        return;
    }
    if command.name == "guest-sync-delimited" {
        let echo = command.arguments.get("id").cloned().unwrap_or(Value::Null);
        let mut bytes = vec![SENTINEL];
        bytes.extend(codec::encode_line(&json!({ "return": echo })));
        let _ = outbox.send(Outbound::Bytes(bytes));
        return;
    }
    let reply = builtin(&mut state, &command);
    drop(state);
    send_reply(outbox, reply, id);
}

fn builtin(state: &mut State, command: &ReceivedCommand) -> FakeReply {
    let args = &command.arguments;
    let text = |name: &str| {
        args.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let strings = |name: &str| -> Vec<String> {
        args.get(name)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    match command.name.as_str() {
        "guest-sync" => FakeReply::ok(args.get("id").cloned().unwrap_or(Value::Null)),
        "guest-ping" => FakeReply::ok(json!({})),
        "guest-info" => {
            let commands: Vec<Value> = BUILTINS
                .iter()
                .map(|name| json!({"name": name, "enabled": true, "success-response": *name != "guest-shutdown"}))
                .collect();
            FakeReply::ok(json!({"version": "oxivirt-fake", "supported_commands": commands}))
        }
        "guest-get-osinfo" => FakeReply::ok(state.osinfo.clone()),
        "guest-get-host-name" => FakeReply::ok(json!({"host-name": state.host_name})),
        "guest-get-users" => FakeReply::ok(state.users.clone()),
        "guest-get-fsinfo" => FakeReply::ok(state.fsinfo.clone()),
        "guest-network-get-interfaces" => FakeReply::ok(state.interfaces.clone()),
        "guest-set-user-password" => match base64::decode(&text("password")) {
            Ok(bytes) => {
                let crypted = args
                    .get("crypted")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let password = String::from_utf8_lossy(&bytes).into_owned();
                state
                    .passwords
                    .insert(text("username"), (password, crypted));
                FakeReply::ok(json!({}))
            }
            Err(_) => FakeReply::error("GenericError", "Invalid base64 data"),
        },
        "guest-exec" => {
            let path = text("path");
            let result = state.exec_result.clone().unwrap_or_else(|| FakeExecResult {
                stdout: if path.ends_with("echo") {
                    format!("{}\n", strings("arg").join(" ")).into_bytes()
                } else {
                    Vec::new()
                },
                ..FakeExecResult::default()
            });
            let pid = state.next_pid;
            state.next_pid += 1;
            state.processes.insert(pid, result);
            FakeReply::ok(json!({ "pid": pid }))
        }
        "guest-exec-status" => {
            let pid = args.get("pid").and_then(Value::as_i64).unwrap_or(-1);
            // Reaped once reported, as in qemu-ga.
            match state.processes.remove(&pid) {
                Some(result) => FakeReply::ok(json!({"exited": true, "exitcode": result.exit_code,
                    "out-data": base64::encode(&result.stdout), "err-data": base64::encode(&result.stderr),
                    "out-truncated": false, "err-truncated": false})),
                None => FakeReply::error("GenericError", "Invalid parameter 'pid'"),
            }
        }
        "guest-fsfreeze-freeze" => {
            state.frozen = true;
            FakeReply::ok(json!(state.fsinfo.as_array().map_or(0, Vec::len)))
        }
        "guest-fsfreeze-thaw" => {
            let thawed = if state.frozen {
                state.fsinfo.as_array().map_or(0, Vec::len)
            } else {
                0
            };
            state.frozen = false;
            FakeReply::ok(json!(thawed))
        }
        "guest-fsfreeze-status" => {
            FakeReply::ok(json!(if state.frozen { "frozen" } else { "thawed" }))
        }
        "guest-ssh-add-authorized-keys" => {
            let reset = args.get("reset").and_then(Value::as_bool).unwrap_or(false);
            let keys = state.authorized_keys.entry(text("username")).or_default();
            if reset {
                keys.clear();
            }
            for key in strings("keys") {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            FakeReply::ok(json!({}))
        }
        "guest-ssh-remove-authorized-keys" => {
            let remove = strings("keys");
            if let Some(keys) = state.authorized_keys.get_mut(&text("username")) {
                keys.retain(|key| !remove.contains(key));
            }
            FakeReply::ok(json!({}))
        }
        "guest-shutdown" => FakeReply::NoReply,
        other => not_found(other),
    }
}
