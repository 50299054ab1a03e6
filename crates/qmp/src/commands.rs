//! Typed wrappers for the QMP commands the launcher uses, and their reply types.
//!
//! Field names follow QEMU's QAPI schema (`qemu-qmp-ref(7)`); replies keep unknown fields
//! out of the way so newer QEMU releases still decode.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::client::QmpClient;
use crate::codec::base64;
use crate::error::{Error, Result};

/// QEMU's `RunState`, as reported by `query-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Started with `-S`; the guest has not run yet.
    Prelaunch,
    /// The guest is running.
    Running,
    /// Paused by `stop`.
    Paused,
    /// Shut down, and QEMU stays alive (`-no-shutdown` or `set-action shutdown=pause`).
    Shutdown,
    /// Paused by an I/O error with a `stop` error policy.
    IoError,
    /// Paused after a guest panic.
    GuestPanicked,
    /// Paused by the watchdog.
    Watchdog,
    /// A fatal internal error (e.g. KVM emulation failure) stopped the guest.
    InternalError,
    /// Suspended to RAM (ACPI S3).
    Suspended,
    /// Waiting for an incoming migration.
    Inmigrate,
    /// Paused after an outgoing migration completed.
    Postmigrate,
    /// Paused to finish a migration.
    FinishMigrate,
    /// Paused while loading a saved state.
    RestoreVm,
    /// Paused while saving its state.
    SaveVm,
    /// Stopped by a debugger.
    Debug,
    /// A COLO checkpoint.
    Colo,
    /// A state this crate does not know yet.
    #[serde(other)]
    Unknown,
}

impl RunState {
    /// True when the guest executes code.
    pub fn is_running(self) -> bool {
        self == RunState::Running
    }
}

/// Reply of `query-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// The run state.
    pub status: RunState,
    /// True if all vCPUs are runnable.
    pub running: bool,
    /// True in gdbstub single-step mode (absent in newer QEMU).
    #[serde(default)]
    pub singlestep: bool,
}

/// Reply of `query-version` and the version in the greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Upstream version numbers.
    pub qemu: VersionTriple,
    /// Downstream package string (e.g. the Debian version), often empty.
    #[serde(default)]
    pub package: String,
}

/// `major.minor.micro`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionTriple {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Micro version (50+ means a development tree).
    pub micro: u32,
}

/// One entry of `query-block`. The `inserted` medium is kept as raw JSON (it is large and
/// version-dependent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockInfo {
    /// Legacy device name (empty for `-blockdev` nodes attached by `device_add`).
    pub device: String,
    /// The qdev id or QOM path of the guest device.
    #[serde(default)]
    pub qdev: Option<String>,
    /// Whether the medium is removable (CD-ROM).
    #[serde(default)]
    pub removable: bool,
    /// Whether the guest locked the tray.
    #[serde(default)]
    pub locked: bool,
    /// `ok`, `failed` or `nospace`, when an error policy is configured.
    #[serde(default)]
    pub io_status: Option<String>,
    /// Whether the tray is open (devices with a tray only).
    #[serde(default, rename = "tray_open")]
    pub tray_open: Option<bool>,
    /// The inserted medium (`BlockDeviceInfo`), absent for an empty drive.
    #[serde(default)]
    pub inserted: Option<Value>,
}

/// One entry of `query-cpus-fast`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuInfoFast {
    /// vCPU index.
    pub cpu_index: u32,
    /// QOM path of the CPU object.
    pub qom_path: String,
    /// Host thread id running the vCPU (for pinning).
    pub thread_id: i64,
    /// Socket/core/thread placement.
    #[serde(default)]
    pub props: Option<Value>,
    /// The emulation target, e.g. `x86_64`.
    #[serde(default)]
    pub target: Option<String>,
}

