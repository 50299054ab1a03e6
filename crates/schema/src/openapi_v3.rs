//! OpenAPI v3 documents: the `/openapi/v3` index and one document per group/version, as
//! kubectl (`explain`, field-validation discovery) reads them.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::core::core_schemas;
use crate::definitions::{rewrite_refs, V3_REF_PREFIX};
use crate::operations::{resource_paths, Flavor};
use crate::resource_doc::{ResourceDoc, DELETE_OPTIONS, LIST_META, OBJECT_META, PATCH, STATUS};
use crate::view::has_ref;

/// Description put on a custom resource's `metadata` when we replace its bare
/// `{type: object}` with a reference to `ObjectMeta`.
const METADATA_DESCRIPTION: &str = "Standard object metadata (name, namespace, labels, \
annotations and the other fields every object carries). More info: \
https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The `/openapi/v3` discovery document.
///
/// `gvs` pairs a document key (`api/v1`, `apis/kubevirt.io/v1`) with the hash of that
/// document (see [`content_hash`]); each entry points kubectl at
/// `/openapi/v3/<key>?hash=<hash>`.
pub fn openapi_v3_index(gvs: &[(String, String)]) -> Value {
    let paths: Map<String, Value> = gvs
        .iter()
        .map(|(gv, hash)| {
            let url = format!("/openapi/v3/{gv}?hash={hash}");
            (gv.clone(), json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

/// The OpenAPI 3.0 document of one group/version: `components.schemas` with every kind (tagged
/// with `x-kubernetes-group-version-kind`), its list kind, everything they reference and the
/// meta types (`ObjectMeta`, `ListMeta`, `Status`, `DeleteOptions`, `Patch`), plus `paths`
/// for list/create/deletecollection, get/replace/patch/delete, the `status` subresource and
/// (for namespaced kinds) the all-namespaces list.
///
/// `docs` should all share one group/version; the function does not check that.
pub fn openapi_v3_group_version(docs: &[ResourceDoc]) -> Value {
    let schemas = components(docs);
    let mut paths = Map::new();
    for doc in docs {
        paths.extend(resource_paths(doc, Flavor::V3));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer token authentication",
                    "name": "authorization",
                    "in": "header",
                },
            },
        },
        "security": [{"BearerToken": []}],
    })
}

/// All named schemas for a set of resources, refs in v3 form.
pub(crate) fn components(docs: &[ResourceDoc]) -> BTreeMap<String, Value> {
    let meta = [OBJECT_META, LIST_META, STATUS, DELETE_OPTIONS, PATCH];
    let mut schemas = core_schemas().definitions().closure_of_names(&meta);
    for doc in docs {
        schemas.extend(doc.definitions.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for doc in docs {
        let mut root = doc.schema.clone();
        link_object_meta(&mut root);
        if let Value::Object(map) = &mut root {
            map.insert(
                "x-kubernetes-group-version-kind".into(),
                Value::Array(vec![doc.gvk()]),
            );
        }
        schemas.insert(doc.schema_name.clone(), root);
        if doc.supports("list") {
            schemas.insert(doc.list_schema_name(), doc.list_schema());
        }
    }
    for schema in schemas.values_mut() {
        rewrite_refs(schema, V3_REF_PREFIX);
    }
    schemas
}

/// Points a root schema's bare `metadata` (CRD style) at `ObjectMeta`, as Kubernetes does
/// when it publishes custom resources, so `kubectl explain <kind>.metadata` shows its fields.
fn link_object_meta(root: &mut Value) {
    let Some(Value::Object(props)) = root.get_mut("properties") else {
        return;
    };
    if props.get("metadata").is_some_and(has_ref) {
        return;
    }
    props.insert(
        "metadata".into(),
        json!({
            "description": METADATA_DESCRIPTION,
            "allOf": [{"$ref": format!("{V3_REF_PREFIX}{OBJECT_META}")}],
        }),
    );
}

/// A stable hex digest of a document's bytes, for the `hash` of [`openapi_v3_index`] entries
/// and `ETag`s. Not cryptographic: it only has to change when the document changes.
pub fn content_hash(bytes: &[u8]) -> String {
    let fnv = |seed: u64| {
        bytes.iter().fold(seed, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "{:016X}{:016X}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::core_schemas;
    use crate::kubevirt::kubevirt_resource_docs;

    #[test]
    fn index_points_at_hashed_group_version_documents() {
        let index = openapi_v3_index(&[("api/v1".into(), "ABC".into())]);
        assert_eq!(
            index["paths"]["api/v1"]["serverRelativeURL"],
            "/openapi/v3/api/v1?hash=ABC"
        );
    }

    #[test]
    fn kubevirt_document_has_tagged_kinds_and_object_meta() {
        let docs: Vec<_> = kubevirt_resource_docs()
            .into_iter()
            .filter(|d| d.group == "kubevirt.io")
            .collect();
        let doc = openapi_v3_group_version(&docs);
        let schemas = &doc["components"]["schemas"];
        let vm = &schemas["io.kubevirt.v1.VirtualMachine"];
        assert_eq!(
            vm["x-kubernetes-group-version-kind"][0],
            json!({"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachine"})
        );
        assert_eq!(
            vm["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(schemas[OBJECT_META]["properties"]["labels"].is_object());
        assert!(vm["properties"]["spec"]["properties"]["template"].is_object());
        assert!(schemas["io.kubevirt.v1.VirtualMachineList"].is_object());
    }

    #[test]
    fn every_patch_operation_declares_field_validation_and_its_kind() {
        let pods = core_schemas()
            .resource_doc("", "v1", "Pod")
            .expect("pod doc");
        let doc = openapi_v3_group_version(&[pods]);
        let paths = doc["paths"].as_object().expect("paths");
        let item = &paths["/api/v1/namespaces/{namespace}/pods/{name}"];
        for path in paths.values() {
            let Some(patch) = path.get("patch") else {
                continue;
            };
            assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
            let params = patch["parameters"].as_array().expect("params");
            assert!(params
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        }
        assert!(item["get"].is_object() && item["put"].is_object() && item["delete"].is_object());
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods"));
        assert!(paths.contains_key("/api/v1/pods"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/status"));
        let post = &paths["/api/v1/namespaces/{namespace}/pods"]["post"];
        assert_eq!(
            post["requestBody"]["content"]["*/*"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Pod"
        );
    }

    #[test]
    fn all_references_in_a_document_resolve() {
        let mut docs = core_schemas().resource_docs();
        docs.extend(kubevirt_resource_docs());
        let doc = openapi_v3_group_version(&docs);
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let names = crate::definitions::referenced_names(&doc);
        for name in names {
            assert!(schemas.contains_key(&name), "dangling reference to {name}");
        }
    }

    #[test]
    fn content_hash_changes_with_content() {
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
        assert_eq!(content_hash(b"a").len(), 32);
    }
}
