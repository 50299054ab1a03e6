//! Manifests as kubectl reads them: YAML streams, namespace placement and multi-object streams,
//! so a test can apply many upstream files in one `kubectl` call.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::kubectl::Kubectl;

/// Every non-empty document of a YAML stream (documents separated by `---` lines), as JSON.
///
/// # Panics
/// On text that is not YAML; `what` names it in the message.
pub fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            documents.push(String::new());
        } else if let Some(current) = documents.last_mut() {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents
        .iter()
        .map(|doc| {
            serde_yaml::from_str::<Value>(doc)
                .unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"))
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// The kinds the server serves cluster-scoped (`kubectl api-resources --namespaced=false`).
pub fn cluster_scoped_kinds(kubectl: &Kubectl) -> BTreeSet<String> {
    kubectl
        .ok(&["api-resources", "--namespaced=false", "--no-headers"])
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .map(str::to_owned)
        .collect()
}

/// `object` placed in `namespace` unless it names a namespace itself or its kind is
/// cluster-scoped, as `kubectl apply -n <namespace>` would place it.
pub fn placed_in(object: &Value, namespace: &str, cluster_scoped: &BTreeSet<String>) -> Value {
    let mut object = object.clone();
    let kind = object["kind"].as_str().unwrap_or_default();
    if !cluster_scoped.contains(kind) && object["metadata"]["namespace"].is_null() {
        object["metadata"]["namespace"] = Value::from(namespace);
    }
    object
}

/// The namespace an object names, if any.
pub fn namespace_of(object: &Value) -> Option<&str> {
    object["metadata"]["namespace"].as_str()
}

/// One stream holding `objects` in order, for `kubectl … -f -`.
///
/// A JSON stream (one object per line): kubectl reads input starting with `{` as JSON values
/// back to back, where a YAML `---` separator would be a syntax error.
pub fn stream(objects: &[Value]) -> String {
    objects
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A stream of Namespace manifests, for one `kubectl apply -f -` creating them all.
pub fn namespaces<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let objects: Vec<Value> = names
        .into_iter()
        .map(|name| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .collect();
    stream(&objects)
}

/// The objects of `kubectl get … -o json` output: a `List`'s items, or the one object.
///
/// # Panics
/// On output that is not JSON.
pub fn items(output: &str) -> Vec<Value> {
    let value: Value =
        serde_json::from_str(output).unwrap_or_else(|e| panic!("not JSON ({e}):\n{output}"));
    match value["items"].as_array() {
        Some(items) if value["kind"] == "List" => items.clone(),
        _ => vec![value],
    }
}

/// `kind/namespace/name` of an object, for messages.
pub fn describe(object: &Value) -> String {
    format!(
        "{}/{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}
