//! `/openapi/v2` and `/openapi/v3` served from the live registry.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;
use crate::schemas::docs_by_group_version;
use crate::service::Api;

fn json(body: &Value) -> Response {
    let mut r = (StatusCode::OK, serde_json::to_vec(body).unwrap_or_default()).into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn v2(api: &Api) -> Response {
    let docs: Vec<_> = docs_by_group_version(&api.registry)
        .into_values()
        .flatten()
        .collect();
    json(&oxivirt_schema::openapi_v2(&docs))
}

pub fn v3_index(api: &Api) -> Response {
    let gvs: Vec<(String, String)> = docs_by_group_version(&api.registry)
        .into_iter()
        .map(|(gv, docs)| {
            let doc = oxivirt_schema::openapi_v3_group_version(&docs);
            let hash = oxivirt_schema::content_hash(&serde_json::to_vec(&doc).unwrap_or_default());
            (gv, hash)
        })
        .collect();
    json(&oxivirt_schema::openapi_v3_index(&gvs))
}

pub fn v3_group_version(api: &Api, gv: &str) -> Response {
    match docs_by_group_version(&api.registry).remove(gv) {
        Some(docs) => json(&oxivirt_schema::openapi_v3_group_version(&docs)),
        None => ApiError::NotFound {
            message: format!("no OpenAPI document for {gv}"),
            group: String::new(),
            kind: String::new(),
            name: String::new(),
        }
        .into_response(),
    }
}
