//! Structural schema processing with Kubernetes CRD semantics: prune unknown fields, apply
//! defaults, validate — in that order per node, children before the node's own constraints.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::checks;
use crate::definitions::Definitions;
use crate::error::{FieldError, Outcome};
use crate::metadata;
use crate::view::{has_ref, Additional, View};

/// What [`process`] should do besides walking the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessOptions {
    /// Remove unknown fields (and `null`s of non-nullable fields) from the object.
    pub prune: bool,
    /// Fill absent fields that have a schema `default`.
    pub apply_defaults: bool,
    /// Check values against the schema and report [`FieldError`]s.
    pub validate: bool,
}

impl ProcessOptions {
    /// Prune, default and validate: what the API server does on create and update.
    pub fn all() -> Self {
        Self {
            prune: true,
            apply_defaults: true,
            validate: true,
        }
    }

    /// Only validate; the object is left untouched.
    pub fn validate_only() -> Self {
        Self {
            validate: true,
            ..Self::default()
        }
    }
}

/// Walks `obj` along `schema` (an `openAPIV3Schema` or a core kind's root schema).
///
/// Unknown fields (not in `properties`, with no `additionalProperties` and no
/// `x-kubernetes-preserve-unknown-fields`) are always listed in
/// [`Outcome::unknown_fields`] and removed only when `opts.prune` is set. At the root and in
/// `x-kubernetes-embedded-resource` objects, `apiVersion`, `kind` and `metadata` are always
/// known; such `metadata` is checked as an `ObjectMeta` (only `name` and `generateName` are
/// validated against the schema's own `metadata.properties`).
///
/// # Guarantees
/// Never panics on any schema or object; broken `$ref`s become `InternalError` causes.
///
/// # Caveats
/// `x-kubernetes-validations` (CEL) rules are ignored.
pub fn process(
    schema: &Value,
    defs: &Definitions,
    obj: &mut Value,
    opts: ProcessOptions,
) -> Outcome {
    let mut walker = Walker::new(defs, opts);
    walker.node(schema, "", obj, Ctx::default());
    walker.out
}

/// Per-node context passed down the walk.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ctx {
    /// The value came from a schema default: pruning it is silent.
    pub(crate) defaulted: bool,
}

pub(crate) struct Walker<'d> {
    defs: &'d Definitions,
    pub(crate) opts: ProcessOptions,
    pub(crate) out: Outcome,
}

/// The field path Kubernetes reports (`spec.x`) for an internal path (`.spec.x`).
pub(crate) fn field(path: &str) -> &str {
    path.strip_prefix('.').unwrap_or(path)
}

impl<'d> Walker<'d> {
    pub(crate) fn new(defs: &'d Definitions, opts: ProcessOptions) -> Self {
        Self {
            defs,
            opts,
            out: Outcome::default(),
        }
    }

