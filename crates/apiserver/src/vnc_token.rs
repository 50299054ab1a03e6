//! The VM console proxy's token API (manual §7.3.1.3; upstream: SSP's `vm-console-proxy`,
//! an aggregated API server):
//! `GET /apis/token.kubevirt.io/v1alpha1/namespaces/{ns}/virtualmachines/{vm}/vnc?duration=`
//! answers `{"token": "…"}`, a ServiceAccount token of `<vm>-vnc-access` that may only `get`
//! `virtualmachineinstances/vnc` of that VM. Deleting the ServiceAccount revokes every token
//! made this way (the authenticator checks the account's uid on each request).
//!
//! Served only while the HyperConverged's `spec.featureGates.deployVmConsoleProxy` is true,
//! as the proxy is deployed only then. The caller needs `get` on
//! `virtualmachines/vnc` in `token.kubevirt.io` (ClusterRole `token.kubevirt.io:generate`,
//! checked by the RBAC middleware like any path) and, as the proxy checks with a
//! SubjectAccessReview, `get` on that VM's `virtualmachineinstances/vnc`: a token can never
//! grant more than its requester holds.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use oxivirt_store::ListOptions;
use serde_json::{json, Value};

use crate::context::{RequestCtx, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::handlers::json_response;
use crate::objects;
use crate::rbac::attributes::Attributes;
use crate::service::{Api, Subresource};

pub const GROUP: &str = "token.kubevirt.io";
/// Without `duration` a token lives 10 minutes; shorter is refused (TokenRequest's minimum).
const DEFAULT_DURATION: Duration = Duration::from_secs(600);
/// The labels the proxy puts on what it creates.
const APP: &str = "vm-console-proxy";

/// Entry point for every path under `/apis/token.kubevirt.io`.
pub async fn handle(api: Arc<Api>, req: Request) -> Response {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').skip(2).collect();
    let Some(user) = req.extensions().get::<UserInfo>().cloned() else {
        return ApiError::Unauthorized.into_response();
    };
    let result = match (req.method(), segments.as_slice()) {
        (&Method::GET, ["v1alpha1", "namespaces", ns, "virtualmachines", vm, "vnc"]) => {
            generate(&api, &user, ns, vm, req.uri().query()).await
        }
        _ => Err(not_served()),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// What kube-apiserver answers for a group nobody serves, with the reason it is not served.
fn not_served() -> ApiError {
    ApiError::NotFound {
        message: "the server could not find the requested resource (the VM console proxy is \
                  not deployed: set spec.featureGates.deployVmConsoleProxy to true in the \
                  HyperConverged)"
            .into(),
        group: GROUP.into(),
        kind: String::new(),
        name: String::new(),
    }
}

/// Whether any HyperConverged turns the console proxy on.
async fn proxy_deployed(api: &Api) -> ApiResult<bool> {
    let Some(info) = api
        .registry
        .by_group_resource("hco.kubevirt.io", "hyperconvergeds")
    else {
        return Ok(false);
    };
    let listed = api
        .store
        .list(&info.key_prefix(None), ListOptions::default())
        .await?;
    Ok(listed.items.iter().any(|kv| {
        serde_json::from_slice::<Value>(&kv.value)
            .is_ok_and(|hco| hco["spec"]["featureGates"]["deployVmConsoleProxy"] == json!(true))
    }))
}

/// `duration` of the query: a Go duration, default and minimum 10 minutes.
fn duration(query: Option<&str>) -> ApiResult<Duration> {
    let text = query
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned())
        .into_iter()
        .flatten()
        .find_map(|(k, v)| (k == "duration").then_some(v));
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(DEFAULT_DURATION);
    };
    if text.trim_start().starts_with('-') {
        return Err(ApiError::BadRequest(format!(
            "failed to parse duration: {text:?} is negative"
        )));
    }
    let duration = crate::vmi_relay::go_duration(&text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "failed to parse duration: time: invalid duration {text:?} (examples: 10m, 1h, 5h30m)"
        ))
    })?;
    if duration < DEFAULT_DURATION {
        return Err(ApiError::BadRequest(format!(
            "failed to request token: duration {text} is shorter than the minimum of 10 \
             minutes (spec.expirationSeconds: Invalid value: {}: may not specify a duration \
             less than 10 minutes)",
            duration.as_secs()
        )));
    }
    Ok(duration)
}

