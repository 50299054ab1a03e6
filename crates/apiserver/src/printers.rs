//! Cell printers for built-in kinds, matching the columns `kubectl get` shows against
//! a Kubernetes apiserver.

use serde_json::{json, Value};

fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn or_none(v: &str) -> Value {
    if v.is_empty() {
        json!("<none>")
    } else {
        json!(v)
    }
}

fn count(obj: &Value, pointer: &str) -> usize {
    match obj.pointer(pointer) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

pub fn namespace_status(obj: &Value) -> Value {
    json!(s(obj, "/status/phase"))
}

pub fn data_count(obj: &Value) -> Value {
    json!(count(obj, "/data") + count(obj, "/binaryData"))
}

pub fn secret_type(obj: &Value) -> Value {
    json!(s(obj, "/type"))
}

pub fn secret_count(obj: &Value) -> Value {
    json!(count(obj, "/secrets"))
}

pub fn created_at(obj: &Value) -> Value {
    json!(s(obj, "/metadata/creationTimestamp"))
}

pub fn event_last_seen(obj: &Value) -> Value {
    let ts = [
        s(obj, "/lastTimestamp"),
        s(obj, "/eventTime"),
        s(obj, "/metadata/creationTimestamp"),
    ]
    .into_iter()
    .find(|t| !t.is_empty())
    .unwrap_or("");
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => json!(crate::table::human_duration(
            chrono::Utc::now().signed_duration_since(t.with_timezone(&chrono::Utc))
        )),
        Err(_) => json!("<unknown>"),
    }
}

pub fn event_type(obj: &Value) -> Value {
    json!(s(obj, "/type"))
}

pub fn event_reason(obj: &Value) -> Value {
    json!(s(obj, "/reason"))
}

pub fn event_object(obj: &Value) -> Value {
    let kind = s(obj, "/involvedObject/kind").to_lowercase();
    json!(format!("{kind}/{}", s(obj, "/involvedObject/name")))
}

pub fn event_message(obj: &Value) -> Value {
    json!(s(obj, "/message").trim())
}

pub fn node_status(obj: &Value) -> Value {
    let ready = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"] == "True");
    let mut status = match ready {
        Some(true) => "Ready".to_string(),
        _ => "NotReady".to_string(),
    };
    if obj.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    json!(status)
}

pub fn node_roles(obj: &Value) -> Value {
    let roles: Vec<String> = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    or_none(&roles.join(","))
}

pub fn node_version(obj: &Value) -> Value {
    json!(s(obj, "/status/nodeInfo/kubeletVersion"))
}

fn node_address(obj: &Value, kind: &str) -> Value {
    let addr = obj
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|a| a["type"] == kind))
        .and_then(|a| a["address"].as_str())
        .unwrap_or("");
    or_none(addr)
}

pub fn node_internal_ip(obj: &Value) -> Value {
    node_address(obj, "InternalIP")
}

pub fn node_external_ip(obj: &Value) -> Value {
    node_address(obj, "ExternalIP")
}

pub fn node_os_image(obj: &Value) -> Value {
    json!(s(obj, "/status/nodeInfo/osImage"))
}

pub fn node_kernel(obj: &Value) -> Value {
    json!(s(obj, "/status/nodeInfo/kernelVersion"))
}

pub fn node_runtime(obj: &Value) -> Value {
    json!(s(obj, "/status/nodeInfo/containerRuntimeVersion"))
}

pub fn pod_ready(obj: &Value) -> Value {
    let total = count(obj, "/spec/containers");
    let ready = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter(|c| c["ready"] == json!(true)).count())
        .unwrap_or(0);
    json!(format!("{ready}/{total}"))
}

pub fn pod_status(obj: &Value) -> Value {
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return json!("Terminating");
    }
    let waiting = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find_map(|c| c.pointer("/state/waiting/reason")?.as_str())
        });
    if let Some(reason) = waiting {
        return json!(reason);
    }
    let reason = s(obj, "/status/reason");
    if !reason.is_empty() {
        return json!(reason);
    }
    json!(match s(obj, "/status/phase") {
        "" => "Pending",
        phase => phase,
    })
}

pub fn pod_restarts(obj: &Value) -> Value {
    let restarts: i64 = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(|c| c["restartCount"].as_i64()).sum())
        .unwrap_or(0);
    json!(restarts)
}

pub fn pod_ip(obj: &Value) -> Value {
    or_none(s(obj, "/status/podIP"))
}

pub fn pod_node(obj: &Value) -> Value {
    or_none(s(obj, "/spec/nodeName"))
}

