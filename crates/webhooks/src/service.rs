//! Service IP families (Kubernetes built-in, as kube-apiserver's Service registry defaults
//! and checks them; manual §8.3.2). The families a cluster offers come from its Service
//! ranges: IPv4 always (`OXIVIRT_SERVICE_CIDR`), IPv6 too when `OXIVIRT_SERVICE_CIDR_V6` or
//! `OXIVIRT_POD_CIDR_V6` is set (the network crate's `NetworkConfig` gives the IPv6 pod
//! range a default IPv6 Service range). Read from the environment at admission, like
//! KubeMacPool's range: the API server runs in the process that has the settings.
//!
//! Defaults on create, as kube-apiserver: two `ipFamilies` or two `clusterIPs` without a
//! policy mean `RequireDualStack`; a headless Service without selector defaults to
//! `RequireDualStack` on a dual-stack cluster; otherwise `SingleStack`. `ipFamilies` is
//! then the ClusterIP's family or the primary (IPv4), plus the other family for a
//! dual-stack policy on a dual-stack cluster. On update, omitted fields keep their stored
//! values, and `SingleStack` drops the secondary family (and its ClusterIP). The
//! ClusterIPs themselves are allocated by the Service controller.

use serde_json::{json, Value};

use crate::json::{array, index, str_at};
use crate::review::{Cause, Operation, Outcome, Request};

const POLICIES: [&str; 3] = ["SingleStack", "PreferDualStack", "RequireDualStack"];

/// The families this cluster's Service ranges offer, primary first.
fn configured_families() -> Vec<&'static str> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    if set("OXIVIRT_SERVICE_CIDR_V6") || set("OXIVIRT_POD_CIDR_V6") {
        vec!["IPv4", "IPv6"]
    } else {
        vec!["IPv4"]
    }
}

/// The family of an address (`None` and unparsable addresses have none).
fn family_of(ip: &str) -> Option<&'static str> {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => Some("IPv4"),
        Ok(std::net::IpAddr::V6(_)) => Some("IPv6"),
        Err(_) => None,
    }
}

