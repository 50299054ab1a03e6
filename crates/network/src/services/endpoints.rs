//! Endpoints and EndpointSlices of a Service with a selector, from the launcher Pods it
//! selects: ready when the Pod is Ready and its VMI's `Ready` condition is True (so a VMI
//! whose readiness probe fails drops out), with `hostname` for the headless-Service DNS
//! records of §8.4 (`spec.hostname`, else the VM's name, when `spec.subdomain` is the
//! Service's name). Pure: built from JSON, compared and written by the controller.
//!
//! Dual stack as Kubernetes does it: the core/v1 Endpoints list the addresses of the
//! Service's primary family (`spec.ipFamilies[0]`) only, and there is one EndpointSlice per
//! family of the Service (`addressType` IPv4 or IPv6), each with the Pods' addresses of
//! that family (`status.podIPs`).

use serde_json::{json, Value};

/// The label EndpointSlices carry to name their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The manager label of slices this controller owns (the Kubernetes controller's value).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Whether `labels` satisfy a Service's equality-based `selector`.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_object().filter(|s| !s.is_empty()) else {
        return false;
    };
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn condition_true(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// One backend of the Service.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// The pod IP.
    pub ip: String,
    /// The Pod's IPv6 address (dual stack).
    pub ip6: Option<String>,
    /// Ready to serve.
    pub ready: bool,
    /// The Pod is terminating.
    pub terminating: bool,
    /// The node it runs on.
    pub node: String,
    /// The DNS host name under a headless Service.
    pub hostname: Option<String>,
    /// The Pod (namespace, name, uid).
    pub pod: (String, String, String),
}

