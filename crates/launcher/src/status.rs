//! `status.json`: the launcher's report to the node agent, rewritten atomically (temp file
//! + rename) on every change, so a reader never sees half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::Accel;

/// The VM's phase as the launcher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Preparing files, starting QEMU, connecting the monitor.
    Starting,
    /// The vCPUs run.
    Running,
    /// The vCPUs are stopped (by request or by QEMU, e.g. on an I/O error).
    Paused,
    /// The guest shut down; QEMU is gone.
    Succeeded,
    /// QEMU crashed, was killed, could not start, or the guest panicked; QEMU is gone.
    Failed,
}

impl Phase {
    /// True for the phases after which the launcher exits.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// Milliseconds from launcher start to each start-up step (for benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartupTimings {
    /// `launch.json` read, files prepared, QEMU spawned.
    pub spawned_ms: u64,
    /// QMP negotiated.
    pub qmp_ready_ms: u64,
    /// `cont` acknowledged: guest code runs.
    pub running_ms: u64,
}

/// The contents of `status.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The phase.
    pub phase: Phase,
    /// A CamelCase reason (`GuestShutdown`, `QemuCrashed`, `PausedByUser`, ...), or empty.
    pub reason: String,
    /// A human-readable detail, or empty.
    pub message: String,
    /// QEMU's process id once spawned.
    pub qemu_pid: Option<u32>,
    /// The launcher's process id.
    pub launcher_pid: u32,
    /// When the guest started running (RFC 3339).
    pub started_at: Option<String>,
    /// The accelerator in use.
    pub accel: Accel,
    /// What the guest agent reported (`guest-get-osinfo`), once it answered.
    pub guest_os_info: Option<serde_json::Value>,
    /// When this file was written (RFC 3339).
    pub updated_at: String,
    /// Start-up latency, once running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<StartupTimings>,
}

/// Owns `status.json`: the current [`Status`] and its atomic rewrite.
#[derive(Debug)]
pub struct StatusFile {
    path: PathBuf,
    current: Status,
}

impl StatusFile {
    /// A `Starting` status for this launcher; nothing is written yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StatusFile {
            path: path.into(),
            current: Status {
                phase: Phase::Starting,
                reason: String::new(),
                message: String::new(),
                qemu_pid: None,
                launcher_pid: std::process::id(),
                started_at: None,
                accel: Accel::Tcg,
                guest_os_info: None,
                updated_at: now(),
                startup: None,
            },
        }
    }

    /// The status as last set.
    pub fn current(&self) -> &Status {
        &self.current
    }

    /// Applies `change` and rewrites the file if anything changed.
    ///
    /// # Errors
    /// [`Error::WriteFile`] if the file cannot be written or renamed.
    pub fn update(&mut self, change: impl FnOnce(&mut Status)) -> Result<()> {
        let before = self.current.clone();
        change(&mut self.current);
        if self.current == before && self.path.exists() {
            return Ok(());
        }
        self.write()
    }

    /// Sets the phase with its reason and message, and writes the file.
    ///
    /// # Errors
    /// As for [`StatusFile::update`].
    pub fn set_phase(&mut self, phase: Phase, reason: &str, message: &str) -> Result<()> {
        if phase != self.current.phase {
            tracing::info!(?phase, reason, message, "vm phase");
        }
        self.update(|status| {
            status.phase = phase;
            reason.clone_into(&mut status.reason);
            message.clone_into(&mut status.message);
        })
    }

    /// Writes the current status (temp file in the same directory, then rename).
    ///
    /// # Errors
    /// [`Error::WriteFile`].
    pub fn write(&mut self) -> Result<()> {
        self.current.updated_at = now();
        write_atomic(&self.path, &self.current)
    }
}

fn write_atomic(path: &Path, status: &Status) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(status)
        .map_err(|e| Error::write(path, std::io::Error::other(e)))?;
    text.push(b'\n');
    let temp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temp).map_err(|e| Error::write(&temp, e))?;
    file.write_all(&text).map_err(|e| Error::write(&temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| Error::write(path, e))
}

/// The current time in RFC 3339 with seconds, UTC.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_file_is_rewritten_whole_with_contract_field_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        let mut file = StatusFile::new(&path);
        file.set_phase(Phase::Running, "", "").expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["phase"], "Running");
        assert_eq!(value["accel"], "tcg");
        for key in [
            "reason",
            "message",
            "qemuPid",
            "launcherPid",
            "startedAt",
            "guestOsInfo",
            "updatedAt",
        ] {
            assert!(value.get(key).is_some(), "{key} missing in {text}");
        }
        assert!(!dir.path().join("status.json.tmp").exists());
    }

    #[test]
    fn final_phases_are_final() {
        assert!(Phase::Failed.is_final() && Phase::Succeeded.is_final());
        assert!(!Phase::Paused.is_final());
    }
}
