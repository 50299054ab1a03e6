//! PATCH: JSON patch, merge patch, strategic merge patch (built-in kinds) and
//! server-side apply.

use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::Value;

use super::request::decode_body;
use crate::context::RequestCtx;
use crate::error::{ApiError, ApiResult};
use crate::managed;
use crate::objects;
use crate::registry::{ResourceInfo, SchemaSource};
use crate::service::{Api, Subresource};

const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

fn unsupported(info: &ResourceInfo) -> ApiError {
    let mut accepted = vec![JSON_PATCH, MERGE_PATCH, APPLY];
    if !matches!(info.schema, SchemaSource::Structural(_)) {
        accepted.insert(2, STRATEGIC);
    }
    ApiError::UnsupportedMediaType(format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        accepted.join(", ")
    ))
}

/// Applies a patch of the given content type and stores the result.
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    api: &Api,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    content_type: &str,
    raw: &Bytes,
    ctx: &RequestCtx,
    sub: Subresource,
    force: bool,
    version: &str,
) -> ApiResult<(StatusCode, Value)> {
    let is_crd = info.crd_name.is_some();
    let kind = content_type.split(';').next().unwrap_or("").trim();
    let patch_doc = match kind {
        JSON_PATCH | MERGE_PATCH => decode_body(raw, "application/json")?,
        STRATEGIC if !is_crd => decode_body(raw, "application/json")?,
        APPLY => decode_body(raw, "application/yaml")?,
        _ => return Err(unsupported(info)),
    };
    if kind == APPLY {
        return apply(api, info, ns, name, patch_doc, ctx, sub, force, version).await;
    }
    if kind == JSON_PATCH && !patch_doc.is_array() {
        return Err(ApiError::BadRequest(
            "json patch must be an array of operations".into(),
        ));
    }
    if kind != JSON_PATCH && !patch_doc.is_object() {
        return Err(ApiError::BadRequest(
            "a merge patch must be a JSON object".into(),
        ));
    }
    let meta = managed::patch_meta(info);
    let obj = api
        .write_loop(info, ns, name, ctx, version, false, |old| {
            let patched = match kind {
                JSON_PATCH => oxivirt_patch::json_patch(old, &patch_doc)
                    .map_err(|e| ApiError::Invalid {
                        message: format!("the server rejected our request due to an error in our request: {e}"),
                        group: info.group.clone(), kind: info.kind.clone(), name: name.into(), causes: vec![],
                    })?,
                MERGE_PATCH => oxivirt_patch::merge_patch(old, &patch_doc),
                _ => oxivirt_patch::strategic_merge_patch(old, &patch_doc, meta.as_ref())
                    .map_err(|e| ApiError::BadRequest(format!("strategic merge patch: {e}")))?,
            };
            Ok(patched)
        }, sub)
        .await?;
    Ok((StatusCode::OK, obj))
}

/// Server-side apply: creates the object when absent, else merges the applied
/// configuration with field ownership and conflict detection.
#[allow(clippy::too_many_arguments)]
async fn apply(
    api: &Api,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    applied: Value,
    ctx: &RequestCtx,
    sub: Subresource,
    force: bool,
    version: &str,
) -> ApiResult<(StatusCode, Value)> {
    if ctx.field_manager.is_empty() || ctx.field_manager == "unknown" {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![crate::error::Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: is required for apply patch".into(),
                field: "fieldManager".into(),
            }],
        ));
    }
    if !applied.is_object() {
        return Err(ApiError::BadRequest(
            "an apply patch must be an object".into(),
        ));
    }
    let applied_name = objects::name(&applied);
    if !applied_name.is_empty() && applied_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({applied_name}) does not match the name on the URL ({name})"
        )));
    }
    match api.get(info, ns, name, version).await {
        Err(ApiError::NotFound { .. }) if sub == Subresource::Main => {
            let mut obj = managed::apply(info, None, &applied, ctx, force, version, false)?;
            objects::meta_mut(&mut obj).insert("name".into(), Value::String(name.into()));
            let mut create_ctx = RequestCtx::new(ctx.user.clone());
            create_ctx.dry_run = ctx.dry_run;
            create_ctx.field_manager = ctx.field_manager.clone();
            create_ctx.field_validation = ctx.field_validation;
            create_ctx.applying = true;
            let created = api.create(info, ns, obj, &create_ctx, version).await;
            for w in create_ctx.take_warnings() {
                ctx.warn(w);
            }
            Ok((StatusCode::CREATED, created?))
        }
        Err(e) => Err(e),
        Ok(_) => {
            let mut apply_ctx = RequestCtx::new(ctx.user.clone());
            apply_ctx.dry_run = ctx.dry_run;
            apply_ctx.field_manager = ctx.field_manager.clone();
            apply_ctx.field_validation = ctx.field_validation;
            apply_ctx.applying = true;
            let result = api
                .write_loop(
                    info,
                    ns,
                    name,
                    &apply_ctx,
                    version,
                    false,
                    |old| {
                        managed::apply(
                            info,
                            Some(old),
                            &applied,
                            &apply_ctx,
                            force,
                            version,
                            sub == Subresource::Status,
                        )
                    },
                    sub,
                )
                .await;
            for w in apply_ctx.take_warnings() {
                ctx.warn(w);
            }
            Ok((StatusCode::OK, result?))
        }
    }
}
