//! The request authoriser: every authenticated request passes [`authorize`] before it is
//! dispatched, and gets Kubernetes' exact 403 when RBAC does not allow it.
//!
//! Decisions read an in-memory [`Policy`] kept current by a store watch (as kube-apiserver
//! reads its informer caches). A denial is re-checked against the store before it is
//! answered, so a binding created a moment ago is always honoured: the cache can only make
//! a just-revoked permission last for the few milliseconds the watch takes.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use oxivirt_store::{ListOptions, WatchEvent};
use serde_json::json;

use super::aggregation;
use super::attributes::{self, Attributes};
use super::policy::{Policy, RBAC_PREFIX};
use crate::context::UserInfo;
use crate::error::ApiResult;
use crate::service::Api;

/// Authorises requests against RBAC.
pub struct Authorizer {
    api: Arc<Api>,
    cached: RwLock<Arc<Policy>>,
}

/// Why a request was allowed (`SubjectAccessReview.status.reason`), or `None` if denied.
pub type Decision = Option<String>;

impl Authorizer {
    /// Starts the authoriser and the task that keeps its policy cache current and the
    /// aggregated ClusterRoles in sync.
    pub fn start(api: Arc<Api>) -> Arc<Self> {
        let authorizer = Arc::new(Authorizer {
            api,
            cached: RwLock::new(Arc::new(Policy::default())),
        });
        tokio::spawn(watch_loop(authorizer.clone()));
        authorizer
    }

    /// Whether `user` may do what `attrs` describe.
    ///
    /// # Errors
    /// Store failures while re-reading the policy after a cache miss.
    pub async fn decide(&self, user: &UserInfo, attrs: &Attributes) -> ApiResult<Decision> {
        if user.is_admin() {
            return Ok(Some("user is in group system:masters".into()));
        }
        let cached = self
            .cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if cached.allows(user, attrs) {
            return Ok(Some("allowed by RBAC".into()));
        }
        decide_fresh(&self.api, user, attrs).await
    }
}

/// The decision over the policy as stored right now (access reviews use this directly).
///
/// # Errors
/// Store failures while listing the RBAC objects.
pub async fn decide_fresh(api: &Api, user: &UserInfo, attrs: &Attributes) -> ApiResult<Decision> {
    if user.is_admin() {
        return Ok(Some("user is in group system:masters".into()));
    }
    let policy = load(api).await?.0;
    Ok(policy
        .allows(user, attrs)
        .then(|| "allowed by RBAC".to_string()))
}

/// Every RBAC object in the store, and the revision it was read at.
///
/// # Errors
/// Store failures.
pub async fn load(api: &Api) -> ApiResult<(Policy, i64)> {
    let listed = api.store.list(RBAC_PREFIX, ListOptions::default()).await?;
    let mut policy = Policy::default();
    for kv in &listed.items {
        policy.apply(&kv.key, Some(&kv.value));
    }
    Ok((policy, listed.revision))
}

