//! Heartbeats: the Lease `kube-node-lease/<node>` renewed every `lease_interval` (10 s), and
//! the Node's conditions re-posted with a fresh `lastHeartbeatTime` every `status_interval`
//! (40 s), as the kubelet does. A Node deleted under the agent is registered again.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use tokio::time::{interval, MissedTickBehavior};

use crate::node::{self, NodeInfo};
use crate::AgentConfig;

/// The namespace of node Leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How long a Lease stays valid without renewal (kubelet's default).
const LEASE_DURATION_SECONDS: i32 = 40;

/// Why a heartbeat failed (logged; the next tick retries).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Lease could not be read, created or renewed.
    #[error("cannot renew Lease {LEASE_NAMESPACE}/{name}")]
    Lease {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The Node's status could not be posted.
    #[error(transparent)]
    Node(#[from] node::Error),
}

/// Heartbeats forever; errors are logged and retried on the next tick.
pub(crate) async fn run(client: kube::Client, config: AgentConfig, node: NodeInfo) {
    let mut lease_tick = interval(config.lease_interval);
    lease_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut status_tick = interval(config.status_interval);
    status_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    status_tick.tick().await; // registration has just posted the status
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                if let Err(e) = renew_lease(&client, &node.name).await {
                    tracing::warn!(error = %crate::status::chain(&e), "lease heartbeat failed");
                }
            }
            _ = status_tick.tick() => {
                if let Err(e) = post_heartbeat(&client, &node).await {
                    tracing::warn!(error = %crate::status::chain(&e), "node status heartbeat failed");
                }
            }
        }
    }
}

async fn post_heartbeat(client: &kube::Client, node: &NodeInfo) -> Result<(), Error> {
    let api: Api<Node> = Api::all(client.clone());
    let current = api
        .get_opt(&node.name)
        .await
        .map_err(|source| node::Error::Api {
            name: node.name.clone(),
            source,
        })?;
    match current {
        None => node::register(client, node).await?,
        Some(current) => {
            let conditions = serde_json::to_value(&current)
                .ok()
                .and_then(|v| v.pointer("/status/conditions").cloned());
            node::post_status(client, node, conditions.as_ref()).await?;
        }
    }
    Ok(())
}

/// Creates or renews the node's Lease (holder = node name, owned by the Node).
///
/// # Errors
/// [`Error::Lease`] when the API refuses.
pub(crate) async fn renew_lease(client: &kube::Client, name: &str) -> Result<(), Error> {
    let err = |source| Error::Lease {
        name: name.to_string(),
        source,
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = crate::status::now_micro();
    if leases.get_opt(name).await.map_err(err)?.is_some() {
        let patch = json!({"spec": {"renewTime": now, "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS}});
        leases
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(err)?;
        return Ok(());
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let owner = nodes
        .get_opt(name)
        .await
        .map_err(err)?
        .and_then(|n| n.metadata.uid)
        .map(|uid| vec![json!({"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid})])
        .unwrap_or_default();
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": owner},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                 "renewTime": now},
    }))
    .map_err(|e| err(kube::Error::SerdeError(e)))?;
    match leases.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(err(e)),
    }
}
