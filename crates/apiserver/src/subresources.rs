//! KubeVirt's `subresources.kubevirt.io/v1` API (upstream's virt-api): version and the
//! VM/VMI subresources that later issues fill in.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::json_response;
use crate::service::Api;

/// The KubeVirt release whose API oxivirt serves (OpenShift Virtualization 4.16).
pub const KUBEVIRT_VERSION: &str = "v1.2.2";

fn version() -> Value {
    json!({
        "gitVersion": format!("{KUBEVIRT_VERSION}+oxivirt-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

fn not_found(path: &str) -> Response {
    ApiError::NotFound {
        message: format!("the server could not find the requested resource ({path})"),
        group: "subresources.kubevirt.io".into(),
        kind: String::new(),
        name: String::new(),
    }
    .into_response()
}

pub async fn handle(api: Arc<Api>, req: Request) -> Response {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').skip(2).collect();
    let _ = &api;
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["v1"] | ["v1alpha3"]) => json_response(
            StatusCode::OK,
            &json!({
                "kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": format!("subresources.kubevirt.io/{}", segments[0]),
                "resources": [],
            }),
            vec![],
        ),
        (&Method::GET, [_, "version"]) => json_response(StatusCode::OK, &version(), vec![]),
        (&Method::GET, [_, "healthz"]) => json_response(
            StatusCode::OK,
            &json!({"apiserver": "ok", "restful": "ok"}),
            vec![],
        ),
        _ => not_found(&path),
    }
}
