//! The bridge marker (upstream's `bridge-marker`): every Linux bridge on this node is
//! advertised in the Node's `status.capacity` and `status.allocatable` as
//! `bridge.network.kubevirt.io/<bridge>: 1k`, and withdrawn when the bridge goes. Launcher
//! Pods of VMIs on a NAD annotated `k8s.v1.cni.cncf.io/resourceName:
//! bridge.network.kubevirt.io/<bridge>` request one, so the scheduler places them only on
//! nodes that have the bridge (manual §8.5.2).
//!
//! oxivirt's own bridges are not advertised: the node's pod bridge `oxb<id>` and the
//! per-VLAN bridges `oxq<hash>` are internal (the VLAN bridges stand for `<bridge>` itself).

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::{json, Map, Value};

use crate::exec;

/// The resource prefix of bridges (upstream's).
pub const RESOURCE_PREFIX: &str = "bridge.network.kubevirt.io/";
/// How much of a bridge a node offers: upstream advertises 1000 attachments per bridge.
const CAPACITY: &str = "1k";
/// How often the node's bridges are listed (a bridge made by hand or by an NNCP shows up
/// within this time).
const POLL: Duration = Duration::from_secs(3);

/// The names of the Linux bridges in `ip -j link show type bridge` output, but oxivirt's own.
pub fn bridges_in(ip_json: &str) -> BTreeSet<String> {
    let links: Vec<Value> = serde_json::from_str(ip_json).unwrap_or_default();
    links
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|name| !name.starts_with("oxb") && !name.starts_with("oxq"))
        .map(str::to_string)
        .collect()
}

/// The `status` merge patch that makes the Node advertise exactly `bridges`, withdrawing the
/// bridge resources in `previous` that are gone.
pub fn status_patch(bridges: &BTreeSet<String>, previous: &BTreeSet<String>) -> Value {
    let mut resources = Map::new();
    for gone in previous.difference(bridges) {
        resources.insert(format!("{RESOURCE_PREFIX}{gone}"), Value::Null);
    }
    for bridge in bridges {
        resources.insert(format!("{RESOURCE_PREFIX}{bridge}"), json!(CAPACITY));
    }
    json!({"status": {"capacity": resources, "allocatable": resources}})
}

/// The bridges the Node advertises now (from its capacity).
fn advertised(node: &Node) -> BTreeSet<String> {
    node.status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .map(|c| {
            c.keys()
                .filter_map(|k| k.strip_prefix(RESOURCE_PREFIX))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps the Node's bridge resources in step with the host until the task is dropped.
///
/// # Errors
/// Never in practice: failures are logged and retried at the next poll.
pub async fn run(client: kube::Client, node_name: String) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client);
    let mut reported: Option<BTreeSet<String>> = None;
    loop {
        match exec::ip(None, &["-j", "link", "show", "type", "bridge"]).await {
            Err(e) => tracing::warn!(error = %e, "cannot list this node's bridges"),
            Ok(out) => {
                let bridges = bridges_in(&out);
                if reported.as_ref() != Some(&bridges) {
                    let previous = match &reported {
                        Some(p) => p.clone(),
                        None => match nodes.get_opt(&node_name).await {
                            Ok(Some(node)) => advertised(&node),
                            _ => BTreeSet::new(),
                        },
                    };
                    let patch = status_patch(&bridges, &previous);
                    match nodes
                        .patch_status(&node_name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(?bridges, "bridge resources advertised");
                            reported = Some(bridges);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot advertise this node's bridges")
                        }
                    }
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_bridges_are_not_advertised() {
        let out = r#"[{"ifindex":3,"ifname":"br1","flags":["UP"]},{"ifindex":4,"ifname":"oxb1a2b3c"},
                      {"ifindex":5,"ifname":"oxq12345678"},{"ifindex":6,"ifname":"docker0"}]"#;
        let found: Vec<String> = bridges_in(out).into_iter().collect();
        assert_eq!(found, ["br1", "docker0"]);
        assert!(bridges_in("").is_empty());
    }

    #[test]
    fn a_gone_bridge_is_withdrawn_and_present_ones_offered() {
        let now = BTreeSet::from(["br2".to_string()]);
        let before = BTreeSet::from(["br1".to_string(), "br2".to_string()]);
        let patch = status_patch(&now, &before);
        for kind in ["capacity", "allocatable"] {
            let resources = &patch["status"][kind];
            assert!(resources["bridge.network.kubevirt.io/br1"].is_null());
            assert!(resources
                .as_object()
                .unwrap()
                .contains_key("bridge.network.kubevirt.io/br1"));
            assert_eq!(resources["bridge.network.kubevirt.io/br2"], "1k");
        }
    }
}
