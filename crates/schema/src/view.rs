//! A schema node seen through its `$ref`s.
//!
//! Core Kubernetes schemas put structure behind references (`{"$ref": ...}` or, with a
//! description beside it, `{"allOf": [{"$ref": ...}], "description": ...}`), while CRD schemas
//! are inline. [`View`] flattens both shapes into an ordered list of schema objects ("parts"):
//! the node itself first, then what its references point at. Structural questions (type,
//! properties, items, defaults) take the first part that answers; value validations run for
//! every part on its own keywords.

use serde_json::{Map, Value};

use crate::definitions::Definitions;

/// How deep `$ref` chains may go before we assume a cycle.
const MAX_REF_DEPTH: usize = 32;

/// What `additionalProperties` says about keys not in `properties`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Additional<'a> {
    /// No `additionalProperties`: unknown keys are pruned (unless preserved).
    Unspecified,
    /// `additionalProperties: true`: any value is kept as is.
    Allowed,
    /// `additionalProperties: false`: unknown keys are pruned.
    Denied,
    /// `additionalProperties: {schema}`: every other key's value follows this schema.
    Schema(&'a Value),
}

/// One schema node and the definitions it references, flattened.
#[derive(Debug)]
pub(crate) struct View<'a> {
    parts: Vec<&'a Map<String, Value>>,
    /// The node is the `true` schema (or `false`, treated leniently): anything goes.
    any: bool,
    /// `$ref`s that did not resolve.
    pub(crate) unresolved: Vec<String>,
}

impl<'a> View<'a> {
    pub(crate) fn new(schema: &'a Value, defs: &'a Definitions) -> Self {
        let mut view = View {
            parts: Vec::new(),
            any: matches!(schema, Value::Bool(_)),
            unresolved: Vec::new(),
        };
        view.push(schema, defs, 0);
        view
    }

    fn push(&mut self, schema: &'a Value, defs: &'a Definitions, depth: usize) {
        let Value::Object(map) = schema else {
            return;
        };
        if depth > MAX_REF_DEPTH || self.parts.iter().any(|p| std::ptr::eq(*p, map)) {
            return;
        }
        self.parts.push(map);
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            match defs.resolve(reference) {
                Some(target) => self.push(target, defs, depth + 1),
                None => self.unresolved.push(reference.to_string()),
            }
        }
        if let Some(Value::Array(all_of)) = map.get("allOf") {
            for item in all_of.iter().filter(|item| is_ref_wrapper(item)) {
                self.push(item, defs, depth + 1);
            }
        }
    }

    /// The schema objects making up this node, the node itself first.
    pub(crate) fn parts(&self) -> &[&'a Map<String, Value>] {
        &self.parts
    }

    /// True for the `true` schema: no structure, no validation.
    pub(crate) fn is_any(&self) -> bool {
        self.any
    }

    fn first(&self, key: &str) -> Option<&'a Value> {
        self.parts.iter().find_map(|part| part.get(key))
    }

    fn flag(&self, key: &str) -> bool {
        self.parts
            .iter()
            .any(|part| part.get(key).and_then(Value::as_bool) == Some(true))
    }

    /// The declared `type`, if any part declares one.
    pub(crate) fn type_name(&self) -> Option<&'a str> {
        self.first("type").and_then(Value::as_str)
    }

    pub(crate) fn nullable(&self) -> bool {
        self.flag("nullable")
    }

    pub(crate) fn preserve_unknown(&self) -> bool {
        self.flag("x-kubernetes-preserve-unknown-fields")
    }

    pub(crate) fn int_or_string(&self) -> bool {
        self.flag("x-kubernetes-int-or-string")
    }

    pub(crate) fn embedded_resource(&self) -> bool {
        self.flag("x-kubernetes-embedded-resource")
    }

    pub(crate) fn default_value(&self) -> Option<&'a Value> {
        self.first("default")
    }

    /// The schema of property `name`, from the first part that lists it.
    pub(crate) fn property(&self, name: &str) -> Option<&'a Value> {
        self.parts
            .iter()
            .find_map(|part| part.get("properties")?.as_object()?.get(name))
    }

    /// Every declared property, first declaration winning, in declaration order.
    pub(crate) fn properties(&self) -> Vec<(&'a str, &'a Value)> {
        let mut out: Vec<(&'a str, &'a Value)> = Vec::new();
        for part in &self.parts {
            let Some(Value::Object(props)) = part.get("properties") else {
                continue;
            };
            for (name, schema) in props {
                if !out.iter().any(|(seen, _)| *seen == name.as_str()) {
                    out.push((name.as_str(), schema));
                }
            }
        }
        out
    }

    pub(crate) fn additional(&self) -> Additional<'a> {
        match self.first("additionalProperties") {
            None => Additional::Unspecified,
            Some(Value::Bool(true)) => Additional::Allowed,
            Some(Value::Bool(false)) => Additional::Denied,
            Some(schema) => Additional::Schema(schema),
        }
    }

    /// The `items` schema of an array node.
    pub(crate) fn items(&self) -> Option<&'a Value> {
        self.first("items").filter(|items| !items.is_array())
    }

    /// The schema for the value under `key` of an object: a declared property, else the
    /// `additionalProperties` schema.
    pub(crate) fn child(&self, key: &str) -> Option<&'a Value> {
        self.property(key).or(match self.additional() {
            Additional::Schema(schema) => Some(schema),
            _ => None,
        })
    }
}

/// True for `{"$ref": ...}` items of `allOf`, which describe structure rather than
/// extra validation and are therefore merged into the [`View`].
pub(crate) fn is_ref_wrapper(item: &Value) -> bool {
    item.get("$ref").is_some_and(Value::is_string)
}

/// True when the schema reaches its structure through a `$ref` (directly or via `allOf`).
pub(crate) fn has_ref(schema: &Value) -> bool {
    is_ref_wrapper(schema)
        || schema
            .get("allOf")
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(is_ref_wrapper))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn view_sees_properties_behind_an_all_of_reference() {
        let mut defs = Definitions::new();
        defs.insert(
            "Meta",
            json!({"type": "object", "properties": {"name": {"type": "string"}}}),
        );
        let schema = json!({"allOf": [{"$ref": "#/components/schemas/Meta"}], "description": "d"});
        let view = View::new(&schema, &defs);
        assert_eq!(view.type_name(), Some("object"));
        assert!(view.property("name").is_some());
        assert!(view.unresolved.is_empty());
    }

    #[test]
    fn unresolved_references_are_reported() {
        let defs = Definitions::new();
        let schema = json!({"$ref": "#/definitions/Nope"});
        let view = View::new(&schema, &defs);
        assert_eq!(view.unresolved, vec!["#/definitions/Nope".to_string()]);
    }
}
