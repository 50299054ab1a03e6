//! kubernetes-nmstate on one node, reduced to the manual's examples (§8.5.1): a
//! NodeNetworkConfigurationPolicy whose `nodeSelector` matches the node has its
//! `desiredState.interfaces` applied — `linux-bridge` (ports, STP, IPv4 off or addresses),
//! `vlan`, `bond`, `state: up|down|absent` — and its `status.conditions` say how that went
//! (`Available`/`Degraded`, reasons `SuccessfullyConfigured`/`FailedToConfigure`). The node's
//! NodeNetworkState (named after the node) reports its interfaces.
//!
//! Enacting changes the host's interfaces, so a node does it only when started with
//! `OXIVIRT_NMSTATE=enact`; otherwise policies are reported as not applied on it
//! (`Available=False`, reason `EnactmentDisabled`) and nothing on the host is touched.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::Api;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::exec;

fn resource(kind: &str, plural: &str, version: &str) -> ApiResource {
    ApiResource {
        group: "nmstate.io".into(),
        version: version.into(),
        api_version: format!("nmstate.io/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The commands that bring one desired interface about (pure, for tests and logs).
pub fn commands(iface: &Value) -> Result<Vec<Vec<String>>, String> {
    let name = iface["name"]
        .as_str()
        .ok_or("an interface has no name")?
        .to_string();
    let kind = iface["type"].as_str().unwrap_or("ethernet");
    let state = iface["state"].as_str().unwrap_or("up");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    if state == "absent" {
        return Ok(vec![s(&["link", "del", &name])]);
    }
    let mut out = Vec::new();
    match kind {
        "linux-bridge" => {
            let stp = iface["bridge"]["options"]["stp"]["enabled"] == true;
            out.push(s(&["link", "add", &name, "type", "bridge"]));
            out.push(s(&[
                "link",
                "set",
                &name,
                "type",
                "bridge",
                "stp_state",
                if stp { "1" } else { "0" },
            ]));
            for port in iface["bridge"]["port"].as_array().into_iter().flatten() {
                let port = port["name"].as_str().ok_or("a bridge port has no name")?;
                out.push(s(&["link", "set", port, "master", &name, "up"]));
            }
        }
        "vlan" => {
            let base = iface["vlan"]["base-iface"]
                .as_str()
                .ok_or("vlan.base-iface is missing")?;
            let id = iface["vlan"]["id"]
                .as_u64()
                .ok_or("vlan.id is missing")?
                .to_string();
            out.push(s(&[
                "link", "add", "link", base, "name", &name, "type", "vlan", "id", &id,
            ]));
        }
        "bond" => {
            let mode = iface["link-aggregation"]["mode"]
                .as_str()
                .unwrap_or("balance-rr");
            out.push(s(&["link", "add", &name, "type", "bond", "mode", mode]));
            for port in iface["link-aggregation"]["port"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let port = port.as_str().ok_or("a bond port is not a name")?;
                out.push(s(&["link", "set", port, "down"]));
                out.push(s(&["link", "set", port, "master", &name]));
            }
        }
        "ethernet" => {}
        other => return Err(format!("interface {name}: type {other} is not supported")),
    }
    if iface["ipv4"]["enabled"] == false {
        out.push(s(&["-4", "addr", "flush", "dev", &name]));
    }
    for a in iface["ipv4"]["address"].as_array().into_iter().flatten() {
        let (Some(ip), Some(len)) = (a["ip"].as_str(), a["prefix-length"].as_u64()) else {
            continue;
        };
        out.push(s(&[
            "addr",
            "replace",
            &format!("{ip}/{len}"),
            "dev",
            &name,
        ]));
    }
    if let Some(mtu) = iface["mtu"].as_u64() {
        out.push(s(&["link", "set", &name, "mtu", &mtu.to_string()]));
    }
    out.push(s(&[
        "link",
        "set",
        &name,
        if state == "down" { "down" } else { "up" },
    ]));
    Ok(out)
}

async fn enact(policy: &Value) -> Result<(), String> {
    for iface in policy["spec"]["desiredState"]["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for args in commands(iface)? {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let creating = refs.get(1) == Some(&"add");
            match exec::ip(None, &refs).await {
                Ok(_) => {}
                // Creating what exists already is how a re-applied policy looks.
                Err(exec::Error::Failed { stderr, .. })
                    if creating && stderr.contains("File exists") => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(())
}

fn matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    selector.as_object().is_none_or(|s| {
        s.iter().all(|(k, v)| {
            v.as_str()
                .is_some_and(|v| labels.get(k).map(String::as_str) == Some(v))
        })
    })
}

fn conditions(ok: Result<(), String>, now: &str) -> Value {
    let (available, reason, message) = match ok {
        Ok(()) => (
            "True",
            "SuccessfullyConfigured",
            "1/1 nodes successfully configured".to_string(),
        ),
        Err(m) => ("False", "FailedToConfigure", m),
    };
    let degraded = if available == "True" { "False" } else { "True" };
    json!([
        {"type": "Available", "status": available, "reason": reason, "message": message, "lastTransitionTime": now, "lastHeartbeatTime": now},
        {"type": "Degraded", "status": degraded, "reason": reason, "message": message, "lastTransitionTime": now, "lastHeartbeatTime": now},
    ])
}

/// The node's interfaces as nmstate reports them (`currentState.interfaces`).
async fn current_state() -> Value {
    let links: Vec<Value> = exec::ip(None, &["-j", "-d", "addr"])
        .await
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let interfaces: Vec<Value> = links
        .iter()
        .map(|l| {
            let kind = match l["linkinfo"]["info_kind"].as_str() {
                Some("bridge") => "linux-bridge",
                Some("veth") => "veth",
                Some("vlan") => "vlan",
                Some("bond") => "bond",
                _ if l["link_type"] == "loopback" => "loopback",
                _ => "ethernet",
            };
            let v4: Vec<Value> = l["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["family"] == "inet")
                .map(|a| json!({"ip": a["local"], "prefix-length": a["prefixlen"]}))
                .collect();
            json!({
                "name": l["ifname"], "type": kind, "mtu": l["mtu"], "mac-address": l["address"],
                "state": if l["operstate"] == "DOWN" { "down" } else { "up" },
                "ipv4": {"enabled": !v4.is_empty(), "address": v4},
            })
        })
        .collect();
    json!({"interfaces": interfaces})
}

/// Runs the node's nmstate handler until the task is dropped.
///
/// # Errors
/// Never in practice: API errors are logged and retried.
pub async fn run(client: kube::Client, node_name: String) -> anyhow::Result<()> {
    let enact_allowed = std::env::var("OXIVIRT_NMSTATE").is_ok_and(|v| v == "enact");
    let changed = Arc::new(Notify::new());
    let nncp = resource(
        "NodeNetworkConfigurationPolicy",
        "nodenetworkconfigurationpolicies",
        "v1",
    );
    let nns = resource("NodeNetworkState", "nodenetworkstates", "v1beta1");
    let policies = crate::services::mirror(
        Api::<DynamicObject>::all_with(client.clone(), &nncp),
        nncp.clone(),
        changed.clone(),
    )
    .await;
    let nodes: Api<Node> = Api::all(client.clone());
    let policy_api: Api<DynamicObject> = Api::all_with(client.clone(), &nncp);
    let state_api: Api<DynamicObject> = Api::all_with(client.clone(), &nns);
    let mut applied: BTreeMap<String, (i64, bool)> = BTreeMap::new();
    loop {
        let labels = nodes
            .get_opt(&node_name)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.metadata.labels)
            .unwrap_or_default();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for policy in policies.state() {
            let value = serde_json::to_value(policy.as_ref()).unwrap_or_default();
            let name = value["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let generation = value["metadata"]["generation"].as_i64().unwrap_or(0);
            if !matches(&value["spec"]["nodeSelector"], &labels)
                || applied.get(&name).is_some_and(|(g, _)| *g == generation)
            {
                continue;
            }
            let outcome = if enact_allowed {
                enact(&value).await
            } else {
                Err(format!("node {node_name} does not enact policies (start it with OXIVIRT_NMSTATE=enact)"))
            };
            let ok = outcome.is_ok();
            let mut conds = conditions(outcome, &now);
            if !enact_allowed {
                for c in conds.as_array_mut().into_iter().flatten() {
                    c["reason"] = json!("EnactmentDisabled");
                }
            }
            let patch =
                json!({"status": {"conditions": conds, "lastUnavailableNodeCountUpdate": now}});
            match policy_api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(policy = %name, ok, "NodeNetworkConfigurationPolicy handled");
                    applied.insert(name, (generation, ok));
                }
                Err(e) => {
                    tracing::warn!(policy = %name, error = %e, "cannot write the policy status")
                }
            }
        }
        let state = json!({"apiVersion": "nmstate.io/v1beta1", "kind": "NodeNetworkState",
                           "metadata": {"name": node_name}});
        if let Ok(obj) = serde_json::from_value::<DynamicObject>(state) {
            let _ = state_api.create(&PostParams::default(), &obj).await;
        }
        let status = json!({"status": {"currentState": current_state().await, "lastSuccessfulUpdateTime": now}});
        if let Err(e) = state_api
            .patch_status(&node_name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            tracing::debug!(error = %e, "cannot write NodeNetworkState");
        }
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manuals_bridge_policy_becomes_ip_commands() {
        let iface = json!({"name": "br1", "type": "linux-bridge", "state": "up", "ipv4": {"enabled": false},
                           "bridge": {"options": {"stp": {"enabled": false}}, "port": [{"name": "eth1"}]}});
        let cmds: Vec<String> = commands(&iface)
            .unwrap()
            .iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            cmds,
            [
                "link add br1 type bridge",
                "link set br1 type bridge stp_state 0",
                "link set eth1 master br1 up",
                "-4 addr flush dev br1",
                "link set br1 up"
            ]
        );
    }

    #[test]
    fn vlan_bond_and_absent_interfaces() {
        let vlan =
            json!({"name": "eth1.100", "type": "vlan", "vlan": {"base-iface": "eth1", "id": 100}});
        assert_eq!(
            commands(&vlan).unwrap()[0].join(" "),
            "link add link eth1 name eth1.100 type vlan id 100"
        );
        let bond = json!({"name": "bond0", "type": "bond", "link-aggregation": {"mode": "active-backup", "port": ["eth1", "eth2"]}});
        assert_eq!(
            commands(&bond).unwrap()[0].join(" "),
            "link add bond0 type bond mode active-backup"
        );
        let gone = json!({"name": "br1", "type": "linux-bridge", "state": "absent"});
        assert_eq!(commands(&gone).unwrap(), [vec!["link", "del", "br1"]]);
        assert!(commands(&json!({"name": "x", "type": "ovs-bridge"})).is_err());
    }

    #[test]
    fn node_selectors_match_labels() {
        let labels = BTreeMap::from([("a".to_string(), "b".to_string())]);
        assert!(matches(&Value::Null, &labels));
        assert!(matches(&json!({"a": "b"}), &labels));
        assert!(!matches(&json!({"a": "c"}), &labels));
    }
}
