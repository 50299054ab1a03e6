//! Helpers shared by the test modules.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// All CRDs, generated once per test binary.
pub fn crds() -> &'static [Value] {
    static CRDS: OnceLock<Vec<Value>> = OnceLock::new();
    CRDS.get_or_init(oxivirt_api::custom_resource_definitions)
}

/// The CRD of `kind`.
pub fn crd(kind: &str) -> &'static Value {
    crds()
        .iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}

/// The storage version's schema of `kind`.
pub fn schema(kind: &str) -> &'static Value {
    crd(kind)["spec"]["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["storage"] == true))
        .map(|v| &v["schema"]["openAPIV3Schema"])
        .unwrap_or_else(|| panic!("{kind} has no storage version"))
}

/// The shared reference folder (`OXIVIRT_SHARED_DIR`, default `<repo>/../shared`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("OXIVIRT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                &*std::env::var("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
            )
            .join("../../../shared")
        })
}

/// The embedded swagger document `name` (`kubevirt` or `cdi`).
pub fn swagger(name: &str) -> Value {
    let path = PathBuf::from(
        &*std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join(format!("swagger/{name}.json"));
    let text = std::fs::read_to_string(&path).expect("swagger copy is readable");
    serde_json::from_str(&text).expect("swagger is JSON")
}

/// Whether a schema node keeps unknown fields.
pub fn is_open(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == true
}

/// Calls `f(path, node)` on every schema node (paths like `.spec.items[].x{}`).
pub fn each_node(schema: &Value, path: &str, f: &mut dyn FnMut(&str, &Map<String, Value>)) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    f(path, obj);
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            each_node(prop, &format!("{path}.{name}"), f);
        }
    }
    if let Some(items) = obj.get("items") {
        each_node(items, &format!("{path}[]"), f);
    }
    if let Some(additional) = obj.get("additionalProperties") {
        each_node(additional, &format!("{path}{{}}"), f);
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        if let Some(list) = obj.get(key).and_then(Value::as_array) {
            for part in list {
                each_node(part, &format!("{path}<{key}>"), f);
            }
        }
    }
}

/// One step of a property path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Property(String),
    Item,
    MapValue,
}

/// Whether `schema` accepts a value at `steps` without pruning it.
pub fn accepts(schema: &Value, steps: &[Step]) -> bool {
    let Some((first, rest)) = steps.split_first() else {
        return true;
    };
    if is_open(schema) && child(schema, first).is_none() {
        return true;
    }
    match child(schema, first) {
        Some(next) => accepts(next, rest),
        None => false,
    }
}

fn child<'a>(schema: &'a Value, step: &Step) -> Option<&'a Value> {
    match step {
        Step::Property(name) => schema["properties"]
            .get(name)
            .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object())),
        Step::Item => schema.get("items"),
        Step::MapValue => schema.get("additionalProperties").filter(|a| a.is_object()),
    }
}

/// Renders steps as `.a[].b{}`.
pub fn render(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| match s {
            Step::Property(name) => format!(".{name}"),
            Step::Item => "[]".to_string(),
            Step::MapValue => "{}".to_string(),
        })
        .collect()
}

/// Parses every YAML document in `text` (skipping empty ones).
///
/// # Panics
/// On invalid YAML (use [`try_yaml_documents`] for text that may not be YAML).
pub fn yaml_documents(text: &str) -> Vec<Value> {
    try_yaml_documents(text).expect("valid YAML")
}

/// As [`yaml_documents`], but `None` for text that is not YAML.
pub fn try_yaml_documents(text: &str) -> Option<Vec<Value>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(doc).ok()?;
        let json: Value = serde_json::to_value(value).ok()?;
        if !json.is_null() {
            out.push(json);
        }
    }
    Some(out)
}

/// Outcome of processing `obj` as the API server would on create (no defaults).
pub fn check(obj: &Value) -> (Vec<String>, Vec<String>) {
    let kind = obj["kind"].as_str().expect("kind");
    let mut obj = obj.clone();
    let outcome = oxivirt_schema::process(
        schema(kind),
        &oxivirt_schema::Definitions::new(),
        &mut obj,
        oxivirt_schema::ProcessOptions {
            prune: true,
            apply_defaults: false,
            validate: true,
        },
    );
    let errors = outcome.errors.iter().map(|e| e.to_string()).collect();
    (outcome.unknown_fields, errors)
}
