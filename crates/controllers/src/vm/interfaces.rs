//! NIC hot-plug on the VM side (manual §8.9; KubeVirt 1.2, where `virtctl
//! addinterface`/`removeinterface` are gone and the VM spec is the only API):
//!
//! - an interface (with its network) added to a running VM's template is added to the VMI's
//!   spec, and `state: absent` on one is copied to the VMI's interface — upstream's dynamic
//!   interface requests, for bridge-bound interfaces on Multus networks only (other bindings
//!   wait for a restart, as upstream says);
//! - a VMI created from the template leaves `absent` interfaces (and their networks) out;
//! - `RestartRequired` compares templates without `absent` interfaces, so dropping an
//!   interface from the spec once it is absent (and gone from the guest) needs no restart.
//!
//! Pure functions over JSON; the VM controller calls them from its pass.

use serde_json::{json, Value};

/// The value of `interfaces[].state` that asks for an interface's removal.
pub(crate) const ABSENT: &str = "absent";

fn interfaces(spec: &Value) -> &[Value] {
    spec["domain"]["devices"]["interfaces"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn networks(spec: &Value) -> &[Value] {
    spec["networks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn is_absent(iface: &Value) -> bool {
    iface["state"] == ABSENT
}

/// Whether `iface` is one upstream plugs into a running VM: bridge binding on a Multus
/// network of `spec`.
fn hot_pluggable(spec: &Value, iface: &Value) -> bool {
    iface.get("bridge").is_some()
        && networks(spec)
            .iter()
            .any(|n| n["name"] == iface["name"] && n.get("multus").is_some())
}

/// `spec` (a VM template spec or a VMI spec) without its `absent` interfaces and their
/// networks (upstream `ClearDetachedInterfaces`).
pub(crate) fn without_detached(spec: &Value) -> Value {
    let gone: Vec<&Value> = interfaces(spec)
        .iter()
        .filter(|i| is_absent(i))
        .map(|i| &i["name"])
        .collect();
    if gone.is_empty() {
        return spec.clone();
    }
    let mut out = spec.clone();
    let kept: Vec<Value> = interfaces(spec)
        .iter()
        .filter(|i| !is_absent(i))
        .cloned()
        .collect();
    out["domain"]["devices"]["interfaces"] = json!(kept);
    if spec.get("networks").is_some() {
        let kept: Vec<Value> = networks(spec)
            .iter()
            .filter(|n| !gone.contains(&&n["name"]))
            .cloned()
            .collect();
        out["networks"] = json!(kept);
    }
    out
}

/// The VMI spec's `(interfaces, networks)` once the template's hot-plug requests are
/// applied to it, or `None` when there is nothing to apply.
///
/// New bridge interfaces on Multus networks are appended with their network; an `absent`
/// state on the template marks the VMI's interface `absent`. Other changes (bindings, MACs,
/// models, interfaces of other bindings) are left to a restart.
pub(crate) fn requested_on_vmi(template: &Value, vmi_spec: &Value) -> Option<(Value, Value)> {
    let mut ifaces = interfaces(vmi_spec).to_vec();
    let mut nets = networks(vmi_spec).to_vec();
    let mut changed = false;
    for wanted in interfaces(template) {
        if !hot_pluggable(template, wanted) {
            continue;
        }
        match ifaces.iter_mut().find(|i| i["name"] == wanted["name"]) {
            Some(current) if is_absent(wanted) && !is_absent(current) => {
                current["state"] = json!(ABSENT);
                changed = true;
            }
            Some(_) => {}
            None if is_absent(wanted) => {}
            None => {
                let Some(network) = networks(template)
                    .iter()
                    .find(|n| n["name"] == wanted["name"])
                else {
                    continue;
                };
                ifaces.push(wanted.clone());
                if !nets.iter().any(|n| n["name"] == wanted["name"]) {
                    nets.push(network.clone());
                }
                changed = true;
            }
        }
    }
    changed.then(|| (json!(ifaces), json!(nets)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ifaces: Value, nets: Value) -> Value {
        json!({"domain": {"devices": {"interfaces": ifaces}}, "networks": nets})
    }

    fn pod_only() -> Value {
        spec(
            json!([{"name": "default", "masquerade": {}}]),
            json!([{"name": "default", "pod": {}}]),
        )
    }

    fn with_bridge(state: Option<&str>) -> Value {
        let mut iface = json!({"name": "sec", "bridge": {}, "macAddress": "02:00:00:00:00:07"});
        if let Some(state) = state {
            iface["state"] = json!(state);
        }
        spec(
            json!([{"name": "default", "masquerade": {}}, iface]),
            json!([{"name": "default", "pod": {}}, {"name": "sec", "multus": {"networkName": "br"}}]),
        )
    }

    #[test]
    fn a_new_bridge_interface_reaches_the_vmi_with_its_network() {
        let (ifaces, nets) = requested_on_vmi(&with_bridge(None), &pod_only()).expect("a change");
        assert_eq!(ifaces[1]["name"], "sec");
        assert_eq!(ifaces[1]["macAddress"], "02:00:00:00:00:07");
        assert_eq!(
            nets[1],
            json!({"name": "sec", "multus": {"networkName": "br"}})
        );
        assert_eq!(
            requested_on_vmi(&with_bridge(None), &with_bridge(None)),
            None
        );
    }

    #[test]
    fn absent_on_the_template_marks_the_vmis_interface_absent_once() {
        let (ifaces, nets) =
            requested_on_vmi(&with_bridge(Some("absent")), &with_bridge(None)).expect("a change");
        assert_eq!(ifaces[1]["state"], "absent");
        assert_eq!(nets.as_array().map(Vec::len), Some(2));
        let applied = spec(ifaces, nets);
        assert_eq!(
            requested_on_vmi(&with_bridge(Some("absent")), &applied),
            None
        );
        // An absent interface the VMI never had is not added.
        assert_eq!(
            requested_on_vmi(&with_bridge(Some("absent")), &pod_only()),
            None
        );
    }

    #[test]
    fn other_bindings_wait_for_a_restart() {
        let template = spec(
            json!([{"name": "default", "masquerade": {}}, {"name": "sec", "masquerade": {}}]),
            json!([{"name": "default", "pod": {}}, {"name": "sec", "multus": {"networkName": "br"}}]),
        );
        assert_eq!(requested_on_vmi(&template, &pod_only()), None);
    }

    #[test]
    fn detached_interfaces_and_their_networks_are_left_out() {
        let cleared = without_detached(&with_bridge(Some("absent")));
        assert_eq!(cleared, pod_only());
        assert_eq!(without_detached(&pod_only()), pod_only());
    }
}
