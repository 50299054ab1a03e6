//! The HTTP surface: health, version, discovery, OpenAPI and the resource handlers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use crate::auth::{require_user, Authenticator};
use crate::discovery;
use crate::error::ApiError;
use crate::handlers::{self, json_response};
use crate::openapi;
use crate::service::Api;

/// The Kubernetes version oxivirt reports: the API level it serves.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "32";

pub fn router(api: Arc<Api>, auth: Arc<Authenticator>) -> Router {
    Router::new()
        .fallback(route)
        .with_state(api.clone())
        // Inner to authentication: RBAC decides for the user it attached.
        .layer(axum::middleware::from_fn_with_state(
            crate::rbac::Authorizer::start(api.clone()),
            crate::rbac::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(auth, require_user))
        // The upload proxy authenticates by upload token, not as a user.
        .merge(handlers::upload::router(api.clone()))
        .layer(axum::middleware::from_fn(log_request))
}

async fn log_request(req: Request, next: axum::middleware::Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let uri = req.uri().clone();
    let started = std::time::Instant::now();
    let (response, cpu) = crate::cpu_time::measured(next.run(req)).await;
    tracing::debug!(
        %method,
        %uri,
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        cpu_us = cpu.as_micros() as u64,
        "request"
    );
    response
}

fn typed(code: StatusCode, body: &Value, content_type: &'static str) -> Response {
    let mut r = (code, serde_json::to_vec(body).unwrap_or_default()).into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

fn version_info() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+oxivirt-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

async fn route(State(api): State<Arc<Api>>, req: Request) -> Response {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let is_get = req.method() == Method::GET;
    match segments.as_slice() {
        ["healthz"] | ["livez"] | ["readyz"] if is_get => (StatusCode::OK, "ok").into_response(),
        ["version"] if is_get => json_response(StatusCode::OK, &version_info(), vec![]),
        ["api"] if is_get => match discovery::wants_aggregated(&accept) {
            Some(v) => typed(
                StatusCode::OK,
                &discovery::aggregated(&api.registry, true, v),
                aggregated_type(v),
            ),
            None => {
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                json_response(StatusCode::OK, &discovery::api_versions(host), vec![])
            }
        },
        ["apis"] if is_get => match discovery::wants_aggregated(&accept) {
            Some(v) => typed(
                StatusCode::OK,
                &discovery::aggregated(&api.registry, false, v),
                aggregated_type(v),
            ),
            None => json_response(
                StatusCode::OK,
                &discovery::api_group_list(&api.registry),
                vec![],
            ),
        },
        ["api", version] if is_get => resource_list(&api, "", version),
        ["apis", group] if is_get => match discovery::api_group(&api.registry, group) {
            Some(doc) => json_response(StatusCode::OK, &doc, vec![]),
            None => ApiError::not_found("", "", &path).into_response(),
        },
        ["apis", group, version] if is_get => resource_list(&api, group, version),
        ["openapi", "v2"] if is_get => {
            if accept.contains("protobuf") {
                openapi::v2_protobuf()
            } else {
                openapi::v2(&api)
            }
        }
        ["openapi", "v3"] if is_get => openapi::v3_index(&api),
        ["openapi", "v3", rest @ ..] if is_get => {
            let hashed = req.uri().query().is_some_and(|q| q.contains("hash="));
            openapi::v3_group_version(&api, &rest.join("/"), hashed)
        }
        ["apis", "subresources.kubevirt.io", ..] => crate::subresources::handle(api, req).await,
        ["apis", crate::vnc_token::GROUP, ..] => crate::vnc_token::handle(api, req).await,
        ["api", ..] | ["apis", ..] => handlers::dispatch(State(api), req).await,
        _ => ApiError::NotFound {
            message: "the server could not find the requested resource".into(),
            group: String::new(),
            kind: String::new(),
            name: String::new(),
        }
        .into_response(),
    }
}

fn aggregated_type(version: &str) -> &'static str {
    if version == "v2" {
        discovery::AGGREGATED_V2
    } else {
        discovery::AGGREGATED_V2BETA1
    }
}

fn resource_list(api: &Api, group: &str, version: &str) -> Response {
    match discovery::api_resource_list(&api.registry, group, version) {
        Some(doc) => json_response(StatusCode::OK, &doc, vec![]),
        None if group == "authorization.k8s.io" && version == "v1" => {
            json_response(StatusCode::OK, &crate::authz::resource_list(), vec![])
        }
        None => ApiError::NotFound {
            message: "the server could not find the requested resource".into(),
            group: group.into(),
            kind: String::new(),
            name: String::new(),
        }
        .into_response(),
    }
}
