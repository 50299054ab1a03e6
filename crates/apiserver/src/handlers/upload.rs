//! The upload proxy (upstream's `cdi-uploadproxy`), served by the API server on its own
//! HTTPS port at upstream's paths: `/v1beta1/upload`, `/v1beta1/upload-async`,
//! `/v1beta1/upload-form`, `/v1beta1/upload-form-async` and their `/v1alpha1/` twins.
//!
//! Authentication is the upload token alone (`Authorization: Bearer <token>` from an
//! UploadTokenRequest), not a user: these routes sit outside the API's authentication and
//! RBAC, as cdi-uploadproxy is a separate service. Answers as upstream: a missing or malformed
//! header 400, a bad or expired token 401, a claim whose upload worker is not ready 503.
//! The request, body streamed, goes through the node agent of the worker's node to the
//! worker's upload server, whose answer comes back as it is.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use http::{header, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use super::upload_token::{self, UploadTarget};
use crate::service::Api;

/// Upstream's upload paths.
pub const PATHS: [&str; 8] = [
    "/v1beta1/upload",
    "/v1beta1/upload-async",
    "/v1beta1/upload-form",
    "/v1beta1/upload-form-async",
    "/v1alpha1/upload",
    "/v1alpha1/upload-async",
    "/v1alpha1/upload-form",
    "/v1alpha1/upload-form-async",
];

/// Headers passed on to the upload server.
const FORWARDED: [&str; 3] = ["content-type", "content-length", "x-cdi-content-type"];

/// How much of a refused request's body is read before answering: an HTTP/2 client still
/// sending when the answer comes would otherwise see a stream reset instead of the answer.
const DRAIN_ON_REFUSAL: usize = 256 << 10;

/// The proxy's routes (to be merged outside the authenticated API).
pub fn router(api: Arc<Api>) -> Router {
    let mut router = Router::new();
    for path in PATHS {
        router = router.route(path, any(proxy));
    }
    router.with_state(api)
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = (status, message.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The token of an `Authorization: Bearer` header (upstream's pattern: base64url/JWT
/// characters only).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    let token = token.trim_start();
    let valid = !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c));
    (scheme.eq_ignore_ascii_case("bearer") && valid).then_some(token)
}

type Refusal = (StatusCode, String);

/// The claim the request's token names, or why the request is refused.
fn authorise(api: &Api, req: &Request) -> Result<UploadTarget, Refusal> {
    let header_value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or((
            StatusCode::BAD_REQUEST,
            "missing Authorization header".to_string(),
        ))?;
    let token = bearer(header_value).ok_or((
        StatusCode::BAD_REQUEST,
        "the Authorization header must be \"Bearer <upload token>\"".to_string(),
    ))?;
    upload_token::verify(api, token, chrono::Utc::now().timestamp()).ok_or((
        StatusCode::UNAUTHORIZED,
        "the upload token is invalid or expired: create a new UploadTokenRequest".to_string(),
    ))
}

async fn proxy(State(api): State<Arc<Api>>, req: Request) -> Response {
    let target = match authorise(&api, &req) {
        Ok(target) => target,
        Err((status, message)) => {
            let limited = http_body_util::Limited::new(req.into_body(), DRAIN_ON_REFUSAL);
            let _ = limited.collect().await;
            return plain(status, message);
        }
    };
    match relay(&api, &target, req).await {
        Ok(response) => response,
        Err((status, message, body)) => {
            if let Some(body) = body {
                let limited = http_body_util::Limited::new(body, DRAIN_ON_REFUSAL);
                let _ = limited.collect().await;
            }
            plain(status, message)
        }
    }
}

/// A refusal, with the request body when it was not sent on (to be drained).
type RelayError = (StatusCode, String, Option<Body>);

fn unavailable(message: String) -> Refusal {
    (StatusCode::SERVICE_UNAVAILABLE, message)
}

