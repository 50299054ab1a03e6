//! Field ownership (`metadata.managedFields`) for ordinary writes and server-side apply,
//! delegated to the patch crate.

use oxivirt_patch::{ApplyError, ApplyOptions, AtomicLists, CoreKindsMeta, PatchMeta};
use serde_json::Value;

use crate::context::RequestCtx;
use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::registry::{ResourceInfo, SchemaSource};

/// How lists of a resource merge: built-in kinds use Kubernetes' merge keys; custom
/// resources treat lists as atomic.
pub fn patch_meta(info: &ResourceInfo) -> Box<dyn PatchMeta + Send + Sync> {
    match info.schema {
        SchemaSource::Core(_) => Box::new(CoreKindsMeta::for_kind(&info.kind)),
        _ => Box::new(AtomicLists),
    }
}

/// Records the fields a create, update or patch set as owned by the request's manager.
pub fn record_update(info: &ResourceInfo, old: Option<&Value>, new: &mut Value, ctx: &RequestCtx) {
    if ctx.applying {
        return;
    }
    let api_version = new
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let meta = patch_meta(info);
    oxivirt_patch::record_update(
        old,
        new,
        ctx.manager(),
        &api_version,
        &objects::now_rfc3339(),
        meta.as_ref(),
    );
}

/// Server-side apply of `applied` onto `live` (None: the object is created).
pub fn apply(
    info: &ResourceInfo,
    live: Option<&Value>,
    applied: &Value,
    ctx: &RequestCtx,
    force: bool,
    version: &str,
    status: bool,
) -> ApiResult<Value> {
    let meta = patch_meta(info);
    let opts = ApplyOptions {
        manager: ctx.manager().to_string(),
        force,
        api_version: info.api_version(version),
        time: objects::now_rfc3339(),
        meta: meta.as_ref(),
        subresource: status.then(|| "status".to_string()),
    };
    let mut result = oxivirt_patch::apply(live, applied, &opts).map_err(|e| match e {
        ApplyError::Conflicts(_) => ApiError::conflict_plain(
            &info.group,
            &info.plural,
            objects::name(applied),
            &e.to_string(),
        ),
        other => ApiError::BadRequest(format!("apply failed: {other}")),
    })?;
    if let Some(live) = live {
        // The live resourceVersion is the precondition of the compare-and-swap write.
        if let Some(rv) = objects::resource_version(live) {
            objects::meta_mut(&mut result)
                .insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
    }
    Ok(result)
}
