//! The one mapping from failures to Kubernetes `Status` responses.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One field-level cause inside `Status.details.causes`.
#[derive(Debug, Clone)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// What the API answers when a request fails. Every variant maps to one HTTP code and
/// one Kubernetes `reason`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The object or collection does not exist.
    #[error("{message}")]
    NotFound {
        message: String,
        group: String,
        kind: String,
        name: String,
    },
    /// Create of a name that is taken.
    #[error("{message}")]
    AlreadyExists {
        message: String,
        group: String,
        kind: String,
        name: String,
    },
    /// Optimistic-concurrency failure or a precondition mismatch.
    #[error("{message}")]
    Conflict {
        message: String,
        group: String,
        kind: String,
        name: String,
    },
    /// The request is malformed (bad JSON, bad selector, mismatched namespace).
    #[error("{0}")]
    BadRequest(String),
    /// The object fails validation; causes name the fields.
    #[error("{message}")]
    Invalid {
        message: String,
        group: String,
        kind: String,
        name: String,
        causes: Vec<Cause>,
    },
    /// The caller is not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// No credentials, or credentials we do not accept.
    #[error("Unauthorized")]
    Unauthorized,
    /// The request body exceeds the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// A watch or list asked for history that has been compacted away.
    #[error("{0}")]
    Expired(String),
    /// The verb is not supported on this resource.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The content type of the body is not one we accept for this verb.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An eviction would violate a PodDisruptionBudget.
    #[error("{0}")]
    TooManyRequests(String),
    /// Too many retries against a contended object.
    #[error("{0}")]
    Timeout(String),
    /// A component the request needs (a node agent) cannot be reached.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// Anything else: logged in full, answered without internals.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(resource, group);
        ApiError::NotFound {
            message: format!("{qualified} \"{name}\" not found"),
            group: group.into(),
            kind: resource.into(),
            name: name.into(),
        }
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(resource, group);
        ApiError::AlreadyExists {
            message: format!("{qualified} \"{name}\" already exists"),
            group: group.into(),
            kind: resource.into(),
            name: name.into(),
        }
    }

    pub fn conflict(group: &str, resource: &str, name: &str, detail: &str) -> Self {
        let qualified = qualified(resource, group);
        ApiError::Conflict {
            message: format!("Operation cannot be fulfilled on {qualified} \"{name}\": {detail}"),
            group: group.into(),
            kind: resource.into(),
            name: name.into(),
        }
    }

    /// A 409 whose message is exactly `message` (server-side apply conflicts).
    pub fn conflict_plain(group: &str, resource: &str, name: &str, message: &str) -> Self {
        ApiError::Conflict {
            message: message.into(),
            group: group.into(),
            kind: resource.into(),
            name: name.into(),
        }
    }

    pub fn modified(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// A 422 whose message lists every cause, as the Kubernetes apiserver words it.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = if list.len() == 1 {
            format!("{qualified} \"{name}\" is invalid: {}", list[0])
        } else {
            format!("{qualified} \"{name}\" is invalid: [{}]", list.join(", "))
        };
        ApiError::Invalid {
            message,
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
            causes,
        }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        ApiError::Internal(err.to_string())
    }

    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Expired(_) => StatusCode::GONE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::TooLarge(_) => "RequestEntityTooLarge",
            ApiError::Expired(_) => "Expired",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::TooManyRequests(_) => "TooManyRequests",
            ApiError::Timeout(_) => "Timeout",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let message = match self {
            ApiError::Internal(_) => "an internal error occurred; see the server log".to_string(),
            other => other.to_string(),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            ApiError::NotFound {
                group, kind, name, ..
            }
            | ApiError::AlreadyExists {
                group, kind, name, ..
            }
            | ApiError::Conflict {
                group, kind, name, ..
            } => Some(json!({"name": name, "group": group, "kind": kind})),
            ApiError::Invalid {
                group,
                kind,
                name,
                causes,
                ..
            } => Some(json!({
                "name": name, "group": group, "kind": kind,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason, "message": c.message, "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            _ => None,
        };
        if let Some(details) = details {
            status["details"] = details;
        }
        status
    }
}

fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed with an internal error");
        }
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut response = (self.code(), body).into_response();
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl From<oxivirt_store::Error> for ApiError {
    fn from(err: oxivirt_store::Error) -> Self {
        match err {
            oxivirt_store::Error::Compacted {
                requested,
                compacted,
            } => ApiError::Expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            other => ApiError::Internal(format!("store: {other}")),
        }
    }
}
