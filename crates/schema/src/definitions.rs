//! Named schemas that `$ref`s point at, and helpers to rewrite and follow those references.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The reference prefixes understood by [`Definitions::resolve`].
const REF_PREFIXES: [&str; 3] = ["#/components/schemas/", "#/definitions/", "#/$defs/"];

/// OpenAPI v3 reference prefix (`components.schemas`).
pub const V3_REF_PREFIX: &str = "#/components/schemas/";
/// Swagger 2.0 reference prefix (`definitions`).
pub const V2_REF_PREFIX: &str = "#/definitions/";

/// Named schemas, keyed by schema name (`io.k8s.api.core.v1.Pod`).
///
/// A `$ref` of any of the forms `#/components/schemas/X`, `#/definitions/X` or `#/$defs/X`
/// resolves to the entry named `X`, so one set serves OpenAPI v2, v3 and JSON Schema styles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Definitions {
    schemas: BTreeMap<String, Value>,
}

impl Definitions {
    /// An empty set: enough for self-contained CRD schemas.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps an existing name → schema map.
    pub fn from_map(schemas: BTreeMap<String, Value>) -> Self {
        Self { schemas }
    }

    /// Adds or replaces one named schema.
    pub fn insert(&mut self, name: impl Into<String>, schema: Value) {
        self.schemas.insert(name.into(), schema);
    }

    /// The schema with exactly this name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schemas.get(name)
    }

    /// Follows a `$ref` string to its schema.
    pub fn resolve(&self, reference: &str) -> Option<&Value> {
        self.schemas.get(ref_name(reference)?)
    }

    /// All names and schemas, sorted by name.
    pub fn as_map(&self) -> &BTreeMap<String, Value> {
        &self.schemas
    }

    /// Number of named schemas.
    pub fn len(&self) -> usize {
        self.schemas.len()
    }

    /// True when there are no named schemas.
    pub fn is_empty(&self) -> bool {
        self.schemas.is_empty()
    }

    /// Every definition reachable from `root` through `$ref`s, transitively, by name.
    ///
    /// # Caveats
    /// Names that do not resolve are skipped silently; [`crate::process`] reports them.
    pub fn closure(&self, root: &Value) -> BTreeMap<String, Value> {
        let mut found = BTreeMap::new();
        let mut pending: Vec<String> = Vec::new();
        collect_refs(root, &mut pending);
        while let Some(name) = pending.pop() {
            if found.contains_key(&name) {
                continue;
            }
            if let Some(schema) = self.schemas.get(&name) {
                collect_refs(schema, &mut pending);
                found.insert(name, schema.clone());
            }
        }
        found
    }

    /// The closure of several named roots (each root included), as in [`Self::closure`].
    pub fn closure_of_names(&self, names: &[&str]) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for name in names {
            if let Some(schema) = self.schemas.get(*name) {
                out.insert((*name).to_string(), schema.clone());
                out.extend(self.closure(schema));
            }
        }
        out
    }
}

/// The definition name a `$ref` points at, for any of the three supported prefixes.
pub fn ref_name(reference: &str) -> Option<&str> {
    REF_PREFIXES
        .iter()
        .find_map(|prefix| reference.strip_prefix(prefix))
}

/// Names referenced anywhere inside `schema` (not transitively).
pub fn referenced_names(schema: &Value) -> BTreeSet<String> {
    let mut names = Vec::new();
    collect_refs(schema, &mut names);
    names.into_iter().collect()
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match child.as_str().filter(|_| key == "$ref") {
                    Some(reference) => out.extend(ref_name(reference).map(str::to_string)),
                    None => collect_refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, out)),
        _ => {}
    }
}

/// Rewrites every `$ref` inside `value` to use `prefix` (e.g. [`V3_REF_PREFIX`]).
pub fn rewrite_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let renamed = match child.as_str().filter(|_| key == "$ref") {
                    Some(reference) => ref_name(reference).map(|name| format!("{prefix}{name}")),
                    None => {
                        rewrite_refs(child, prefix);
                        None
                    }
                };
                if let Some(renamed) = renamed {
                    *child = Value::String(renamed);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rewrite_refs(item, prefix)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn all_three_reference_styles_resolve_to_the_same_schema() {
        let mut defs = Definitions::new();
        defs.insert("a.B", json!({"type": "string"}));
        for reference in [
            "#/components/schemas/a.B",
            "#/definitions/a.B",
            "#/$defs/a.B",
        ] {
            assert_eq!(defs.resolve(reference), Some(&json!({"type": "string"})));
        }
        assert_eq!(defs.resolve("#/elsewhere/a.B"), None);
    }

    #[test]
    fn closure_follows_references_transitively_and_survives_cycles() {
        let mut defs = Definitions::new();
        defs.insert(
            "A",
            json!({"properties": {"b": {"$ref": "#/definitions/B"}}}),
        );
        defs.insert("B", json!({"items": {"$ref": "#/$defs/A"}}));
        let closure = defs.closure(&json!({"$ref": "#/components/schemas/A"}));
        assert_eq!(closure.keys().collect::<Vec<_>>(), vec!["A", "B"]);
    }

    #[test]
    fn rewriting_refs_changes_only_the_prefix() {
        let mut schema = json!({"allOf": [{"$ref": "#/$defs/X"}], "description": "d"});
        rewrite_refs(&mut schema, V2_REF_PREFIX);
        assert_eq!(schema["allOf"][0]["$ref"], json!("#/definitions/X"));
    }
}