pub fn pod_nominated_node(obj: &Value) -> Value {
    or_none(s(obj, "/status/nominatedNodeName"))
}

pub fn pod_readiness_gates(obj: &Value) -> Value {
    let total = count(obj, "/spec/readinessGates");
    if total == 0 {
        return json!("<none>");
    }
    json!(format!("0/{total}"))
}

pub fn service_type(obj: &Value) -> Value {
    json!(match s(obj, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    })
}

pub fn service_cluster_ip(obj: &Value) -> Value {
    or_none(s(obj, "/spec/clusterIP"))
}

pub fn service_external_ip(obj: &Value) -> Value {
    let mut ips: Vec<String> = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|i| {
            i.iter()
                .filter_map(|i| i["ip"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(external) = obj.pointer("/spec/externalIPs").and_then(Value::as_array) {
        ips.extend(
            external
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string)),
        );
    }
    if ips.is_empty() && s(obj, "/spec/type") == "LoadBalancer" {
        return json!("<pending>");
    }
    or_none(&ips.join(","))
}

pub fn service_ports(obj: &Value) -> Value {
    let ports: Vec<String> = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(np) => format!("{}:{np}/{proto}", p["port"]),
                        None => format!("{}/{proto}", p["port"]),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    or_none(&ports.join(","))
}

pub fn service_selector(obj: &Value) -> Value {
    let sel: Vec<String> = obj
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    or_none(&sel.join(","))
}

pub fn endpoints_list(obj: &Value) -> Value {
    let mut out = Vec::new();
    for subset in obj
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports: Vec<i64> = subset["ports"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p["port"].as_i64()).collect())
            .unwrap_or_default();
        for addr in subset["addresses"].as_array().into_iter().flatten() {
            let ip = addr["ip"].as_str().unwrap_or("");
            if ports.is_empty() {
                out.push(ip.to_string());
            }
            out.extend(ports.iter().map(|p| format!("{ip}:{p}")));
        }
    }
    or_none(&out.join(","))
}

pub fn pvc_status(obj: &Value) -> Value {
    json!(s(obj, "/status/phase"))
}

pub fn pvc_volume(obj: &Value) -> Value {
    json!(s(obj, "/spec/volumeName"))
}

pub fn pvc_capacity(obj: &Value) -> Value {
    json!(s(obj, "/status/capacity/storage"))
}

fn access_modes(modes: Option<&Value>) -> Value {
    let short: Vec<&str> = modes
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect()
        })
        .unwrap_or_default();
    json!(short.join(","))
}

pub fn pvc_access_modes(obj: &Value) -> Value {
    access_modes(obj.pointer("/status/accessModes"))
}

pub fn storage_class_name(obj: &Value) -> Value {
    or_none(s(obj, "/spec/storageClassName"))
}

pub fn volume_attributes_class(obj: &Value) -> Value {
    json!(if s(obj, "/spec/volumeAttributesClassName").is_empty() {
        "<unset>"
    } else {
        s(obj, "/spec/volumeAttributesClassName")
    })
}

pub fn volume_mode(obj: &Value) -> Value {
    json!(s(obj, "/spec/volumeMode"))
}

pub fn pv_capacity(obj: &Value) -> Value {
    json!(s(obj, "/spec/capacity/storage"))
}

pub fn pv_access_modes(obj: &Value) -> Value {
    access_modes(obj.pointer("/spec/accessModes"))
}

pub fn pv_reclaim(obj: &Value) -> Value {
    json!(s(obj, "/spec/persistentVolumeReclaimPolicy"))
}

pub fn pv_claim(obj: &Value) -> Value {
    let name = s(obj, "/spec/claimRef/name");
    if name.is_empty() {
        return json!("");
    }
    json!(format!("{}/{name}", s(obj, "/spec/claimRef/namespace")))
}

pub fn pv_reason(obj: &Value) -> Value {
    json!(s(obj, "/status/reason"))
}

pub fn slice_address_type(obj: &Value) -> Value {
    json!(s(obj, "/addressType"))
}

pub fn slice_ports(obj: &Value) -> Value {
    let ports: Vec<String> = obj
        .get("ports")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(|p| p["port"].as_i64().map(|p| p.to_string()))
                .collect()
        })
        .unwrap_or_default();
    json!(if ports.is_empty() {
        "<unset>".to_string()
    } else {
        ports.join(",")
    })
}

