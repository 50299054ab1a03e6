//! Test doubles: a fake QMP server ([`FakeQmpServer`]) and a fake guest agent
//! ([`FakeGuestAgent`]), each listening on a Unix socket like the real thing.
//!
//! Only built with the `fake` feature, for tests of this and other crates. Both record
//! every command they receive, accept scripted replies for any command (which take
//! precedence over their built-in behaviour) and can inject traffic, so a test can drive
//! the launcher through shutdowns, crashes, timeouts and guest-agent outages without QEMU.

mod agent;
mod qmp;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, Notify};

pub use agent::{FakeExecResult, FakeGuestAgent};
pub use qmp::{FakeQmpOptions, FakeQmpServer, PowerdownBehavior};

use crate::codec;

/// A scripted answer to a command.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeReply {
    /// Answer `{"return": value}`.
    Return(Value),
    /// Answer `{"error": {"class": class, "desc": desc}}`.
    Error {
        /// QMP error class, e.g. `GenericError`.
        class: String,
        /// Description.
        desc: String,
    },
    /// Never answer (to test timeouts).
    NoReply,
    /// Answer as the inner reply after a delay (other commands are served meanwhile).
    Delayed(Duration, Box<FakeReply>),
}

impl FakeReply {
    /// `{"return": value}`.
    pub fn ok(value: Value) -> Self {
        FakeReply::Return(value)
    }

    /// An error reply.
    pub fn error(class: &str, desc: &str) -> Self {
        FakeReply::Error {
            class: class.to_owned(),
            desc: desc.to_owned(),
        }
    }

    /// This reply, sent `delay` later.
    pub fn after(self, delay: Duration) -> Self {
        FakeReply::Delayed(delay, Box::new(self))
    }
}

/// A command as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedCommand {
    /// The `execute` name.
    pub name: String,
    /// The `arguments` (`Value::Null` if none were sent).
    pub arguments: Value,
    /// The request `id`, if any.
    pub id: Option<Value>,
}

/// Per-command scripted replies: one-shot ones first, then a standing one.
#[derive(Debug, Default)]
struct Script {
    once: HashMap<String, VecDeque<FakeReply>>,
    always: HashMap<String, FakeReply>,
}

impl Script {
    fn take(&mut self, command: &str) -> Option<FakeReply> {
        if let Some(reply) = self.once.get_mut(command).and_then(VecDeque::pop_front) {
            return Some(reply);
        }
        self.always.get(command).cloned()
    }
}

/// Everything received, with a wake-up for waiters.
#[derive(Debug, Default)]
struct Recorder {
    commands: Mutex<Vec<ReceivedCommand>>,
    arrived: Notify,
}

impl Recorder {
    fn record(&self, command: ReceivedCommand) {
        lock(&self.commands).push(command);
        self.arrived.notify_waiters();
    }

    fn all(&self) -> Vec<ReceivedCommand> {
        lock(&self.commands).clone()
    }

    async fn wait_for(&self, name: &str, timeout: Duration) -> Option<ReceivedCommand> {
        let wait = async {
            loop {
                let arrived = self.arrived.notified();
                tokio::pin!(arrived);
                // Register before looking, so a command recorded in between is not missed.
                arrived.as_mut().enable();
                if let Some(found) = lock(&self.commands).iter().find(|c| c.name == name) {
                    return found.clone();
                }
                arrived.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }
}

/// What a connection's writer task is asked to do.
#[derive(Debug)]
enum Outbound {
    Bytes(Vec<u8>),
    Close,
}

type Outbox = mpsc::UnboundedSender<Outbound>;

/// Writes queued bytes in order; `Close` shuts the socket down (the peer sees EOF).
async fn write_loop(mut writer: OwnedWriteHalf, mut queue: mpsc::UnboundedReceiver<Outbound>) {
    while let Some(item) = queue.recv().await {
        match item {
            Outbound::Bytes(bytes) => {
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Outbound::Close => {
                let _ = writer.shutdown().await;
                break;
            }
        }
    }
}

/// Queues a reply line for `id`, honouring delays; `NoReply` sends nothing.
fn send_reply(outbox: &Outbox, reply: FakeReply, id: Option<Value>) {
    match reply {
        FakeReply::NoReply => {}
        FakeReply::Delayed(delay, inner) => {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                send_reply(&outbox, *inner, id);
            });
        }
        FakeReply::Return(value) => send_value(outbox, json!({ "return": value }), id),
        FakeReply::Error { class, desc } => send_value(
            outbox,
            json!({ "error": { "class": class, "desc": desc } }),
            id,
        ),
    }
}

fn send_value(outbox: &Outbox, mut value: Value, id: Option<Value>) {
    if let (Some(id), Some(object)) = (id, value.as_object_mut()) {
        object.insert("id".to_owned(), id);
    }
    // A closed connection just drops the line, as a vanished peer would.
    let _ = outbox.send(Outbound::Bytes(codec::encode_line(&value)));
}

/// Splits a request object into name, arguments and id.
fn parse_request(request: &Value) -> Option<ReceivedCommand> {
    let name = request.get("execute")?.as_str()?.to_owned();
    Some(ReceivedCommand {
        name,
        arguments: request.get("arguments").cloned().unwrap_or(Value::Null),
        id: request.get("id").cloned(),
    })
}

fn not_found(command: &str) -> FakeReply {
    FakeReply::error(
        "CommandNotFound",
        &format!("The command {command} has not been found"),
    )
}

/// Binds a listener, replacing a stale socket file left by an earlier run.
fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    UnixListener::bind(path)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