async fn watch_loop(authorizer: Arc<Authorizer>) {
    loop {
        if let Err(e) = watch_once(&authorizer).await {
            tracing::warn!(error = %e, "RBAC policy watch restarting");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn watch_once(authorizer: &Authorizer) -> anyhow::Result<()> {
    let (mut policy, revision) = load(&authorizer.api).await?;
    let mut watch = authorizer.api.store.watch(RBAC_PREFIX, revision).await?;
    loop {
        *authorizer.cached.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy.clone());
        let pending = aggregation::pending(&policy);
        if !pending.is_empty() {
            // Our own writes come back through the watch and settle at a fixed point.
            if let Err(e) = aggregation::write(&authorizer.api, pending).await {
                tracing::warn!(error = %e, "ClusterRole aggregation failed; retrying on the next change");
            }
        }
        let Some(event) = watch.next().await else {
            anyhow::bail!("the store watch of RBAC objects ended");
        };
        apply(&mut policy, event?);
        while let Some(Some(event)) = futures::FutureExt::now_or_never(watch.next()) {
            apply(&mut policy, event?);
        }
    }
}

fn apply(policy: &mut Policy, event: WatchEvent) {
    match event {
        WatchEvent::Put { kv, .. } => policy.apply(&kv.key, Some(&kv.value)),
        WatchEvent::Delete { prev, .. } => policy.apply(&prev.key, None),
    };
}

/// Middleware: answers 403 unless RBAC allows the request. Requests without a user are the
/// public paths the authenticator let through unauthenticated.
pub async fn authorize(
    State(authorizer): State<Arc<Authorizer>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(user) = req.extensions().get::<UserInfo>().cloned() else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    let attrs = attributes::from_request(req.method(), &path, req.uri().query());
    let mut checks = vec![attrs.clone()];
    checks.extend(attributes::kubevirt_subresource(&path, &attrs));
    for check in &checks {
        match authorizer.decide(&user, check).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::debug!(user = %user.name, verb = %check.verb, resource = %check.qualified_resource(), path = %path, "forbidden by RBAC");
                return forbidden(&user, check);
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

/// Kubernetes' 403 for a request RBAC does not allow, word for word.
pub fn forbidden(user: &UserInfo, attrs: &Attributes) -> Response {
    let reason = match &attrs.path {
        Some(path) => format!(
            "User \"{}\" cannot {} path \"{path}\"",
            user.name, attrs.verb
        ),
        None if attrs.namespace.is_empty() => format!(
            "User \"{}\" cannot {} resource \"{}\" in API group \"{}\" at the cluster scope",
            user.name,
            attrs.verb,
            attrs.qualified_resource(),
            attrs.group
        ),
        None => format!(
            "User \"{}\" cannot {} resource \"{}\" in API group \"{}\" in the namespace \"{}\"",
            user.name,
            attrs.verb,
            attrs.qualified_resource(),
            attrs.group,
            attrs.namespace
        ),
    };
    let qualified = match (attrs.resource.as_str(), attrs.group.as_str()) {
        ("", _) => String::new(),
        (r, "") => r.to_string(),
        (r, g) => format!("{r}.{g}"),
    };
    let message = match (qualified.as_str(), attrs.name.as_str()) {
        ("", _) => format!("forbidden: {reason}"),
        (q, "") => format!("{q} is forbidden: {reason}"),
        (q, name) => format!("{q} \"{name}\" is forbidden: {reason}"),
    };
    let mut status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Forbidden", "code": 403,
    });
    if attrs.path.is_none() {
        status["details"] =
            json!({"name": attrs.name, "group": attrs.group, "kind": attrs.resource});
    }
    let mut response = (
        StatusCode::FORBIDDEN,
        serde_json::to_vec(&status).unwrap_or_default(),
    )
        .into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn forbidden_messages_are_kubernetes_words() {
        let user = UserInfo {
            name: "viewer".into(),
            groups: vec![],
        };
        let attrs = Attributes {
            verb: "get".into(),
            group: "subresources.kubevirt.io".into(),
            resource: "virtualmachineinstances".into(),
            subresource: "console".into(),
            name: "vm1".into(),
            namespace: "team".into(),
            path: None,
        };
        let status = body(forbidden(&user, &attrs)).await;
        assert_eq!(
            status["message"],
            "virtualmachineinstances.subresources.kubevirt.io \"vm1\" is forbidden: User \"viewer\" cannot get resource \"virtualmachineinstances/console\" in API group \"subresources.kubevirt.io\" in the namespace \"team\""
        );
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["code"], 403);
        let list = Attributes {
            verb: "list".into(),
            resource: "nodes".into(),
            ..Default::default()
        };
        assert_eq!(
            body(forbidden(&user, &list)).await["message"],
            "nodes is forbidden: User \"viewer\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
        let path = Attributes {
            verb: "get".into(),
            path: Some("/metrics".into()),
            ..Default::default()
        };
        assert_eq!(
            body(forbidden(&user, &path)).await["message"],
            "forbidden: User \"viewer\" cannot get path \"/metrics\""
        );
    }
}
