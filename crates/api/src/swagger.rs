//! Upstream swagger (OpenAPI v2) definitions turned into self-contained structural schemas.
//!
//! KubeVirt's and CDI's `swagger.json` describe every kind through `$ref`s between
//! definitions. A CRD's `openAPIV3Schema` may not contain `$ref`s, so [`Swagger::kind_schema`]
//! inlines them and translates the swagger-isms that structural schemas express differently:
//!
//! | swagger | structural schema |
//! | --- | --- |
//! | `resource.Quantity`, `intstr.IntOrString` | `x-kubernetes-int-or-string` + `anyOf` integer/string |
//! | `meta/v1.Time`, `MicroTime` | `type: string, format: date-time` |
//! | `runtime.RawExtension`, `FieldsV1`, untyped nodes, untyped `additionalProperties` | `x-kubernetes-preserve-unknown-fields` |
//! | `ObjectMeta` below the root | `type: object, nullable, x-kubernetes-preserve-unknown-fields` (as upstream's CRDs) |
//! | the root `metadata` | `type: object` (the API server knows ObjectMeta) |
//! | a definition that refers to itself | `x-kubernetes-preserve-unknown-fields` where the cycle closes |
//!
//! Kept: `description` (the referring property's own wins), `type`, `format`, `enum`,
//! `required`, `nullable` and the `x-kubernetes-list-*`/`map-type` markers. Dropped:
//! swagger `default`s (Go zero values, which a structural schema would *apply*), patch
//! strategies and union markers.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// Marker put in the description of a `$ref` that names no definition. Tests assert that no
/// generated schema contains it.
pub(crate) const MISSING_DEFINITION: &str = "oxivirt: missing swagger definition";

/// Keys of a swagger schema node copied as they are.
const KEPT_KEYS: [&str; 8] = [
    "description",
    "enum",
    "required",
    "nullable",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "format",
];

/// Keys of a `$ref` site that override the referenced definition's.
const SITE_KEYS: [&str; 4] = [
    "description",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
];

/// One parsed swagger document.
pub(crate) struct Swagger {
    definitions: Map<String, Value>,
    /// Definitions upstream's CRDs keep open although swagger types them.
    open: &'static [&'static str],
}

/// KubeVirt's swagger (`swagger/kubevirt.json`), parsed on first use.
///
/// `v1.Clock` stays open as in upstream's CRDs: its `ClockOffset` is an inlined union.
pub(crate) fn kubevirt() -> &'static Swagger {
    static DOC: OnceLock<Swagger> = OnceLock::new();
    DOC.get_or_init(|| Swagger {
        open: &["v1.Clock"],
        ..Swagger::parse(include_str!("../swagger/kubevirt.json"))
    })
}

/// CDI's swagger (`swagger/cdi.json`), parsed on first use.
pub(crate) fn cdi() -> &'static Swagger {
    static DOC: OnceLock<Swagger> = OnceLock::new();
    DOC.get_or_init(|| Swagger::parse(include_str!("../swagger/cdi.json")))
}

impl Swagger {
    fn parse(text: &str) -> Self {
        let doc: Value = serde_json::from_str(text)
            .expect("embedded swagger is valid JSON (tested by swagger_documents_parse)");
        let definitions = match doc.get("definitions") {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        };
        Self {
            definitions,
            open: &[],
        }
    }

    /// Whether the document defines `name` (e.g. `v1.VirtualMachine`).
    #[cfg(test)]
    pub(crate) fn has(&self, name: &str) -> bool {
        self.definitions.contains_key(name)
    }

