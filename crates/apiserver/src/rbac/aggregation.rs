//! ClusterRole aggregation: a ClusterRole with an `aggregationRule` gets, as its `rules`,
//! the union of the rules of every other ClusterRole its selectors match, as Kubernetes'
//! clusterrole-aggregation controller keeps it. Stored rules are what authorisation reads,
//! so `kubectl get clusterrole admin -o yaml` shows what `admin` really grants.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::policy::Policy;
use crate::context::{RequestCtx, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::service::{Api, Subresource};

/// Whether a `LabelSelector` object (matchLabels and matchExpressions) matches `labels`.
/// An empty selector matches nothing here, as for aggregation in Kubernetes.
fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels = selector["matchLabels"].as_object();
    let expressions = selector["matchExpressions"].as_array();
    if match_labels.is_none_or(|m| m.is_empty()) && expressions.is_none_or(|e| e.is_empty()) {
        return false;
    }
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let expressions_ok = expressions.into_iter().flatten().all(|e| {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match (e["operator"].as_str().unwrap_or(""), label(key)) {
            ("In", Some(v)) => values.contains(&v),
            ("NotIn", v) => v.is_none_or(|v| !values.contains(&v)),
            ("Exists", v) => v.is_some(),
            ("DoesNotExist", v) => v.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// For every aggregated ClusterRole whose stored rules differ from the union its selectors
/// call for: `(name, rules)`. Nested aggregation (`view` is itself aggregated into `edit`,
/// `edit` into `admin`) is followed to its fixed point in memory, so one write per role
/// settles everything. Sources are taken in name order and duplicates dropped, so the
/// result is stable and a second pass finds nothing to change.
pub fn pending(policy: &Policy) -> Vec<(String, Vec<Value>)> {
    let stored = policy.cluster_roles();
    let mut names: Vec<&String> = stored.keys().collect();
    names.sort();
    let mut rules: BTreeMap<&String, Vec<Value>> = names
        .iter()
        .map(|n| {
            (
                *n,
                stored[*n]["rules"].as_array().cloned().unwrap_or_default(),
            )
        })
        .collect();
    // Each pass can only add a level of nesting; more passes than roles means a cycle.
    for _ in 0..=names.len() {
        let mut changed = false;
        for name in &names {
            let Some(selectors) = stored[*name]
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
            else {
                continue;
            };
            let mut union: Vec<Value> = Vec::new();
            for source in names.iter().filter(|s| *s != name) {
                let labels = stored[*source]
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                if !selectors.iter().any(|s| selector_matches(s, &labels)) {
                    continue;
                }
                for rule in &rules[*source] {
                    if !union.contains(rule) {
                        union.push(rule.clone());
                    }
                }
            }
            if rules[*name] != union {
                rules.insert(name, union);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    names
        .iter()
        .filter(|n| stored[**n].get("aggregationRule").is_some())
        .filter(|n| stored[**n]["rules"].as_array().cloned().unwrap_or_default() != rules[**n])
        .map(|n| ((*n).clone(), rules[*n].clone()))
        .collect()
}

/// Writes the pending aggregations; a role deleted meanwhile is skipped.
///
/// # Errors
/// The first store or admission failure, naming the role.
pub async fn write(api: &Api, pending: Vec<(String, Vec<Value>)>) -> ApiResult<()> {
    let info = api
        .registry
        .by_group_resource("rbac.authorization.k8s.io", "clusterroles")
        .ok_or_else(|| ApiError::internal("clusterroles are not served"))?;
    let mut ctx = RequestCtx::new(UserInfo::system("clusterrole-aggregation-controller"));
    ctx.field_manager = "clusterrole-aggregation-controller".into();
    for (name, rules) in pending {
        let result = api
            .write_loop(
                &info,
                "",
                &name,
                &ctx,
                "v1",
                false,
                |old| {
                    let mut new = old.clone();
                    new["rules"] = Value::Array(rules.clone());
                    Ok(new)
                },
                Subresource::Main,
            )
            .await;
        match result {
            Ok(_) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "aggregating the rules of ClusterRole {name}: {e}"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(roles: &[(&str, Value)]) -> Policy {
        let mut p = Policy::default();
        for (name, obj) in roles {
            let key = format!("{}clusterroles/{name}", super::super::policy::RBAC_PREFIX);
            p.apply(&key, Some(obj.to_string().as_bytes()));
        }
        p
    }

    #[test]
    fn aggregated_roles_collect_the_rules_of_matching_roles() {
        let read = json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]});
        let vm = json!({"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"], "verbs": ["get"]});
        let p = policy(&[
            (
                "view",
                json!({"aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}, "rules": []}),
            ),
            (
                "a",
                json!({"metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}, "rules": [read]}),
            ),
            (
                "b",
                json!({"metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}, "rules": [vm, read]}),
            ),
            (
                "c",
                json!({"metadata": {"labels": {"other": "true"}}, "rules": [{"verbs": ["*"]}]}),
            ),
        ]);
        let out = pending(&p);
        assert_eq!(
            out,
            vec![("view".to_string(), vec![read.clone(), vm.clone()])]
        );
        // Once stored, nothing is pending any more.
        let p = policy(&[
            (
                "view",
                json!({"aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}, "rules": [read, vm]}),
            ),
            (
                "a",
                json!({"metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}, "rules": [read]}),
            ),
            (
                "b",
                json!({"metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}, "rules": [vm]}),
            ),
        ]);
        assert!(pending(&p).is_empty());
    }

    #[test]
    fn nested_aggregation_settles_in_one_pass() {
        let label = |l: &str| json!({"metadata": {"labels": {l: "true"}}});
        let agg = |l: &str, extra: Value| {
            let mut r = json!({"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {l: "true"}}]}, "rules": []});
            if let Some(labels) = extra.get("metadata") {
                r["metadata"] = labels.clone();
            }
            r
        };
        let rule = json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]});
        let mut leaf = label("to-view");
        leaf["rules"] = json!([rule.clone()]);
        let p = policy(&[
            ("admin", agg("to-admin", json!({}))),
            ("edit", agg("to-edit", label("to-admin"))),
            ("view", agg("to-view", label("to-edit"))),
            ("leaf", leaf),
        ]);
        let out = pending(&p);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["admin", "edit", "view"]);
        assert!(out.iter().all(|(_, rules)| rules == &vec![rule.clone()]));
    }

    #[test]
    fn match_expressions_are_honoured() {
        let labels = json!({"tier": "gold"});
        let sel = |op: &str| json!({"matchExpressions": [{"key": "tier", "operator": op, "values": ["gold"]}]});
        assert!(selector_matches(&sel("In"), &labels));
        assert!(!selector_matches(&sel("NotIn"), &labels));
        assert!(selector_matches(&sel("Exists"), &labels));
        assert!(!selector_matches(&json!({}), &labels));
    }
}
