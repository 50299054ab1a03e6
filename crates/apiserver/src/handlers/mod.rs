//! REST handlers for `/api/v1/...` and `/apis/{group}/{version}/...`.

mod binding;
pub mod clone_auth;
mod eviction;
mod list;
mod logs;
mod patch;
pub mod request;
mod token;
pub mod upload;
mod upload_token;
mod watch;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::context::{RequestCtx, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceInfo;
use crate::service::{Api, DeleteOptions, Subresource};
use crate::table::{self, IncludeObject};
use request::{
    content_type, decode_body, flag, parse_path, query_map, request_ctx, wants_table, MAX_BODY,
};

/// Serialises a JSON response, with the warnings gathered while handling it.
pub fn json_response(code: StatusCode, body: &Value, warnings: Vec<String>) -> Response {
    let mut response = (code, serde_json::to_vec(body).unwrap_or_default()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(&w).unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&text) {
            headers.append("Warning", v);
        }
    }
    response
}

/// Entry point for every resource request.
pub async fn dispatch(State(api): State<Arc<Api>>, req: Request) -> Response {
    match handle(api, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::TooLarge(
                "Request entity too large: limit is 3145728".into(),
            ))
        }
        Err(e) => Err(ApiError::BadRequest(format!(
            "reading the request body: {e}"
        ))),
    }
}