/// `status` of `query-migrate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationStatus {
    /// No migration started.
    None,
    /// Preparing.
    Setup,
    /// Cancelling.
    Cancelling,
    /// Cancelled.
    Cancelled,
    /// Copying memory.
    Active,
    /// Post-copy phase.
    PostcopyActive,
    /// Post-copy paused.
    PostcopyPaused,
    /// Post-copy recovering.
    PostcopyRecover,
    /// Done.
    Completed,
    /// Failed; see `error_desc`.
    Failed,
    /// COLO mode.
    Colo,
    /// Paused before switch-over (capability `pause-before-switchover`).
    PreSwitchover,
    /// Migrating device state.
    Device,
    /// Waiting for an unplug to finish.
    WaitUnplug,
    /// A status this crate does not know yet.
    #[serde(other)]
    Unknown,
}

/// Reply of `query-migrate` (the fields a progress report needs; `ram` stays raw).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MigrationInfo {
    /// Absent before any migration was started.
    #[serde(default)]
    pub status: Option<MigrationStatus>,
    /// Milliseconds since the migration started (or its total time once done).
    #[serde(default)]
    pub total_time: Option<u64>,
    /// Guest downtime in milliseconds, once completed.
    #[serde(default)]
    pub downtime: Option<u64>,
    /// Expected downtime in milliseconds, while active.
    #[serde(default)]
    pub expected_downtime: Option<u64>,
    /// RAM transfer statistics.
    #[serde(default)]
    pub ram: Option<Value>,
    /// Why it failed.
    #[serde(default)]
    pub error_desc: Option<String>,
}

/// Action on guest reboot (`set-action reboot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebootAction {
    /// Reset the VM.
    Reset,
    /// Treat a reboot as a shutdown.
    Shutdown,
}

/// Action on guest shutdown (`set-action shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShutdownAction {
    /// Exit QEMU.
    Poweroff,
    /// Keep QEMU, paused in state `shutdown`.
    Pause,
}

/// Action on guest panic (`set-action panic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PanicAction {
    /// Keep running.
    None,
    /// Pause in state `guest-panicked`.
    Pause,
    /// Shut down according to the shutdown action.
    Shutdown,
    /// Exit QEMU with a non-zero status (QEMU 7.1+).
    ExitFailure,
}

/// Action when the watchdog fires (`set-action watchdog`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatchdogAction {
    /// Reset.
    Reset,
    /// ACPI-style shutdown.
    Shutdown,
    /// Exit QEMU at once.
    Poweroff,
    /// Pause.
    Pause,
    /// Debug state.
    Debug,
    /// Nothing.
    None,
    /// Inject an NMI.
    InjectNmi,
}

/// Arguments of `set-action`; `None` fields are left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActionPolicy {
    /// On guest reboot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reboot: Option<RebootAction>,
    /// On guest shutdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<ShutdownAction>,
    /// On guest panic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panic: Option<PanicAction>,
    /// When the watchdog fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<WatchdogAction>,
}

/// Converts a typed argument struct to JSON; our argument types are plain data.
fn to_arguments(command: &str, arguments: &impl Serialize) -> Result<Value> {
    serde_json::to_value(arguments).map_err(|e| Error::decode(command, e))
}

