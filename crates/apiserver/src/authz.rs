//! Authorization reviews (`SelfSubjectAccessReview`, `SubjectAccessReview`,
//! `SelfSubjectRulesReview`) answered by evaluating RBAC objects as Kubernetes does.
//! Reviews and request enforcement (`rbac::authorizer`) make the same decision over the
//! same stored objects, so `kubectl auth can-i` answers what a request would get.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::context::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::handlers::json_response;
use crate::handlers::request::{decode_body, ResourcePath};
use crate::rbac::{self, Attributes};
use crate::service::Api;

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
            // Creating these reviews was authorised like any request (cluster-admin only
            // by default, `localsubjectaccessreviews` also through `admin`).
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
    let decision = rbac::decide_fresh(api, &subject, &attrs).await?;
    review["status"] =
        json!({"allowed": decision.is_some(), "reason": decision.unwrap_or_default()});
    Ok(json_response(StatusCode::CREATED, &review, vec![]))
}

/// Every RBAC rule that applies to `user` in `namespace` (cluster-wide rules included).
async fn rules_for(api: &Api, user: &UserInfo, namespace: &str) -> ApiResult<Vec<Value>> {
    if user.is_admin() {
        return Ok(vec![
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
            json!({"verbs": ["*"], "nonResourceURLs": ["*"]}),
        ]);
    }
    Ok(rbac::authorizer::load(api)
        .await?
        .0
        .rules_for(user, namespace))
}
