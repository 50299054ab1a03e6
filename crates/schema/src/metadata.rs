//! `metadata` of a resource root or of an `x-kubernetes-embedded-resource` object whose schema
//! does not spell out `ObjectMeta` (CRD schemas say only `metadata: {type: object}`).
//!
//! As in Kubernetes, such metadata is checked as an `ObjectMeta`: unknown keys are reported
//! and pruned, well-known keys get type checks, and only `name` and `generateName` are
//! validated against the CRD schema's own `metadata.properties`.

use serde_json::Value;

use crate::checks::{is_integer, json_type_name};
use crate::error::FieldError;
use crate::structural::{field, Ctx, Walker};
use crate::view::View;

/// The fields of `ObjectMeta` (apimachinery `meta/v1`).
pub const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// What JSON shape each well-known `ObjectMeta` field must have.
enum Shape {
    String,
    Integer,
    StringMap,
    StringList,
    List,
}

fn shape(key: &str) -> Shape {
    match key {
        "generation" | "deletionGracePeriodSeconds" => Shape::Integer,
        "labels" | "annotations" => Shape::StringMap,
        "finalizers" => Shape::StringList,
        "ownerReferences" | "managedFields" => Shape::List,
        _ => Shape::String,
    }
}

pub(crate) fn process(
    walker: &mut Walker<'_>,
    schema: Option<&Value>,
    path: &str,
    value: &mut Value,
    ctx: Ctx,
) {
    let Value::Object(map) = value else {
        if !value.is_null() {
            let actual = json_type_name(value);
            walker.error(FieldError::type_invalid(field(path), "object", actual));
        }
        return;
    };
    let unknown: Vec<String> = map
        .keys()
        .filter(|key| !OBJECT_META_FIELDS.contains(&key.as_str()))
        .cloned()
        .collect();
    for key in &unknown {
        walker.unknown(&format!("{path}.{key}"), ctx);
    }
    if walker.opts.prune {
        for key in &unknown {
            map.remove(key);
        }
    }
    for (key, child) in map.iter() {
        if OBJECT_META_FIELDS.contains(&key.as_str()) && !child.is_null() {
            check_shape(walker, &format!("{path}.{key}"), key, child);
        }
    }
    let Some(schema) = schema else {
        return;
    };
    let defs = walker.defs();
    let view = View::new(schema, defs);
    for key in ["name", "generateName"] {
        if let (Some(sub), Some(child)) = (view.property(key), map.get_mut(key)) {
            walker.node(sub, &format!("{path}.{key}"), child, ctx);
        }
    }
}

fn check_shape(walker: &mut Walker<'_>, path: &str, key: &str, value: &Value) {
    let name = field(path);
    let (ok, expected) = match shape(key) {
        Shape::String => (value.is_string(), "string"),
        Shape::Integer => (is_integer(value), "integer"),
        Shape::List => (value.is_array(), "array"),
        Shape::StringList => (value.is_array(), "array"),
        Shape::StringMap => (value.is_object(), "object"),
    };
    if !ok {
        walker.error(FieldError::type_invalid(
            name,
            expected,
            json_type_name(value),
        ));
        return;
    }
    match (shape(key), value) {
        (Shape::StringMap, Value::Object(entries)) => {
            for (entry_key, entry) in entries {
                if !entry.is_string() {
                    let at = format!("{name}.{entry_key}");
                    walker.error(FieldError::type_invalid(
                        &at,
                        "string",
                        json_type_name(entry),
                    ));
                }
            }
        }
        (Shape::StringList, Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                if !item.is_string() {
                    let at = format!("{name}[{index}]");
                    walker.error(FieldError::type_invalid(
                        &at,
                        "string",
                        json_type_name(item),
                    ));
                }
            }
        }
        _ => {}
    }
}
