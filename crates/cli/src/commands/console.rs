//! `virtctl console NAME [--timeout MINUTES]`: the VMI's serial console in this terminal,
//! over the `console` websocket. As upstream: the terminal is put in raw mode, `Ctrl+]`
//! ends the session, and while the VMI is not running yet the connection is retried once
//! a second until the timeout.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, ReadBuf};

use super::stream::{self, Ended, Kind, OpenError};
use crate::client::{self, ConnectionOptions};
use crate::error::{Error, Result};

/// The escape character: `Ctrl+]` (GS).
pub const ESCAPE: u8 = 0x1d;

/// `virtctl console` as parsed.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// Name of the VirtualMachineInstance.
    pub name: String,
    /// The number of minutes to wait for the virtual machine instance to be ready.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

/// The validated command.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleRequest {
    pub name: String,
    pub timeout: Duration,
    pub connection: ConnectionOptions,
}

impl ConsoleRequest {
    pub fn from_args(args: ConsoleArgs, connection: ConnectionOptions) -> Self {
        ConsoleRequest {
            name: args.name,
            timeout: Duration::from_secs(args.timeout.saturating_mul(60)),
            connection,
        }
    }
}

/// Connects, relays until `Ctrl+]` or the server ends the session.
///
/// # Errors
/// The server's message when the VMI does not exist or the user may not open its console;
/// a timeout message when it did not start running in time.
pub fn run(request: &ConsoleRequest, err: &mut dyn Write) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let result = runtime.block_on(session(request, err));
    // The stdin reader is a blocking thread that cannot be interrupted; do not wait for it.
    runtime.shutdown_background();
    result
}

async fn session(request: &ConsoleRequest, err: &mut dyn Write) -> Result<()> {
    let session = client::connect(&request.connection)
        .await
        .map_err(Error::Config)?;
    let path = stream::path(Kind::Vmi, &session.namespace, &request.name, "console");
    let deadline = Instant::now() + request.timeout;
    let ws = loop {
        match stream::open(&session.client, &path).await {
            Ok(ws) => break ws,
            // 409: the VMI exists but is not running (yet); upstream waits for it.
            Err(OpenError::Refused { code: 409, message }) => {
                if Instant::now() >= deadline {
                    return Err(Error::Refused(if request.timeout.is_zero() {
                        message
                    } else {
                        format!(
                            "Timeout trying to connect to the virtual machine instance ({message})"
                        )
                    }));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    writeln!(
        err,
        "Successfully connected to {} console. The escape sequence is ^]",
        request.name
    )
    .map_err(Error::Output)?;
    let raw = RawTerminal::enter();
    let ended = stream::pump(
        ws,
        UntilEscape::new(tokio::io::stdin()),
        tokio::io::stdout(),
    )
    .await;
    drop(raw);
    match ended.map_err(|source| Error::Local {
        action: "cannot relay the console".into(),
        source,
    })? {
        Ended::Local => writeln!(err).map_err(Error::Output),
        // As upstream: the explanation, then a failure exit (the user did not end it).
        Ended::Remote => {
            writeln!(
                err,
                "\nYou were disconnected from the console. This has one of the following reasons:\n \
                 - another user connected to the console of the target vm\n - network issues"
            )
            .map_err(Error::Output)?;
            Err(Error::Refused(format!(
                "the console of {} was closed by the server",
                request.name
            )))
        }
    }
}

/// Reads from `inner` until the escape byte, then reports end of input.
pub struct UntilEscape<R> {
    inner: R,
    done: bool,
}

impl<R> UntilEscape<R> {
    pub fn new(inner: R) -> Self {
        UntilEscape { inner, done: false }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for UntilEscape<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if let Some(at) = buf.filled()[before..].iter().position(|b| *b == ESCAPE) {
                buf.set_filled(before + at);
                self.done = true;
            }
        }
        polled
    }
}

/// Raw mode on the controlling terminal while it lives (nothing when stdin is no terminal).
struct RawTerminal {
    saved: Option<rustix::termios::Termios>,
}

impl RawTerminal {
    fn enter() -> Self {
        let stdin = rustix::stdio::stdin();
        if !rustix::termios::isatty(stdin) {
            return RawTerminal { saved: None };
        }
        let Ok(saved) = rustix::termios::tcgetattr(stdin) else {
            return RawTerminal { saved: None };
        };
        let mut raw = saved.clone();
        raw.make_raw();
        if let Err(e) =
            rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw)
        {
            tracing::warn!(error = %e, "cannot put the terminal in raw mode");
            return RawTerminal { saved: None };
        }
        RawTerminal { saved: Some(saved) }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                rustix::stdio::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn input_ends_at_the_escape_byte() {
        let input: &[u8] = b"ls\r\x1dnot sent";
        let mut reader = UntilEscape::new(input);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.expect("reads");
        assert_eq!(out, b"ls\r");
    }
}
