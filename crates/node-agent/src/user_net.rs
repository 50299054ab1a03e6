//! User-mode networking (passt) for nodes without a pod network — an agent that is not root
//! cannot make namespaces, veths or taps. The VMI's pod-network interface then goes through
//! `passt`, which the launcher starts (see the launcher's `user_net`): the guest still gets
//! an address by DHCP (the host's own) and reaches out, inbound only its declared `ports`
//! arrive (on the host's addresses), and Services, secondary networks and pod IPs are not
//! there. The VMI says so in condition [`CONDITION`], so nobody mistakes it for the pod
//! network.
//!
//! The plan given to a Pod is kept in `<data-dir>/node/netns/<uid>.user.json`, so the
//! condition and `status.interfaces` can be written after the launcher started, also by a
//! restarted agent.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::ResourceExt;
use oxivirt_network::{PodNetworkPlan, UserModePlan};
use serde_json::{json, Value};

use crate::well_known as wk;

/// The VMI condition type saying the pod network is replaced by passt.
pub(crate) const CONDITION: &str = "UserModeNetworking";
/// Its reason.
const REASON: &str = "NoPodNetwork";

/// The passt binary, if this host has one (Debian package `passt`).
pub(crate) fn passt_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("passt").is_file()))
}

fn file(dir: &Path, uid: &str) -> PathBuf {
    dir.join(format!("{uid}.user.json"))
}

/// The VMI's interface on the pod network (any binding: passt replaces them all), if any.
fn pod_interface(vmi: &Value) -> Option<&Value> {
    let networks = vmi["spec"]["networks"].as_array()?;
    vmi["spec"]["domain"]["devices"]["interfaces"]
        .as_array()?
        .iter()
        .filter(|i| i["state"] != "absent")
        .find(|i| {
            networks
                .iter()
                .any(|n| n["name"] == i["name"] && n.get("pod").is_some())
        })
}

/// The ports the interface declares, by protocol (`TCP` when unnamed, as upstream).
fn ports(iface: &Value, protocol: &str) -> Vec<u16> {
    iface["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["protocol"]
                .as_str()
                .unwrap_or("TCP")
                .eq_ignore_ascii_case(protocol)
        })
        .filter_map(|p| u16::try_from(p["port"].as_u64()?).ok())
        .collect()
}

/// The user-mode plan for `vmi` (already carrying its VM's MACs), or `None` when it has no
/// pod-network interface. Secondary interfaces are left out: they need a bridge.
pub(crate) fn plan(vmi: &Value) -> Option<PodNetworkPlan> {
    let iface = pod_interface(vmi)?;
    let name = iface["name"].as_str().unwrap_or_default().to_string();
    let seed = vmi["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|l| l.iter().find(|o| o["kind"] == "VirtualMachine"))
        .and_then(|o| o["uid"].as_str())
        .or_else(|| vmi["metadata"]["uid"].as_str())
        .unwrap_or_default();
    let mac = iface["macAddress"]
        .as_str()
        .map(str::to_lowercase)
        .unwrap_or_else(|| oxivirt_network::pod::default_mac(seed, &name));
    Some(PodNetworkPlan {
        interfaces: Vec::new(),
        user_mode: Some(UserModePlan {
            name,
            mac,
            model: iface["model"].as_str().unwrap_or("virtio").to_string(),
            tcp_ports: ports(iface, "TCP"),
            udp_ports: ports(iface, "UDP"),
            left_out: vmi["spec"]["domain"]["devices"]["interfaces"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| i["state"] != "absent" && i["name"] != iface["name"])
                .filter_map(|i| i["name"].as_str().map(str::to_string))
                .collect(),
        }),
    })
}

/// Records the Pod's plan for [`report`].
///
/// # Errors
/// A message naming the file that could not be written.
pub(crate) fn record(dir: &Path, uid: &str, plan: &PodNetworkPlan) -> Result<(), String> {
    let path = file(dir, uid);
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, serde_json::to_vec(plan).unwrap_or_default()))
        .map_err(|e| format!("cannot record {}: {e}", path.display()))
}

/// Forgets the Pod's plan (its launcher is gone).
pub(crate) fn forget(dir: &Path, uid: &str) {
    let _ = std::fs::remove_file(file(dir, uid));
}

fn recorded(dir: &Path, uid: &str) -> Option<UserModePlan> {
    let bytes = std::fs::read(file(dir, uid)).ok()?;
    serde_json::from_slice::<PodNetworkPlan>(&bytes)
        .ok()?
        .user_mode
}

