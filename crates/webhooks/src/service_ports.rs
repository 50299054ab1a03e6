//! Service NodePorts, as kube-apiserver's Service registry checks them: only on `NodePort`
//! and `LoadBalancer` Services, inside the node port range (`OXIVIRT_NODE_PORTS`, default
//! 30000-32767, the range the Service controller allocates from), once per protocol within a
//! Service, and not held by another Service. Unset NodePorts are allocated later by the
//! Service controller.

use serde_json::Value;

use crate::json::{array, index, str_at};
use crate::review::{Cause, Outcome, Request};
use crate::Cluster;

/// The node port range from `OXIVIRT_NODE_PORTS` (`LOW-HIGH`), else Kubernetes' default.
fn node_port_range() -> (u64, u64) {
    std::env::var("OXIVIRT_NODE_PORTS")
        .ok()
        .and_then(|v| {
            let (low, high) = v.trim().split_once('-')?;
            Some((low.parse().ok()?, high.parse().ok()?))
        })
        .filter(|(low, high)| low <= high)
        .unwrap_or((30000, 32767))
}

/// (nodePort, protocol) pairs of every Service but `ns/name`.
fn held_elsewhere(services: &[Value], ns: &str, name: &str) -> Vec<(u64, String)> {
    services
        .iter()
        .filter(|s| {
            str_at(s, &["metadata", "namespace"]) != Some(ns)
                || str_at(s, &["metadata", "name"]) != Some(name)
        })
        .flat_map(|s| array(s, &["spec", "ports"]))
        .filter_map(|p| Some((p["nodePort"].as_u64()?, protocol(p))))
        .collect()
}

fn protocol(port: &Value) -> String {
    port["protocol"].as_str().unwrap_or("TCP").to_string()
}

pub(crate) async fn admit(
    req: &Request<'_>,
    obj: &Value,
    cluster: &dyn Cluster,
    out: &mut Outcome,
) {
    let requested = array(obj, &["spec", "ports"])
        .iter()
        .any(|p| p["nodePort"].as_i64().is_some_and(|n| n != 0));
    if !requested {
        return;
    }
    let services = cluster.list("", "services").await;
    let name = str_at(obj, &["metadata", "name"]).unwrap_or_default();
    let taken = held_elsewhere(&services, req.namespace, name);
    validate(obj, node_port_range(), &taken, out);
}

fn validate(obj: &Value, (low, high): (u64, u64), taken: &[(u64, String)], out: &mut Outcome) {
    let kind = str_at(obj, &["spec", "type"]).unwrap_or("ClusterIP");
    let mut seen: Vec<(u64, String)> = Vec::new();
    for (i, port) in array(obj, &["spec", "ports"]).iter().enumerate() {
        let Some(value) = port["nodePort"].as_i64().filter(|n| *n != 0) else {
            continue;
        };
        let field = format!("{}.nodePort", index("spec.ports", i));
        if !matches!(kind, "NodePort" | "LoadBalancer") {
            out.causes.push(Cause::forbidden(
                &field,
                format!("Forbidden: may not be used when `type` is '{kind}'"),
            ));
            continue;
        }
        let in_range = u64::try_from(value)
            .ok()
            .filter(|n| (low..=high).contains(n));
        let Some(number) = in_range else {
            out.causes.push(Cause::invalid(
                &field,
                format!("Invalid value: {value}: provided port is not in the valid range. The range of valid ports is {low}-{high}"),
            ));
            continue;
        };
        let key = (number, protocol(port));
        if seen.contains(&key) {
            out.causes.push(Cause::duplicate(
                &field,
                format!("Duplicate value: {number}"),
            ));
        } else if taken.contains(&key) {
            out.causes.push(Cause::invalid(
                &field,
                format!("Invalid value: {number}: provided port is already allocated"),
            ));
        }
        seen.push(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(spec: Value, taken: &[(u64, &str)]) -> Vec<(String, String)> {
        let taken: Vec<(u64, String)> = taken.iter().map(|(n, p)| (*n, p.to_string())).collect();
        let mut out = Outcome::default();
        validate(&json!({"spec": spec}), (30000, 32767), &taken, &mut out);
        out.causes
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn node_ports_outside_the_range_or_held_elsewhere_are_refused_with_kubernetes_words() {
        let got = causes(
            json!({"type": "NodePort", "ports": [
                {"port": 80, "nodePort": 80},
                {"port": 81, "nodePort": 30080},
                {"port": 82, "nodePort": 30081},
                {"port": 83, "nodePort": 30081},
                {"port": 84, "nodePort": 30081, "protocol": "UDP"}]}),
            &[(30080, "TCP")],
        );
        assert_eq!(
            got,
            [
                ("spec.ports[0].nodePort".to_string(), "Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767".to_string()),
                ("spec.ports[1].nodePort".to_string(), "Invalid value: 30080: provided port is already allocated".to_string()),
                ("spec.ports[3].nodePort".to_string(), "Duplicate value: 30081".to_string()),
            ]
        );
    }

    #[test]
    fn a_cluster_ip_service_may_not_ask_for_a_node_port() {
        let got = causes(
            json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]}),
            &[],
        );
        assert_eq!(
            got,
            [(
                "spec.ports[0].nodePort".to_string(),
                "Forbidden: may not be used when `type` is 'ClusterIP'".to_string()
            )]
        );
    }

    #[test]
    fn a_service_keeps_its_own_node_ports_on_update() {
        let services = [
            json!({"metadata": {"namespace": "a", "name": "web"},
            "spec": {"ports": [{"nodePort": 30080}]}}),
            json!({"metadata": {"namespace": "b", "name": "web"},
            "spec": {"ports": [{"nodePort": 30081, "protocol": "UDP"}]}}),
        ];
        assert_eq!(
            held_elsewhere(&services, "a", "web"),
            [(30081, "UDP".to_string())]
        );
    }
}
