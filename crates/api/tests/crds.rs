//! Invariants every generated CRD keeps, and the per-kind size table for the docs.

use serde_json::{Map, Value};

use crate::common::{crds, each_node};

/// Keys a node of a CRD's structural schema may have (a subset of JSONSchemaProps).
const ALLOWED_KEYS: [&str; 17] = [
    "description",
    "type",
    "format",
    "enum",
    "required",
    "nullable",
    "properties",
    "items",
    "additionalProperties",
    "anyOf",
    "minimum",
    "maximum",
    "pattern",
    "default",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
];

fn node_problems(path: &str, node: &Map<String, Value>, problems: &mut Vec<String>) {
    for key in node.keys() {
        let known = ALLOWED_KEYS.contains(&key.as_str())
            || key == "x-kubernetes-list-map-keys"
            || key == "x-kubernetes-map-type";
        if !known {
            problems.push(format!("{path}: key {key}"));
        }
    }
    let in_any_of = path.ends_with("<anyOf>");
    let typed = node.contains_key("type")
        || node.contains_key("x-kubernetes-int-or-string")
        || node.contains_key("x-kubernetes-preserve-unknown-fields");
    if !typed && !in_any_of {
        problems.push(format!("{path}: no type"));
    }
    if node.contains_key("properties") && node.contains_key("additionalProperties") {
        problems.push(format!("{path}: properties and additionalProperties"));
    }
    let ty = node.get("type").and_then(Value::as_str);
    if (node.contains_key("properties") || node.contains_key("additionalProperties"))
        && ty != Some("object")
    {
        problems.push(format!("{path}: properties on a non-object"));
    }
    if ty == Some("array") && !node.contains_key("items") {
        problems.push(format!("{path}: array without items"));
    }
    if node
        .get("additionalProperties")
        .is_some_and(Value::is_boolean)
    {
        problems.push(format!("{path}: boolean additionalProperties"));
    }
    if node.get("x-kubernetes-list-type") == Some(&Value::from("map"))
        && !node.contains_key("x-kubernetes-list-map-keys")
    {
        problems.push(format!("{path}: map list without keys"));
    }
    if let Some(description) = node.get("description").and_then(Value::as_str) {
        if description.starts_with("oxivirt: missing swagger definition") {
            problems.push(format!("{path}: {description}"));
        }
    }
}

#[test]
fn every_crd_has_exactly_one_storage_version_and_an_object_root_schema() {
    for crd in crds() {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let versions = crd["spec"]["versions"].as_array().expect("versions");
        let storage = versions.iter().filter(|v| v["storage"] == true).count();
        assert_eq!(storage, 1, "{name}");
        for version in versions {
            assert_eq!(version["served"], true, "{name}");
            let schema = &version["schema"]["openAPIV3Schema"];
            assert_eq!(schema["type"], "object", "{name} {}", version["name"]);
            assert_eq!(
                schema["properties"]["metadata"],
                serde_json::json!({"type": "object"}),
                "{name}"
            );
        }
    }
}

#[test]
fn every_schema_is_structural_and_self_contained() {
    let mut problems = Vec::new();
    for crd in crds() {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        each_node(schema, "", &mut |path, node| {
            let mut found = Vec::new();
            node_problems(path, node, &mut found);
            problems.extend(found.into_iter().map(|p| format!("{name}: {p}")));
        });
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn kinds_with_a_status_keep_it_in_their_schema() {
    for crd in crds() {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let version = &crd["spec"]["versions"][0];
        if version["subresources"].get("status").is_some() {
            let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"];
            assert_eq!(status["type"], "object", "{name}");
        }
    }
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(oxivirt_api::custom_resource_definitions(), crds());
}

/// Prints the per-kind schema sizes used by `docs/api-compat.md`
/// (`cargo test -p oxivirt-api -- --nocapture schema_sizes`).
#[test]
fn schema_sizes_are_listed_for_every_kind() {
    let summaries = oxivirt_api::schema_summaries();
    assert_eq!(summaries.len(), crds().len());
    println!("| group | kind | schema from | properties | open objects |");
    println!("| --- | --- | --- | ---: | ---: |");
    for s in &summaries {
        println!(
            "| {} | {} | {} | {} | {} |",
            s.group, s.kind, s.origin, s.properties, s.open_nodes
        );
        assert!(
            s.properties >= 3,
            "{} has only {} properties",
            s.kind,
            s.properties
        );
    }
}