/// The VMI status with the condition and the interface's `status.interfaces` entry.
fn apply(status: &mut Value, nic: &UserModePlan, now: &str) {
    let mut message = format!(
        "interface {} is connected through passt user-mode networking: this node has no pod \
         network (its agent is not root), so the guest gets the host's address by DHCP and \
         reaches out through the host; inbound, only the interface's ports are forwarded \
         from the host",
        nic.name
    );
    if !nic.left_out.is_empty() {
        message.push_str(&format!(
            "; not connected: {} (secondary networks need a bridge, which needs a root node agent)",
            nic.left_out.join(", ")
        ));
    }
    let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let since = conditions
        .iter()
        .find(|c| c["type"] == CONDITION && c["status"] == "True")
        .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
        .unwrap_or_else(|| now.to_string());
    conditions.retain(|c| c["type"] != CONDITION);
    conditions.push(
        json!({"type": CONDITION, "status": "True", "reason": REASON,
                           "message": message, "lastProbeTime": null, "lastTransitionTime": since}),
    );
    status["conditions"] = json!(conditions);
    let mut interfaces = status["interfaces"].as_array().cloned().unwrap_or_default();
    match interfaces
        .iter_mut()
        .find(|i| i["name"] == nic.name.as_str())
    {
        Some(found) => {
            found["mac"] = json!(nic.mac);
            if found["infoSource"].is_null() {
                found["infoSource"] = json!("domain");
            }
        }
        None => interfaces.push(json!({"name": nic.name, "mac": nic.mac,
                                       "infoSource": "domain", "queueCount": 1})),
    }
    status["interfaces"] = json!(interfaces);
}

/// Writes the condition and interface of a running Pod's user-mode NIC into its VMI's
/// status (a no-op for Pods without one). Conflicts are retried a few times; what is left
/// is retried on the Pod's next status change.
pub(crate) async fn report(client: &kube::Client, dir: &Path, pod: &Pod) {
    let Some(nic) = recorded(dir, &pod.uid().unwrap_or_default()) else {
        return;
    };
    let Some(name) = pod.annotations().get(wk::DOMAIN_ANNOTATION) else {
        return;
    };
    let namespace = pod.namespace().unwrap_or_default();
    let api = crate::realise::vmi_api(client, &namespace);
    for _ in 0..3 {
        let Ok(Some(mut vmi)) = api.get_opt(name).await else {
            return;
        };
        if pod.labels().get("kubevirt.io/created-by") != vmi.metadata.uid.as_ref() {
            return;
        }
        let before = vmi.data["status"].clone();
        if !vmi.data["status"].is_object() {
            vmi.data["status"] = json!({});
        }
        apply(&mut vmi.data["status"], &nic, &crate::status::now());
        if vmi.data["status"] == before {
            return;
        }
        match api.replace(name, &PostParams::default(), &vmi).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => {
                tracing::debug!(error = %e, "cannot write the user-mode networking condition");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmi() -> Value {
        json!({"metadata": {"uid": "u1"}, "spec": {
            "domain": {"devices": {"interfaces": [
                {"name": "default", "masquerade": {}, "macAddress": "02:00:00:00:00:AA",
                 "ports": [{"port": 22}, {"port": 53, "protocol": "UDP"}]},
                {"name": "sec", "bridge": {}}]}},
            "networks": [{"name": "default", "pod": {}},
                         {"name": "sec", "multus": {"networkName": "br"}}]}})
    }

    #[test]
    fn the_pod_interface_goes_through_passt_with_its_mac_and_ports() {
        let plan = plan(&vmi()).expect("a plan");
        assert!(plan.interfaces.is_empty(), "no taps without a pod network");
        let nic = plan.user_mode.expect("a user-mode NIC");
        assert_eq!(nic.name, "default");
        assert_eq!(nic.mac, "02:00:00:00:00:aa");
        assert_eq!((nic.tcp_ports, nic.udp_ports), (vec![22], vec![53]));
        let mut none = vmi();
        none["spec"]["networks"][0] = json!({"name": "default", "multus": {"networkName": "x"}});
        assert_eq!(plan_of(&none), None);
    }

    fn plan_of(vmi: &Value) -> Option<PodNetworkPlan> {
        plan(vmi)
    }

    #[test]
    fn the_condition_says_so_and_keeps_its_transition_time() {
        let nic = plan(&vmi()).and_then(|p| p.user_mode).expect("a NIC");
        let mut status = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        apply(&mut status, &nic, "T1");
        apply(&mut status, &nic, "T2");
        let condition = &status["conditions"][1];
        assert_eq!(condition["type"], CONDITION);
        assert_eq!(condition["reason"], REASON);
        assert_eq!(condition["lastTransitionTime"], "T1");
        let message = condition["message"].as_str().unwrap_or_default();
        assert!(message.contains("passt"), "{message}");
        assert!(
            message.ends_with("; not connected: sec (secondary networks need a bridge, which needs a root node agent)"),
            "{message}"
        );
        assert_eq!(status["interfaces"][0]["mac"], "02:00:00:00:00:aa");
        assert_eq!(status["conditions"].as_array().map(Vec::len), Some(2));
    }
}
