//! The Swagger 2.0 document (`/openapi/v2`).
//!
//! Built from the same components as v3, then lowered: refs become `#/definitions/...`,
//! `allOf: [{$ref}]` wrappers collapse to `$ref` with siblings (as Kubernetes' v2 has them),
//! `nullable` becomes `x-nullable`, and the v3-only `anyOf`/`oneOf`/`not` are dropped.

use serde_json::{json, Map, Value};

use crate::definitions::{rewrite_refs, V2_REF_PREFIX};
use crate::openapi_v3::components;
use crate::operations::{resource_paths, Flavor};
use crate::resource_doc::ResourceDoc;

/// A Swagger 2.0 document for `docs` (any mix of groups and versions), with
/// `x-kubernetes-group-version-kind` on every kind's definition and operation.
pub fn openapi_v2(docs: &[ResourceDoc]) -> Value {
    let mut definitions = Map::new();
    for (name, mut schema) in components(docs) {
        lower_schema(&mut schema);
        rewrite_refs(&mut schema, V2_REF_PREFIX);
        definitions.insert(name, schema);
    }
    let mut paths = Map::new();
    for doc in docs {
        paths.extend(resource_paths(doc, Flavor::V2));
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "type": "apiKey",
                "description": "Bearer token authentication",
                "name": "authorization",
                "in": "header",
            },
        },
        "security": [{"BearerToken": []}],
    })
}

/// Lowers one schema (and its subschemas) from OpenAPI 3.0 to Swagger 2.0.
///
/// Walks only schema positions, so data such as `default`, `enum` or `example` values and
/// property *names* like `anyOf` (in `JSONSchemaProps`) are left alone.
fn lower_schema(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    if map.remove("nullable") == Some(Value::Bool(true)) {
        map.insert("x-nullable".into(), Value::Bool(true));
    }
    for key in ["anyOf", "oneOf", "not"] {
        map.remove(key);
    }
    collapse_ref_wrapper(map);
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        props.values_mut().for_each(lower_schema);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = map.get_mut(key) {
            lower_schema(sub);
        }
    }
    if let Some(Value::Array(all_of)) = map.get_mut("allOf") {
        all_of.iter_mut().for_each(lower_schema);
    }
}

/// `{"allOf": [{"$ref": X}], "description": d}` → `{"$ref": X, "description": d}`.
fn collapse_ref_wrapper(map: &mut Map<String, Value>) {
    let single_ref = match map.get("allOf") {
        Some(Value::Array(items)) if items.len() == 1 => {
            items[0].get("$ref").filter(|r| r.is_string()).cloned()
        }
        _ => None,
    };
    let structural = ["type", "properties", "items", "$ref"];
    if let Some(reference) = single_ref {
        if !structural.iter().any(|k| map.contains_key(*k)) {
            map.remove("allOf");
            map.insert("$ref".into(), reference);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::core_schemas;
    use crate::kubevirt::kubevirt_resource_docs;

    #[test]
    fn v2_document_uses_definitions_refs_and_tags_kinds() {
        let mut docs = vec![core_schemas().resource_doc("", "v1", "Pod").expect("pod")];
        docs.extend(kubevirt_resource_docs());
        let doc = openapi_v2(&docs);
        assert_eq!(doc["swagger"], "2.0");
        let defs = &doc["definitions"];
        let pod = &defs["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(pod["properties"]["metadata"]["description"].is_string());
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        let text = doc.to_string();
        assert!(!text.contains("#/components/schemas/"));
        let vm = &defs["io.kubevirt.v1.VirtualMachine"];
        assert_eq!(
            vm["x-kubernetes-group-version-kind"][0]["group"],
            "kubevirt.io"
        );
    }

    #[test]
    fn v2_patch_operations_declare_field_validation() {
        let docs = kubevirt_resource_docs();
        let doc = openapi_v2(&docs);
        let item =
            &doc["paths"]["/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{name}"];
        let patch = &item["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "VirtualMachine"
        );
        let params = patch["parameters"].as_array().expect("params");
        assert!(params.iter().any(|p| p["name"] == "fieldValidation"
            && p["in"] == "query"
            && p["type"] == "string"));
        assert!(params.iter().any(|p| p["in"] == "body"));
    }

    #[test]
    fn lowering_keeps_data_and_property_names_intact() {
        let mut schema = json!({
            "nullable": true,
            "anyOf": [{"type": "integer"}],
            "default": {"anyOf": 1},
            "properties": {"anyOf": {"type": "array", "items": {"nullable": true}}},
        });
        lower_schema(&mut schema);
        assert_eq!(schema["x-nullable"], true);
        assert!(schema.get("anyOf").is_none());
        assert_eq!(schema["default"]["anyOf"], 1);
        assert_eq!(schema["properties"]["anyOf"]["items"]["x-nullable"], true);
    }
}
