//! The one error type of this crate, shared by the QMP and guest-agent clients.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to QEMU or to the guest agent.
///
/// Commands are named in every variant that concerns one, so a log line says which
/// request failed without the caller adding context.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening the Unix socket failed: QEMU has not created it yet, it has exited, the
    /// path is wrong, or permissions forbid it.
    #[error("cannot connect to {path}")]
    Connect {
        /// The socket path that was dialled.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Writing a request to, or reading from, the socket failed for a reason other than the
    /// peer going away (that is [`Error::Closed`]).
    #[error("socket i/o failed during {command}")]
    Io {
        /// The command being sent or awaited.
        command: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The peer closed the connection before answering `command`: QEMU exited or crashed,
    /// the guest-agent socket went away, or the client was already closed.
    #[error("connection closed before {command} was answered")]
    Closed {
        /// The command left unanswered.
        command: String,
    },
    /// QEMU or the guest agent answered `command` with an error reply
    /// (`{"error": {"class": .., "desc": ..}}`).
    #[error("{command} failed: {class}: {desc}")]
    Command {
        /// The command that was refused.
        command: String,
        /// The QMP error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotFound`.
        class: String,
        /// QEMU's human-readable description.
        desc: String,
    },
    /// No reply to `command` arrived within `timeout`. For the guest agent this usually
    /// means the agent is not running in the guest.
    #[error("{command} got no reply within {timeout:?}")]
    Timeout {
        /// The command that went unanswered.
        command: String,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The peer broke the protocol: no or malformed greeting, a line that is not JSON, or
    /// a message that is neither a reply nor an event.
    #[error("protocol violation: {detail}")]
    Protocol {
        /// What was wrong, with a short excerpt of the offending data.
        detail: String,
    },
    /// The reply to `command` was a success but did not have the shape the typed wrapper
    /// expects (a newer or older QEMU changed it).
    #[error("unexpected reply to {command}")]
    Decode {
        /// The command whose reply did not decode.
        command: String,
        /// Which field was wrong.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// The QMP error class when QEMU or the agent refused the command.
    pub fn class(&self) -> Option<&str> {
        match self {
            Error::Command { class, .. } => Some(class),
            _ => None,
        }
    }

    /// True when the command does not exist (or was disabled in the guest agent).
    pub fn is_command_not_found(&self) -> bool {
        self.class() == Some("CommandNotFound")
    }

    /// True when the connection is gone, so retrying on this client cannot succeed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed { .. })
    }

    /// True when the peer did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    pub(crate) fn decode(command: &str, source: serde_json::Error) -> Self {
        Error::Decode {
            command: command.to_owned(),
            source,
        }
    }

    pub(crate) fn closed(command: &str) -> Self {
        Error::Closed {
            command: command.to_owned(),
        }
    }

    pub(crate) fn timeout(command: &str, timeout: Duration) -> Self {
        Error::Timeout {
            command: command.to_owned(),
            timeout,
        }
    }

    /// Maps an I/O error on a connected socket: a vanished peer is [`Error::Closed`].
    pub(crate) fn from_io(command: &str, source: io::Error) -> Self {
        if is_disconnect(&source) {
            Error::closed(command)
        } else {
            Error::Io {
                command: command.to_owned(),
                source,
            }
        }
    }
}

/// Whether an I/O error means the other end of the socket went away.
pub(crate) fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof
    )
}
