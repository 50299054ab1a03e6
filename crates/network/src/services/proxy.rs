//! The per-node Service proxy: mirrors Services and Endpoints and keeps the node's
//! `ip oxi-<id>-svc` table equal to [`rules::ruleset`](super::rules::ruleset), loading it
//! only when the text changes (one `nft -f` transaction, so no half-applied state).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::Api;
use serde_json::Value;
use tokio::sync::Notify;

use super::rules::{self, NodeSide};
use crate::dns::{self, Zone};
use crate::exec;
use crate::node::NodeNetwork;

/// The proxy's table name on node `node`.
pub fn table_name(node: &NodeNetwork) -> String {
    format!("oxi-{}-svc", node.id)
}

/// Runs the proxy until the task is dropped, with the node's DNS server on a free port of
/// the bridge address (its records follow the same Services and Endpoints).
///
/// # Errors
/// Never in practice: failed loads are logged and retried on the next change.
pub async fn run(client: kube::Client, node: Arc<NodeNetwork>) -> anyhow::Result<()> {
    let zone = Zone::new(&node.config.cluster_domain);
    let dns_port = match dns::serve(zone.clone(), node.gateway, 0).await {
        Ok(port) => {
            tracing::info!(address = %node.gateway, port, "cluster DNS serving");
            Some(port)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no cluster DNS on this node");
            None
        }
    };
    let changed = Arc::new(Notify::new());
    let services = super::mirror(Api::<Service>::all(client.clone()), (), changed.clone()).await;
    let endpoints = super::mirror(Api::<Endpoints>::all(client.clone()), (), changed.clone()).await;
    let side = NodeSide {
        table: table_name(&node),
        bridge: node.bridge.clone(),
        pod_cidr: node.pod_cidr,
        dns: dns_port.map(|p| (node.config.cluster_dns, node.gateway, p)),
    };
    let mut loaded = String::new();
    loop {
        let svcs: Vec<Value> = services
            .state()
            .iter()
            .filter_map(|s| serde_json::to_value(s.as_ref()).ok())
            .collect();
        let eps: HashMap<(String, String), Value> = endpoints
            .state()
            .iter()
            .filter_map(|e| {
                let v = serde_json::to_value(e.as_ref()).ok()?;
                let key = (
                    v["metadata"]["namespace"].as_str()?.to_string(),
                    v["metadata"]["name"].as_str()?.to_string(),
                );
                Some((key, v))
            })
            .collect();
        let endpoints_of =
            |ns: &str, name: &str| eps.get(&(ns.to_string(), name.to_string())).cloned();
        zone.set(dns::records(
            &svcs,
            &endpoints_of,
            &node.config.cluster_domain,
        ));
        let text = rules::ruleset(&side, &svcs, &endpoints_of);
        if text != loaded {
            let started = Instant::now();
            match exec::nft(None, &text).await {
                Ok(_) => {
                    tracing::debug!(
                        ms = started.elapsed().as_millis() as u64,
                        "Service rules loaded"
                    );
                    loaded = text;
                }
                Err(e) => tracing::warn!(error = %e, "cannot load the Service rules"),
            }
        }
        changed.notified().await;
    }
}

/// Removes the proxy's table (node shutdown).
pub async fn remove(node: &NodeNetwork) {
    let _ = exec::run(None, "nft", &["delete", "table", "ip", &table_name(node)]).await;
}