async fn handle(api: Arc<Api>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let path = parse_path(parts.uri.path())
        .ok_or_else(|| ApiError::not_found("", "", parts.uri.path()))?;
    let user = parts
        .extensions
        .get::<UserInfo>()
        .cloned()
        .ok_or(ApiError::Unauthorized)?;
    let query = query_map(&parts.uri);
    if path.group == "authentication.k8s.io"
        && path.resource == "selfsubjectreviews"
        && parts.method == Method::POST
    {
        let review = json!({
            "kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": {"username": user.name, "groups": user.groups}},
        });
        return Ok(json_response(StatusCode::CREATED, &review, vec![]));
    }
    if path.group == "authorization.k8s.io" {
        let body = read_body(body).await?;
        return crate::authz::handle(
            &api,
            &user,
            &path,
            &parts.method,
            &body,
            &content_type(&parts.headers),
        )
        .await;
    }
    let info = api
        .registry
        .lookup(&path.group, &path.version, &path.resource)
        .ok_or_else(|| ApiError::NotFound {
            message: "the server could not find the requested resource".to_string(),
            group: path.group.clone(),
            kind: path.resource.clone(),
            name: String::new(),
        })?;
    let ns = if info.namespaced {
        path.namespace.clone()
    } else {
        None
    };
    if info.namespaced && path.namespace.is_none() && path.name.is_some() {
        return Err(ApiError::not_found(
            &info.group,
            &info.plural,
            path.name.as_deref().unwrap_or(""),
        ));
    }
    if info.group == upload_token::GROUP && info.plural == "uploadtokenrequests" {
        let request = match parts.method {
            Method::POST => decode_body(&read_body(body).await?, &content_type(&parts.headers))?,
            _ => Value::Null,
        };
        let ns = ns.clone().unwrap_or_default();
        return upload_token::handle(&api, &parts.method, &ns, path.name.as_deref(), request);
    }
    if path.subresource.as_deref() == Some("eviction")
        && info.group.is_empty()
        && info.plural == "pods"
    {
        let ctx = request_ctx(user, &query, &parts.headers, &parts.method)?;
        let body = decode_body(&read_body(body).await?, &content_type(&parts.headers))?;
        let name = path.name.clone().unwrap_or_default();
        return eviction::evict(
            &api,
            &info,
            &ns.clone().unwrap_or_default(),
            &name,
            &body,
            ctx,
        )
        .await;
    }
    if path.subresource.as_deref() == Some("binding")
        && info.group.is_empty()
        && info.plural == "pods"
        && parts.method == Method::POST
    {
        let ctx = request_ctx(user, &query, &parts.headers, &parts.method)?;
        let body = decode_body(&read_body(body).await?, &content_type(&parts.headers))?;
        let name = path.name.clone().unwrap_or_default();
        let ns = ns.clone().unwrap_or_default();
        return binding::bind(&api, &info, &ns, &name, &body, ctx).await;
    }
    if path.subresource.as_deref() == Some("log")
        && info.group.is_empty()
        && info.plural == "pods"
        && parts.method == Method::GET
    {
        let name = path.name.clone().unwrap_or_default();
        return logs::pod_log(&api, &info, &ns.clone().unwrap_or_default(), &name, &query).await;
    }
    if path.subresource.as_deref() == Some("token")
        && info.group.is_empty()
        && info.plural == "serviceaccounts"
    {
        let body = decode_body(&read_body(body).await?, &content_type(&parts.headers))?;
        let name = path.name.clone().unwrap_or_default();
        return token::create(&api, &info, &ns.clone().unwrap_or_default(), &name, body).await;
    }
    let sub = match path.subresource.as_deref() {
        None => Subresource::Main,
        Some("status") if info.has_status => Subresource::Status,
        Some(other) => {
            return Err(ApiError::NotFound {
                message: format!(
                    "the server could not find the requested resource ({other} of {})",
                    info.group_resource()
                ),
                group: info.group.clone(),
                kind: info.plural.clone(),
                name: path.name.clone().unwrap_or_default(),
            })
        }
    };
    let version = path.version.clone();
    let ns_str = ns.clone().unwrap_or_default();
    let is_watch = path.legacy_watch || flag(&query, "watch");
    let table = wants_table(&parts.headers)
        .then(|| IncludeObject::parse(query.get("includeObject").map(String::as_str)));

    match (&parts.method, &path.name) {
        (&Method::GET, _) if is_watch => {
            watch::watch(
                api.clone(),
                info.clone(),
                ns,
                path.name.clone(),
                query,
                table,
                version,
            )
            .await
        }
        (&Method::GET, None) => {
            let page = list::list(&api, &info, ns.as_deref(), &query, &version).await?;
            let mut meta = json!({"resourceVersion": page.revision.to_string()});
            if let Some(c) = &page.continue_token {
                meta["continue"] = json!(c);
            }
            let body = match table {
                Some(include) => table::build(&columns(&info), &page.items, include, meta, true),
                None => json!({
                    "kind": info.list_kind,
                    "apiVersion": info.api_version(&version),
                    "metadata": meta,
                    "items": page.items,
                }),
            };
            Ok(json_response(
                StatusCode::OK,
                &body,
                warnings_for(&info, &version),
            ))
        }
        (&Method::GET, Some(name)) => {
            let obj = api.get(&info, &ns_str, name, &version).await?;
            let body = match table {
                Some(include) => {
                    let rv = obj
                        .pointer("/metadata/resourceVersion")
                        .cloned()
                        .unwrap_or(Value::Null);
                    table::build(
                        &columns(&info),
                        &[obj],
                        include,
                        json!({"resourceVersion": rv}),
                        true,
                    )
                }
                None => obj,
            };
            Ok(json_response(
                StatusCode::OK,
                &body,
                warnings_for(&info, &version),
            ))
        }
        (&Method::POST, None) => {
            let ctx = request_ctx(user, &query, &parts.headers, &parts.method)?;
            let body = decode_body(&read_body(body).await?, &content_type(&parts.headers))?;
            check_type_meta(&info, &body, &version)?;
            let created = api.create(&info, &ns_str, body, &ctx, &version).await?;
            Ok(respond(
                StatusCode::CREATED,
                &created,
                &ctx,
                &info,
                &version,
            ))
        }
        (&Method::PUT, Some(name)) => {
            let ctx = request_ctx(user, &query, &parts.headers, &parts.method)?;
            let body = decode_body(&read_body(body).await?, &content_type(&parts.headers))?;
            check_type_meta(&info, &body, &version)?;
            let updated = api
                .update(&info, &ns_str, name, body, &ctx, sub, &version)
                .await?;
            Ok(respond(StatusCode::OK, &updated, &ctx, &info, &version))
        }
        (&Method::PATCH, Some(name)) => {
            let ctx = request_ctx(user, &query, &parts.headers, &parts.method)?;
            let ct = content_type(&parts.headers);
            let raw = read_body(body).await?;
            let force = flag(&query, "force");
            let (code, obj) = patch::patch(
                &api, &info, &ns_str, name, &ct, &raw, &ctx, sub, force, &version,
            )
            .await?;
            Ok(respond(code, &obj, &ctx, &info, &version))
        }
        (&Method::DELETE, Some(name)) => {
            let ctx = request_ctx(user, &query, &parts.headers, &parts.method)?;
            let raw = read_body(body).await?;
            let opts = delete_options(&query, &raw)?;
            let mut ctx = ctx;
            ctx.dry_run |= opts.dry_run;
            let outcome = api
                .delete(&info, &ns_str, name, &opts, &ctx, &version)
                .await?;
            let code = if outcome.deleted_now {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            Ok(respond(code, &outcome.object, &ctx, &info, &version))
        }
        (&Method::DELETE, None) => {
            let ctx = request_ctx(user, &query, &parts.headers, &parts.method)?;
            let raw = read_body(body).await?;
            let opts = delete_options(&query, &raw)?;
            let mut ctx = ctx;
            ctx.dry_run |= opts.dry_run;
            let page = list::list(&api, &info, ns.as_deref(), &query, &version).await?;
            let mut deleted = Vec::new();
            for obj in page.items {
                let name = crate::objects::name(&obj).to_string();
                let obj_ns = crate::objects::namespace(&obj).to_string();
                match api
                    .delete(&info, &obj_ns, &name, &opts, &ctx, &version)
                    .await
                {
                    Ok(o) => deleted.push(o.object),
                    Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            let body = json!({
                "kind": info.list_kind, "apiVersion": info.api_version(&version),
                "metadata": {}, "items": deleted,
            });
            Ok(json_response(StatusCode::OK, &body, ctx.take_warnings()))
        }
        (method, _) => Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource: {method}"
        ))),
    }
}

