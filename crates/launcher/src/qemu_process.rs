//! The QEMU child process: spawning it (as QEMU's user when one is given), keeping the
//! tail of its diagnostics for failure messages, and connecting its monitor while
//! watching for an early exit.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use oxivirt_qmp::{QmpClient, QmpOptions};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::args::QemuCommand;
use crate::error::{Error, Result};
use crate::spec::RunPaths;

/// Lines of QEMU's stderr kept for status messages.
const STDERR_LINES: usize = 8;

/// A running QEMU. Dropping it kills QEMU, so a launcher that fails half-way through a
/// start never leaves a stray VM behind.
#[derive(Debug)]
pub(crate) struct QemuProcess {
    child: Child,
    pid: u32,
    diagnostics: Arc<Mutex<VecDeque<String>>>,
}

impl QemuProcess {
    /// Starts `command` with every socket path of `paths` cleared first.
    ///
    /// # Errors
    /// [`Error::Spawn`] if the binary cannot be executed.
    pub(crate) fn spawn(
        command: &QemuCommand,
        paths: &RunPaths,
        owner: Option<(u32, u32)>,
    ) -> Result<Self> {
        for socket in [
            paths.qmp_sock(),
            paths.serial_sock(),
            paths.qga_sock(),
            paths.vnc_sock(),
        ] {
            let _ = std::fs::remove_file(socket);
        }
        let mut process = Command::new(&command.program);
        process
            .args(&command.args)
            .current_dir(paths.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some((uid, gid)) = owner {
            process.uid(uid).gid(gid);
        }
        tracing::debug!(program = %command.program, args = ?command.args, "starting qemu");
        let mut child = process.spawn().map_err(|source| Error::Spawn {
            program: command.program.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        let diagnostics = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(collect(stderr, diagnostics.clone()));
        }
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(collect(stdout, diagnostics.clone()));
        }
        Ok(QemuProcess {
            child,
            pid,
            diagnostics,
        })
    }

    /// QEMU's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The last lines QEMU printed, joined with `; `.
    pub(crate) fn diagnostics(&self) -> String {
        let lines = self
            .diagnostics
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        lines.iter().cloned().collect::<Vec<_>>().join("; ")
    }

    /// Waits for QEMU to exit. Cancel-safe.
    ///
    /// # Errors
    /// [`Error::Process`] if waiting fails.
    pub(crate) async fn wait(&mut self) -> Result<ExitStatus> {
        self.child.wait().await.map_err(|source| Error::Process {
            what: "wait for qemu",
            source,
        })
    }

    /// Sends SIGKILL (no-op if QEMU already exited).
    pub(crate) fn kill(&mut self) {
        if let Err(error) = self.child.start_kill() {
            tracing::debug!(%error, "kill qemu");
        }
    }

    /// Connects the monitor, failing fast with QEMU's diagnostics if QEMU exits first.
    ///
    /// # Errors
    /// [`Error::EarlyExit`] if QEMU exits, [`Error::Qmp`] if the handshake fails.
    pub(crate) async fn connect_monitor(&mut self, paths: &RunPaths) -> Result<QmpClient> {
        let options = QmpOptions {
            // TCG start-up on a loaded machine; QEMU exiting ends the wait sooner.
            connect_timeout: Duration::from_secs(60),
            ..QmpOptions::default()
        };
        let connect = QmpClient::connect_with(paths.qmp_sock(), options);
        tokio::select! {
            client = connect => client.map_err(|source| Error::Qmp { step: "connect", source }),
            status = self.child.wait() => {
                // Let the stderr reader catch QEMU's last words.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let status = status.map_or_else(|e| e.to_string(), describe);
                Err(Error::EarlyExit { status, stderr: self.diagnostics() })
            }
        }
    }
}

/// `exit code 1`, `signal 9 (SIGKILL)`, ...
pub(crate) fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(9) => "signal 9 (SIGKILL)".to_owned(),
        Some(15) => "signal 15 (SIGTERM)".to_owned(),
        Some(6) => "signal 6 (SIGABRT)".to_owned(),
        Some(11) => "signal 11 (SIGSEGV)".to_owned(),
        Some(signal) => format!("signal {signal}"),
        None => status.to_string(),
    }
}

async fn collect(stream: impl AsyncRead + Unpin, into: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        // QEMU's own diagnostics go to the launcher's log (compute.log) as they come.
        tracing::warn!(target: "qemu", "{line}");
        let mut kept = into.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() == STDERR_LINES {
            kept.pop_front();
        }
        kept.push_back(line);
    }
}