/// The backends of `svc` among `pods`; `vmi_of` finds the VMI a launcher Pod runs.
pub fn backends(
    svc: &Value,
    pods: &[Value],
    vmi_of: &dyn Fn(&Value) -> Option<Value>,
) -> Vec<Backend> {
    let svc_name = svc["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = svc["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut out: Vec<Backend> = pods
        .iter()
        .filter(|p| p["metadata"]["namespace"] == namespace)
        .filter(|p| selects(&svc["spec"]["selector"], &p["metadata"]["labels"]))
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .filter_map(|p| {
            let ip = p["status"]["podIP"].as_str().filter(|s| !s.is_empty())?;
            let vmi = vmi_of(p);
            let vmi_ready = vmi.as_ref().is_none_or(|v| condition_true(v, "Ready"));
            let terminating = p["metadata"]["deletionTimestamp"].is_string();
            let hostname = vmi.as_ref().and_then(|v| {
                (v["spec"]["subdomain"] == svc_name).then(|| {
                    v["spec"]["hostname"]
                        .as_str()
                        .or_else(|| v["metadata"]["name"].as_str())
                        .unwrap_or_default()
                        .to_string()
                })
            });
            let ip6 = p["status"]["podIPs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["ip"].as_str())
                .find(|a| a.contains(':'))
                .map(str::to_string);
            Some(Backend {
                ip: ip.to_string(),
                ip6,
                ready: condition_true(p, "Ready") && vmi_ready && !terminating,
                terminating,
                node: p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                hostname,
                pod: (
                    namespace.to_string(),
                    p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    p["metadata"]["uid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
            })
        })
        .collect();
    out.sort_by(|a, b| a.ip.cmp(&b.ip));
    out
}

/// The Service's ports as endpoint ports: numeric `targetPort` (or `port`); named target
/// ports resolve through the Pods' container ports and are left out when none matches.
fn endpoint_ports(svc: &Value, pods: &[Value]) -> Vec<Value> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = match &p["targetPort"] {
                Value::Number(n) => n.as_u64(),
                Value::String(name) => pods.iter().find_map(|pod| {
                    pod["spec"]["containers"].as_array()?.iter().find_map(|c| {
                        c["ports"].as_array()?.iter().find_map(|cp| {
                            (cp["name"] == name.as_str()).then(|| cp["containerPort"].as_u64())?
                        })
                    })
                }),
                _ => p["port"].as_u64(),
            }?;
            let mut out =
                json!({"port": port, "protocol": p["protocol"].as_str().unwrap_or("TCP")});
            if let Some(name) = p["name"].as_str() {
                out["name"] = json!(name);
            }
            Some(out)
        })
        .collect()
}

fn owner(svc: &Value) -> Value {
    json!([{
        "apiVersion": "v1", "kind": "Service",
        "name": svc["metadata"]["name"], "uid": svc["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    }])
}

fn target_ref(b: &Backend) -> Value {
    json!({"kind": "Pod", "namespace": b.pod.0, "name": b.pod.1, "uid": b.pod.2})
}

/// The Service's IP families, primary first (IPv4 when not set yet).
pub fn families(svc: &Value) -> Vec<&str> {
    let list: Vec<&str> = svc["spec"]["ipFamilies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|f| matches!(*f, "IPv4" | "IPv6"))
        .collect();
    if list.is_empty() {
        vec!["IPv4"]
    } else {
        list
    }
}

impl Backend {
    /// The backend's address of `family` (`IPv4`/`IPv6`), if the Pod has one.
    pub fn address(&self, family: &str) -> Option<&str> {
        if family == "IPv6" {
            self.ip6.as_deref()
        } else {
            Some(&self.ip)
        }
    }
}

/// The core/v1 Endpoints of `svc` (addresses of its primary family).
pub fn endpoints(svc: &Value, pods: &[Value], backends: &[Backend]) -> Value {
    let primary = families(svc)[0];
    let address = |b: &Backend| {
        let mut a =
            json!({"ip": b.address(primary)?, "nodeName": b.node, "targetRef": target_ref(b)});
        if let Some(h) = &b.hostname {
            a["hostname"] = json!(h);
        }
        Some(a)
    };
    let ready: Vec<Value> = backends
        .iter()
        .filter(|b| b.ready)
        .filter_map(address)
        .collect();
    let not_ready: Vec<Value> = backends
        .iter()
        .filter(|b| !b.ready)
        .filter_map(address)
        .collect();
    let ports = endpoint_ports(svc, pods);
    let mut subset = json!({"ports": ports});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    let subsets = if backends.is_empty() {
        json!([])
    } else {
        json!([subset])
    };
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {
            "name": svc["metadata"]["name"], "namespace": svc["metadata"]["namespace"],
            "labels": svc["metadata"]["labels"].as_object().cloned().unwrap_or_default(),
            "ownerReferences": owner(svc),
        },
        "subsets": subsets,
    })
}

/// The name of the EndpointSlice of `svc` for `family` (the IPv4 one keeps the name it had
/// before dual stack, so upgraded clusters update rather than duplicate it).
pub fn slice_name(svc_name: &str, family: &str) -> String {
    if family == "IPv6" {
        format!("{svc_name}-oxi6")
    } else {
        format!("{svc_name}-oxi")
    }
}

/// The discovery/v1 EndpointSlices of `svc`, one per IP family of the Service (oxivirt's
/// Services stay small enough for one slice per family).
pub fn endpoint_slices(svc: &Value, pods: &[Value], backends: &[Backend]) -> Vec<Value> {
    let name = svc["metadata"]["name"].as_str().unwrap_or_default();
    families(svc)
        .into_iter()
        .map(|family| {
            let endpoints: Vec<Value> = backends
                .iter()
                .filter_map(|b| {
                    let mut e = json!({
                        "addresses": [b.address(family)?],
                        "conditions": {"ready": b.ready, "serving": b.ready || b.terminating, "terminating": b.terminating},
                        "nodeName": b.node, "targetRef": target_ref(b),
                    });
                    if let Some(h) = &b.hostname {
                        e["hostname"] = json!(h);
                    }
                    Some(e)
                })
                .collect();
            json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {
                    "name": slice_name(name, family), "namespace": svc["metadata"]["namespace"],
                    "labels": {SERVICE_NAME_LABEL: name, "endpointslice.kubernetes.io/managed-by": MANAGED_BY},
                    "ownerReferences": owner(svc),
                },
                "addressType": family,
                "endpoints": endpoints,
                "ports": endpoint_ports(svc, pods),
            })
        })
        .collect()
}

/// The ready endpoints of the `family` slice among `slices` (those of one Service) in the
/// shape of core/v1 Endpoints, so the proxy and DNS read both the same way (Endpoints
/// carry only the primary family).
pub fn slices_as_endpoints(slices: &[Value], family: &str) -> Option<Value> {
    let slice = slices.iter().find(|s| s["addressType"] == family)?;
    let addresses: Vec<Value> = slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["conditions"]["ready"] != false)
        .filter_map(|e| {
            let mut a = json!({"ip": e["addresses"].get(0)?});
            if let Some(h) = e["hostname"].as_str() {
                a["hostname"] = json!(h);
            }
            Some(a)
        })
        .collect();
    Some(json!({"subsets": [{"addresses": addresses, "ports": slice["ports"]}]}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, labels: Value) -> Value {
        json!({"metadata": {"namespace": "ns", "name": name, "uid": format!("u-{name}"), "labels": labels,
                            "annotations": {"kubevirt.io/domain": name}},
               "spec": {"nodeName": "n1"},
               "status": {"phase": "Running", "podIP": ip,
                          "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn selected_ready_pods_are_addresses_and_unready_ones_not_ready_addresses() {
        let svc = json!({"metadata": {"namespace": "ns", "name": "web", "uid": "s1"},
                         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}});
        let pods = vec![
            pod("a", "10.244.0.3", true, json!({"app": "web"})),
            pod("b", "10.244.0.2", false, json!({"app": "web"})),
            pod("c", "10.244.0.4", true, json!({"app": "other"})),
        ];
        let found = backends(&svc, &pods, &|_| None);
        assert_eq!(found.len(), 2);
        let ep = endpoints(&svc, &pods, &found);
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.244.0.3");
        assert_eq!(ep["subsets"][0]["notReadyAddresses"][0]["ip"], "10.244.0.2");
        assert_eq!(
            ep["subsets"][0]["ports"][0],
            json!({"port": 8080, "protocol": "TCP", "name": "http"})
        );
        let slices = endpoint_slices(&svc, &pods, &found);
        assert_eq!(slices.len(), 1);
        let slice = &slices[0];
        assert_eq!(slice["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(slice["endpoints"][1]["conditions"]["ready"], true);
    }

    #[test]
    fn a_dual_stack_service_gets_a_slice_per_family_and_endpoints_of_the_primary_one() {
        let svc = json!({"metadata": {"namespace": "ns", "name": "web", "uid": "s1"},
                         "spec": {"selector": {"app": "web"}, "ipFamilies": ["IPv6", "IPv4"],
                                  "ports": [{"port": 80, "protocol": "TCP"}]}});
        let mut a = pod("a", "10.244.0.3", true, json!({"app": "web"}));
        a["status"]["podIPs"] = json!([{"ip": "10.244.0.3"}, {"ip": "fd00:10:244::3"}]);
        let b = pod("b", "10.244.0.4", true, json!({"app": "web"}));
        let pods = vec![a, b];
        let found = backends(&svc, &pods, &|_| None);
        let ep = endpoints(&svc, &pods, &found);
        assert_eq!(
            ep["subsets"][0]["addresses"],
            json!([{"ip": "fd00:10:244::3", "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "u-a"}}])
        );
        let slices = endpoint_slices(&svc, &pods, &found);
        assert_eq!(slices[0]["addressType"], "IPv6");
        assert_eq!(slices[0]["metadata"]["name"], "web-oxi6");
        assert_eq!(slices[0]["endpoints"].as_array().unwrap().len(), 1);
        assert_eq!(slices[1]["addressType"], "IPv4");
        assert_eq!(slices[1]["endpoints"].as_array().unwrap().len(), 2);
        let as_ep = slices_as_endpoints(&slices, "IPv6").unwrap();
        assert_eq!(as_ep["subsets"][0]["addresses"][0]["ip"], "fd00:10:244::3");
        assert_eq!(as_ep["subsets"][0]["ports"][0]["port"], 80);
    }

    #[test]
    fn a_vmi_that_is_not_ready_removes_its_pod_and_subdomains_name_hosts() {
        let svc = json!({"metadata": {"namespace": "ns", "name": "sub"},
                         "spec": {"selector": {"expose": "me"}, "clusterIP": "None", "ports": [{"port": 1234}]}});
        let pods = vec![pod("vm1", "10.244.0.9", true, json!({"expose": "me"}))];
        let unready = json!({"metadata": {"name": "vm1"}, "spec": {"subdomain": "sub", "hostname": "myvm"},
                             "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        let found = backends(&svc, &pods, &|_| Some(unready.clone()));
        assert!(!found[0].ready);
        assert_eq!(found[0].hostname.as_deref(), Some("myvm"));
        let mut ready = unready.clone();
        ready["status"]["conditions"][0]["status"] = json!("True");
        ready["spec"]["hostname"] = Value::Null;
        let found = backends(&svc, &pods, &|_| Some(ready.clone()));
        assert!(found[0].ready);
        assert_eq!(found[0].hostname.as_deref(), Some("vm1"));
    }

    #[test]
    fn an_empty_selector_selects_nothing() {
        assert!(!selects(&json!({}), &json!({"a": "b"})));
        assert!(!selects(&Value::Null, &json!({"a": "b"})));
        assert!(selects(&json!({"a": "b"}), &json!({"a": "b", "c": "d"})));
    }
}
