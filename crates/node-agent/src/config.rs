//! The agent's configuration (already validated: the binary parses flags into it).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Address of the agent's HTTPS endpoint (consoles, logs, VM commands); port 0 picks a
    /// free port, advertised in the Node's `daemonEndpoints`.
    pub endpoint_listen: String,
    /// DER certificates of the cluster CA: the endpoint accepts the API server's client
    /// certificate only when it chains to one of them.
    pub cluster_ca: Vec<Vec<u8>>,
    /// The uid and gid QEMU runs as (`None`: the agent's own user); decided at start by
    /// `qemu_user::decide`.
    pub qemu_owner: Option<(u32, u32)>,
}

impl AgentConfig {
    /// Defaults for `node_name` on `data_dir`, spawning `<this executable> launcher`.
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("oxivirt"));
        // The small `oxivirt-launcher` binary next to this one when it exists (one runs per
        // VM); else this binary's `launcher` subcommand, which does the same.
        let small = exe.with_file_name("oxivirt-launcher");
        let launcher_command = if small.is_file() {
            vec![small.into_os_string()]
        } else {
            vec![exe.into_os_string(), "launcher".into()]
        };
        AgentConfig {
            node_name: node_name.into(),
            data_dir: data_dir.into(),
            launcher_command,
            qemu: "qemu-system-x86_64".into(),
            memory_reserve_bytes: 512 << 20,
            lease_interval: Duration::from_secs(10),
            status_interval: Duration::from_secs(40),
            poll_interval: Duration::from_millis(200),
            version: env!("CARGO_PKG_VERSION").into(),
            endpoint_listen: "0.0.0.0:0".into(),
            cluster_ca: Vec::new(),
            qemu_owner: None,
        }
    }
}
