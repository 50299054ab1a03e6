//! QMP events: the wire type, a typed view of the ones the launcher reacts to, and the
//! subscription handed out by [`crate::QmpClient::events`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::{Error, Result};

/// When QEMU emitted an event (host wall clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timestamp {
    /// Whole seconds since the Unix epoch.
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
}

impl Timestamp {
    /// The current wall-clock time (used by the fakes to stamp their events).
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            microseconds: i64::from(since.subsec_micros()),
        }
    }

    /// As a `SystemTime`; `None` for QEMU's "clock unavailable" value (negative numbers).
    pub fn to_system_time(self) -> Option<SystemTime> {
        let seconds = u64::try_from(self.seconds).ok()?;
        let micros = u64::try_from(self.microseconds).ok()?;
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds) + Duration::from_micros(micros))
    }
}

/// An asynchronous QMP event, e.g. `{"event": "SHUTDOWN", "data": {..}, "timestamp": {..}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event name in QEMU's spelling (`SHUTDOWN`, `RESET`, `DEVICE_DELETED`, ...).
    #[serde(rename = "event")]
    pub name: String,
    /// The event's arguments; `Value::Null` when QEMU sent none.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// When QEMU emitted it.
    pub timestamp: Timestamp,
}

impl Event {
    /// Builds an event stamped now (for fakes and tests).
    pub fn new(name: impl Into<String>, data: Value) -> Self {
        Event {
            name: name.into(),
            data,
            timestamp: Timestamp::now(),
        }
    }

    /// A typed view of the event. Unknown events, and known ones whose data does not
    /// decode, are [`EventKind::Other`]; the raw [`Event::data`] is always kept.
    pub fn kind(&self) -> EventKind {
        let decoded = match self.name.as_str() {
            "SHUTDOWN" => decode(&self.data).map(EventKind::Shutdown),
            "RESET" => decode(&self.data).map(EventKind::Reset),
            "STOP" => Ok(EventKind::Stop),
            "RESUME" => Ok(EventKind::Resume),
            "POWERDOWN" => Ok(EventKind::Powerdown),
            "SUSPEND" => Ok(EventKind::Suspend),
            "WAKEUP" => Ok(EventKind::Wakeup),
            "GUEST_PANICKED" => decode(&self.data).map(|p: Panicked| EventKind::GuestPanicked {
                action: p.action,
                info: p.info,
            }),
            "DEVICE_DELETED" => {
                decode(&self.data).map(|d: DeviceDeleted| EventKind::DeviceDeleted {
                    device: d.device,
                    path: d.path,
                })
            }
            "BLOCK_IO_ERROR" => decode(&self.data).map(EventKind::BlockIoError),
            "WATCHDOG" => {
                decode(&self.data).map(|w: Watchdog| EventKind::Watchdog { action: w.action })
            }
            _ => Ok(EventKind::Other),
        };
        decoded.unwrap_or_else(|error| {
            tracing::debug!(event = %self.name, %error, "event data did not decode");
            EventKind::Other
        })
    }
}

/// The events the launcher reacts to, decoded. New variants may be added.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// `SHUTDOWN`: the VM shut down and QEMU is about to exit (unless `-no-shutdown`).
    Shutdown(ShutdownInfo),
    /// `RESET`: the VM was reset, by the guest or by `system_reset`.
    Reset(ShutdownInfo),
    /// `STOP`: the vCPUs stopped (`stop`, an I/O error policy, a panic action, ...).
    Stop,
    /// `RESUME`: the vCPUs run again.
    Resume,
    /// `POWERDOWN`: an ACPI power button press was delivered (`system_powerdown`).
    Powerdown,
    /// `SUSPEND`: the guest entered S3.
    Suspend,
    /// `WAKEUP`: the guest left a suspend state.
    Wakeup,
    /// `GUEST_PANICKED`: a pvpanic or Hyper-V crash device reported a guest panic.
    GuestPanicked {
        /// What QEMU did about it (`pause`, `poweroff`, `run`).
        action: String,
        /// Crash details when the device provides them.
        info: Option<Value>,
    },
    /// `DEVICE_DELETED`: an unplug finished (the guest acknowledged it).
    DeviceDeleted {
        /// The device id, if it had one.
        device: Option<String>,
        /// The QOM path.
        path: String,
    },
    /// `BLOCK_IO_ERROR`: a disk I/O error happened.
    BlockIoError(BlockIoError),
    /// `WATCHDOG`: the watchdog fired.
    Watchdog {
        /// The action taken (`reset`, `poweroff`, `pause`, ...).
        action: String,
    },
    /// Any other event, or one whose data did not decode.
    Other,
}

