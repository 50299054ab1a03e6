//! KubeMacPool's controller half. MACs are assigned, and collisions rejected, at admission
//! (`oxivirt_webhooks::macpool`, the `mutatevirtualmachines.kubemacpool.io` webhook); this
//! controller is the safety net behind it: it gives a MAC to a VM template interface that
//! still has none (a VM admitted while its namespace opted out, then opted back in) and
//! reports a MAC two VMs hold anyway (two VMs admitted at the same instant, each unseen by
//! the other's admission) as a `MacAddressCollision` Warning event on the younger VM.
//! Namespaces labelled `mutatevirtualmachines.kubemacpool.io=ignore` and standalone VMIs are
//! left alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Api;
use serde_json::{json, Value};
use tokio::sync::Notify;

pub use oxivirt_webhooks::macpool::{format_mac, parse_mac, MacRange, OPT_OUT_LABEL};

/// Who holds which MAC: MAC → (namespace/vm, interface).
pub type Holders = HashMap<u64, (String, String)>;

/// The VM's template interfaces.
fn interfaces(vm: &Value) -> Vec<Value> {
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn vm_key(vm: &Value) -> String {
    format!(
        "{}/{}",
        vm["metadata"]["namespace"].as_str().unwrap_or_default(),
        vm["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Records the MACs `vm` holds; returns the ones another VM held first (collisions).
pub fn hold(holders: &mut Holders, vm: &Value) -> Vec<(String, String)> {
    let key = vm_key(vm);
    let mut collisions = Vec::new();
    for iface in interfaces(vm) {
        let name = iface["name"].as_str().unwrap_or_default().to_string();
        let Some(mac) = iface["macAddress"].as_str().and_then(parse_mac) else {
            continue;
        };
        match holders.get(&mac) {
            Some((owner, _)) if *owner != key => collisions.push((name, owner.clone())),
            _ => {
                holders.insert(mac, (key.clone(), name));
            }
        }
    }
    collisions
}

/// The interfaces list with a free MAC for every interface that has none (None: nothing
/// to assign). Allocation is first-free from `range.start`, so freed MACs are reused last
/// only when the range wraps.
pub fn assign(
    vm: &Value,
    range: MacRange,
    holders: &mut Holders,
    next: &mut u64,
) -> Option<Vec<Value>> {
    let mut list = interfaces(vm);
    if list
        .iter()
        .all(|i| i["macAddress"].as_str().is_some_and(|m| !m.is_empty()))
    {
        return None;
    }
    let key = vm_key(vm);
    let size = range.end - range.start + 1;
    for iface in &mut list {
        if iface["macAddress"].as_str().is_some_and(|m| !m.is_empty()) {
            continue;
        }
        let mut found = None;
        for step in 0..size.min(1 << 20) {
            let candidate = range.start + (*next - range.start + step) % size;
            if !holders.contains_key(&candidate) {
                found = Some(candidate);
                break;
            }
        }
        let mac = found?;
        *next = if mac == range.end {
            range.start
        } else {
            mac + 1
        };
        let name = iface["name"].as_str().unwrap_or_default().to_string();
        holders.insert(mac, (key.clone(), name));
        iface["macAddress"] = json!(format_mac(mac));
    }
    Some(list)
}

/// Runs the pool until the task is dropped.
///
/// # Errors
/// Never in practice: API errors are logged and retried on the next change.
pub async fn run(client: kube::Client, range: MacRange) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine");
    let kind = ApiResource::from_gvk(&gvk);
    let vms = crate::services::mirror(
        Api::<DynamicObject>::all_with(client.clone(), &kind),
        kind.clone(),
        changed.clone(),
    )
    .await;
    let namespaces =
        crate::services::mirror(Api::<Namespace>::all(client.clone()), (), changed.clone()).await;
    let mut next = range.start;
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    let mut last_seen: Option<Fingerprint> = None;
    loop {
        // Status writes (several per VM start) change nothing the pool looks at: a pass
        // runs only when a VM's spec (its generation), its deletion or a namespace's
        // opt-out label changed, instead of copying every VM on every event.
        let seen = fingerprint(&vms.state(), &namespaces.state());
        if last_seen.as_ref() == Some(&seen) {
            changed.notified().await;
            continue;
        }
        last_seen = Some(seen);
        let ignored: Vec<String> = namespaces
            .state()
            .iter()
            .filter(|n| {
                n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(OPT_OUT_LABEL))
                    .map(String::as_str)
                    == Some("ignore")
            })
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        let mut list: Vec<Value> = vms
            .state()
            .iter()
            .filter_map(|v| serde_json::to_value(v.as_ref()).ok())
            .collect();
        // Older VMs keep their MACs when a newer one asks for the same.
        list.sort_by(|a, b| {
            let t = |v: &Value| {
                v["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            t(a).cmp(&t(b)).then_with(|| vm_key(a).cmp(&vm_key(b)))
        });
        let mut holders = Holders::new();
        for vm in &list {
            for (iface, owner) in hold(&mut holders, vm) {
                let key = vm_key(vm);
                let message = format!(
                    "MAC address of interface {iface} is already in use by VirtualMachine {owner}"
                );
                if reported.get(&key) != Some(&message) {
                    tracing::warn!(vm = %key, %message, "MAC collision");
                    warn_event(&client, vm, &message).await;
                    reported.insert(key, message);
                }
            }
        }
        for vm in &list {
            let ns = vm["metadata"]["namespace"].as_str().unwrap_or_default();
            if ignored.iter().any(|n| n == ns) || vm["metadata"]["deletionTimestamp"].is_string() {
                continue;
            }
            let Some(assigned) = assign(vm, range, &mut holders, &mut next) else {
                continue;
            };
            let name = vm["metadata"]["name"].as_str().unwrap_or_default();
            let patch = json!({"spec": {"template": {"spec": {"domain": {"devices": {"interfaces": assigned}}}}}});
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &kind);
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => tracing::info!(vm = %vm_key(vm), "MAC addresses assigned"),
                Err(e) => {
                    tracing::warn!(vm = %vm_key(vm), error = %e, "cannot assign MAC addresses")
                }
            }
        }
        changed.notified().await;
    }
}

/// What a pass depends on: each VM's identity, generation and deletion, and the namespaces
/// that opted out.
#[derive(PartialEq)]
struct Fingerprint {
    vms: Vec<(String, i64, bool)>,
    opted_out: Vec<String>,
}

fn fingerprint(vms: &[Arc<DynamicObject>], namespaces: &[Arc<Namespace>]) -> Fingerprint {
    let mut seen: Vec<(String, i64, bool)> = vms
        .iter()
        .map(|vm| {
            (
                vm.metadata.uid.clone().unwrap_or_default(),
                vm.metadata.generation.unwrap_or_default(),
                vm.metadata.deletion_timestamp.is_some(),
            )
        })
        .collect();
    seen.sort();
    let mut opted_out: Vec<String> = namespaces
        .iter()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(OPT_OUT_LABEL))
                .is_some_and(|v| v == "ignore")
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    opted_out.sort();
    Fingerprint {
        vms: seen,
        opted_out,
    }
}

async fn warn_event(client: &kube::Client, vm: &Value, message: &str) {
    let ns = vm["metadata"]["namespace"].as_str().unwrap_or_default();
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let event = json!({
        "metadata": {"generateName": format!("{}.", vm["metadata"]["name"].as_str().unwrap_or_default()), "namespace": ns},
        "involvedObject": {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "namespace": ns,
                           "name": vm["metadata"]["name"], "uid": vm["metadata"]["uid"]},
        "reason": "MacAddressCollision", "message": message, "type": "Warning",
        "source": {"component": "kubemacpool"}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    if let Ok(event) = serde_json::from_value(event) {
        let _ = api.create(&PostParams::default(), &event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(ns: &str, name: &str, ifaces: Value) -> Value {
        json!({"metadata": {"namespace": ns, "name": name},
               "spec": {"template": {"spec": {"domain": {"devices": {"interfaces": ifaces}}}}}})
    }

    #[test]
    fn every_interface_without_a_mac_gets_a_distinct_one_and_set_ones_stay() {
        let range = MacRange {
            start: 0x02_00_00_00_00_00,
            end: 0x02_00_00_00_00_03,
        };
        let mut holders = Holders::new();
        let mut next = range.start;
        let a = vm(
            "ns",
            "a",
            json!([{"name": "default"}, {"name": "sec", "macAddress": "02:00:00:00:00:00"}]),
        );
        assert!(hold(&mut holders, &a).is_empty());
        let assigned = assign(&a, range, &mut holders, &mut next).unwrap();
        assert_eq!(
            assigned[0]["macAddress"], "02:00:00:00:00:01",
            "the held MAC is skipped"
        );
        assert_eq!(assigned[1]["macAddress"], "02:00:00:00:00:00");
        let b = vm("ns", "b", json!([{"name": "default"}]));
        assert_eq!(
            assign(&b, range, &mut holders, &mut next).unwrap()[0]["macAddress"],
            "02:00:00:00:00:02"
        );
        let mut done = b.clone();
        done["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] =
            json!([{"name": "default", "macAddress": "x"}]);
        assert!(
            assign(&done, range, &mut holders, &mut next).is_none(),
            "nothing to assign"
        );
    }

    #[test]
    fn an_exhausted_range_assigns_nothing_and_collisions_name_the_holder() {
        let range = MacRange { start: 1, end: 1 };
        let mut holders = Holders::new();
        let mut next = 1;
        let a = vm(
            "ns",
            "a",
            json!([{"name": "n", "macAddress": "00:00:00:00:00:01"}]),
        );
        hold(&mut holders, &a);
        let b = vm("ns", "b", json!([{"name": "n"}]));
        assert!(assign(&b, range, &mut holders, &mut next).is_none());
        let c = vm(
            "ns",
            "c",
            json!([{"name": "n", "macAddress": "00:00:00:00:00:01"}]),
        );
        assert_eq!(
            hold(&mut holders, &c),
            [("n".to_string(), "ns/a".to_string())]
        );
    }
}
