//! The per-node Service proxy: mirrors Services and Endpoints and keeps the node's
//! `ip oxi-<id>-svc` table equal to [`rules::ruleset`](super::rules::ruleset), loading it
//! only when the text changes (one `nft -f` transaction, so no half-applied state).
//! On dual-stack nodes it also mirrors EndpointSlices (Endpoints hold only a Service's
//! primary family) and keeps the `ip6 oxi-<id>-svc6` table for the IPv6 ClusterIPs,
//! `kube-dns`'s included (its DNS server then listens on the bridge's IPv6 address too).
//! It binds the LoadBalancer IPs this node answers for ([`announce`](super::announce)).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use serde_json::Value;
use tokio::sync::Notify;

use super::endpoints::{slices_as_endpoints, SERVICE_NAME_LABEL};
use super::rules::{self, NodeSide, NodeSide6};
use crate::dns::{self, Zone};
use crate::exec;
use crate::node::NodeNetwork;

/// The proxy's table name on node `node`.
pub fn table_name(node: &NodeNetwork) -> String {
    format!("oxi-{}-svc", node.id)
}

/// The proxy's IPv6 table name on node `node` (dual stack).
pub fn table_name_v6(node: &NodeNetwork) -> String {
    format!("oxi-{}-svc6", node.id)
}

/// Runs the proxy until the task is dropped, with the node's DNS server on a free port of
/// the bridge address (its records follow the same Services and Endpoints).
///
/// # Errors
/// Never in practice: failed loads are logged and retried on the next change.
pub async fn run(
    client: kube::Client,
    node: Arc<NodeNetwork>,
    node_name: String,
) -> anyhow::Result<()> {
    let zone = Zone::new(&node.config.cluster_domain);
    let dns_port = serve_dns(&zone, node.gateway.into()).await;
    // Dual stack: the same zone on the bridge's IPv6 address, for `kube-dns`'s IPv6
    // ClusterIP.
    let gateway6 = node.pod_prefix_v6.map(|p| crate::node::v6_host(p, 1));
    let dns6 = match (gateway6, node.config.cluster_dns_v6) {
        (Some(gateway6), Some(cluster_dns6)) => serve_dns(&zone, gateway6.into())
            .await
            .map(|port| (cluster_dns6, gateway6, port)),
        _ => None,
    };
    let changed = Arc::new(Notify::new());
    let services = super::mirror(Api::<Service>::all(client.clone()), (), changed.clone()).await;
    let endpoints = super::mirror(Api::<Endpoints>::all(client.clone()), (), changed.clone()).await;
    let slices = match node.pod_prefix_v6 {
        Some(_) => Some(
            super::mirror(
                Api::<EndpointSlice>::all(client.clone()),
                (),
                changed.clone(),
            )
            .await,
        ),
        None => None,
    };
    let side = NodeSide {
        table: table_name(&node),
        bridge: node.bridge.clone(),
        pod_cidr: node.pod_cidr,
        dns: dns_port.map(|p| (node.config.cluster_dns, node.gateway, p)),
    };
    let side6 = node.pod_prefix_v6.map(|pod_prefix| NodeSide6 {
        table: table_name_v6(&node),
        bridge: node.bridge.clone(),
        pod_prefix,
        dns: dns6,
    });
    let mut loaded = String::new();
    let mut load_balancer_ips = super::announce::Binder::new(&node.bridge).await;
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
        // IPv6 endpoints by Service, from its IPv6 EndpointSlice(s).
        let mut by_service: HashMap<(String, String), Vec<Value>> = HashMap::new();
        for slice in slices.iter().flat_map(|store| store.state()) {
            let Ok(v) = serde_json::to_value(slice.as_ref()) else {
                continue;
            };
            let (Some(ns), Some(svc)) = (
                v["metadata"]["namespace"].as_str(),
                v["metadata"]["labels"][SERVICE_NAME_LABEL].as_str(),
            ) else {
                continue;
            };
            by_service
                .entry((ns.to_string(), svc.to_string()))
                .or_default()
                .push(v);
        }
        let endpoints6_of = |ns: &str, name: &str| {
            let list = by_service.get(&(ns.to_string(), name.to_string()))?;
            slices_as_endpoints(list, "IPv6")
        };
        zone.set(dns::records(
            &svcs,
            &endpoints_of,
            &endpoints6_of,
            &node.config.cluster_domain,
        ));
        let announced = super::announce::announced_here(&svcs, &endpoints_of, &node_name);
        load_balancer_ips.sync(&announced).await;
        let mut text = rules::ruleset(&side, &svcs, &endpoints_of);
        if let Some(side6) = &side6 {
            text.push_str(&rules::ruleset_v6(side6, &svcs, &endpoints6_of));
        }
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

/// Serves `zone` on a free port of `address`; the port, or None (logged) when the sockets
/// cannot be bound.
async fn serve_dns(zone: &Zone, address: std::net::IpAddr) -> Option<u16> {
    match dns::serve(zone.clone(), address, 0).await {
        Ok(port) => {
            tracing::info!(%address, port, "cluster DNS serving");
            Some(port)
        }
        Err(e) => {
            tracing::warn!(%address, error = %e, "no cluster DNS on this address");
            None
        }
    }
}

/// Removes the proxy's table (node shutdown).
pub async fn remove(node: &NodeNetwork) {
    let _ = exec::run(None, "nft", &["delete", "table", "ip", &table_name(node)]).await;
    if node.pod_prefix_v6.is_some() {
        let _ = exec::run(
            None,
            "nft",
            &["delete", "table", "ip6", &table_name_v6(node)],
        )
        .await;
    }
}
