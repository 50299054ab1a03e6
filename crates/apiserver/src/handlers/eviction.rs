//! The Pod `eviction` subresource (policy/v1 Eviction): deletes a Pod unless a
//! PodDisruptionBudget selecting it allows no disruption.

use axum::http::StatusCode;
use axum::response::Response;
use oxivirt_store::ListOptions;
use serde_json::{json, Value};

use super::json_response;
use crate::context::RequestCtx;
use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceInfo;
use crate::service::{Api, DeleteOptions};

/// Whether a PDB's `spec.selector` (matchLabels and matchExpressions) selects `pod`.
fn selects(pdb: &Value, pod: &Value) -> bool {
    let Some(selector) = pdb.pointer("/spec/selector") else {
        return false;
    };
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let match_expressions = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str().unwrap_or("") {
                "In" => label(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => !label(key).is_some_and(|v| values.contains(&v)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        })
    });
    match_labels && match_expressions
}

pub async fn evict(
    api: &Api,
    pods: &ResourceInfo,
    ns: &str,
    name: &str,
    eviction: &Value,
    ctx: RequestCtx,
) -> ApiResult<Response> {
    let pod = api.get(pods, ns, name, "v1").await?;
    let listed = api
        .store
        .list(
            &format!("/registry/policy/poddisruptionbudgets/{ns}/"),
            ListOptions::default(),
        )
        .await?;
    for kv in &listed.items {
        let pdb: Value = serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
        if selects(&pdb, &pod)
            && pdb
                .pointer("/status/disruptionsAllowed")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                < 1
        {
            return Err(ApiError::TooManyRequests(
                "Cannot evict pod as it would violate the pod's disruption budget.".into(),
            ));
        }
    }
    let opts = DeleteOptions {
        precondition_uid: eviction
            .pointer("/deleteOptions/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: eviction
            .pointer("/deleteOptions/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        propagation: eviction
            .pointer("/deleteOptions/propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run: false,
    };
    api.delete(pods, ns, name, &opts, &ctx, "v1").await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(json_response(
        StatusCode::CREATED,
        &status,
        ctx.take_warnings(),
    ))
}