    /// The `openAPIV3Schema` of a kind whose root definition is `name`: everything inlined,
    /// the root `metadata` reduced to `type: object`, and neither `metadata` nor `status`
    /// required (swagger marks every non-`omitempty` field required; a client creating an
    /// object sends no status).
    pub(crate) fn kind_schema(&self, name: &str) -> Value {
        let mut schema = self.schema(name);
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            if props.contains_key("metadata") {
                props.insert("metadata".into(), json!({"type": "object"}));
            }
        }
        if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|field| field != "metadata" && field != "status");
            if required.is_empty() {
                if let Some(root) = schema.as_object_mut() {
                    root.remove("required");
                }
            }
        }
        schema
    }

    /// The structural schema of definition `name`, with every reference inlined.
    pub(crate) fn schema(&self, name: &str) -> Value {
        self.definition(name, &mut Vec::new())
    }

    fn definition(&self, name: &str, stack: &mut Vec<String>) -> Value {
        if let Some(special) = special_definition(name) {
            return special;
        }
        if stack.iter().any(|seen| seen == name) {
            return json!({
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
            });
        }
        let Some(def) = self.definitions.get(name) else {
            return json!({
                "description": format!("{MISSING_DEFINITION} {name}"),
                "x-kubernetes-preserve-unknown-fields": true,
            });
        };
        stack.push(name.to_string());
        let mut schema = self.node(def, stack);
        stack.pop();
        if self.open.contains(&name) {
            schema["x-kubernetes-preserve-unknown-fields"] = json!(true);
        }
        schema
    }

    fn node(&self, node: &Value, stack: &mut Vec<String>) -> Value {
        let Some(obj) = node.as_object() else {
            return preserve();
        };
        if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/definitions/");
            let mut schema = self.definition(name, stack);
            if let Some(out) = schema.as_object_mut() {
                for key in SITE_KEYS {
                    if let Some(value) = obj.get(key) {
                        out.insert(key.into(), value.clone());
                    }
                }
            }
            return schema;
        }
        let mut out = Map::new();
        for key in KEPT_KEYS {
            if let Some(value) = obj.get(key) {
                out.insert(key.into(), value.clone());
            }
        }
        match obj.get("type") {
            Some(Value::String(ty)) => {
                out.insert("type".into(), json!(ty));
            }
            Some(Value::Array(types)) => {
                let concrete: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                if concrete.len() < types.len() {
                    out.insert("nullable".into(), json!(true));
                }
                match concrete.as_slice() {
                    [single] => {
                        out.insert("type".into(), (*single).clone());
                    }
                    // `["string", "integer", "number"]`: a number written either way.
                    _ => make_int_or_string(&mut out),
                }
            }
            _ => {}
        }
        if out.get("format").and_then(Value::as_str) == Some("int-or-string") {
            make_int_or_string(&mut out);
        }
        if let Some(Value::Object(props)) = obj.get("properties") {
            let converted: Map<String, Value> = props
                .iter()
                .map(|(key, prop)| (key.clone(), self.node(prop, stack)))
                .collect();
            out.insert("properties".into(), Value::Object(converted));
        }
        if let Some(items) = obj.get("items") {
            out.insert("items".into(), self.node(items, stack));
        }
        match obj.get("additionalProperties") {
            Some(additional @ Value::Object(inner)) if is_typed(inner) => {
                out.insert("additionalProperties".into(), self.node(additional, stack));
            }
            Some(Value::Bool(false)) | None => {}
            Some(_) => {
                out.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
            }
        }
        if !out.contains_key("type") && !out.contains_key("x-kubernetes-int-or-string") {
            // An untyped node accepts anything; say so explicitly.
            out.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
        }
        Value::Object(out)
    }
}

/// Whether an `additionalProperties` schema constrains its values at all.
fn is_typed(inner: &Map<String, Value>) -> bool {
    ["type", "$ref", "properties", "items"]
        .iter()
        .any(|key| inner.contains_key(*key))
}

fn preserve() -> Value {
    json!({"x-kubernetes-preserve-unknown-fields": true})
}

fn make_int_or_string(out: &mut Map<String, Value>) {
    out.remove("type");
    out.remove("format");
    out.insert(
        "anyOf".into(),
        json!([{"type": "integer"}, {"type": "string"}]),
    );
    out.insert("x-kubernetes-int-or-string".into(), json!(true));
}

