//! The node agent: oxivirt's virt-handler role, one per host (ARCHITECTURE §2, design 0004).
//!
//! **Owns**: the Node object of its host (capacity, labels, conditions) and its Lease in
//! `kube-node-lease`; the acceleration decision (`<data-dir>/node/accel.json`); the Pods bound
//! to its node (`spec.nodeName`) and their status; the run directories under
//! `<data-dir>/pods/`; the launcher processes it spawns (and re-adopts after a restart); the
//! containerDisk cache under `<data-dir>/images/`; the VMI status fields design 0004 gives the
//! agent (phases Running/Succeeded/Failed, `nodeName`, conditions `Ready`, `Paused`,
//! `SoftwareEmulation`, `launcherContainerImageVersion`, `guestOSInfo`).
//!
//! **Must not**: build QEMU's argv (the launcher does), touch objects of other nodes, or write
//! the VMI phases the VMI controller owns (Pending, Scheduling, Scheduled).
//!
//! **Talks to**: the API server through kube-rs; each launcher through the files of its run
//! directory and `control.sock`; OCI registries over HTTP(S) (module [`registry`]).
//!
//! Conventions this crate picks (documented here because `api::well_known` lacks them yet):
//! the Node label `oxivirt.io/accel=kvm|tcg` and annotation `oxivirt.io/accel-reason` say which
//! hypervisor the node offers and why; launcher Pods carry the finalizer
//! `kubevirt.io/virt-launcher` while the agent has a launcher for them, so deleting a Pod waits
//! for the guest's graceful shutdown (our API server has no graceful Pod deletion of its own).

mod accel;
mod adopt;
mod heartbeat;
mod launcher;
mod node;
mod pods;
mod realise;
pub mod registry;
mod rundir;
mod status;
mod well_known;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub use accel::{Accel, AccelDecision};

/// What an agent needs to know about its host and its peers.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Node's name (`spec.nodeName` of the Pods this agent realises).
    pub node_name: String,
    /// Root of `node/`, `pods/` and `images/`.
    pub data_dir: PathBuf,
    /// The launcher command; the agent appends `--run-dir DIR`.
    pub launcher_command: Vec<OsString>,
    /// The QEMU binary named in `launch.json` and used by the acceleration probe.
    pub qemu: String,
    /// Memory withheld from `allocatable` for the host and the management processes.
    pub memory_reserve_bytes: u64,
    /// How often the Lease is renewed (kubelet: 10 s).
    pub lease_interval: Duration,
    /// How often the Ready condition's `lastHeartbeatTime` is refreshed (kubelet: 40 s).
    pub status_interval: Duration,
    /// How often a running launcher's `status.json` is read.
    pub poll_interval: Duration,
    /// Version reported as `containerRuntimeVersion` and in launcher status.
    pub version: String,
}

impl AgentConfig {
    /// Defaults for `node_name` on `data_dir`, spawning `<this executable> launcher`.
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("oxivirt"));
        AgentConfig {
            node_name: node_name.into(),
            data_dir: data_dir.into(),
            launcher_command: vec![exe.into_os_string(), "launcher".into()],
            qemu: "qemu-system-x86_64".into(),
            memory_reserve_bytes: 512 << 20,
            lease_interval: Duration::from_secs(10),
            status_interval: Duration::from_secs(40),
            poll_interval: Duration::from_millis(200),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Runs the agent until an unrecoverable error: probes acceleration, registers the Node,
/// heartbeats, and realises the Pods bound to the node (re-adopting running launchers).
///
/// # Errors
/// When the data directory cannot be prepared or the Node cannot be registered at start.
/// Later API errors are retried (logged), never returned.
pub async fn run(client: kube::Client, config: AgentConfig) -> anyhow::Result<()> {
    let accel = accel::decide(&config).await?;
    tracing::info!(node = %config.node_name, accel = %accel.accel, reason = %accel.reason, "acceleration decided");
    let node = node::NodeInfo::gather(&config, &accel)?;
    node::register(&client, &node).await?;
    let ctx = pods::Ctx {
        client: client.clone(),
        images: registry::ImageCache::new(&config.data_dir),
        host_ip: node.internal_ip.clone(),
        config: config.clone(),
        accel,
    };
    let heartbeat = heartbeat::run(client, config, node);
    let pods = pods::run(ctx);
    tokio::select! {
        () = heartbeat => Ok(()),
        result = pods => result,
    }
}
