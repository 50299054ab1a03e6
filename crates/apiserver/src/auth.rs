//! Authentication: client certificates signed by the cluster CA and bearer tokens.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::context::{UserInfo, GROUP_MASTERS};
use crate::error::ApiError;
use crate::service::Api;

/// The identity in a verified client certificate (CN = user, O = groups).
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity(pub Option<UserInfo>);

/// Static bearer tokens and the users they stand for.
pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
    api: Arc<Api>,
}

impl Authenticator {
    pub fn new(admin_token: &str, components_token: &str, api: Arc<Api>) -> Self {
        let mut tokens = HashMap::new();
        tokens.insert(
            admin_token.to_string(),
            UserInfo {
                name: "kubernetes-admin".into(),
                groups: vec![GROUP_MASTERS.into(), "system:authenticated".into()],
            },
        );
        tokens.insert(components_token.to_string(), UserInfo::system("components"));
        Authenticator { tokens, api }
    }

    /// The user behind a request, or None when it carries no credentials we accept.
    pub async fn authenticate(
        &self,
        authorization: Option<String>,
        peer: Option<UserInfo>,
    ) -> Option<UserInfo> {
        if let Some(value) = authorization {
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))?
                .trim();
            if let Some(user) = self.tokens.get(token) {
                return Some(user.clone());
            }
            return self.service_account(token).await;
        }
        peer
    }

    /// A ServiceAccount token is valid while it has not expired and the account it was
    /// issued for still exists (same uid): deleting the account revokes its tokens.
    async fn service_account(&self, token: &str) -> Option<UserInfo> {
        let claims = self
            .api
            .tokens
            .verify(token, chrono::Utc::now().timestamp())?;
        let key = format!(
            "/registry/core/serviceaccounts/{}/{}",
            claims.namespace, claims.name
        );
        let kv = self.api.store.get(&key).await.ok()??;
        let sa: serde_json::Value = serde_json::from_slice(&kv.value).ok()?;
        (crate::objects::uid(&sa) == claims.uid).then(|| claims.user())
    }
}

/// Paths anyone may read, as Kubernetes' `system:public-info-viewer` allows.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/version" | "/version/"
    )
}

/// Middleware: attaches the caller's `UserInfo` or answers 401.
pub async fn require_user(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let peer = req
        .extensions()
        .get::<PeerIdentity>()
        .and_then(|p| p.0.clone());
    match auth.authenticate(authorization, peer).await {
        Some(user) => match impersonate(user, req.headers()) {
            Ok(user) => {
                req.extensions_mut().insert(user);
                next.run(req).await
            }
            Err(e) => e.into_response(),
        },
        None => ApiError::Unauthorized.into_response(),
    }
}

/// Reads user and groups from a DER client certificate the TLS layer already verified.
pub fn identity_from_cert(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    groups.push("system:authenticated".into());
    Some(UserInfo { name, groups })
}

/// Applies `Impersonate-User`/`Impersonate-Group` headers (kubectl `--as`, `--as-group`).
/// Only administrators may impersonate, as the default RBAC of Kubernetes allows.
fn impersonate(user: UserInfo, headers: &http::HeaderMap) -> Result<UserInfo, ApiError> {
    let Some(name) = headers
        .get("Impersonate-User")
        .and_then(|v| v.to_str().ok())
    else {
        if headers.contains_key("Impersonate-Group") {
            return Err(ApiError::BadRequest(
                "requested impersonation of groups without a user".into(),
            ));
        }
        return Ok(user);
    };
    if !user.is_admin() {
        return Err(ApiError::Forbidden(format!(
            "users \"{name}\" is forbidden: User \"{}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
            user.name
        )));
    }
    let mut groups: Vec<String> = headers
        .get_all("Impersonate-Group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    Ok(UserInfo {
        name: name.to_string(),
        groups,
    })
}