    pub(crate) fn defs(&self) -> &'d Definitions {
        self.defs
    }

    pub(crate) fn error(&mut self, error: FieldError) {
        if self.opts.validate {
            self.out.errors.push(error);
        }
    }

    pub(crate) fn unknown(&mut self, path: &str, ctx: Ctx) {
        if !ctx.defaulted {
            self.out.unknown_fields.push(path.to_string());
        }
    }

    /// Processes one value against one schema node.
    pub(crate) fn node(&mut self, schema: &Value, path: &str, value: &mut Value, ctx: Ctx) {
        let defs = self.defs;
        let view = View::new(schema, defs);
        for reference in &view.unresolved {
            let detail = format!("unresolved schema reference {reference:?}");
            self.out
                .errors
                .push(FieldError::internal(field(path), &detail));
        }
        if view.is_any() {
            return;
        }
        if value.is_null() {
            if !view.nullable() {
                if let Some(expected) = expected_type(&view) {
                    self.error(FieldError::type_invalid(field(path), expected, "null"));
                }
            }
            return;
        }
        if let Some(expected) = expected_type(&view) {
            if !type_matches(&view, value) {
                let actual = checks::json_type_name(value);
                self.error(FieldError::type_invalid(field(path), expected, actual));
                return;
            }
        }
        match value {
            Value::Object(map) => self.object(&view, path, map, ctx),
            Value::Array(items) => {
                if let Some(item_schema) = view.items() {
                    for (index, item) in items.iter_mut().enumerate() {
                        self.node(item_schema, &format!("{path}[{index}]"), item, ctx);
                    }
                }
            }
            _ => {}
        }
        if self.opts.validate {
            let errors = checks::check_value(defs, &view, path, value);
            self.out.errors.extend(errors);
        }
    }

    fn object(&mut self, view: &View<'_>, path: &str, map: &mut Map<String, Value>, ctx: Ctx) {
        let embedded = view.embedded_resource();
        let resource_like = path.is_empty() || embedded;
        if self.opts.prune || self.opts.apply_defaults {
            let defs = self.defs;
            map.retain(|key, value| {
                !value.is_null()
                    || view
                        .child(key)
                        .is_none_or(|schema| View::new(schema, defs).nullable())
            });
        }
        let mut defaulted = BTreeSet::new();
        if self.opts.apply_defaults {
            let defs = self.defs;
            for (name, schema) in view.properties() {
                if map.contains_key(name) {
                    continue;
                }
                if let Some(default) = View::new(schema, defs).default_value() {
                    map.insert(name.to_string(), default.clone());
                    defaulted.insert(name.to_string());
                }
            }
        }
        if embedded {
            for key in ["apiVersion", "kind"] {
                if !map.contains_key(key) {
                    self.error(FieldError::required(field(&format!("{path}.{key}"))));
                }
            }
        }
        let preserve = view.preserve_unknown();
        let mut pruned = Vec::new();
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            let Some(value) = map.get_mut(&key) else {
                continue;
            };
            let child_path = format!("{path}.{key}");
            let child_ctx = Ctx {
                defaulted: ctx.defaulted || defaulted.contains(&key),
            };
            let declared = view.property(&key);
            if resource_like && key == "metadata" && !declared.is_some_and(has_ref) {
                metadata::process(self, declared, &child_path, value, child_ctx);
                continue;
            }
            if let Some(schema) = declared {
                self.node(schema, &child_path, value, child_ctx);
                continue;
            }
            if resource_like && (key == "apiVersion" || key == "kind") {
                if !value.is_string() {
                    let actual = checks::json_type_name(value);
                    self.error(FieldError::type_invalid(
                        field(&child_path),
                        "string",
                        actual,
                    ));
                }
                continue;
            }
            match view.additional() {
                Additional::Schema(schema) => self.node(schema, &child_path, value, child_ctx),
                Additional::Allowed => {}
                Additional::Unspecified | Additional::Denied if preserve => {}
                Additional::Unspecified | Additional::Denied => {
                    self.unknown(&child_path, child_ctx);
                    pruned.push(key);
                }
            }
        }
        if self.opts.prune {
            for key in pruned {
                map.remove(&key);
            }
        }
    }
}

/// The type name to put in a type error, if the node constrains the JSON type at all.
fn expected_type(view: &View<'_>) -> Option<&'static str> {
    if view.int_or_string() {
        return Some("integer or string");
    }
    match view.type_name()? {
        "object" => Some("object"),
        "array" => Some("array"),
        "string" => Some("string"),
        "integer" => Some("integer"),
        "number" => Some("number"),
        "boolean" => Some("boolean"),
        _ => None,
    }
}

fn type_matches(view: &View<'_>, value: &Value) -> bool {
    if view.int_or_string() {
        return value.is_string() || checks::is_integer(value);
    }
    match view.type_name() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => checks::is_integer(value),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    }
}

/// Validates `value` against a validation-only subschema (`anyOf` branches and the like)
/// without changing it, returning the errors.
pub(crate) fn branch_errors(
    defs: &Definitions,
    schema: &Value,
    path: &str,
    value: &Value,
) -> Vec<FieldError> {
    let mut walker = Walker::new(defs, ProcessOptions::validate_only());
    let mut copy = value.clone();
    walker.node(schema, path, &mut copy, Ctx { defaulted: true });
    walker.out.errors
}

#[cfg(test)]
#[path = "structural_tests.rs"]
mod tests;