pub fn slice_endpoints(obj: &Value) -> Value {
    let addrs: Vec<String> = obj
        .get("endpoints")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    json!(if addrs.is_empty() {
        "<unset>".to_string()
    } else {
        addrs.join(",")
    })
}

pub fn sc_name(obj: &Value) -> Value {
    let name = s(obj, "/metadata/name");
    let default = obj
        .pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
        .and_then(Value::as_str)
        == Some("true");
    json!(if default {
        format!("{name} (default)")
    } else {
        name.to_string()
    })
}

pub fn sc_provisioner(obj: &Value) -> Value {
    json!(s(obj, "/provisioner"))
}

pub fn sc_reclaim(obj: &Value) -> Value {
    json!(match s(obj, "/reclaimPolicy") {
        "" => "Delete",
        p => p,
    })
}

pub fn sc_binding_mode(obj: &Value) -> Value {
    json!(match s(obj, "/volumeBindingMode") {
        "" => "Immediate",
        m => m,
    })
}

pub fn sc_expansion(obj: &Value) -> Value {
    json!(obj
        .get("allowVolumeExpansion")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string())
}

pub fn revision_controller(obj: &Value) -> Value {
    let owner = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|o| o.iter().find(|o| o["controller"] == json!(true)));
    match owner {
        Some(o) => {
            let kind = o["kind"].as_str().unwrap_or("").to_lowercase();
            let group = o["apiVersion"]
                .as_str()
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap_or("");
            json!(format!(
                "{kind}.{group}/{}",
                o["name"].as_str().unwrap_or("")
            ))
        }
        None => json!("<none>"),
    }
}

pub fn revision_number(obj: &Value) -> Value {
    obj.get("revision").cloned().unwrap_or(json!(0))
}

pub fn lease_holder(obj: &Value) -> Value {
    json!(s(obj, "/spec/holderIdentity"))
}

pub fn binding_role(obj: &Value) -> Value {
    json!(format!(
        "{}/{}",
        s(obj, "/roleRef/kind"),
        s(obj, "/roleRef/name")
    ))
}

fn subjects(obj: &Value, kind: &str) -> Value {
    let names: Vec<String> = obj
        .get("subjects")
        .and_then(Value::as_array)
        .map(|subs| {
            subs.iter()
                .filter(|s| s["kind"] == kind)
                .map(|s| match (kind, s["namespace"].as_str()) {
                    ("ServiceAccount", Some(ns)) => {
                        format!("{ns}/{}", s["name"].as_str().unwrap_or(""))
                    }
                    _ => s["name"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    json!(names.join(", "))
}

pub fn binding_users(obj: &Value) -> Value {
    subjects(obj, "User")
}

pub fn binding_groups(obj: &Value) -> Value {
    subjects(obj, "Group")
}

pub fn binding_service_accounts(obj: &Value) -> Value {
    subjects(obj, "ServiceAccount")
}

fn int_or_string(obj: &Value, pointer: &str) -> Value {
    match obj.pointer(pointer) {
        Some(Value::Number(n)) => json!(n.to_string()),
        Some(Value::String(s)) => json!(s),
        _ => json!("N/A"),
    }
}

pub fn pdb_min_available(obj: &Value) -> Value {
    int_or_string(obj, "/spec/minAvailable")
}

pub fn pdb_max_unavailable(obj: &Value) -> Value {
    int_or_string(obj, "/spec/maxUnavailable")
}

pub fn pdb_allowed(obj: &Value) -> Value {
    obj.pointer("/status/disruptionsAllowed")
        .cloned()
        .unwrap_or(json!(0))
}

pub fn job_status(obj: &Value) -> Value {
    let conditions = obj.pointer("/status/conditions").and_then(Value::as_array);
    let has = |t: &str| {
        conditions.is_some_and(|c| c.iter().any(|c| c["type"] == t && c["status"] == "True"))
    };
    json!(if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    })
}

pub fn job_completions(obj: &Value) -> Value {
    let succeeded = obj
        .pointer("/status/succeeded")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    match obj.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => json!(format!("{succeeded}/{c}")),
        None => json!(format!("{succeeded}/1")),
    }
}

pub fn priority_value(obj: &Value) -> Value {
    obj.get("value").cloned().unwrap_or(json!(0))
}

pub fn priority_global_default(obj: &Value) -> Value {
    json!(obj
        .get("globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string())
}

pub fn priority_preemption(obj: &Value) -> Value {
    json!(obj
        .get("preemptionPolicy")
        .and_then(Value::as_str)
        .unwrap_or("PreemptLowerPriority"))
}
