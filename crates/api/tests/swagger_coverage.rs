//! Every property of every kind's swagger definition (recursively) is in its CRD schema.
//!
//! This walks the swagger document and the generated schema side by side, independently of
//! the crate's inliner: a property missing from the schema would be pruned on create.

use serde_json::{Map, Value};

use oxivirt_api::{schema_summaries, SchemaOrigin};

use crate::common::{is_open, schema, swagger};

/// Swagger definitions whose content the schema may keep as an open object.
const OPEN_DEFINITIONS: [&str; 3] = ["ObjectMeta", "RawExtension", "FieldsV1"];

#[derive(Default)]
struct Report {
    missing: Vec<String>,
    wrong_type: Vec<String>,
    open_at: Vec<(String, String)>,
    properties: usize,
}

struct Walker<'a> {
    definitions: &'a Map<String, Value>,
    stack: Vec<String>,
    report: Report,
}

impl Walker<'_> {
    fn walk(&mut self, swagger: &Value, schema: &Value, path: &str) {
        if let Some(reference) = swagger.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/definitions/").to_string();
            if self.stack.contains(&name) {
                // A cycle: the schema must keep whatever is below.
                if !is_open(schema) {
                    self.report
                        .missing
                        .push(format!("{path} (recursive {name})"));
                }
                return;
            }
            let definition = self.definitions.get(&name).cloned().unwrap_or(Value::Null);
            self.stack.push(name);
            self.walk(&definition, schema, path);
            self.stack.pop();
            return;
        }
        let has_structure = swagger.get("properties").is_some()
            || swagger.get("items").is_some()
            || swagger["additionalProperties"].is_object();
        if is_open(schema) && schema.get("properties").is_none() {
            if has_structure {
                let definition = self.stack.last().cloned().unwrap_or_default();
                self.report.open_at.push((path.to_string(), definition));
            }
            return;
        }
        self.check_type(swagger, schema, path);
        if let Some(props) = swagger.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                self.report.properties += 1;
                let child_path = format!("{path}.{name}");
                if path.is_empty() && name == "metadata" {
                    continue; // the root ObjectMeta is the server's business
                }
                match schema["properties"].get(name) {
                    Some(child) => self.walk(sub, child, &child_path),
                    None if is_open(schema) => {}
                    None => self.report.missing.push(child_path),
                }
            }
        }
        if let Some(items) = swagger.get("items") {
            match schema.get("items") {
                Some(child) => self.walk(items, child, &format!("{path}[]")),
                None => self.report.missing.push(format!("{path}[]")),
            }
        }
        if let Some(additional) = swagger
            .get("additionalProperties")
            .filter(|a| a.is_object())
        {
            match schema.get("additionalProperties") {
                Some(child) => self.walk(additional, child, &format!("{path}{{}}")),
                None if is_open(schema) => {}
                None => self.report.missing.push(format!("{path}{{}}")),
            }
        }
    }

    fn check_type(&mut self, swagger: &Value, schema: &Value, path: &str) {
        let quantity = self.stack.last().is_some_and(|d| d.ends_with(".Quantity"));
        let Some(expected) = swagger.get("type").and_then(Value::as_str) else {
            if quantity && schema["x-kubernetes-int-or-string"] != true {
                self.report
                    .wrong_type
                    .push(format!("{path}: want int-or-string"));
            }
            return;
        };
        if quantity || swagger.get("format") == Some(&Value::from("int-or-string")) {
            if schema["x-kubernetes-int-or-string"] != true {
                self.report
                    .wrong_type
                    .push(format!("{path}: want int-or-string"));
            }
            return;
        }
        if schema["type"] != expected {
            self.report.wrong_type.push(format!(
                "{path}: swagger {expected}, schema {}",
                schema["type"]
            ));
        }
    }
}

fn coverage(document: &str, definition: &str, kind: &str) -> Report {
    let doc = swagger(document);
    let definitions = doc["definitions"].as_object().expect("definitions");
    let mut walker = Walker {
        definitions,
        stack: Vec::new(),
        report: Report::default(),
    };
    let root = serde_json::json!({"$ref": format!("#/definitions/{definition}")});
    walker.walk(&root, schema(kind), "");
    walker.report
}

#[test]
fn every_swagger_property_of_every_kind_is_in_its_schema() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for summary in schema_summaries() {
        let (document, definition) = match summary.origin {
            SchemaOrigin::KubevirtSwagger(d) => ("kubevirt", d),
            SchemaOrigin::CdiSwagger(d) => ("cdi", d),
            _ => continue,
        };
        checked += 1;
        let report = coverage(document, definition, &summary.kind);
        assert!(report.properties > 3, "{} walked nothing", summary.kind);
        for path in report.missing {
            failures.push(format!("{}: missing {path}", summary.kind));
        }
        for problem in report.wrong_type {
            failures.push(format!("{}: {problem}", summary.kind));
        }
        for (path, definition) in report.open_at {
            let last = definition.rsplit('.').next().unwrap_or_default();
            if !OPEN_DEFINITIONS.contains(&last) {
                failures.push(format!("{}: {path} is open ({definition})", summary.kind));
            }
        }
    }
    assert_eq!(checked, 23, "every swagger-backed kind is checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_removed_property_is_reported_missing() {
    let doc = swagger("kubevirt");
    let definitions = doc["definitions"].as_object().expect("definitions");
    let mut pruned = schema("VirtualMachineInstanceMigration").clone();
    pruned["properties"]["spec"]["properties"]
        .as_object_mut()
        .expect("spec properties")
        .remove("vmiName");
    let mut walker = Walker {
        definitions,
        stack: Vec::new(),
        report: Report::default(),
    };
    let root = serde_json::json!({"$ref": "#/definitions/v1.VirtualMachineInstanceMigration"});
    walker.walk(&root, &pruned, "");
    assert_eq!(walker.report.missing, vec![".spec.vmiName".to_string()]);
}
