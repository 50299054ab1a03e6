//! `/openapi/v2` and `/openapi/v3` served from the live registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
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

/// The content type of the protobuf `/openapi/v2` answer (kube-apiserver's spelling; the
/// `@` form kubectl puts in `Accept` is not a valid media type to send back).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// A protobuf OpenAPI v2 document (gnostic `openapi.v2.Document`) with no definitions.
///
/// kubectl only reads v2 for kinds absent from every `/openapi/v3` document, and skips
/// client-side validation of kinds v2 does not describe either: it then reports what a
/// cluster reports for an unknown kind (`no matches for kind ...`). Every served kind is
/// described in v3, so nothing is lost by keeping v2 empty in protobuf form.
pub fn v2_protobuf() -> Response {
    fn field(tag: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        out.push(payload.len() as u8);
        out.extend_from_slice(payload);
    }
    let mut info = Vec::new();
    field(0x0a, b"Kubernetes", &mut info); // Info.title = 1
    field(0x12, b"v1.32.0", &mut info); // Info.version = 2
    let mut doc = Vec::new();
    field(0x0a, b"2.0", &mut doc); // Document.swagger = 1
    field(0x12, &info, &mut doc); // Document.info = 2
    field(0x42, &[], &mut doc); // Document.paths = 8 (empty)
    let mut r = (StatusCode::OK, doc).into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(V2_PROTOBUF),
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

/// Every `/openapi/v3` document with its content hash, rebuilt only when the set of
/// served resources changes (CRDs created or deleted).
#[derive(Default)]
pub struct V3Cache {
    built: std::sync::Mutex<Option<(u64, Arc<BTreeMap<String, (Bytes, String)>>)>>,
}

fn v3_documents(api: &Api) -> Arc<BTreeMap<String, (Bytes, String)>> {
    let generation = api.registry.generation();
    let mut built = api
        .openapi_v3
        .built
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some((at, docs)) = built.as_ref() {
        if *at == generation {
            return docs.clone();
        }
    }
    let docs: BTreeMap<String, (Bytes, String)> = docs_by_group_version(&api.registry)
        .into_iter()
        .map(|(gv, docs)| {
            let body = serde_json::to_vec(&oxivirt_schema::openapi_v3_group_version(&docs))
                .unwrap_or_default();
            let hash = oxivirt_schema::content_hash(&body);
            (gv, (Bytes::from(body), hash))
        })
        .collect();
    let docs = Arc::new(docs);
    *built = Some((generation, docs.clone()));
    docs
}

pub fn v3_index(api: &Api) -> Response {
    let gvs: Vec<(String, String)> = v3_documents(api)
        .iter()
        .map(|(gv, (_, hash))| (gv.clone(), hash.clone()))
        .collect();
    json(&oxivirt_schema::openapi_v3_index(&gvs))
}

pub fn v3_group_version(api: &Api, gv: &str, hashed: bool) -> Response {
    match v3_documents(api).get(gv) {
        Some((body, _)) => {
            let mut r = (StatusCode::OK, body.clone()).into_response();
            let headers = r.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if hashed {
                // Addressed by content hash: clients may cache it for good, as kube-apiserver allows.
                headers.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("public, immutable"),
                );
            }
            r
        }
        None => ApiError::NotFound {
            message: format!("no OpenAPI document for {gv}"),
            group: String::new(),
            kind: String::new(),
            name: String::new(),
        }
        .into_response(),
    }
}