impl QmpClient {
    /// `query-status`: the VM's run state.
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`], or [`Error::Decode`].
    pub async fn query_status(&self) -> Result<StatusInfo> {
        self.execute_as("query-status", None).await
    }

    /// `cont`: starts or resumes the vCPUs (emits `RESUME`).
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`].
    pub async fn cont(&self) -> Result<()> {
        self.execute("cont", None).await.map(drop)
    }

    /// `stop`: pauses the vCPUs (emits `STOP`).
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`].
    pub async fn stop(&self) -> Result<()> {
        self.execute("stop", None).await.map(drop)
    }

    /// `system_powerdown`: presses the ACPI power button. The guest decides whether and
    /// when to power off; watch for `SHUTDOWN` and enforce a grace period.
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`].
    pub async fn system_powerdown(&self) -> Result<()> {
        self.execute("system_powerdown", None).await.map(drop)
    }

    /// `system_reset`: hard-resets the VM (emits `RESET`).
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`].
    pub async fn system_reset(&self) -> Result<()> {
        self.execute("system_reset", None).await.map(drop)
    }

    /// `quit`: makes QEMU exit at once, then waits for the connection to close.
    ///
    /// # Errors
    /// [`Error::Command`] if QEMU refuses, [`Error::Timeout`] if it neither answers nor
    /// closes in time. A connection that closes before the reply counts as success (QEMU
    /// may exit before flushing it).
    pub async fn quit(&self) -> Result<()> {
        match self.execute("quit", None).await {
            Ok(_) => {}
            Err(Error::Closed { .. }) => return Ok(()),
            Err(other) => return Err(other),
        }
        let timeout = self.options().command_timeout;
        tokio::time::timeout(timeout, self.closed())
            .await
            .map(drop)
            .map_err(|_| Error::timeout("quit", timeout))
    }

    /// `set-action`: what QEMU does on guest reboot, shutdown, panic and watchdog expiry.
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`].
    pub async fn set_action(&self, policy: ActionPolicy) -> Result<()> {
        let arguments = to_arguments("set-action", &policy)?;
        self.execute("set-action", arguments).await.map(drop)
    }

    /// `device_add` of `driver` with id `id` and further properties (`bus`, `drive`,
    /// `bootindex`, ...).
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`] (`GenericError` for duplicate ids or bad buses).
    pub async fn device_add(
        &self,
        driver: &str,
        id: &str,
        properties: Map<String, Value>,
    ) -> Result<()> {
        let mut arguments = properties;
        arguments.insert("driver".to_owned(), Value::from(driver));
        arguments.insert("id".to_owned(), Value::from(id));
        self.execute("device_add", Value::Object(arguments))
            .await
            .map(drop)
    }

    /// `device_del`: asks for an unplug. Completion is the `DEVICE_DELETED` event, which
    /// needs the guest's cooperation; see [`QmpClient::device_del_and_wait`].
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`] (`DeviceNotFound` for an unknown id).
    pub async fn device_del(&self, id: &str) -> Result<()> {
        self.execute("device_del", json!({ "id": id }))
            .await
            .map(drop)
    }

    /// `device_del`, then waits up to `timeout` for the matching `DEVICE_DELETED`.
    ///
    /// # Errors
    /// As [`QmpClient::device_del`], or [`Error::Timeout`] if the guest never releases it.
    pub async fn device_del_and_wait(&self, id: &str, timeout: Duration) -> Result<()> {
        let mut events = self.events();
        self.device_del(id).await?;
        let label = format!("DEVICE_DELETED {id}");
        events
            .next_matching(&label, timeout, |event| {
                event.name == "DEVICE_DELETED"
                    && event.data.get("device").and_then(Value::as_str) == Some(id)
            })
            .await
            .map(drop)
    }

    /// `blockdev-add` with a `BlockdevOptions` object (must include `driver` and
    /// `node-name`).
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`].
    pub async fn blockdev_add(&self, options: Value) -> Result<()> {
        self.execute("blockdev-add", options).await.map(drop)
    }

    /// `blockdev-del` of a node no device uses any more.
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`].
    pub async fn blockdev_del(&self, node_name: &str) -> Result<()> {
        self.execute("blockdev-del", json!({ "node-name": node_name }))
            .await
            .map(drop)
    }

    /// `query-block`: the guest block devices.
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`], or [`Error::Decode`].
    pub async fn query_block(&self) -> Result<Vec<BlockInfo>> {
        self.execute_as("query-block", None).await
    }

    /// `screendump` of the primary display to a PNG file (QEMU 7.1+; QEMU writes the file).
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`] (`GenericError` when there is no display).
    pub async fn screendump(&self, filename: &Path) -> Result<()> {
        let arguments = json!({ "filename": filename, "format": "png" });
        self.execute("screendump", arguments).await.map(drop)
    }

    /// `ringbuf-read`: takes up to `size` bytes out of a ring-buffer chardev (e.g. the
    /// serial console log). Bytes are transferred base64-encoded, so any binary content
    /// survives; QEMU's utf8 mode mangles invalid UTF-8.
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`], or [`Error::Decode`] on bad base64.
    pub async fn ringbuf_read(&self, device: &str, size: usize) -> Result<Vec<u8>> {
        let arguments = json!({ "device": device, "size": size, "format": "base64" });
        let encoded: String = self.execute_as("ringbuf-read", arguments).await?;
        base64::decode(&encoded).map_err(|detail| Error::Protocol {
            detail: format!("ringbuf-read of {device} returned bad base64: {detail}"),
        })
    }

    /// `human-monitor-command`: runs an HMP command line and returns its text output.
    /// For diagnostics only; HMP output is not a stable interface.
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`].
    pub async fn human_monitor_command(&self, command_line: &str) -> Result<String> {
        self.execute_as(
            "human-monitor-command",
            json!({ "command-line": command_line }),
        )
        .await
    }

    /// `query-cpus-fast`: the vCPUs and their host threads.
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`], or [`Error::Decode`].
    pub async fn query_cpus_fast(&self) -> Result<Vec<CpuInfoFast>> {
        self.execute_as("query-cpus-fast", None).await
    }

    /// `query-version`.
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`], or [`Error::Decode`].
    pub async fn query_version(&self) -> Result<VersionInfo> {
        self.execute_as("query-version", None).await
    }

    /// `migrate` to `uri` (e.g. `unix:/path` or `tcp:host:port`); returns once started.
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`].
    pub async fn migrate(&self, uri: &str) -> Result<()> {
        self.execute("migrate", json!({ "uri": uri }))
            .await
            .map(drop)
    }

    /// `query-migrate`: progress of the current or last migration.
    ///
    /// # Errors
    /// Any error of [`QmpClient::execute`], or [`Error::Decode`].
    pub async fn query_migrate(&self) -> Result<MigrationInfo> {
        self.execute_as("query-migrate", None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_states_use_qemu_spelling_and_tolerate_new_ones() {
        let status: StatusInfo = serde_json::from_value(
            json!({"status": "prelaunch", "singlestep": false, "running": false}),
        )
        .expect("decodes");
        assert_eq!(status.status, RunState::Prelaunch);
        let panicked: RunState = serde_json::from_value(json!("guest-panicked")).expect("decodes");
        assert_eq!(panicked, RunState::GuestPanicked);
        let future: RunState = serde_json::from_value(json!("hibernating")).expect("decodes");
        assert_eq!(future, RunState::Unknown);
    }

    #[test]
    fn action_policy_omits_unset_actions() {
        let policy = ActionPolicy {
            reboot: Some(RebootAction::Shutdown),
            panic: Some(PanicAction::ExitFailure),
            ..ActionPolicy::default()
        };
        let wire = serde_json::to_value(policy).expect("serialises");
        assert_eq!(wire, json!({"reboot": "shutdown", "panic": "exit-failure"}));
    }

    #[test]
    fn query_block_entry_from_qemu_7_decodes() {
        let entry = json!({"io-status": "ok", "device": "", "locked": false, "removable": false,
            "qdev": "/machine/peripheral/vd0/virtio-backend", "type": "unknown",
            "inserted": {"node-name": "disk0", "drv": "null-co"}});
        let info: BlockInfo = serde_json::from_value(entry).expect("decodes");
        assert_eq!(info.io_status.as_deref(), Some("ok"));
        assert_eq!(info.inserted.expect("inserted")["node-name"], "disk0");
    }

    #[test]
    fn empty_query_migrate_means_no_migration() {
        let info: MigrationInfo = serde_json::from_value(json!({})).expect("decodes");
        assert_eq!(info.status, None);
        let done: MigrationInfo =
            serde_json::from_value(json!({"status": "completed", "total-time": 12, "downtime": 3}))
                .expect("decodes");
        assert_eq!(done.status, Some(MigrationStatus::Completed));
        assert_eq!(done.downtime, Some(3));
    }
}
