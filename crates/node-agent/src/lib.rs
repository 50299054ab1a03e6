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
mod cgroup;
mod cloud_init;
mod config;
mod config_volumes;
mod credentials;
mod downward_api;
mod endpoint;
mod events;
mod guest_info;
mod guest_interfaces;
mod heartbeat;
mod hotplug;
mod identity;
mod launcher;
mod memory_dump;
mod netns;
mod node;
mod pods;
mod qemu_user;
mod realise;
pub mod registry;
mod rundir;
mod status;
mod user_net;
mod vmis;
mod volumes;
mod well_known;

pub use accel::{Accel, AccelDecision};
pub use config::AgentConfig;

/// Runs the agent until an unrecoverable error: probes acceleration, registers the Node,
/// heartbeats, and realises the Pods bound to the node (re-adopting running launchers).
///
/// # Errors
/// When the data directory cannot be prepared or the Node cannot be registered at start.
/// Later API errors are retried (logged), never returned.
pub async fn run(client: kube::Client, mut config: AgentConfig) -> anyhow::Result<()> {
    identity::require_component(&client).await?;
    let (qemu_owner, why) = qemu_user::decide(&config.data_dir);
    match qemu_owner {
        Some(_) => tracing::info!(node = %config.node_name, "{why}"),
        None => tracing::warn!(node = %config.node_name, "{why}"),
    }
    config.qemu_owner = qemu_owner;
    let accel = accel::decide(&config).await?;
    tracing::info!(node = %config.node_name, accel = %accel.accel, reason = %accel.reason, "acceleration decided");
    let mut node = node::NodeInfo::gather(&config, &accel)?;
    let endpoint = endpoint::bind(
        &config.endpoint_listen,
        &config.node_name,
        &node.internal_ips(),
        &config.cluster_ca,
    )
    .await?;
    node.endpoint_port = endpoint.port;
    node.annotations.insert(
        oxivirt_api::well_known::AGENT_CERTIFICATE_ANNOTATION.into(),
        endpoint.cert_pem.clone(),
    );
    node::register(&client, &node).await?;
    let state = std::sync::Arc::new(endpoint::State::new(
        config.data_dir.clone(),
        client.clone(),
    ));
    tokio::spawn(endpoint::serve(endpoint, state));
    tokio::spawn(credentials::run(client.clone(), config.data_dir.clone()));
    tokio::spawn(guest_interfaces::run(
        client.clone(),
        config.data_dir.clone(),
    ));
    tokio::spawn(hotplug::run(
        client.clone(),
        config.data_dir.clone(),
        config.qemu_owner,
    ));
    let network = netns::PodNet::start(&client, &config.node_name, &config.data_dir).await;
    network.start_node_services(&client, &config.node_name, &node.internal_ips());
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let cgroups =
        cgroup::PodCgroups::start(&config.node_name, i128::try_from(cpus).unwrap_or(1) * 1000);
    cgroups.sweep();
    let ctx = pods::Ctx {
        cgroups,
        network,
        events: events::Events::new(client.clone(), &config.node_name),
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
