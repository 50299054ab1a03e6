//! `serviceaccounts/{name}/token`: TokenRequest (`kubectl create token`).

use axum::http::StatusCode;
use axum::response::Response;
use chrono::TimeZone;
use serde_json::{json, Value};

use super::json_response;
use crate::error::{ApiError, ApiResult, Cause};
use crate::objects;
use crate::registry::ResourceInfo;
use crate::service::Api;
use crate::tokens::{DEFAULT_TTL_SECS, MAX_TTL_SECS, MIN_TTL_SECS};

pub async fn create(
    api: &Api,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    mut request: Value,
) -> ApiResult<Response> {
    let sa = api.get(info, ns, name, "v1").await?;
    let ttl = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_TTL_SECS);
    if ttl < MIN_TTL_SECS {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {ttl}: may not specify a duration less than 10 minutes"
                ),
                field: "spec.expirationSeconds".into(),
            }],
        ));
    }
    let ttl = ttl.min(MAX_TTL_SECS);
    let audiences: Vec<String> = request
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let (token, expires) = api
        .tokens
        .issue(ns, name, objects::uid(&sa), &audiences, now, ttl);
    let expiration = chrono::Utc
        .timestamp_opt(expires, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    request["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": null});
    request["spec"]["expirationSeconds"] = json!(ttl);
    request["status"] = json!({"token": token, "expirationTimestamp": expiration});
    Ok(json_response(StatusCode::CREATED, &request, vec![]))
}
