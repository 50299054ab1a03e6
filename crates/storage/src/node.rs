//! The per-node half: what must run on the host that owns the volumes. Provisions the
//! hostpath volumes selected for this node, deletes Released ones whose policy says so, and
//! runs the CDI worker Pods bound to this node as `oxivirt importer` processes.
//!
//! Runs in `oxivirt server` (for the local node) and in `oxivirt agent`.

mod block;
mod clone;
mod expand;
mod pools;
mod provision;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::events::Recorder;
use crate::kinds::{HOSTPATH_PROVISIONER, POD, PV, PVC, STORAGE_CLASS};
use crate::world::World;

pub use pools::Pools;
pub use provision::clone_source_name;

/// Everything the node half needs.
#[derive(Clone)]
pub struct NodeConfig {
    /// This node's name (as registered by the node agent).
    pub node_name: String,
    /// The agent's data directory; the default pool lives in `<data_dir>/storage/`.
    pub data_dir: PathBuf,
    /// The program run for CDI worker Pods (`oxivirt`; given `importer` as first argument).
    pub worker_program: PathBuf,
}

/// How often the node half looks again when nothing changes (worker progress is polled).
const TICK: Duration = Duration::from_secs(1);
/// How often while a worker process runs (its exit and progress are polled).
const BUSY_TICK: Duration = Duration::from_millis(100);

/// Runs the node half until the process ends.
///
/// # Errors
/// When the storage directory cannot be created.
pub async fn run(client: kube::Client, mut config: NodeConfig) -> anyhow::Result<()> {
    // Workers run this very executable: through /proc/self/exe they still do after the file
    // was replaced on disk (an upgrade, a rebuild), which would otherwise leave the path
    // naming a deleted file or a program of another version.
    if std::env::current_exe().is_ok_and(|own| own == config.worker_program) {
        config.worker_program = PathBuf::from("/proc/self/exe");
    }
    let pools = Pools::new(&config.data_dir);
    pools.prepare_default()?;
    let on_node = format!("spec.nodeName={}", config.node_name);
    let world = World::start(
        &client,
        &[
            (PVC, None),
            (PV, None),
            (STORAGE_CLASS, None),
            (HOSTPATH_PROVISIONER, None),
            (POD, Some(on_node)),
            (crate::kinds::VMI, None),
        ],
    );
    world.ready().await;
    let events = Recorder::new(client.clone(), "hostpath-provisioner");
    reattach_block_volumes(&world, &events, &config.node_name).await;
    let workers = worker::Workers::new(client.clone(), Arc::new(config.clone()), pools.clone());
    loop {
        provision::reconcile(&client, &world, &events, &config, &pools).await;
        expand::reconcile(&client, &world, &events, &config.node_name, &pools).await;
        workers.reconcile(&world).await;
        // A worker's exit is no watch event: look often while one runs, so a finished
        // import is reported at once.
        let tick = if workers.busy() { BUSY_TICK } else { TICK };
        tokio::select! {
            () = world.wake.notified() => {}
            () = tokio::time::sleep(tick) => {}
        }
    }
}

/// Attaches this node's Block volumes to their loop devices again (they do not survive a
/// reboot); a device now serving another file is reported on the PV.
async fn reattach_block_volumes(world: &World, events: &Recorder, node_name: &str) {
    for volume in world.list(PV) {
        let on_this_node =
            crate::kinds::annotation(&volume, provision::ANN_PROVISION_ON_NODE) == Some(node_name);
        let backing = crate::kinds::annotation(&volume, block::ANN_BACKING_FILE);
        let device = crate::kinds::str_at(&volume, "/spec/hostPath/path");
        let (true, Some(file), Some(device)) = (on_this_node, backing, device) else {
            continue;
        };
        let (file, device) = (PathBuf::from(file), PathBuf::from(device));
        let attached =
            tokio::task::spawn_blocking(move || block::ensure_attached(&device, &file)).await;
        if let Ok(Err(message)) = attached {
            events
                .warning(&volume, PV, "VolumeFailedAttach", &message)
                .await;
        }
    }
}
