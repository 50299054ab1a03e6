//! Helpers for the schemas written by hand (kinds with no upstream swagger here).
//!
//! They build structural-schema JSON; [`kubevirt`] and [`cdi`] splice in a fully inlined
//! upstream definition so hand-written kinds reuse upstream types (node placement, PVC
//! specs, DataImportCron specs, ...).

use serde_json::{json, Map, Value};

use crate::swagger;

pub(crate) fn string() -> Value {
    json!({"type": "string"})
}

pub(crate) fn boolean() -> Value {
    json!({"type": "boolean"})
}

pub(crate) fn integer() -> Value {
    json!({"type": "integer"})
}

/// An integer in `min..=max`.
pub(crate) fn integer_in(min: i64, max: i64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

/// A string limited to `values`.
pub(crate) fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

pub(crate) fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

/// A resource quantity or any other int-or-string value.
pub(crate) fn int_or_string() -> Value {
    json!({
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": true,
    })
}

pub(crate) fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

pub(crate) fn strings() -> Value {
    array(string())
}

/// A map from strings to `values` (labels, parameters, ...).
pub(crate) fn map_of(values: Value) -> Value {
    json!({"type": "object", "additionalProperties": values})
}

pub(crate) fn string_map() -> Value {
    map_of(string())
}

/// An object with the given properties (given as a JSON object).
pub(crate) fn object(properties: Value) -> Value {
    json!({"type": "object", "properties": properties})
}

/// An object whose content is not modelled: everything in it is kept.
pub(crate) fn open() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// An object with typed `properties` that also keeps fields it does not know.
pub(crate) fn open_object(properties: Value) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Adds (or replaces) a description.
pub(crate) fn doc(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

/// Marks `fields` of an object schema as required.
pub(crate) fn required(mut schema: Value, fields: &[&str]) -> Value {
    schema["required"] = json!(fields);
    schema
}

/// Definition `name` of KubeVirt's swagger, inlined.
pub(crate) fn kubevirt(name: &str) -> Value {
    swagger::kubevirt().schema(name)
}

/// Definition `name` of CDI's swagger, inlined.
pub(crate) fn cdi(name: &str) -> Value {
    swagger::cdi().schema(name)
}

/// A `metav1.Condition`-like entry (`type`, `status`, `reason`, `message`, times).
pub(crate) fn condition() -> Value {
    required(
        object(json!({
            "type": string(),
            "status": string(),
            "reason": string(),
            "message": string(),
            "lastTransitionTime": date_time(),
            "lastHeartbeatTime": date_time(),
            "lastProbeTime": date_time(),
            "observedGeneration": integer(),
        })),
        &["type", "status"],
    )
}

pub(crate) fn conditions() -> Value {
    array(condition())
}

/// A label selector (`matchLabels`, `matchExpressions`).
pub(crate) fn label_selector() -> Value {
    kubevirt("k8s.io.apimachinery.pkg.apis.meta.v1.LabelSelector")
}

/// The root schema of a kind: `apiVersion`, `kind`, `metadata` plus `fields`.
pub(crate) fn root(description: &str, fields: Value) -> Value {
    let mut properties = Map::new();
    properties.insert(
        "apiVersion".into(),
        doc(
            string(),
            "APIVersion defines the versioned schema of this representation of an object.",
        ),
    );
    properties.insert(
        "kind".into(),
        doc(
            string(),
            "Kind is a string value representing the REST resource this object represents.",
        ),
    );
    properties.insert("metadata".into(), json!({"type": "object"}));
    if let Value::Object(fields) = fields {
        properties.extend(fields);
    }
    json!({
        "description": description,
        "type": "object",
        "properties": properties,
    })
}

/// The root schema of a kind with a `spec` and a `status`.
pub(crate) fn spec_status(description: &str, spec: Value, status: Value) -> Value {
    root(description, json!({"spec": spec, "status": status}))
}
