//! Network, interface and probe rules of KubeVirt's VMI spec validation (`pkg/network/admitter`
//! and the probe checks of the VMI create admitter), shared by VMIs and VM templates.

use serde_json::Value;

use crate::json::{array, child, has, index, int_at, nonempty, str_at};
use crate::review::Cause;

const VALID_MODELS: [&str; 6] = ["e1000", "e1000e", "ne2k_pci", "pcnet", "rtl8139", "virtio"];
const BINDINGS: [&str; 6] = ["bridge", "masquerade", "sriov", "slirp", "passt", "macvtap"];

fn is_iface_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Go's `net.ParseMAC` accepted lengths (in octets), or `None` when malformed.
fn mac_octets(mac: &str) -> Option<usize> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_hexdigit());
    let sep = if mac.contains(':') {
        ':'
    } else if mac.contains('-') {
        '-'
    } else {
        '.'
    };
    let parts: Vec<&str> = mac.split(sep).collect();
    let octets = if sep == '.' {
        parts.iter().all(|p| hex(p, 4)).then_some(parts.len() * 2)?
    } else {
        parts.iter().all(|p| hex(p, 2)).then_some(parts.len())?
    };
    [6, 8, 20].contains(&octets).then_some(octets)
}

/// Validates `networks` and `domain.devices.interfaces` of the VMI spec at `path`.
pub(crate) fn validate_networks(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let networks = array(spec, &["networks"]);
    let ifaces = array(spec, &["domain", "devices", "interfaces"]);
    let net_name = |n: &Value| str_at(n, &["name"]).unwrap_or("").to_string();
    let iface_path = child(path, "domain.devices.interfaces");
    let nets_path = child(path, "networks");

    let mut seen_nets: Vec<String> = Vec::new();
    let mut pod_networks = 0;
    let mut multus_defaults = 0;
    for (i, net) in networks.iter().enumerate() {
        let name = net_name(net);
        let field = index(&nets_path, i);
        if !ifaces.iter().any(|f| net_name(f) == name) {
            out.push(Cause::required(
                child(&field, "name"),
                format!("{} '{name}' not found.", child(&field, "name")),
            ));
        }
        if seen_nets.contains(&name) {
            out.push(Cause::duplicate(
                child(&field, "name"),
                format!("Network with name {name:?} already exists, every network must have a unique name"),
            ));
        }
        seen_nets.push(name.clone());
        if !is_iface_name(&name) {
            out.push(Cause::invalid(
                child(&field, "name"),
                "Network name can only contain alphabetical characters, numbers, dashes (-) or underscores (_)",
            ));
        }
        match (has(net, &["pod"]), has(net, &["multus"])) {
            (false, false) => out.push(Cause::required(&field, "should have a network type")),
            (true, true) => out.push(Cause::required(&field, "should have only one network type")),
            _ => {}
        }
        if has(net, &["multus"]) && nonempty(net, &["multus", "networkName"]).is_none() {
            out.push(Cause::required(
                &field,
                "CNI delegating plugin must have a networkName",
            ));
        }
        validate_vm_network_cidrs(net, &field, out);
        pod_networks += usize::from(has(net, &["pod"]));
        multus_defaults += usize::from(net.pointer("/multus/default") == Some(&Value::Bool(true)));
    }
    if pod_networks > 1 {
        out.push(Cause::duplicate(
            &nets_path,
            format!("more than one interface is connected to a pod network in {nets_path}"),
        ));
    }
    if multus_defaults > 1 {
        out.push(Cause::invalid(
            &nets_path,
            "Multus CNI should only have one default network",
        ));
    }
    if pod_networks > 0 && multus_defaults > 0 {
        out.push(Cause::invalid(
            &nets_path,
            "Pod network cannot be defined when Multus default network is defined",
        ));
    }

    let mut seen_ifaces: Vec<String> = Vec::new();
    for (i, iface) in ifaces.iter().enumerate() {
        let name = net_name(iface);
        let field = index(&iface_path, i);
        let name_field = child(&field, "name");
        let network = networks.iter().find(|n| net_name(n) == name);
        if network.is_none() {
            out.push(Cause::invalid(
                &name_field,
                format!("{name_field} '{name}' not found."),
            ));
        }
        if seen_ifaces.contains(&name) {
            out.push(Cause::duplicate(
                &name_field,
                "Only one interface can be connected to one specific network",
            ));
        }
        seen_ifaces.push(name.clone());
        if !is_iface_name(&name) {
            out.push(Cause::invalid(
                &name_field,
                "Network interface name can only contain alphabetical characters, numbers, dashes (-) or underscores (_)",
            ));
        }
        if let Some(model) = nonempty(iface, &["model"]).filter(|m| !VALID_MODELS.contains(m)) {
            out.push(Cause::not_supported(
                child(&field, "model"),
                format!("interface {name_field} uses model {model} that is not supported."),
            ));
        }
        if let Some(mac) = nonempty(iface, &["macAddress"]) {
            match mac_octets(mac) {
                None => out.push(Cause::invalid(
                    child(&field, "macAddress"),
                    format!("interface {name_field} has malformed MAC address ({mac})."),
                )),
                Some(n) if n > 6 => out.push(Cause::invalid(
                    child(&field, "macAddress"),
                    format!("interface {name_field} has MAC address ({mac}) that is too long."),
                )),
                Some(_) => {}
            }
        }
        if BINDINGS.iter().filter(|b| has(iface, &[**b])).count() > 1 {
            out.push(Cause::invalid(
                &field,
                format!("{field} should have only one binding method"),
            ));
        }
        if has(iface, &["masquerade"]) && network.is_some_and(|n| !has(n, &["pod"])) {
            out.push(Cause::invalid(
                child(&field, "masquerade"),
                "Masquerade interface only implemented with pod network",
            ));
        }
        validate_ports(iface, &field, out);
        validate_state(iface, network, &name, &field, out);
    }
}