async fn generate(
    api: &Api,
    user: &UserInfo,
    ns: &str,
    vm_name: &str,
    query: Option<&str>,
) -> ApiResult<Response> {
    if !proxy_deployed(api).await? {
        return Err(not_served());
    }
    let duration = duration(query)?;
    // The proxy's own check: the requester must be able to open this VM's VNC.
    let vnc = Attributes {
        verb: "get".into(),
        group: "subresources.kubevirt.io".into(),
        resource: "virtualmachineinstances".into(),
        subresource: "vnc".into(),
        name: vm_name.into(),
        namespace: ns.into(),
        path: None,
    };
    if crate::rbac::authorizer::decide_fresh(api, user, &vnc)
        .await?
        .is_none()
    {
        return Err(ApiError::Forbidden(format!(
            "User \"{}\" does not have permission to access virtualmachineinstances/vnc \
             endpoint of {ns}/{vm_name}",
            user.name
        )));
    }
    let vm_info = info(api, "kubevirt.io", "virtualmachines")?;
    let vm = api
        .get(&vm_info, ns, vm_name, "v1")
        .await
        .map_err(|e| match e {
            ApiError::NotFound { .. } => ApiError::NotFound {
                message: format!("VirtualMachine does not exist: {e}"),
                group: "kubevirt.io".into(),
                kind: "virtualmachines".into(),
                name: vm_name.into(),
            },
            other => other,
        })?;
    let account = format!("{vm_name}-vnc-access");
    let sa = ensure_resources(api, ns, &account, &vm).await?;
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(duration.as_secs())
        .unwrap_or(crate::tokens::MAX_TTL_SECS)
        .min(crate::tokens::MAX_TTL_SECS);
    let (token, _) = api
        .tokens
        .issue(ns, &account, objects::uid(&sa), &[], now, ttl);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "token": token }),
        vec![],
    ))
}

fn info(api: &Api, group: &str, plural: &str) -> ApiResult<Arc<crate::registry::ResourceInfo>> {
    api.registry
        .by_group_resource(group, plural)
        .ok_or_else(|| ApiError::Internal(format!("{plural}.{group} is not served")))
}

/// The ServiceAccount, Role and RoleBinding `<vm>-vnc-access`, owned by the VM (so they go
/// with it), created or brought back to what they must say; returns the ServiceAccount.
async fn ensure_resources(api: &Api, ns: &str, name: &str, vm: &Value) -> ApiResult<Value> {
    let labels = json!({
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/part-of": APP,
        "app.kubernetes.io/managed-by": APP,
        "app.kubernetes.io/component": APP,
    });
    let owner = json!([{
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "name": objects::name(vm),
        "uid": objects::uid(vm),
    }]);
    let meta = json!({"name": name, "namespace": ns, "labels": labels, "ownerReferences": owner});
    let sa = ensure(
        api,
        ("", "serviceaccounts"),
        ns,
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}),
        &[],
    )
    .await
    .map_err(|e| ApiError::Internal(format!("failed to create service account: {e}")))?;
    ensure(
        api,
        ("rbac.authorization.k8s.io", "roles"),
        ns,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
            "rules": [{
                "apiGroups": ["subresources.kubevirt.io"],
                "resources": ["virtualmachineinstances/vnc"],
                "resourceNames": [objects::name(vm)],
                "verbs": ["get"],
            }],
        }),
        &["rules"],
    )
    .await
    .map_err(|e| ApiError::Internal(format!("failed to create role: {e}")))?;
    ensure(
        api,
        ("rbac.authorization.k8s.io", "rolebindings"),
        ns,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        }),
        &["subjects", "roleRef"],
    )
    .await
    .map_err(|e| ApiError::Internal(format!("failed to create role binding: {e}")))?;
    Ok(sa)
}

/// Creates `wanted`, or updates the existing object's labels, owner references and the
/// top-level `fields` where they differ. A few attempts absorb concurrent token requests.
async fn ensure(
    api: &Api,
    (group, plural): (&str, &str),
    ns: &str,
    wanted: Value,
    fields: &[&str],
) -> ApiResult<Value> {
    let info = info(api, group, plural)?;
    let ctx = RequestCtx::new(UserInfo::system("vm-console-proxy"));
    let name = objects::name(&wanted).to_string();
    let mut last = None;
    for _ in 0..5 {
        let existing = match api.get(&info, ns, &name, "v1").await {
            Ok(existing) => existing,
            Err(ApiError::NotFound { .. }) => {
                match api.create(&info, ns, wanted.clone(), &ctx, "v1").await {
                    Ok(created) => return Ok(created),
                    Err(e @ ApiError::AlreadyExists { .. }) => {
                        last = Some(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let mut updated = existing.clone();
        for key in ["labels", "ownerReferences"] {
            updated["metadata"][key] = wanted["metadata"][key].clone();
        }
        for field in fields {
            updated[*field] = wanted[*field].clone();
        }
        if updated == existing {
            return Ok(existing);
        }
        match api
            .update(&info, ns, &name, updated, &ctx, Subresource::Main, "v1")
            .await
        {
            Ok(written) => return Ok(written),
            Err(e @ ApiError::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ApiError::Timeout(format!("{plural} {ns}/{name} kept changing"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_defaults_to_and_may_not_go_under_ten_minutes() {
        assert_eq!(duration(None).ok(), Some(DEFAULT_DURATION));
        assert_eq!(duration(Some("duration=")).ok(), Some(DEFAULT_DURATION));
        assert_eq!(
            duration(Some("duration=5h30m")).ok(),
            Some(Duration::from_secs(5 * 3600 + 30 * 60))
        );
        assert_eq!(
            duration(Some("duration=10m")).ok(),
            Some(Duration::from_secs(600))
        );
        for bad in [
            "duration=9m59s",
            "duration=1h-",
            "duration=-20m",
            "duration=ten",
        ] {
            assert!(
                matches!(duration(Some(bad)), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
    }
}
