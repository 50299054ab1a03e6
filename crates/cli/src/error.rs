//! Errors of `virtctl` and the exit codes they map to.
//!
//! Every failure is one [`Error`] variant, and every variant has exactly one documented exit
//! code ([`Error::exit_code`]). The table in [`EXIT_CODES_HELP`] is what `virtctl --help`
//! prints and what `crates/cli/README.md` repeats.

use crate::client::ClientError;

/// The command succeeded.
pub const EXIT_OK: u8 = 0;
/// The command was valid but failed while running (API request refused, server unreachable).
pub const EXIT_FAILURE: u8 = 1;
/// The command line was invalid: unknown flag, missing or malformed value, conflicting flags.
pub const EXIT_USAGE: u8 = 2;
/// The command exists upstream but this oxivirt build does not implement it yet.
pub const EXIT_UNSUPPORTED: u8 = 3;
/// No usable client configuration (kubeconfig missing, unreadable or incomplete).
pub const EXIT_CONFIG: u8 = 4;

/// The exit-code table shown at the end of `virtctl --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the command failed while running (API error, server unreachable)
  2  invalid command line (unknown flag, bad or conflicting flag values)
  3  the command is not supported by this oxivirt build yet
  4  no usable client configuration (kubeconfig missing, unreadable or incomplete)
  ssh and scp exit with the status of the local ssh/scp they run.";

/// Result alias for the whole crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can make `virtctl` fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag value did not parse or did not validate. The message names the flag in
    /// upstream's wording: `failed to parse "--flag" flag: reason`.
    #[error("failed to parse \"--{flag}\" flag: {reason}")]
    Flag {
        /// Flag name without the leading dashes.
        flag: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// Flags were individually valid but do not make a manifest together (for example,
    /// instancetype inference without any volume to infer from).
    #[error("{0}")]
    Invalid(String),
    /// The command is registered (upstream has it) but not implemented here.
    #[error("\"{command}\" is not supported by this oxivirt build yet")]
    Unsupported {
        /// The command path, e.g. `start` or `create clone`.
        command: String,
    },
    /// Loading the kubeconfig or building the client failed.
    #[error("cannot configure the client")]
    Config(#[source] ClientError),
    /// The server refused the request (its message is shown as it is).
    #[error("{0}")]
    Refused(String),
    /// A request to the API server failed.
    #[error("{action}")]
    Api {
        /// What was being done, e.g. `cannot get the server version`.
        action: String,
        /// The underlying client error.
        #[source]
        source: ClientError,
    },
    /// The async runtime that carries API requests could not be started.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// Writing the command's output failed (for example, a closed pipe).
    #[error("cannot write output")]
    Output(#[source] std::io::Error),
    /// A local resource a command needs failed: a listening socket, the terminal, a child
    /// process that could not be started.
    #[error("{action}")]
    Local {
        /// What was being done, e.g. `cannot listen on 127.0.0.1:5900`.
        action: String,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// The local `ssh`/`scp` that `virtctl ssh|scp` ran exited with a failure status, which
    /// becomes virtctl's own exit code.
    #[error("{program} exited with status {code}")]
    Exited {
        /// `ssh` or `scp`.
        program: String,
        /// Its exit status.
        code: u8,
    },
    /// Serialising a manifest failed; a bug, since manifests are built from plain values.
    #[error("cannot serialise the manifest")]
    Serialize(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Shorthand for [`Error::Flag`].
    pub fn flag(flag: &'static str, reason: impl Into<String>) -> Self {
        Error::Flag {
            flag,
            reason: reason.into(),
        }
    }

    /// The documented exit code for this error (see [`EXIT_CODES_HELP`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Flag { .. } | Error::Invalid(_) => EXIT_USAGE,
            Error::Unsupported { .. } => EXIT_UNSUPPORTED,
            Error::Config(_) => EXIT_CONFIG,
            Error::Api { .. }
            | Error::Refused(_)
            | Error::Runtime(_)
            | Error::Output(_)
            | Error::Serialize(_)
            | Error::Local { .. } => EXIT_FAILURE,
            Error::Exited { code, .. } => *code,
        }
    }
}

/// Formats an error and its `source()` chain on one line, `outer: inner: innermost`, so
/// that each cause is printed exactly once.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        // Some foreign errors repeat their source in their own message; skip exact repeats.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = inner.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_errors_use_upstream_wording_and_usage_exit_code() {
        let err = Error::flag("volume-containerdisk", "src must be specified");
        assert_eq!(
            err.to_string(),
            "failed to parse \"--volume-containerdisk\" flag: src must be specified"
        );
        assert_eq!(err.exit_code(), EXIT_USAGE);
    }

    #[test]
    fn unsupported_commands_have_their_own_exit_code() {
        let err = Error::Unsupported {
            command: "start".into(),
        };
        assert_eq!(err.exit_code(), EXIT_UNSUPPORTED);
        assert!(err
            .to_string()
            .contains("not supported by this oxivirt build yet"));
    }

    #[test]
    fn chain_prints_every_cause_once() {
        let io = std::io::Error::other("broken pipe");
        let err = Error::Output(io);
        assert_eq!(chain(&err), "cannot write output: broken pipe");
    }
}