/// `pod.vmNetworkCIDR` and `pod.vmIPv6NetworkCIDR`: ranges with room for the masquerade
/// gateway and guest (oxivirt wording; upstream only parses them).
fn validate_vm_network_cidrs(net: &Value, field: &str, out: &mut Vec<Cause>) {
    let range = |text: &str, v6: bool| -> bool {
        let Some((addr, len)) = text.split_once('/') else {
            return false;
        };
        let Ok(len) = len.parse::<u8>() else {
            return false;
        };
        if v6 {
            addr.parse::<std::net::Ipv6Addr>().is_ok() && len <= 126
        } else {
            addr.parse::<std::net::Ipv4Addr>().is_ok() && len <= 30
        }
    };
    for (key, v6, example) in [
        ("vmNetworkCIDR", false, "10.0.2.0/24, /30 or wider"),
        ("vmIPv6NetworkCIDR", true, "fd10:0:2::/120, /126 or wider"),
    ] {
        if let Some(text) = nonempty(net, &["pod", key]).filter(|t| !range(t, v6)) {
            let at = child(&child(field, "pod"), key);
            out.push(Cause::invalid(
                &at,
                format!("{at} {text:?} is not a valid range for the masquerade network (e.g. {example})"),
            ));
        }
    }
}

/// `ports` of one interface, with upstream's messages: a port is 1..65535, the protocol TCP
/// or UDP, names unique.
fn validate_ports(iface: &Value, field: &str, out: &mut Vec<Cause>) {
    let mut names: Vec<&str> = Vec::new();
    for (i, port) in array(iface, &["ports"]).iter().enumerate() {
        let at = index(&child(field, "ports"), i);
        match port.get("port").filter(|p| !p.is_null()) {
            None => out.push(Cause::required(
                child(&at, "port"),
                "Port field is mandatory.",
            )),
            Some(p) if p.as_i64().is_none_or(|n| !(1..65536).contains(&n)) => {
                out.push(Cause::invalid(
                    child(&at, "port"),
                    "Port field must be in range 0 < x < 65536.",
                ))
            }
            Some(_) => {}
        }
        if let Some(protocol) = nonempty(port, &["protocol"]) {
            if protocol != "TCP" && protocol != "UDP" {
                out.push(Cause::invalid(
                    child(&at, "protocol"),
                    "Unknown protocol, only TCP or UDP allowed",
                ));
            }
        }
        if let Some(name) = nonempty(port, &["name"]) {
            if names.contains(&name) {
                out.push(Cause::duplicate(
                    child(&at, "name"),
                    format!("Duplicate name of the port: {name}"),
                ));
            }
            names.push(name);
        }
    }
}

/// `state` of one interface: only `absent` (upstream's KubeVirt 1.2), only for the bridge
/// binding, never on the default network.
fn validate_state(
    iface: &Value,
    network: Option<&Value>,
    name: &str,
    field: &str,
    out: &mut Vec<Cause>,
) {
    let Some(state) = nonempty(iface, &["state"]) else {
        return;
    };
    let at = child(field, "state");
    if state != "absent" {
        out.push(Cause::not_supported(
            &at,
            format!("logical {name} interface state value is unsupported: {state}"),
        ));
        return;
    }
    if !has(iface, &["bridge"]) {
        out.push(Cause::invalid(
            &at,
            format!("{name:?} interface's state {state:?} is supported only for bridge binding"),
        ));
    }
    let default_network = network.is_some_and(|n| {
        has(n, &["pod"]) || n.pointer("/multus/default") == Some(&Value::Bool(true))
    });
    if default_network {
        out.push(Cause::invalid(
            &at,
            format!("{name:?} interface's state {state:?} is not supported on default networks"),
        ));
    }
}

