//! Authorization reviews (`SelfSubjectAccessReview`, `SubjectAccessReview`,
//! `SelfSubjectRulesReview`) answered by evaluating RBAC objects as Kubernetes does.
//! Requests themselves are not yet denied by RBAC: only the reviews consult it.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use oxivirt_store::ListOptions;
use serde_json::{json, Value};

use crate::context::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::handlers::json_response;
use crate::handlers::request::{decode_body, ResourcePath};
use crate::service::Api;

/// What is being asked about.
#[derive(Debug, Default)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub namespace: String,
    pub path: Option<String>,
}

pub fn resource_list() -> Value {
    let r = |name: &str, kind: &str, namespaced: bool| json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind, "verbs": ["create"]});
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "authorization.k8s.io/v1",
        "resources": [
            r("selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
            r("selfsubjectrulesreviews", "SelfSubjectRulesReview", false),
            r("subjectaccessreviews", "SubjectAccessReview", false),
            r("localsubjectaccessreviews", "LocalSubjectAccessReview", true),
        ],
    })
}

pub async fn handle(
    api: &Api,
    user: &UserInfo,
    path: &ResourcePath,
    method: &Method,
    body: &bytes::Bytes,
    content_type: &str,
) -> ApiResult<Response> {
    if method != Method::POST || path.name.is_some() {
        return Err(ApiError::MethodNotAllowed(format!(
            "{} only accepts create",
            path.resource
        )));
    }
    let mut review = decode_body(body, content_type)?;
    let (subject, kind) = match path.resource.as_str() {
        "selfsubjectaccessreviews" => (user.clone(), "SelfSubjectAccessReview"),
        "selfsubjectrulesreviews" => (user.clone(), "SelfSubjectRulesReview"),
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            if !user.is_admin() {
                return Err(ApiError::Forbidden(format!(
                    "{} is forbidden: User \"{}\" cannot create resource \"{}\" in API group \"authorization.k8s.io\"",
                    path.resource, user.name, path.resource
                )));
            }
            let spec = &review["spec"];
            let groups = spec["groups"]
                .as_array()
                .map(|g| {
                    g.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (
                UserInfo {
                    name: spec["user"].as_str().unwrap_or("").to_string(),
                    groups,
                },
                if path.resource == "subjectaccessreviews" {
                    "SubjectAccessReview"
                } else {
                    "LocalSubjectAccessReview"
                },
            )
        }
        other => return Err(ApiError::not_found("authorization.k8s.io", other, "")),
    };
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!(kind);
    if kind == "SelfSubjectRulesReview" {
        let ns = review
            .pointer("/spec/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let rules = rules_for(api, &subject, &ns).await?;
        let resource_rules: Vec<Value> = rules
            .iter()
            .filter(|r| r.get("resources").is_some())
            .cloned()
            .collect();
        let non_resource: Vec<Value> = rules
            .iter()
            .filter(|r| r.get("nonResourceURLs").is_some())
            .cloned()
            .collect();
        review["status"] = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource, "incomplete": false});
        return Ok(json_response(StatusCode::CREATED, &review, vec![]));
    }
    let attrs = match review.pointer("/spec/resourceAttributes") {
        Some(ra) => Attributes {
            verb: ra["verb"].as_str().unwrap_or("").into(),
            group: ra["group"].as_str().unwrap_or("").into(),
            resource: ra["resource"].as_str().unwrap_or("").into(),
            subresource: ra["subresource"].as_str().unwrap_or("").into(),
            name: ra["name"].as_str().unwrap_or("").into(),
            namespace: ra["namespace"]
                .as_str()
                .or(path.namespace.as_deref())
                .unwrap_or("")
                .into(),
            path: None,
        },
        None => Attributes {
            verb: review
                .pointer("/spec/nonResourceAttributes/verb")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            path: review
                .pointer("/spec/nonResourceAttributes/path")
                .and_then(Value::as_str)
                .map(str::to_string),
            ..Default::default()
        },
    };
    let (allowed, reason) = allowed(api, &subject, &attrs).await?;
    review["status"] = json!({"allowed": allowed, "reason": reason});
    Ok(json_response(StatusCode::CREATED, &review, vec![]))
}

fn subject_matches(subject: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str().unwrap_or("") {
        "User" => name == user.name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject["namespace"].as_str().unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

async fn load(api: &Api, prefix: &str) -> ApiResult<Vec<Value>> {
    let listed = api.store.list(prefix, ListOptions::default()).await?;
    Ok(listed
        .items
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect())
}

async fn role_rules(api: &Api, role_ref: &Value, ns: &str) -> ApiResult<Vec<Value>> {
    let name = role_ref["name"].as_str().unwrap_or("");
    let key = match role_ref["kind"].as_str() {
        Some("ClusterRole") => format!("/registry/rbac.authorization.k8s.io/clusterroles/{name}"),
        _ => format!("/registry/rbac.authorization.k8s.io/roles/{ns}/{name}"),
    };
    let Some(kv) = api.store.get(&key).await? else {
        return Ok(vec![]);
    };
    let role: Value = serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
    Ok(role["rules"].as_array().cloned().unwrap_or_default())
}

/// Every RBAC rule that applies to `user` in `namespace` (cluster-wide rules included).
pub async fn rules_for(api: &Api, user: &UserInfo, namespace: &str) -> ApiResult<Vec<Value>> {
    if user.is_admin() {
        return Ok(vec![
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
            json!({"verbs": ["*"], "nonResourceURLs": ["*"]}),
        ]);
    }
    let mut rules = Vec::new();
    for binding in load(
        api,
        "/registry/rbac.authorization.k8s.io/clusterrolebindings/",
    )
    .await?
    {
        if binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| subject_matches(s, user, ""))
        {
            rules.extend(role_rules(api, &binding["roleRef"], "").await?);
        }
    }
    if !namespace.is_empty() {
        let prefix = format!("/registry/rbac.authorization.k8s.io/rolebindings/{namespace}/");
        for binding in load(api, &prefix).await? {
            if binding["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| subject_matches(s, user, namespace))
            {
                rules.extend(role_rules(api, &binding["roleRef"], namespace).await?);
            }
        }
    }
    Ok(rules)
}

fn contains(list: &Value, item: &str) -> bool {
    list.as_array()
        .into_iter()
        .flatten()
        .any(|v| v.as_str() == Some("*") || v.as_str() == Some(item))
}

/// Whether RBAC allows the request, and why.
pub async fn allowed(api: &Api, user: &UserInfo, attrs: &Attributes) -> ApiResult<(bool, String)> {
    if user.is_admin() {
        return Ok((true, "user is in group system:masters".into()));
    }
    let rules = rules_for(api, user, &attrs.namespace).await?;
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let ok = rules.iter().any(|rule| {
        if !contains(&rule["verbs"], &attrs.verb) {
            return false;
        }
        if let Some(path) = &attrs.path {
            return rule["nonResourceURLs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|u| {
                    u == "*"
                        || u == path
                        || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
                });
        }
        let names_ok = rule["resourceNames"]
            .as_array()
            .is_none_or(|n| n.is_empty())
            || contains(&rule["resourceNames"], &attrs.name);
        contains(&rule["apiGroups"], &attrs.group)
            && contains(&rule["resources"], &resource)
            && names_ok
    });
    Ok(if ok {
        (true, "allowed by RBAC".into())
    } else {
        (false, String::new())
    })
}