async fn get(api: &Api, resource: &str, ns: &str, name: &str) -> Result<Option<Value>, Refusal> {
    let info = api
        .registry
        .by_group_resource("", resource)
        .ok_or_else(|| unavailable(format!("{resource} are not served")))?;
    match api.get(&info, ns, name, "v1").await {
        Ok(object) => Ok(Some(object)),
        Err(crate::error::ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(unavailable(format!("reading {resource} {ns}/{name}: {e}"))),
    }
}

/// The node and uid of the claim's ready upload worker.
async fn worker_of(api: &Api, target: &UploadTarget) -> Result<(String, String), Refusal> {
    let (ns, claim_name) = (&target.namespace, &target.name);
    let claim = get(api, "persistentvolumeclaims", ns, claim_name)
        .await?
        .ok_or_else(|| unavailable(format!("PVC {ns}/{claim_name} not found")))?;
    let annotations = &claim["metadata"]["annotations"];
    if !annotations["cdi.kubevirt.io/storage.upload.target"].is_string() {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("PVC {ns}/{claim_name} is not an upload target"),
        ));
    }
    if annotations["cdi.kubevirt.io/storage.pod.phase"] == "Succeeded" {
        return Err((
            StatusCode::CONFLICT,
            format!("the upload into PVC {ns}/{claim_name} already completed"),
        ));
    }
    if annotations["cdi.kubevirt.io/storage.pod.ready"] != "true" {
        return Err(unavailable(format!(
            "the upload server of PVC {ns}/{claim_name} is not ready"
        )));
    }
    let pod_name = format!("cdi-upload-{claim_name}");
    let pod = get(api, "pods", ns, &pod_name)
        .await?
        .ok_or_else(|| unavailable(format!("upload server Pod {ns}/{pod_name} not found")))?;
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    let pod_uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    if node.is_empty() || pod_uid.is_empty() {
        return Err(unavailable(format!(
            "upload server Pod {ns}/{pod_name} is not on a node yet"
        )));
    }
    Ok((node.to_string(), pod_uid.to_string()))
}

/// Finds the claim's upload worker and passes the request to it.
async fn relay(api: &Api, target: &UploadTarget, req: Request) -> Result<Response, RelayError> {
    let (parts, body) = req.into_parts();
    let located = async {
        let (node, pod_uid) = worker_of(api, target).await?;
        let relay = crate::node_relay::of(api).map_err(|e| unavailable(e.to_string()))?;
        relay
            .open_stream(api, &node, &format!("/cdiUpload/{pod_uid}"))
            .await
            .map_err(|e| unavailable(e.to_string()))
    };
    let stream = match located.await {
        Ok(stream) => stream,
        Err((status, message)) => return Err((status, message, Some(body))),
    };
    let (ns, claim_name) = (&target.namespace, &target.name);
    let (mut sender, connection) = match hyper::client::conn::http1::handshake(stream).await {
        Ok(pair) => pair,
        Err(e) => {
            let message = format!("upload server of {ns}/{claim_name}: {e}");
            return Err((StatusCode::SERVICE_UNAVAILABLE, message, Some(body)));
        }
    };
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "upload relay connection ended");
        }
    });
    let mut forward = http::Request::builder()
        .method(parts.method)
        .uri(parts.uri.path())
        .header(header::HOST, "cdi-upload-server");
    for name in FORWARDED {
        if let Some(value) = parts.headers.get(name) {
            forward = forward.header(name, value);
        }
    }
    let forward = match forward.body(body) {
        Ok(forward) => forward,
        Err(e) => {
            let message = format!("relaying the upload: {e}");
            return Err((StatusCode::BAD_REQUEST, message, None));
        }
    };
    let response = sender.send_request(forward).await.map_err(|e| {
        (
            StatusCode::BAD_GATEWAY,
            format!("upload server of {ns}/{claim_name}: {e}"),
            None,
        )
    })?;
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn only_well_formed_bearer_headers_carry_a_token() {
        assert_eq!(bearer("Bearer abc.def-_"), Some("abc.def-_"));
        assert_eq!(bearer("bearer   x/y+z"), Some("x/y+z"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer a b"), None);
        assert_eq!(bearer("Bearer a\"b"), None);
    }
}