/// Validates `readinessProbe` and `livenessProbe` of the VMI spec at `path`.
pub(crate) fn validate_probes(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let pod_network = array(spec, &["networks"]).iter().any(|n| has(n, &["pod"]));
    for name in ["readinessProbe", "livenessProbe"] {
        let Some(probe) = spec.get(name).filter(|p| !p.is_null()) else {
            continue;
        };
        let p = child(path, name);
        let handlers = ["httpGet", "tcpSocket", "exec", "guestAgentPing"]
            .iter()
            .filter(|h| has(probe, &[**h]))
            .count();
        if handlers > 1 {
            out.push(Cause::invalid(
                &p,
                format!("{p} must have exactly one probe type set"),
            ));
        }
        if handlers < 1 {
            out.push(Cause::required(
                &p,
                format!(
                    "either {}, {} or {} must be set if a {p} is specified",
                    child(&p, "tcpSocket"),
                    child(&p, "exec"),
                    child(&p, "httpGet")
                ),
            ));
        }
        if !pod_network {
            for handler in ["httpGet", "tcpSocket"]
                .into_iter()
                .filter(|h| has(probe, &[*h]))
            {
                let f = child(&p, handler);
                out.push(Cause::invalid(
                    &f,
                    format!("{f} is only allowed if the Pod Network is attached"),
                ));
            }
        }
        // Kubernetes' defaults apply when unset (timeout 1s, period 10s).
        let timeout = int_at(probe, &["timeoutSeconds"])
            .filter(|v| *v >= 1)
            .unwrap_or(1);
        let period = int_at(probe, &["periodSeconds"])
            .filter(|v| *v >= 1)
            .unwrap_or(10);
        if period <= timeout {
            out.push(Cause::invalid(
                child(&p, "periodSeconds"),
                format!(
                    "Invalid value: {period}: must be greater than {} ({timeout})",
                    child(&p, "timeoutSeconds")
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(spec: Value) -> Vec<Cause> {
        let mut out = Vec::new();
        validate_networks(&spec, "spec", &mut out);
        validate_probes(&spec, "spec", &mut out);
        out
    }

    fn pod_spec(extra_ifaces: Value, extra_nets: Value) -> Value {
        let mut ifaces = vec![json!({"name": "default", "masquerade": {}})];
        ifaces.extend(extra_ifaces.as_array().cloned().unwrap_or_default());
        let mut nets = vec![json!({"name": "default", "pod": {}})];
        nets.extend(extra_nets.as_array().cloned().unwrap_or_default());
        json!({"domain": {"devices": {"interfaces": ifaces}}, "networks": nets})
    }

    #[test]
    fn matching_interfaces_and_networks_are_accepted() {
        let spec = pod_spec(
            json!([{"name": "nic1", "sriov": {}}]),
            json!([{"name": "nic1", "multus": {"networkName": "sriov-network"}}]),
        );
        assert_eq!(causes(spec), vec![]);
    }

    #[test]
    fn ports_out_of_range_with_an_unknown_protocol_or_a_repeated_name_are_rejected() {
        let mut spec = pod_spec(json!([]), json!([]));
        spec["domain"]["devices"]["interfaces"][0]["ports"] = json!([
            {"name": "http", "port": 80},
            {"name": "http", "port": 70000},
            {"port": 0, "protocol": "SCTP"},
            {"protocol": "UDP"}
        ]);
        let got: Vec<(String, String)> = causes(spec)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect();
        let p = "spec.domain.devices.interfaces[0].ports";
        assert_eq!(
            got,
            [
                (
                    format!("{p}[1].port"),
                    "Port field must be in range 0 < x < 65536.".to_string()
                ),
                (
                    format!("{p}[1].name"),
                    "Duplicate name of the port: http".to_string()
                ),
                (
                    format!("{p}[2].port"),
                    "Port field must be in range 0 < x < 65536.".to_string()
                ),
                (
                    format!("{p}[2].protocol"),
                    "Unknown protocol, only TCP or UDP allowed".to_string()
                ),
                (
                    format!("{p}[3].port"),
                    "Port field is mandatory.".to_string()
                ),
            ]
        );
    }

    #[test]
    fn absent_is_the_only_state_and_only_for_bridge_interfaces_off_the_default_network() {
        let mut spec = pod_spec(
            json!([{"name": "sec", "bridge": {}, "state": "absent"}]),
            json!([{"name": "sec", "multus": {"networkName": "br"}}]),
        );
        assert_eq!(causes(spec.clone()), vec![]);
        spec["domain"]["devices"]["interfaces"][0]["state"] = json!("absent");
        spec["domain"]["devices"]["interfaces"][1]["state"] = json!("down");
        let got: Vec<String> = causes(spec).into_iter().map(|c| c.message).collect();
        assert_eq!(
            got,
            [
                "\"default\" interface's state \"absent\" is supported only for bridge binding",
                "\"default\" interface's state \"absent\" is not supported on default networks",
                "logical sec interface state value is unsupported: down",
            ]
        );
    }

    #[test]
    fn masquerade_network_ranges_must_leave_room_for_gateway_and_guest() {
        let spec = pod_spec(json!([]), json!([]));
        let mut good = spec.clone();
        good["networks"][0]["pod"] =
            json!({"vmNetworkCIDR": "10.11.12.0/24", "vmIPv6NetworkCIDR": "fd10:0:2::2/120"});
        assert_eq!(causes(good), vec![]);
        let mut bad = spec;
        bad["networks"][0]["pod"] =
            json!({"vmNetworkCIDR": "10.11.12.0/31", "vmIPv6NetworkCIDR": "banana"});
        let fields: Vec<String> = causes(bad).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "spec.networks[0].pod.vmNetworkCIDR",
                "spec.networks[0].pod.vmIPv6NetworkCIDR"
            ]
        );
    }

    #[test]
    fn interface_without_network_is_rejected_with_upstream_message() {
        let c = causes(pod_spec(json!([{"name": "nic1", "bridge": {}}]), json!([])));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.domain.devices.interfaces[1].name");
        assert_eq!(
            c[0].message,
            "spec.domain.devices.interfaces[1].name 'nic1' not found."
        );
    }

    #[test]
    fn network_without_interface_is_rejected_with_upstream_message() {
        let c = causes(pod_spec(
            json!([]),
            json!([{"name": "extra", "multus": {"networkName": "br"}}]),
        ));
        assert_eq!(
            c,
            vec![Cause::required(
                "spec.networks[1].name",
                "spec.networks[1].name 'extra' not found."
            )]
        );
    }

    #[test]
    fn malformed_names_models_and_macs_are_rejected() {
        let c = causes(pod_spec(
            json!([{"name": "bad name", "bridge": {}, "model": "ne2000", "macAddress": "de:00:00"}]),
            json!([{"name": "bad name", "multus": {"networkName": "n"}}]),
        ));
        let msgs: Vec<&str> = c.iter().map(|c| c.message.as_str()).collect();
        assert!(msgs.contains(&"Network interface name can only contain alphabetical characters, numbers, dashes (-) or underscores (_)"));
        assert!(msgs.contains(&"interface spec.domain.devices.interfaces[1].name uses model ne2000 that is not supported."));
        assert!(msgs.contains(&"interface spec.domain.devices.interfaces[1].name has malformed MAC address (de:00:00)."));
    }

    #[test]
    fn duplicate_and_typeless_networks_are_rejected() {
        let c = causes(pod_spec(json!([]), json!([{"name": "default"}])));
        assert!(c
            .iter()
            .any(|c| c.reason == "FieldValueDuplicate" && c.field == "spec.networks[1].name"));
        assert!(c.iter().any(|c| c.message == "should have a network type"));
    }

    #[test]
    fn masquerade_needs_the_pod_network() {
        let c = causes(
            json!({"domain": {"devices": {"interfaces": [{"name": "a", "masquerade": {}}]}},
                              "networks": [{"name": "a", "multus": {"networkName": "n"}}]}),
        );
        assert_eq!(
            c[0].message,
            "Masquerade interface only implemented with pod network"
        );
    }

    #[test]
    fn probe_period_must_exceed_timeout() {
        let mut spec = pod_spec(json!([]), json!([]));
        spec["readinessProbe"] =
            json!({"httpGet": {"port": 80}, "periodSeconds": 5, "timeoutSeconds": 5});
        let c = causes(spec);
        assert_eq!(
            c,
            vec![Cause::invalid(
                "spec.readinessProbe.periodSeconds",
                "Invalid value: 5: must be greater than spec.readinessProbe.timeoutSeconds (5)"
            )]
        );
    }

    #[test]
    fn probe_needs_exactly_one_handler_and_http_needs_the_pod_network() {
        let c = causes(
            json!({"livenessProbe": {"httpGet": {"port": 1}, "exec": {"command": ["true"]}}}),
        );
        let msgs: Vec<&str> = c.iter().map(|c| c.message.as_str()).collect();
        assert!(msgs.contains(&"spec.livenessProbe must have exactly one probe type set"));
        assert!(msgs.contains(
            &"spec.livenessProbe.httpGet is only allowed if the Pod Network is attached"
        ));
        let c = causes(json!({"readinessProbe": {}}));
        assert!(c[0]
            .message
            .starts_with("either spec.readinessProbe.tcpSocket, spec.readinessProbe.exec"));
    }
}
