//! Kubernetes matching rules over JSON: node selector terms (node affinity), label
//! selectors (pod affinity), and taints against tolerations.

use serde_json::Value;

fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["labels"].get(key).and_then(Value::as_str)
}

fn values(req: &Value) -> Vec<&str> {
    req["values"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// One `NodeSelectorRequirement` (In, NotIn, Exists, DoesNotExist, Gt, Lt) against a value.
fn requirement_matches(req: &Value, value: Option<&str>) -> bool {
    let wanted = values(req);
    let number = |s: &str| s.trim().parse::<i64>().ok();
    match req["operator"].as_str().unwrap_or("") {
        "In" => value.is_some_and(|v| wanted.contains(&v)),
        "NotIn" => value.is_none_or(|v| !wanted.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                value.and_then(number),
                wanted.first().and_then(|w| number(w)),
            ) else {
                return false;
            };
            if req["operator"] == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// A `NodeSelectorTerm`: all `matchExpressions` (labels) and `matchFields`
/// (`metadata.name`) hold. An empty term matches nothing, as in Kubernetes.
pub(crate) fn node_term_matches(term: &Value, node: &Value) -> bool {
    let exprs = term["matchExpressions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let fields = term["matchFields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, r["key"].as_str().and_then(|k| label(node, k))))
        && fields.iter().all(|r| {
            let value = match r["key"].as_str() {
                Some("metadata.name") => node["metadata"]["name"].as_str(),
                _ => None,
            };
            requirement_matches(r, value)
        })
}

/// `spec.nodeSelector` and required node affinity both hold for `node`.
pub(crate) fn node_matches_pod(pod: &Value, node: &Value) -> bool {
    let selector_ok = pod["spec"]["nodeSelector"]
        .as_object()
        .is_none_or(|sel| sel.iter().all(|(k, v)| label(node, k) == v.as_str()));
    let required =
        &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let affinity_ok = match required["nodeSelectorTerms"].as_array() {
        None => true,
        Some(terms) => terms.iter().any(|t| node_term_matches(t, node)),
    };
    selector_ok && affinity_ok
}

/// A `metav1.LabelSelector`: `null` matches nothing, `{}` everything.
pub(crate) fn label_selector_matches(selector: &Value, obj: &Value) -> bool {
    if !selector.is_object() {
        return false;
    }
    let labels_ok = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| label(obj, k) == v.as_str()));
    let exprs_ok = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|r| {
            let value = r["key"].as_str().and_then(|k| label(obj, k));
            match r["operator"].as_str() {
                Some("In" | "NotIn" | "Exists" | "DoesNotExist") => requirement_matches(r, value),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

/// Whether `tolerations` tolerate `taint` (key, operator Equal/Exists, value, effect).
pub(crate) fn tolerated(tolerations: &[Value], taint: &Value) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t["effect"]
            .as_str()
            .is_none_or(|e| e.is_empty() || taint["effect"] == e);
        let key = t["key"].as_str().unwrap_or("");
        let exists = t["operator"] == "Exists";
        let key_ok = (key.is_empty() && exists) || taint["key"] == key;
        let value_ok =
            exists || t["value"].as_str().unwrap_or("") == taint["value"].as_str().unwrap_or("");
        effect_ok && key_ok && value_ok
    })
}

/// A taint as the scheduler's messages print it: `{key: value}`.
pub(crate) fn describe_taint(taint: &Value) -> String {
    format!(
        "{{{}: {}}}",
        taint["key"].as_str().unwrap_or(""),
        taint["value"].as_str().unwrap_or("")
    )
}

/// The value of the node label `key`.
pub(crate) fn node_label<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    label(node, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(labels: Value) -> Value {
        json!({"metadata": {"name": "n1", "labels": labels}})
    }

    #[test]
    fn node_selector_terms_support_every_operator() {
        let n = node(json!({"zone": "a", "cores": "8"}));
        let term = |op: &str, key: &str, values: Value| json!({"matchExpressions": [{"key": key, "operator": op, "values": values}]});
        assert!(node_term_matches(
            &term("In", "zone", json!(["a", "b"])),
            &n
        ));
        assert!(!node_term_matches(&term("NotIn", "zone", json!(["a"])), &n));
        assert!(node_term_matches(&term("NotIn", "gpu", json!(["x"])), &n));
        assert!(node_term_matches(&term("Exists", "zone", json!(null)), &n));
        assert!(node_term_matches(
            &term("DoesNotExist", "gpu", json!(null)),
            &n
        ));
        assert!(node_term_matches(&term("Gt", "cores", json!(["4"])), &n));
        assert!(!node_term_matches(&term("Lt", "cores", json!(["4"])), &n));
        assert!(
            !node_term_matches(&json!({}), &n),
            "an empty term matches nothing"
        );
        let by_name =
            json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]});
        assert!(node_term_matches(&by_name, &n));
    }

    #[test]
    fn tolerations_match_by_key_value_and_effect() {
        let taint = json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"});
        assert!(tolerated(
            &[json!({"key": "dedicated", "value": "gpu"})],
            &taint
        ));
        assert!(tolerated(
            &[json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"})],
            &taint
        ));
        assert!(tolerated(&[json!({"operator": "Exists"})], &taint));
        assert!(!tolerated(
            &[json!({"key": "dedicated", "value": "cpu"})],
            &taint
        ));
        assert!(!tolerated(
            &[json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"})],
            &taint
        ));
        assert_eq!(describe_taint(&taint), "{dedicated: gpu}");
    }

    #[test]
    fn label_selectors_treat_null_as_nothing_and_empty_as_everything() {
        let pod = json!({"metadata": {"labels": {"app": "db"}}});
        assert!(!label_selector_matches(&Value::Null, &pod));
        assert!(label_selector_matches(&json!({}), &pod));
        assert!(label_selector_matches(
            &json!({"matchLabels": {"app": "db"}}),
            &pod
        ));
        assert!(label_selector_matches(
            &json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "web"]}]}),
            &pod
        ));
        assert!(!label_selector_matches(
            &json!({"matchLabels": {"app": "web"}}),
            &pod
        ));
    }
}
