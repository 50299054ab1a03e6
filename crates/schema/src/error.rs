//! Errors: the crate-level [`Error`] for failures of this crate itself, and the
//! Kubernetes-style [`FieldError`]s that schema processing reports about an object.

use std::fmt;

use serde_json::Value;

/// Failures of the crate itself (not of the objects it checks).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An embedded CRD schema file (under `crds/`) is not valid YAML or lacks `openAPIV3Schema`.
    #[error("embedded schema file {file} cannot be parsed")]
    EmbeddedSchema {
        /// The file name under `crates/schema/crds/`.
        file: &'static str,
        /// The YAML parser's complaint.
        #[source]
        source: serde_yaml::Error,
    },
    /// An embedded CRD schema file parsed, but has no `openAPIV3Schema` object at its top.
    #[error("embedded schema file {file} has no openAPIV3Schema object")]
    MissingOpenApiSchema {
        /// The file name under `crates/schema/crds/`.
        file: &'static str,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `reason` of a Kubernetes `StatusCause` (`details.causes[].reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// A required field is absent (`FieldValueRequired`).
    Required,
    /// A value breaks a constraint such as `pattern` or `minimum` (`FieldValueInvalid`).
    Invalid,
    /// A value is not one of the `enum` values (`FieldValueNotSupported`).
    NotSupported,
    /// A value has the wrong JSON type (`FieldValueTypeInvalid`).
    TypeInvalid,
    /// A string is longer than `maxLength` (`FieldValueTooLong`).
    TooLong,
    /// A list or map has more entries than allowed (`FieldValueTooMany`).
    TooMany,
    /// A set or map-list holds the same element or key twice (`FieldValueDuplicate`).
    Duplicate,
    /// The schema itself is broken, e.g. an unresolvable `$ref` (`InternalError`).
    Internal,
}

impl FieldErrorKind {
    /// The reason string Kubernetes puts in `StatusCause.reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Internal => "InternalError",
        }
    }
}

impl fmt::Display for FieldErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// One problem with one field, shaped like a Kubernetes `StatusCause`.
///
/// `field` has no leading dot (`spec.volumes[0].name`); `message` is the cause message
/// without the field (`Required value`); `Display` joins both as Kubernetes does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.template.spec.domain.memory.guest`.
    pub field: String,
    /// What kind of problem this is.
    pub reason: FieldErrorKind,
    /// Kubernetes-style message body, e.g. `Unsupported value: "x": supported values: "a"`.
    pub message: String,
}

impl FieldError {
    /// `Required value`.
    pub fn required(field: &str) -> Self {
        Self::new(
            field,
            FieldErrorKind::Required,
            "Required value".to_string(),
        )
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        let message = format!("Invalid value: {}: {detail}", go_repr(value));
        Self::new(field, FieldErrorKind::Invalid, message)
    }

    /// `Invalid value: "<actual type>": <field> in body must be of type <expected>: "<actual>"`.
    pub fn type_invalid(field: &str, expected: &str, actual: &str) -> Self {
        let subject = body_subject(field);
        let message = format!(
            "Invalid value: \"{actual}\": {subject} in body must be of type {expected}: \"{actual}\""
        );
        Self::new(field, FieldErrorKind::TypeInvalid, message)
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &Value, allowed: &[Value]) -> Self {
        let allowed: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Value::String(s) => format!("{s:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        let message = format!(
            "Unsupported value: {}: supported values: {}",
            go_repr(value),
            allowed.join(", ")
        );
        Self::new(field, FieldErrorKind::NotSupported, message)
    }

    /// `Too long: must have at most <max> bytes`.
    pub fn too_long(field: &str, max: u64) -> Self {
        let message = format!("Too long: must have at most {max} bytes");
        Self::new(field, FieldErrorKind::TooLong, message)
    }

    /// `Too many: <actual>: must have at most <max> items`.
    pub fn too_many(field: &str, actual: usize, max: u64) -> Self {
        let message = format!("Too many: {actual}: must have at most {max} items");
        Self::new(field, FieldErrorKind::TooMany, message)
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: &str, value: &Value) -> Self {
        let message = format!("Duplicate value: {}", go_repr(value));
        Self::new(field, FieldErrorKind::Duplicate, message)
    }

    /// `Internal error: <detail>`.
    pub fn internal(field: &str, detail: &str) -> Self {
        let message = format!("Internal error: {detail}");
        Self::new(field, FieldErrorKind::Internal, message)
    }

    fn new(field: &str, reason: FieldErrorKind, message: String) -> Self {
        Self {
            field: field.to_string(),
            reason,
            message,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// What [`crate::process`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Validation failures, in document order.
    pub errors: Vec<FieldError>,
    /// Fields the schema does not know, as dotted paths with a leading dot
    /// (`.spec.foo`, `.spec.containers[0].foo`).
    pub unknown_fields: Vec<String>,
}

impl Outcome {
    /// True when there are no validation errors (unknown fields do not count).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The unknown fields as Kubernetes words them in warnings and strict errors:
    /// `unknown field "spec.foo"`.
    pub fn unknown_field_messages(&self) -> Vec<String> {
        self.unknown_fields
            .iter()
            .map(|p| format!("unknown field {:?}", p.strip_prefix('.').unwrap_or(p)))
            .collect()
    }
}

/// The subject Kubernetes' OpenAPI validator names in messages (`spec.x in body ...`).
pub(crate) fn body_subject(field: &str) -> &str {
    if field.is_empty() {
        "body"
    } else {
        field
    }
}

/// Renders a value the way Go's `%v`/`%q`/`%#v` show it in Kubernetes field errors.
pub(crate) fn go_repr(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_repr).collect();
            format!("[]interface {{}}{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k:?}:{}", go_repr(v)))
                .collect();
            format!("map[string]interface {{}}{{{}}}", inner.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_errors_read_like_kubernetes() {
        let err = FieldError::type_invalid("spec.running", "boolean", "string");
        assert_eq!(
            err.to_string(),
            "spec.running: Invalid value: \"string\": spec.running in body must be of type boolean: \"string\""
        );
        assert_eq!(err.reason.reason(), "FieldValueTypeInvalid");
    }

    #[test]
    fn unsupported_values_are_listed_quoted() {
        let err = FieldError::not_supported("spec.x", &json!("x"), &[json!("a"), json!("b")]);
        assert_eq!(
            err.message,
            "Unsupported value: \"x\": supported values: \"a\", \"b\""
        );
    }

    #[test]
    fn unknown_fields_are_worded_without_leading_dot() {
        let outcome = Outcome {
            errors: vec![],
            unknown_fields: vec![".spec.foo".to_string()],
        };
        assert_eq!(
            outcome.unknown_field_messages(),
            vec!["unknown field \"spec.foo\"".to_string()]
        );
    }
}
