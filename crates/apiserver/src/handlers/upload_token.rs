//! `upload.cdi.kubevirt.io/v1beta1` `UploadTokenRequest` (cdi-apiserver's virtual resource):
//! create-only; answers with `status.token`, a JWT valid for 5 minutes that lets its bearer
//! upload into one claim (claims `operation: Upload`, `name`, `namespace`, `resource`). The
//! upload proxy ([`super::upload`]) accepts nothing else.
//!
//! Signed HS256 with a key derived from the cluster's token key for this purpose only (upstream
//! signs PS256 with cdi-apiserver's key; no client verifies it, only the proxy does).

use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::json_response;
use crate::error::{ApiError, ApiResult, Cause};
use crate::service::Api;

pub const GROUP: &str = "upload.cdi.kubevirt.io";
/// The token's issuer (upstream's upload token issuer).
const ISSUER: &str = "cdi-apiserver";
/// Upstream's lifetime of upload tokens.
pub const LIFETIME_SECS: i64 = 300;
/// What the token authorises.
const OPERATION: &str = "Upload";

/// The claim an upload token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTarget {
    pub namespace: String,
    pub name: String,
}

fn signer(api: &Api) -> crate::tokens::TokenSigner {
    api.tokens
        .derive("upload.cdi.kubevirt.io/v1beta1 upload token")
}

/// Issues a token for claim `namespace/name`, valid from `now` for [`LIFETIME_SECS`].
pub fn issue(api: &Api, namespace: &str, name: &str, now: i64) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let claims = json!({
        "iss": ISSUER, "iat": now, "nbf": now, "exp": now + LIFETIME_SECS,
        "operation": OPERATION, "name": name, "namespace": namespace,
        "resource": {"group": "", "version": "v1", "resource": "persistentvolumeclaims"},
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signer(api).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The claim a valid, unexpired upload token names; `None` for anything else.
pub fn verify(api: &Api, token: &str, now: i64) -> Option<UploadTarget> {
    let (input, signature) = token.rsplit_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    if !signer(api).verify_signature(input.as_bytes(), &signature) {
        return None;
    }
    let (_, claims) = input.split_once('.')?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
    let fresh = claims["exp"].as_i64().is_some_and(|exp| exp > now)
        && claims["nbf"].as_i64().is_some_and(|nbf| nbf <= now + 60);
    let for_claims = claims["resource"]["resource"] == "persistentvolumeclaims"
        && claims["resource"]["group"] == "";
    if claims["iss"] != ISSUER || claims["operation"] != OPERATION || !fresh || !for_claims {
        return None;
    }
    Some(UploadTarget {
        namespace: claims["namespace"].as_str()?.to_string(),
        name: claims["name"].as_str()?.to_string(),
    })
}

/// `uploadtokenrequests` in `ns`: POST to the collection mints a token; every other verb is
/// refused as upstream's virtual resource does.
///
/// # Errors
/// 405 for other verbs, 422 without `spec.pvcName`.
pub fn handle(
    api: &Api,
    method: &Method,
    ns: &str,
    name: Option<&str>,
    request: Value,
) -> ApiResult<Response> {
    if *method != Method::POST || name.is_some() {
        return Err(ApiError::MethodNotAllowed(format!(
            "{method} is not supported on uploadtokenrequests.{GROUP}: they can only be created"
        )));
    }
    let object_name = request["metadata"]["name"].as_str().unwrap_or_default();
    let pvc = request["spec"]["pvcName"].as_str().unwrap_or_default();
    if pvc.is_empty() {
        return Err(ApiError::invalid(
            GROUP,
            "UploadTokenRequest",
            object_name,
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: the claim to upload into".into(),
                field: "spec.pvcName".into(),
            }],
        ));
    }
    let now = chrono::Utc::now();
    let token = issue(api, ns, pvc, now.timestamp());
    let body = json!({
        "apiVersion": format!("{GROUP}/v1beta1"),
        "kind": "UploadTokenRequest",
        "metadata": {
            "name": object_name,
            "namespace": ns,
            "creationTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
        "spec": {"pvcName": pvc},
        "status": {"token": token},
    });
    Ok(json_response(StatusCode::CREATED, &body, vec![]))
}
