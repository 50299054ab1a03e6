//! The launcher's one error type. Messages name the VMI field, file or step that failed;
//! sources are chained, never interpolated.

use std::io;
use std::path::PathBuf;

/// `Result` with the launcher's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while configuring, preparing or supervising a VM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field holds text that is not a Kubernetes quantity (`128Mi`, `2`, `500m`).
    #[error("{field}: {value:?} is not a quantity")]
    Quantity {
        /// The VMI field path.
        field: String,
        /// The offending text.
        value: String,
    },
    /// The VMI asks for something that cannot be expressed as a QEMU configuration, or is
    /// inconsistent (a disk without its volume, a read-only SATA disk, too many SATA ports).
    #[error("{field}: {reason}")]
    Config {
        /// The VMI field path (or `launch.json` key).
        field: String,
        /// What is wrong, in a sentence fragment.
        reason: String,
    },
    /// `launch.json` could not be read.
    #[error("cannot read launch spec {path}")]
    ReadLaunchSpec {
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// `launch.json` is not valid JSON of the expected shape.
    #[error("launch spec {path} is invalid")]
    ParseLaunchSpec {
        /// Its path.
        path: PathBuf,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
    /// A file in the run directory (overlay, seed, NVRAM, pid or status file) could not be
    /// written.
    #[error("cannot write {path}")]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A firmware file (the OVMF variable store template) is missing or unreadable.
    #[error("cannot read firmware file {path} (Debian package ovmf)")]
    Firmware {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A config volume's directory (written by the node agent) cannot become an ISO image.
    #[error("config volume {path}: {reason}")]
    ConfigVolume {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// swtpm (the TPM emulator) could not be started or did not come up.
    #[error("swtpm failed (Debian packages swtpm, swtpm-tools): {reason}")]
    Swtpm {
        /// What went wrong, with swtpm's own words when it printed any.
        reason: String,
    },
    /// The containerDisk overlay could not be made.
    #[error("cannot create the overlay {path}")]
    Overlay {
        /// The overlay.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::qcow2::Qcow2Error,
    },
    /// `qemu-img` could not be run, or failed.
    #[error("qemu-img failed to create {path}: {stderr}")]
    QemuImg {
        /// The image it was creating.
        path: PathBuf,
        /// Its diagnostics (or the spawn error).
        stderr: String,
    },
    /// passt (user-mode networking) could not be started.
    #[error("passt failed (Debian package passt): {reason}")]
    Passt {
        /// What went wrong.
        reason: String,
    },
    /// QEMU could not be started at all.
    #[error("cannot start {program}")]
    Spawn {
        /// The binary.
        program: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// QEMU exited before its monitor became usable.
    #[error("qemu exited during start-up ({status}): {stderr}")]
    EarlyExit {
        /// The exit status.
        status: String,
        /// QEMU's last diagnostics.
        stderr: String,
    },
    /// A QMP step failed.
    #[error("qmp {step} failed")]
    Qmp {
        /// What was being done (`connect`, `cont`, ...).
        step: &'static str,
        /// The QMP error.
        #[source]
        source: oxivirt_qmp::Error,
    },
    /// A Unix socket of the run directory could not be opened.
    #[error("cannot open socket {path}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// SIGTERM or SIGINT arrived before the VM was running; QEMU, if started, was killed.
    #[error("stopped by a signal during start-up")]
    Interrupted,
    /// Waiting for QEMU, or a signal handler, failed.
    #[error("cannot {what}")]
    Process {
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Shorthand for [`Error::Config`].
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::WriteFile`].
    pub(crate) fn write(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::WriteFile {
            path: path.into(),
            source,
        }
    }

    /// The `status.json` reason for a start-up failure of this kind.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Quantity { .. } | Error::Config { .. } => "InvalidSpec",
            Error::ReadLaunchSpec { .. } | Error::ParseLaunchSpec { .. } => "InvalidLaunchSpec",
            Error::WriteFile { .. }
            | Error::Firmware { .. }
            | Error::QemuImg { .. }
            | Error::Overlay { .. }
            | Error::ConfigVolume { .. } => "PrepareFailed",
            Error::Swtpm { .. } => "TpmStartFailed",
            Error::Passt { .. } => "NetworkStartFailed",
            Error::Spawn { .. } | Error::EarlyExit { .. } => "QemuStartFailed",
            Error::Qmp { .. } => "QmpFailed",
            Error::Interrupted => "StoppedDuringStart",
            Error::Socket { .. } | Error::Process { .. } => "LauncherFailed",
        }
    }
}
