//! Storage and CDI for oxivirt (issue 5, design 0005).
//!
//! **Owns**: the hostpath provisioner (`kubevirt.io/hostpath-provisioner`) and the default
//! StorageClass of a first start; PersistentVolume/Claim binding; StorageProfiles; the
//! CDIConfig status; the DataVolume controller and its importer worker Pods; on each node,
//! the volume directories under `<data-dir>/storage/` and the worker processes.
//!
//! **Must not**: touch VMs or launchers (the node agent reads claims to give the launcher
//! its disks), or copy image bytes itself (the `importer` crate does, in the worker).
//!
//! **Talks to**: the API server through kube-rs only; the `oxivirt importer` processes
//! through their environment and status files.

mod binder;
mod cdiconfig;
pub mod claim;
pub mod classes;
mod clone;
pub mod cron;
mod dataimportcron;
mod datasource;
mod datavolume;
mod events;
mod golden;
pub mod importer_pod;
pub mod kinds;
pub mod node;
mod ops;
mod profile;
pub mod quantity;
mod status;
mod upload;
pub mod well_known;
mod world;

use std::time::Duration;

use kinds::{
    CDI_CONFIG, DATA_IMPORT_CRON, DATA_SOURCE, DATA_VOLUME, HYPERCONVERGED, NODE, POD, PV, PVC,
    STORAGE_CLASS, STORAGE_PROFILE, VMI,
};

pub use node::NodeConfig;

/// How often the cluster controllers look again when nothing changes.
const TICK: Duration = Duration::from_secs(2);

/// Runs the cluster-wide controllers (default objects, binding, StorageProfiles, CDIConfig,
/// DataVolumes) until the process ends. Errors are logged and retried, never returned.
pub async fn run(client: kube::Client) {
    let world = world::World::start(
        &client,
        &[
            (PVC, None),
            (PV, None),
            (STORAGE_CLASS, None),
            (STORAGE_PROFILE, None),
            (CDI_CONFIG, None),
            (HYPERCONVERGED, None),
            (NODE, None),
            (POD, None),
            (VMI, None),
            (DATA_VOLUME, None),
            (DATA_SOURCE, None),
            (DATA_IMPORT_CRON, None),
        ],
    );
    world.ready().await;
    let binder_events = events::Recorder::new(client.clone(), "persistentvolume-controller");
    let dv_events = events::Recorder::new(client.clone(), "datavolume-controller");
    let cron_events = events::Recorder::new(client.clone(), "dataimportcron-controller");
    loop {
        if let Err(e) = classes::ensure_first_start_objects(&client, &world).await {
            tracing::warn!(error = %e, "cannot create the default storage objects; retrying");
        }
        profile::reconcile(&client, &world).await;
        cdiconfig::reconcile(&client, &world).await;
        binder::reconcile(&client, &world, &binder_events).await;
        datavolume::reconcile(&client, &world, &dv_events).await;
        upload::reconcile(&client, &world).await;
        datasource::reconcile(&client, &world).await;
        golden::reconcile(&client, &world).await;
        dataimportcron::reconcile(&client, &world, &cron_events).await;
        tokio::select! {
            () = world.wake.notified() => {}
            () = tokio::time::sleep(TICK) => {}
        }
    }
}