/// Data of `SHUTDOWN` and `RESET`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
pub struct ShutdownInfo {
    /// True if the guest asked for it (ACPI, reboot instruction), false if the host did.
    #[serde(default)]
    pub guest: bool,
    /// Why it happened.
    #[serde(default)]
    pub reason: ShutdownCause,
}

/// QEMU's `ShutdownCause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShutdownCause {
    /// No shutdown request pending.
    None,
    /// An error prevents further use of the guest.
    HostError,
    /// The QMP `quit` command.
    HostQmpQuit,
    /// The QMP `system_reset` command.
    HostQmpSystemReset,
    /// A signal such as SIGTERM or SIGINT.
    HostSignal,
    /// A UI event (window closed).
    HostUi,
    /// The guest powered off (ACPI or other hardware means).
    GuestShutdown,
    /// The guest rebooted and `-no-reboot` (or `set-action reboot=shutdown`) turned it into a shutdown.
    GuestReset,
    /// The guest panicked and the panic action turned it into a shutdown.
    GuestPanic,
    /// A partial s390 reset.
    SubsystemReset,
    /// Record/replay snapshot load (internal to QEMU).
    SnapshotLoad,
    /// A cause this crate does not know yet.
    #[default]
    #[serde(other)]
    Unknown,
}

impl ShutdownCause {
    /// True for causes that started inside the guest.
    pub fn is_guest(self) -> bool {
        matches!(
            self,
            ShutdownCause::GuestShutdown | ShutdownCause::GuestReset | ShutdownCause::GuestPanic
        )
    }
}

/// Data of `BLOCK_IO_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockIoError {
    /// The device name (may be empty with `-blockdev`).
    #[serde(default)]
    pub device: String,
    /// The block node name, when known.
    #[serde(default)]
    pub node_name: Option<String>,
    /// `read` or `write`.
    #[serde(default)]
    pub operation: String,
    /// What QEMU did: `ignore`, `report` or `stop`.
    #[serde(default)]
    pub action: String,
    /// True if the error was ENOSPC.
    #[serde(default)]
    pub nospace: Option<bool>,
    /// A human-readable cause (not to be parsed).
    #[serde(default)]
    pub reason: String,
}

fn decode<T: DeserializeOwned>(data: &Value) -> serde_json::Result<T> {
    T::deserialize(data)
}

#[derive(Deserialize)]
struct Panicked {
    action: String,
    #[serde(default)]
    info: Option<Value>,
}

#[derive(Deserialize)]
struct DeviceDeleted {
    #[serde(default)]
    device: Option<String>,
    path: String,
}

#[derive(Deserialize)]
struct Watchdog {
    action: String,
}

/// A subscription to QMP events, from [`crate::QmpClient::events`].
///
/// It sees only events emitted after it was created, so subscribe *before* issuing the
/// command whose event you wait for. It ends (`next` returns `None`) once the connection
/// is closed and every buffered event was read.
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<Event>,
    missed: u64,
}

impl EventStream {
    pub(crate) fn new(rx: broadcast::Receiver<Event>) -> Self {
        EventStream { rx, missed: 0 }
    }

    /// A stream that is already over (subscribing to a closed client).
    pub(crate) fn ended() -> Self {
        let (tx, rx) = broadcast::channel(1);
        drop(tx);
        EventStream::new(rx)
    }

