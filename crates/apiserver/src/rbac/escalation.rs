//! Escalation prevention, as Kubernetes' RBAC storage does it: a user may write a Role or
//! ClusterRole only with rules they already hold (or the `escalate` verb on it), and bind a
//! role only when they hold all its rules (or the `bind` verb on it). Without this a
//! namespace `admin`, who may create RoleBindings, could bind `cluster-admin` to themselves.
//!
//! Runs in admission, on the object about to be stored, so every write path (create,
//! update, every patch type, server-side apply) is covered.

use serde_json::Value;

use super::attributes::Attributes;
use super::authorizer::load;
use super::policy::{rule_allows, Policy};
use crate::context::{RequestCtx, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceInfo;
use crate::service::Api;

const GROUP: &str = "rbac.authorization.k8s.io";

/// Refuses a Role, ClusterRole, RoleBinding or ClusterRoleBinding that would grant the
/// writer permissions they do not hold.
///
/// # Errors
/// [`ApiError::Forbidden`] naming the rules not held; store failures.
pub async fn check(api: &Api, info: &ResourceInfo, obj: &Value, ctx: &RequestCtx) -> ApiResult<()> {
    if info.group != GROUP || ctx.user.is_admin() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let policy = load(api).await?.0;
    let (granted, bypass_verb, bypass_resource, bypass_name) = match info.plural.as_str() {
        "roles" | "clusterroles" => (
            obj["rules"].as_array().cloned().unwrap_or_default(),
            "escalate",
            info.plural.as_str(),
            name,
        ),
        "rolebindings" | "clusterrolebindings" => {
            let role_ref = &obj["roleRef"];
            let role_name = role_ref["name"].as_str().unwrap_or("");
            let (plural, role) = match role_ref["kind"].as_str() {
                Some("ClusterRole") => (
                    "clusterroles",
                    policy.cluster_roles().get(role_name).cloned(),
                ),
                _ => ("roles", policy.role(ns, role_name).cloned()),
            };
            let rules = role
                .and_then(|r| r["rules"].as_array().cloned())
                .unwrap_or_default();
            (rules, "bind", plural, role_name)
        }
        _ => return Ok(()),
    };
    let bypass = Attributes {
        verb: bypass_verb.into(),
        group: GROUP.into(),
        resource: bypass_resource.into(),
        name: bypass_name.into(),
        namespace: ns.into(),
        ..Default::default()
    };
    if policy.allows(&ctx.user, &bypass) {
        return Ok(());
    }
    let missing: Vec<&Value> = granted
        .iter()
        .filter(|rule| !covered(&policy, &ctx.user, ns, rule))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "{plural}.{GROUP} \"{name}\" is forbidden: user \"{user}\" (groups={groups}) is attempting to grant RBAC permissions not currently held:\n{rules}",
        plural = info.plural,
        user = ctx.user.name,
        groups = format_groups(&ctx.user),
        rules = missing.iter().map(|r| format_rule(r)).collect::<Vec<_>>().join("\n"),
    )))
}

/// Whether every request `rule` allows is also allowed to `user` in `ns`.
fn covered(policy: &Policy, user: &UserInfo, ns: &str, rule: &Value) -> bool {
    let strings = |key: &str| -> Vec<String> {
        rule[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let held = policy.rules_for(user, ns);
    let allowed = |attrs: &Attributes| held.iter().any(|r| rule_allows(r, attrs));
    let verbs = strings("verbs");
    let urls = strings("nonResourceURLs");
    if !urls.is_empty() {
        return verbs.iter().all(|verb| {
            urls.iter().all(|url| {
                allowed(&Attributes {
                    verb: verb.clone(),
                    path: Some(url.clone()),
                    ..Default::default()
                })
            })
        });
    }
    let mut names = strings("resourceNames");
    if names.is_empty() {
        names.push(String::new());
    }
    let groups = strings("apiGroups");
    let resources = strings("resources");
    verbs.iter().all(|verb| {
        groups.iter().all(|group| {
            resources.iter().all(|resource| {
                let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
                names.iter().all(|name| {
                    allowed(&Attributes {
                        verb: verb.clone(),
                        group: group.clone(),
                        resource: resource.into(),
                        subresource: subresource.into(),
                        name: name.clone(),
                        namespace: ns.into(),
                        path: None,
                    })
                })
            })
        })
    })
}

fn format_groups(user: &UserInfo) -> String {
    let quoted: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// A rule the way Kubernetes prints it in escalation errors.
fn format_rule(rule: &Value) -> String {
    let list = |key: &str| -> Option<String> {
        let items: Vec<String> = rule[key]
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(|s| format!("{s:?}")))
            .collect();
        (!items.is_empty()).then(|| items.join(" "))
    };
    let mut parts = Vec::new();
    for (key, label) in [
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("resourceNames", "ResourceNames"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("verbs", "Verbs"),
    ] {
        if let Some(items) = list(key) {
            parts.push(format!("{label}:[{items}]"));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rule_is_covered_only_by_rules_that_allow_all_of_it() {
        let mut policy = Policy::default();
        let put = |p: &mut Policy, key: &str, obj: Value| {
            p.apply(
                &format!("{}{key}", super::super::policy::RBAC_PREFIX),
                Some(obj.to_string().as_bytes()),
            );
        };
        put(
            &mut policy,
            "clusterroles/pods",
            json!({"rules": [
            {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]}),
        );
        put(
            &mut policy,
            "rolebindings/team/b",
            json!({
            "roleRef": {"kind": "ClusterRole", "name": "pods"},
            "subjects": [{"kind": "User", "name": "amy"}]}),
        );
        let amy = UserInfo {
            name: "amy".into(),
            groups: vec!["g".into()],
        };
        let rule = |r: Value| covered(&policy, &amy, "team", &r);
        assert!(rule(
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
        ));
        assert!(rule(
            json!({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["list"], "resourceNames": ["a"]})
        ));
        assert!(!rule(
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]})
        ));
        assert!(!rule(
            json!({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]})
        ));
        assert!(!covered(
            &policy,
            &amy,
            "other",
            &json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
        ));
        assert_eq!(
            format_rule(
                &json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]})
            ),
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}"#
        );
    }
}
