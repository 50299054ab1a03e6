//! Parsing what a REST request addresses and how it wants to be answered.

use std::collections::HashMap;

use axum::http::{HeaderMap, Method, Uri};
use bytes::Bytes;
use serde_json::Value;

use crate::context::{FieldValidation, RequestCtx, UserInfo};
use crate::error::{ApiError, ApiResult};

/// Body size limit, as kube-apiserver's 3 MiB request limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The parts of a resource URL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub legacy_watch: bool,
}

/// Splits `/api/v1/...` or `/apis/{group}/{version}/...` into its parts.
pub fn parse_path(path: &str) -> Option<ResourcePath> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, mut rest) = match segments.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest.to_vec()),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest.to_vec()),
        _ => return None,
    };
    let mut out = ResourcePath {
        group,
        version,
        ..Default::default()
    };
    if rest.first() == Some(&"watch") {
        out.legacy_watch = true;
        rest.remove(0);
    }
    match rest.as_slice() {
        [] => return None,
        ["namespaces", ns, resource, tail @ ..]
            if !(out.group.is_empty()
                && matches!(*resource, "status" | "finalize")
                && tail.is_empty()) =>
        {
            out.namespace = Some(ns.to_string());
            out.resource = resource.to_string();
            out.name = tail.first().map(|s| s.to_string());
            out.subresource = tail.get(1).map(|s| s.to_string());
            if tail.len() > 2 {
                return None;
            }
        }
        [resource, tail @ ..] => {
            out.resource = resource.to_string();
            out.name = tail.first().map(|s| s.to_string());
            out.subresource = tail.get(1).map(|s| s.to_string());
            if tail.len() > 2 {
                return None;
            }
        }
    }
    Some(out)
}

/// Query parameters (first value wins).
pub fn query_map(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

pub fn flag(query: &HashMap<String, String>, key: &str) -> bool {
    matches!(query.get(key).map(String::as_str), Some("true" | "1"))
}

/// Whether the client asked for a server-side `Table`.
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| "application/json".into())
}

/// Decodes a JSON or YAML body into an object.
pub fn decode_body(body: &Bytes, content_type: &str) -> ApiResult<Value> {
    if body.len() > MAX_BODY {
        return Err(ApiError::TooLarge(
            "Request entity too large: limit is 3145728".into(),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    if content_type == oxivirt_kubeproto::MEDIA_TYPE {
        return oxivirt_kubeproto::decode(body).map_err(|e| match e {
            oxivirt_kubeproto::Error::UnsupportedKind { .. }
            | oxivirt_kubeproto::Error::UnsupportedEncoding { .. } => {
                ApiError::UnsupportedMediaType(format!("{e}; send the object as application/json"))
            }
            other => ApiError::BadRequest(format!("decoding the protobuf request body: {other}")),
        });
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        // Clients (client-go ≥ 1.32) fall back to JSON when they get 415 for these.
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type})"
        )));
    }
    let is_yaml = content_type.contains("yaml");
    if is_yaml {
        let value: serde_yaml::Value = serde_yaml::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("error converting YAML to JSON: {e}")))?;
        serde_json::to_value(value)
            .map_err(|e| ApiError::BadRequest(format!("error converting YAML to JSON: {e}")))
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!("couldn't get version/kind; json parse error: {e}"))
        })
    }
}

/// Builds the request context from query parameters and headers.
pub fn request_ctx(
    user: UserInfo,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    method: &Method,
) -> ApiResult<RequestCtx> {
    let mut ctx = RequestCtx::new(user);
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => {}
        Some("All") => ctx.dry_run = true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )))
        }
    }
    ctx.field_validation =
        FieldValidation::parse(query.get("fieldValidation").map(String::as_str))?;
    ctx.field_manager = match query.get("fieldManager") {
        Some(m) if !m.is_empty() => m.clone(),
        _ => {
            let agent = headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("unknown");
            agent.split('/').next().unwrap_or("unknown").to_string()
        }
    };
    if ctx.field_manager.len() > 128 {
        return Err(ApiError::BadRequest(
            "fieldManager: Too long: may not be more than 128 bytes".into(),
        ));
    }
    let _ = method;
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_and_cluster_paths_parse() {
        let p = parse_path("/api/v1/namespaces/default/pods/web/status").unwrap();
        assert_eq!(p.namespace.as_deref(), Some("default"));
        assert_eq!(
            (
                p.resource.as_str(),
                p.name.as_deref(),
                p.subresource.as_deref()
            ),
            ("pods", Some("web"), Some("status"))
        );
        let ns = parse_path("/api/v1/namespaces/demo/status").unwrap();
        assert_eq!(
            (
                ns.resource.as_str(),
                ns.name.as_deref(),
                ns.subresource.as_deref()
            ),
            ("namespaces", Some("demo"), Some("status"))
        );
        let vm = parse_path("/apis/kubevirt.io/v1/namespaces/ns1/virtualmachines").unwrap();
        assert_eq!(
            (vm.group.as_str(), vm.resource.as_str(), vm.name),
            ("kubevirt.io", "virtualmachines", None)
        );
        let w = parse_path("/api/v1/watch/namespaces/default/configmaps").unwrap();
        assert!(w.legacy_watch);
        assert_eq!(w.resource, "configmaps");
    }
}