    /// The next event, or `None` when the connection is closed and the stream drained.
    ///
    /// If this subscriber fell so far behind that the buffer overflowed, the oldest events
    /// are skipped (counted in [`EventStream::missed`]) rather than failing.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Closed) => return None,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "qmp event subscriber lagged; events dropped");
                    self.missed += n;
                }
            }
        }
    }

    /// Waits up to `timeout` for the next event named `name`, skipping others.
    ///
    /// # Errors
    /// [`Error::Timeout`] or [`Error::Closed`], naming `event <name>` as the command.
    pub async fn wait_for(&mut self, name: &str, timeout: Duration) -> Result<Event> {
        let label = format!("event {name}");
        self.next_matching(&label, timeout, |event| event.name == name)
            .await
    }

    /// Waits up to `timeout` for the next event that satisfies `matches`; `label` names
    /// the wait in errors.
    ///
    /// # Errors
    /// [`Error::Timeout`] or [`Error::Closed`] (with `label` as the command).
    pub async fn next_matching(
        &mut self,
        label: &str,
        timeout: Duration,
        mut matches: impl FnMut(&Event) -> bool,
    ) -> Result<Event> {
        let wait = async {
            while let Some(event) = self.next().await {
                if matches(&event) {
                    return Ok(event);
                }
            }
            Err(Error::closed(label))
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| Err(Error::timeout(label, timeout)))
    }

    /// How many events this subscriber lost because it read too slowly.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn shutdown_event_decodes_guest_flag_and_reason() {
        let event = Event::new(
            "SHUTDOWN",
            json!({"guest": true, "reason": "guest-shutdown"}),
        );
        assert_eq!(
            event.kind(),
            EventKind::Shutdown(ShutdownInfo {
                guest: true,
                reason: ShutdownCause::GuestShutdown
            })
        );
    }

    #[test]
    fn unknown_shutdown_cause_is_kept_as_unknown() {
        let event = Event::new("RESET", json!({"guest": false, "reason": "cosmic-ray"}));
        let EventKind::Reset(info) = event.kind() else {
            panic!("not a reset");
        };
        assert_eq!(info.reason, ShutdownCause::Unknown);
    }

    #[test]
    fn malformed_known_event_falls_back_to_other() {
        let event = Event::new("DEVICE_DELETED", json!({"device": 3}));
        assert_eq!(event.kind(), EventKind::Other);
    }

    #[test]
    fn panic_device_and_io_error_events_decode() {
        let panic = Event::new("GUEST_PANICKED", json!({"action": "pause"}));
        assert!(
            matches!(panic.kind(), EventKind::GuestPanicked { action, .. } if action == "pause")
        );
        let deleted = Event::new(
            "DEVICE_DELETED",
            json!({"device": "vd0", "path": "/machine/peripheral/vd0"}),
        );
        assert!(
            matches!(deleted.kind(), EventKind::DeviceDeleted { device: Some(d), .. } if d == "vd0")
        );
        let io = Event::new(
            "BLOCK_IO_ERROR",
            json!({"device": "", "node-name": "disk0", "operation": "write", "action": "stop", "nospace": true, "reason": "No space left on device"}),
        );
        let EventKind::BlockIoError(error) = io.kind() else {
            panic!("not an io error");
        };
        assert_eq!(error.node_name.as_deref(), Some("disk0"));
        assert_eq!(error.nospace, Some(true));
    }

    #[test]
    fn event_serialises_in_qmp_wire_shape_without_null_data() {
        let event = Event::new("STOP", Value::Null);
        let wire = serde_json::to_value(&event).expect("serialises");
        assert_eq!(wire["event"], "STOP");
        assert!(wire.get("data").is_none());
        assert!(wire["timestamp"]["seconds"].as_i64().is_some());
    }

    #[test]
    fn negative_timestamp_has_no_system_time() {
        let stamp = Timestamp {
            seconds: -1,
            microseconds: -1,
        };
        assert_eq!(stamp.to_system_time(), None);
        assert!(Timestamp::now().to_system_time().is_some());
    }
}
