//! The wire protocols oxivirt speaks to QEMU: QMP (the QEMU Machine Protocol) on the
//! monitor socket, and the qemu-guest-agent protocol on the virtio-serial agent socket.
//!
//! **Owns:** the QMP greeting and `qmp_capabilities` negotiation, id-tagged command
//! execution with replies demultiplexed by one reader task (so commands may be issued
//! concurrently), the event stream, a clean "closed" signal that carries the last events
//! seen (so a caller can tell a guest shutdown from a QEMU crash), typed wrappers for the
//! commands the launcher uses, the guest-agent protocol (`guest-sync-delimited` resync,
//! the `0xFF` sentinel, per-command timeouts) and, behind the `fake` feature, a fake QMP
//! server and a fake guest agent for tests.
//!
//! **Must not:** know what a VirtualMachineInstance is, build QEMU command lines, or
//! decide policy (what a shutdown means for a run strategy belongs to the launcher).
//!
//! ```no_run
//! # async fn demo() -> oxivirt_qmp::Result<()> {
//! use oxivirt_qmp::{QmpClient, RunState};
//! let qmp = QmpClient::connect("/run/vm/qmp.sock").await?;
//! let mut events = qmp.events();
//! if qmp.query_status().await?.status == RunState::Prelaunch {
//!     qmp.cont().await?;
//! }
//! while let Some(event) = events.next().await {
//!     println!("{} {:?}", event.name, event.kind());
//! }
//! let closed = qmp.closed().await;
//! println!("qemu gone, crashed: {}", closed.is_crash());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod agent;
mod client;
mod codec;
mod commands;
mod error;
mod events;
#[cfg(feature = "fake")]
pub mod fake;

pub use client::{CloseReason, Closed, Greeting, HandshakeTimings, QmpClient, QmpOptions};
pub use commands::{
    ActionPolicy, BlockInfo, CpuInfoFast, MigrationInfo, MigrationStatus, PanicAction,
    RebootAction, RunState, ShutdownAction, StatusInfo, VersionInfo, VersionTriple, WatchdogAction,
};
pub use error::{Error, Result};
pub use events::{
    BlockIoError, Event, EventKind, EventStream, ShutdownCause, ShutdownInfo, Timestamp,
};
