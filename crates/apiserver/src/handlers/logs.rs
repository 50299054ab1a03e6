//! `GET /api/v1/namespaces/{ns}/pods/{name}/log` (`kubectl logs`): relayed to the node agent
//! that runs the Pod, which serves the launcher's `compute` log and the guest's
//! `guest-console-log` (as the kubelet serves container logs).

use axum::body::Body;
use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::node_relay::agent_refusal;
use crate::registry::ResourceInfo;
use crate::service::Api;

/// The containers a Pod has, in order (the first is the default, as kubectl picks).
fn containers(pod: &Value) -> Vec<String> {
    pod["spec"]["containers"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Streams the log of `container` (default: the Pod's `kubectl.kubernetes.io/default-container`
/// annotation, else its only container) with the query's `follow`, `tailLines`, `limitBytes`.
///
/// # Errors
/// 404 for a missing Pod, 400 for an unknown or ambiguous container or a Pod not yet on a
/// node (Kubernetes' messages), 503 when the node agent cannot be reached.
pub async fn pod_log(
    api: &Api,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    query: &std::collections::HashMap<String, String>,
) -> ApiResult<Response> {
    let pod = api.get(info, ns, name, "v1").await?;
    let names = containers(&pod);
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) => c.clone(),
        None => match pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
            .as_str()
        {
            Some(c) => c.to_string(),
            None if names.len() == 1 => names[0].clone(),
            None => {
                return Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                )))
            }
        },
    };
    if !names.contains(&container) {
        return Err(ApiError::BadRequest(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(ApiError::BadRequest(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    let relay = crate::node_relay::of(api)?;
    // The serializer is not Send: finish it before the first await.
    let forwarded = {
        let mut forwarded = url::form_urlencoded::Serializer::new(String::new());
        for key in ["follow", "tailLines", "limitBytes"] {
            if let Some(value) = query.get(key) {
                forwarded.append_pair(key, value);
            }
        }
        forwarded.finish()
    };
    let path = format!("/containerLogs/{ns}/{name}/{container}?{forwarded}");
    let response = relay.send(api, node, Method::GET, &path).await?;
    if !response.status().is_success() {
        use http_body_util::BodyExt;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(agent_refusal(status, &body));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(Body::new(response.into_body()))
        .map_err(|e| ApiError::Internal(format!("building the log response: {e}")))
}