fn strings(obj: &Value, key: &str) -> Vec<String> {
    array(obj, &["spec", key])
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

pub(crate) fn admit(req: &Request<'_>, obj: &mut Value, out: &mut Outcome) {
    admit_with(req, obj, &configured_families(), out);
}

fn admit_with(req: &Request<'_>, obj: &mut Value, configured: &[&str], out: &mut Outcome) {
    if str_at(obj, &["spec", "type"]) == Some("ExternalName") {
        return; // no ClusterIPs, no families
    }
    default(req, obj, configured);
    validate(obj, configured, out);
}

fn default(req: &Request<'_>, obj: &mut Value, configured: &[&str]) {
    let dual = configured.len() > 1;
    let old = req.old.filter(|_| req.operation == Operation::Update);
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(old) = old {
        // Omitted on update (an apply or replace without them): the stored values stay.
        for key in ["ipFamilyPolicy", "ipFamilies", "clusterIPs"] {
            let missing = spec
                .get(key)
                .is_none_or(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty));
            if missing {
                if let Some(value) = old["spec"].get(key).filter(|v| !v.is_null()) {
                    spec.insert(key.into(), value.clone());
                }
            }
        }
    }
    let families: Vec<String> = spec
        .get("ipFamilies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let ips: Vec<String> = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let selectorless = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_none_or(|s| s.is_empty());
    if spec.get("ipFamilyPolicy").is_none_or(Value::is_null) {
        let policy = if families.len() == 2 || ips.len() == 2 || (headless && selectorless && dual)
        {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        spec.insert("ipFamilyPolicy".into(), json!(policy));
    }
    let policy = spec
        .get("ipFamilyPolicy")
        .and_then(Value::as_str)
        .unwrap_or("SingleStack")
        .to_string();
    if !POLICIES.contains(&policy.as_str()) {
        return; // refused by validation
    }
    let mut families = families;
    if families.is_empty() {
        let from_ips: Vec<String> = ips
            .iter()
            .chain(
                spec.get("clusterIP")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .iter(),
            )
            .filter_map(|ip| family_of(ip).map(str::to_string))
            .collect();
        families = match from_ips.first() {
            Some(first) => vec![first.clone()],
            None => vec![configured[0].to_string()],
        };
        if let Some(second) = from_ips.iter().find(|f| **f != families[0]) {
            families.push(second.clone());
        }
    }
    if policy != "SingleStack" && dual && families.len() == 1 {
        let other = if families[0] == "IPv4" {
            "IPv6"
        } else {
            "IPv4"
        };
        families.push(other.to_string());
    }
    if let Some(old) = old.filter(|_| policy == "SingleStack") {
        // A downgrade: the secondary family and its ClusterIP are released.
        if families.len() == 2 && strings(old, "ipFamilies") == families {
            families.truncate(1);
        }
        if families.len() == 1 && ips.len() == 2 {
            spec.insert("clusterIPs".into(), json!([ips[0]]));
        }
    }
    spec.insert("ipFamilies".into(), json!(families));
}

fn validate(obj: &Value, configured: &[&str], out: &mut Outcome) {
    let policy = str_at(obj, &["spec", "ipFamilyPolicy"]).unwrap_or("SingleStack");
    if !POLICIES.contains(&policy) {
        out.causes.push(Cause::not_supported(
            "spec.ipFamilyPolicy",
            format!("Unsupported value: {policy:?}: supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\""),
        ));
        return;
    }
    if policy == "RequireDualStack" && configured.len() < 2 {
        out.causes.push(Cause::invalid(
            "spec.ipFamilyPolicy",
            "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services",
        ));
    }
    let families = strings(obj, "ipFamilies");
    if families.len() > 2 {
        out.causes.push(too_many("spec.ipFamilies", families.len()));
        return;
    }
    for (i, family) in families.iter().enumerate() {
        let field = index("spec.ipFamilies", i);
        if family != "IPv4" && family != "IPv6" {
            out.causes.push(Cause::not_supported(
                field,
                format!("Unsupported value: {family:?}: supported values: \"IPv4\", \"IPv6\""),
            ));
        } else if families[..i].contains(family) {
            out.causes.push(Cause::duplicate(
                field,
                format!("Duplicate value: {family:?}"),
            ));
        } else if !configured.contains(&family.as_str()) {
            out.causes.push(Cause::invalid(
                field,
                format!("Invalid value: {family:?}: not configured on this cluster"),
            ));
        }
    }
    if policy == "SingleStack" && families.len() > 1 {
        out.causes.push(Cause::invalid(
            "spec.ipFamilyPolicy",
            "Invalid value: \"SingleStack\": must be RequireDualStack or PreferDualStack when multiple 'ipFamilies' are specified",
        ));
    }
    let ips = strings(obj, "clusterIPs");
    if ips.first().map(String::as_str) == Some("None") {
        return;
    }
    for (i, ip) in ips.iter().enumerate() {
        let (Some(got), Some(want)) = (family_of(ip), families.get(i)) else {
            continue;
        };
        if got != want {
            out.causes.push(Cause::invalid(
                index("spec.clusterIPs", i),
                format!("Invalid value: {ip:?}: expected an {want} value as indicated by `ipFamilies[{i}]`"),
            ));
        }
    }
}

/// A `FieldValueTooMany` cause, as Kubernetes words it.
fn too_many(field: &str, count: usize) -> Cause {
    Cause {
        field: field.into(),
        reason: "FieldValueTooMany".into(),
        message: format!("Too many: {count}: must have at most 2 items"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(old: Option<&'a Value>) -> Request<'a> {
        Request {
            group: "",
            kind: "Service",
            operation: if old.is_some() {
                Operation::Update
            } else {
                Operation::Create
            },
            namespace: "default",
            old,
            user: "someone",
        }
    }

    /// Admits a Service with `spec` on a cluster offering `configured`: (spec after
    /// defaulting, causes as (field, message)).
    fn admitted(spec: Value, configured: &[&str]) -> (Value, Vec<(String, String)>) {
        let mut obj = json!({"spec": spec});
        let mut out = Outcome::default();
        admit_with(&request(None), &mut obj, configured, &mut out);
        let causes = out
            .causes
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect();
        (obj["spec"].clone(), causes)
    }

    fn causes(spec: Value) -> Vec<(String, String)> {
        admitted(spec, &["IPv4"]).1
    }

    #[test]
    fn a_single_stack_cluster_refuses_required_dual_stack_and_ipv6() {
        assert_eq!(
            causes(json!({"ipFamilyPolicy": "RequireDualStack"})),
            [(
                "spec.ipFamilyPolicy".to_string(),
                "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services".to_string()
            )]
        );
        assert_eq!(
            causes(json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]})),
            [(
                "spec.ipFamilies[1]".to_string(),
                "Invalid value: \"IPv6\": not configured on this cluster".to_string()
            )]
        );
        assert!(causes(json!({"ipFamilyPolicy": "PreferDualStack"})).is_empty());
        assert!(
            causes(json!({"ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})).is_empty()
        );
    }

    #[test]
    fn a_single_stack_cluster_defaults_one_ipv4_family() {
        let (spec, causes) = admitted(json!({"ipFamilyPolicy": "PreferDualStack"}), &["IPv4"]);
        assert!(causes.is_empty());
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        let (spec, _) = admitted(json!({}), &["IPv4"]);
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    }

    #[test]
    fn a_dual_stack_cluster_defaults_families_as_kubernetes() {
        let dual = ["IPv4", "IPv6"];
        let (spec, causes) = admitted(json!({"ipFamilyPolicy": "PreferDualStack"}), &dual);
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(spec["ipFamilies"], json!(["IPv4", "IPv6"]));
        let (spec, _) = admitted(
            json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6"]}),
            &dual,
        );
        assert_eq!(spec["ipFamilies"], json!(["IPv6", "IPv4"]));
        let (spec, _) = admitted(json!({"ipFamilies": ["IPv6", "IPv4"]}), &dual);
        assert_eq!(spec["ipFamilyPolicy"], "RequireDualStack");
        let (spec, _) = admitted(json!({"clusterIP": "fd00:10:96::7"}), &dual);
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["ipFamilies"], json!(["IPv6"]));
        let (spec, _) = admitted(json!({"clusterIP": "None"}), &dual);
        assert_eq!(spec["ipFamilyPolicy"], "RequireDualStack");
        let (spec, _) = admitted(json!({"clusterIP": "None", "selector": {"a": "b"}}), &dual);
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    }

    #[test]
    fn invalid_family_lists_name_the_field() {
        let dual = ["IPv4", "IPv6"];
        let (_, c) = admitted(
            json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]}),
            &dual,
        );
        assert_eq!(c[0].0, "spec.ipFamilyPolicy");
        assert!(
            c[0].1
                .contains("must be RequireDualStack or PreferDualStack"),
            "{c:?}"
        );
        let (_, c) = admitted(json!({"ipFamilies": ["IPv4", "IPv4"]}), &dual);
        assert_eq!(
            c[0],
            (
                "spec.ipFamilies[1]".into(),
                "Duplicate value: \"IPv4\"".into()
            )
        );
        let (_, c) = admitted(json!({"ipFamilies": ["IPv5"]}), &dual);
        assert_eq!(c[0].0, "spec.ipFamilies[0]");
        let (_, c) = admitted(json!({"ipFamilyPolicy": "Both"}), &dual);
        assert_eq!(c[0].0, "spec.ipFamilyPolicy");
        let (_, c) = admitted(
            json!({"ipFamilies": ["IPv4"], "clusterIPs": ["fd00::1"], "ipFamilyPolicy": "SingleStack"}),
            &dual,
        );
        assert_eq!(c[0].0, "spec.clusterIPs[0]", "{c:?}");
    }

    #[test]
    fn updates_keep_stored_families_and_a_downgrade_releases_the_secondary() {
        let dual = ["IPv4", "IPv6"];
        let old = json!({"spec": {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"],
                                  "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5", "fd00:10:96::5"]}});
        let mut new = json!({"spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 81}]}});
        let mut out = Outcome::default();
        admit_with(&request(Some(&old)), &mut new, &dual, &mut out);
        assert!(out.causes.is_empty());
        assert_eq!(new["spec"]["clusterIPs"], old["spec"]["clusterIPs"]);
        assert_eq!(new["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        let mut down = old.clone();
        down["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        admit_with(&request(Some(&old)), &mut down, &dual, &mut out);
        assert!(out.causes.is_empty(), "{:?}", out.causes);
        assert_eq!(down["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(down["spec"]["clusterIPs"], json!(["10.96.0.5"]));
    }
}