/// Definitions translated by name rather than by content. The key is the last dotted
/// segment, so both naming styles match (`k8s.io.apimachinery.pkg.api.resource.Quantity` in
/// KubeVirt's swagger, `resource.Quantity` in CDI's).
fn special_definition(name: &str) -> Option<Value> {
    let last = name.rsplit('.').next().unwrap_or(name);
    let schema = match last {
        "Quantity" | "IntOrString" => {
            let mut out = Map::new();
            make_int_or_string(&mut out);
            Value::Object(out)
        }
        "Time" | "MicroTime" => json!({"type": "string", "format": "date-time"}),
        "RawExtension" | "FieldsV1" => json!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        }),
        "ObjectMeta" => json!({
            "type": "object",
            "nullable": true,
            "x-kubernetes-preserve-unknown-fields": true,
        }),
        _ => return None,
    };
    Some(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swagger_documents_parse() {
        assert!(kubevirt().has("v1.VirtualMachine"));
        assert!(cdi().has("v1beta1.DataVolume"));
    }

    #[test]
    fn quantities_become_int_or_string_without_a_pattern() {
        let schema = kubevirt().schema("v1.ResourceRequirements");
        let requests = &schema["properties"]["requests"]["additionalProperties"];
        assert_eq!(requests["x-kubernetes-int-or-string"], json!(true));
        assert_eq!(
            requests["anyOf"],
            json!([{"type": "integer"}, {"type": "string"}])
        );
        assert!(requests.get("pattern").is_none());
        assert!(requests.get("type").is_none());
    }

    #[test]
    fn times_become_date_time_strings() {
        let schema = kubevirt().schema("v1.VirtualMachineInstanceMigrationState");
        assert_eq!(
            schema["properties"]["startTimestamp"]["format"],
            json!("date-time")
        );
        assert_eq!(
            schema["properties"]["startTimestamp"]["type"],
            json!("string")
        );
    }

    #[test]
    fn nullable_type_lists_become_nullable_types() {
        let schema = kubevirt().schema("v1.VirtualMachineInstanceCondition");
        assert_eq!(
            schema["properties"]["lastProbeTime"],
            json!({"type": "string", "nullable": true})
        );
    }

    /// Calls `f` on every schema node below `schema` (not on `properties` maps themselves).
    fn each_node(schema: &Value, f: &mut dyn FnMut(&Map<String, Value>)) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        f(obj);
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            props.values().for_each(|p| each_node(p, f));
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = obj.get(key) {
                each_node(child, f);
            }
        }
        if let Some(any) = obj.get("anyOf").and_then(Value::as_array) {
            any.iter().for_each(|p| each_node(p, f));
        }
    }

    #[test]
    fn the_referring_property_description_wins() {
        let schema = kubevirt().schema("v1.Clock");
        let timer = &schema["properties"]["timer"];
        assert_eq!(
            timer["description"],
            json!("Timer specifies whih timers are attached to the vmi.")
        );
        assert_eq!(timer["type"], json!("object"));
    }

    #[test]
    fn root_metadata_is_a_plain_object_and_nested_metadata_is_preserved() {
        let schema = kubevirt().kind_schema("v1.VirtualMachine");
        assert_eq!(schema["properties"]["metadata"], json!({"type": "object"}));
        let nested =
            &schema["properties"]["spec"]["properties"]["template"]["properties"]["metadata"];
        assert_eq!(nested["x-kubernetes-preserve-unknown-fields"], json!(true));
    }

    #[test]
    fn a_kind_never_requires_status_or_metadata() {
        let schema = cdi().kind_schema("v1beta1.UploadTokenRequest");
        assert_eq!(schema["required"], json!(["spec"]));
    }

    #[test]
    fn swagger_defaults_are_not_copied() {
        let schema = kubevirt().kind_schema("v1.VirtualMachine");
        let mut nodes = 0;
        each_node(&schema, &mut |node| {
            nodes += 1;
            for key in ["default", "$ref", "x-kubernetes-patch-strategy", "allOf"] {
                assert!(!node.contains_key(key), "{key} in {node:?}");
            }
        });
        assert!(nodes > 500, "{nodes}");
    }

    #[test]
    fn a_self_referring_definition_is_cut_with_preserve_unknown_fields() {
        let swagger = Swagger::parse(
            r##"{"definitions": {"Node": {"type": "object", "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}}}}}}"##,
        );
        let schema = swagger.schema("Node");
        let child = &schema["properties"]["children"]["items"];
        assert_eq!(child["x-kubernetes-preserve-unknown-fields"], json!(true));
        assert_eq!(child["type"], json!("object"));
    }

    #[test]
    fn a_missing_definition_is_marked() {
        let swagger = Swagger::parse(r##"{"definitions": {}}"##);
        let schema = swagger.schema("Nope");
        assert!(schema["description"]
            .as_str()
            .is_some_and(|d| d.starts_with(MISSING_DEFINITION)));
    }

    #[test]
    fn untyped_additional_properties_preserve_unknown_fields() {
        let swagger = Swagger::parse(
            r##"{"definitions": {"Bag": {"type": "object", "additionalProperties": {}}}}"##,
        );
        assert_eq!(
            swagger.schema("Bag"),
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
        );
    }
}