fn columns(info: &ResourceInfo) -> Vec<table::Column> {
    if info.columns.is_empty() {
        table::default_columns()
    } else {
        info.columns.clone()
    }
}

fn respond(
    code: StatusCode,
    obj: &Value,
    ctx: &RequestCtx,
    info: &ResourceInfo,
    version: &str,
) -> Response {
    let mut warnings = warnings_for(info, version);
    warnings.extend(ctx.take_warnings());
    json_response(code, obj, warnings)
}

fn deprecation_warning(info: &ResourceInfo, version: &str) -> Option<String> {
    (info.group == "kubevirt.io" && version == "v1alpha3").then(|| {
        format!("kubevirt.io/{version} is now deprecated and will be removed in a future release.")
    })
}

fn warnings_for(info: &ResourceInfo, version: &str) -> Vec<String> {
    deprecation_warning(info, version).into_iter().collect()
}

/// A body's apiVersion and kind must name the resource it is sent to.
fn check_type_meta(info: &ResourceInfo, body: &Value, version: &str) -> ApiResult<()> {
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if (!kind.is_empty() && kind != info.kind)
        || (!api_version.is_empty() && api_version != info.api_version(version))
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({}) or the kind ({kind}) does not match {}",
            info.api_version(version),
            info.kind
        )));
    }
    Ok(())
}

fn delete_options(
    query: &std::collections::HashMap<String, String>,
    raw: &bytes::Bytes,
) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions {
        propagation: query.get("propagationPolicy").cloned(),
        ..Default::default()
    };
    if !raw.iter().all(u8::is_ascii_whitespace) {
        let body: Value = serde_json::from_slice(raw)
            .map_err(|e| ApiError::BadRequest(format!("DeleteOptions: json parse error: {e}")))?;
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = Some(p.to_string());
        }
        if body.get("orphanDependents") == Some(&json!(true)) && opts.propagation.is_none() {
            opts.propagation = Some("Orphan".into());
        }
        opts.precondition_uid = body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.precondition_rv = body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.dry_run = body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    }
    Ok(opts)
}
