//! Behaviour of [`crate::process`] on KubeVirt, core and hand-written schemas.

use serde_json::{json, Value};

use crate::core::core_schemas;
use crate::definitions::Definitions;
use crate::error::FieldErrorKind;
use crate::kubevirt::kubevirt_schema;
use crate::structural::{process, ProcessOptions};

fn vm_schema() -> Value {
    kubevirt_schema("VirtualMachine").expect("embedded VM schema")
}

fn cirros() -> Value {
    serde_yaml::from_str(include_str!("../tests/fixtures/vm-cirros.yaml")).expect("fixture")
}

fn run(schema: &Value, obj: &mut Value) -> crate::Outcome {
    process(schema, &Definitions::new(), obj, ProcessOptions::all())
}

#[test]
fn vm_cirros_example_passes_without_unknown_fields_and_round_trips() {
    let original = cirros();
    let mut vm = original.clone();
    let outcome = run(&vm_schema(), &mut vm);
    assert_eq!(outcome.errors, vec![]);
    assert_eq!(outcome.unknown_fields, Vec::<String>::new());
    assert_eq!(vm, original);
}

#[test]
fn vm_with_spec_foo_reports_and_prunes_unknown_field() {
    let mut vm = cirros();
    vm["spec"]["foo"] = json!("bar");
    vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"][0]["bogus"] = json!(1);
    let outcome = run(&vm_schema(), &mut vm);
    assert_eq!(
        outcome.unknown_fields,
        vec![
            ".spec.template.spec.domain.devices.disks[0].bogus".to_string(),
            ".spec.foo".to_string(),
        ]
    );
    assert_eq!(
        outcome.unknown_field_messages()[1],
        "unknown field \"spec.foo\""
    );
    assert!(outcome.errors.is_empty());
    assert_eq!(vm, cirros());
}

#[test]
fn unknown_fields_are_reported_but_kept_without_prune() {
    let mut vm = cirros();
    vm["spec"]["foo"] = json!("bar");
    let outcome = process(
        &vm_schema(),
        &Definitions::new(),
        &mut vm,
        ProcessOptions::validate_only(),
    );
    assert_eq!(outcome.unknown_fields, vec![".spec.foo".to_string()]);
    assert_eq!(vm["spec"]["foo"], "bar");
}

#[test]
fn wrong_type_reads_like_kubernetes() {
    let mut vm = cirros();
    vm["spec"]["running"] = json!("string");
    let outcome = run(&vm_schema(), &mut vm);
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    let err = &outcome.errors[0];
    assert_eq!(err.field, "spec.running");
    assert_eq!(err.reason, FieldErrorKind::TypeInvalid);
    assert_eq!(
        err.message,
        "Invalid value: \"string\": spec.running in body must be of type boolean: \"string\""
    );
}

#[test]
fn missing_required_field_is_reported_with_its_path() {
    let mut vm = cirros();
    vm["spec"]["template"]["spec"]["volumes"][0]
        .as_object_mut()
        .expect("volume")
        .remove("name");
    let outcome = run(&vm_schema(), &mut vm);
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert_eq!(
        outcome.errors[0].field,
        "spec.template.spec.volumes[0].name"
    );
    assert_eq!(outcome.errors[0].message, "Required value");
    assert_eq!(outcome.errors[0].reason.reason(), "FieldValueRequired");
}

#[test]
fn quantity_pattern_is_enforced_on_strings_only() {
    let mut vm = cirros();
    vm["spec"]["template"]["spec"]["domain"]["memory"]["guest"] = json!("12 apples");
    let outcome = run(&vm_schema(), &mut vm);
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert_eq!(
        outcome.errors[0].field,
        "spec.template.spec.domain.memory.guest"
    );
    assert!(outcome.errors[0].message.starts_with(
        "Invalid value: \"12 apples\": spec.template.spec.domain.memory.guest in body should match '^"
    ));
    let mut ok = cirros();
    ok["spec"]["template"]["spec"]["domain"]["memory"]["guest"] = json!(134217728);
    assert!(run(&vm_schema(), &mut ok).errors.is_empty());
}

#[test]
fn enum_violation_lists_supported_values() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"policy": {"type": "string", "enum": ["a", "b"]}}}
    }});
    let mut obj = json!({"spec": {"policy": "x"}});
    let outcome = run(&schema, &mut obj);
    assert_eq!(
        outcome.errors[0].to_string(),
        "spec.policy: Unsupported value: \"x\": supported values: \"a\", \"b\""
    );
}

#[test]
fn defaults_fill_absent_fields_and_objects_created_by_defaults() {
    let schema = json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "default": {},
        "properties": {
            "replicas": {"type": "integer", "default": 1},
            "strategy": {
                "type": "object",
                "default": {"kind": "Rolling"},
                "properties": {
                    "kind": {"type": "string"},
                    "maxUnavailable": {"type": "integer", "default": 2},
                },
            },
            "given": {"type": "string", "default": "unused"},
        },
    }}});
    let mut obj = json!({"spec": null});
    let outcome = run(&schema, &mut obj);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(obj["spec"]["replicas"], 1);
    assert_eq!(
        obj["spec"]["strategy"],
        json!({"kind": "Rolling", "maxUnavailable": 2})
    );
    let mut given = json!({"spec": {"given": "mine", "replicas": 3}});
    run(&schema, &mut given);
    assert_eq!(given["spec"]["given"], "mine");
    assert_eq!(given["spec"]["replicas"], 3);
}

#[test]
fn vm_volume_secret_ref_name_defaults_to_empty_string() {
    let mut vm = cirros();
    vm["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"]["secretRef"] = json!({});
    let outcome = run(&vm_schema(), &mut vm);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(
        vm["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"]["secretRef"],
        json!({"name": ""})
    );
}

#[test]
fn list_map_with_duplicate_keys_is_rejected() {
    let mut vm = cirros();
    vm["spec"]["template"]["spec"]["resourceClaims"] = json!([{"name": "gpu"}, {"name": "gpu"}]);
    let outcome = run(&vm_schema(), &mut vm);
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    let err = &outcome.errors[0];
    assert_eq!(err.field, "spec.template.spec.resourceClaims[1]");
    assert_eq!(err.reason, FieldErrorKind::Duplicate);
    assert_eq!(
        err.message,
        "Duplicate value: map[string]interface {}{\"name\":\"gpu\"}"
    );
}

#[test]
fn set_lists_reject_repeated_items() {
    let schema = json!({"type": "object", "properties": {"tags": {
        "type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"
    }}});
    let mut obj = json!({"tags": ["a", "b", "a"]});
    let outcome = run(&schema, &mut obj);
    assert_eq!(outcome.errors[0].field, "tags[2]");
    assert_eq!(outcome.errors[0].message, "Duplicate value: \"a\"");
}

#[test]
fn core_pod_schema_detects_unknown_container_field() {
    let core = core_schemas();
    let schema = core.schema("", "v1", "Pod").expect("pod").clone();
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "foo": 1,
                                 "resources": {"limits": {"cpu": "1", "memory": 1024}}}]}
    });
    let outcome = process(&schema, core.definitions(), &mut pod, ProcessOptions::all());
    assert_eq!(
        outcome.unknown_fields,
        vec![".spec.containers[0].foo".to_string()]
    );
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(pod["spec"]["containers"][0].get("foo").is_none());
    assert_eq!(pod["metadata"]["labels"]["a"], "b");
}

#[test]
fn core_schemas_report_type_errors_and_missing_required_fields() {
    let core = core_schemas();
    let schema = core.schema("", "v1", "Pod").expect("pod").clone();
    let mut pod = json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"image": "x", "ports": [{"containerPort": "eighty"}]}]}});
    let outcome = process(&schema, core.definitions(), &mut pod, ProcessOptions::all());
    let fields: Vec<&str> = outcome.errors.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"spec.containers[0].name"), "{fields:?}");
    assert!(
        fields.contains(&"spec.containers[0].ports[0].containerPort"),
        "{fields:?}"
    );
}

#[test]
fn crd_root_metadata_is_checked_as_object_meta() {
    let mut vm = cirros();
    vm["metadata"]["bogus"] = json!(true);
    vm["metadata"]["labels"]["n"] = json!(5);
    let outcome = run(&vm_schema(), &mut vm);
    assert_eq!(outcome.unknown_fields, vec![".metadata.bogus".to_string()]);
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert_eq!(outcome.errors[0].field, "metadata.labels.n");
    assert!(vm["metadata"].get("bogus").is_none());
}

#[test]
fn metadata_name_constraints_from_the_crd_schema_apply() {
    let schema = json!({"type": "object", "properties": {"metadata": {
        "type": "object", "properties": {"name": {"type": "string", "maxLength": 3}}
    }}});
    let mut obj = json!({"metadata": {"name": "toolong", "labels": {"x": "y"}}});
    let outcome = run(&schema, &mut obj);
    assert_eq!(
        outcome.errors[0].to_string(),
        "metadata.name: Too long: must have at most 3 bytes"
    );
    assert_eq!(obj["metadata"]["labels"]["x"], "y");
}

#[test]
fn preserved_objects_keep_unknown_fields() {
    let mut vm = cirros();
    vm["spec"]["template"]["metadata"]["annotations"] = json!({"a": "b"});
    vm["spec"]["template"]["metadata"]["whatever"] = json!({"deep": 1});
    let outcome = run(&vm_schema(), &mut vm);
    assert!(
        outcome.unknown_fields.is_empty(),
        "{:?}",
        outcome.unknown_fields
    );
    assert_eq!(vm["spec"]["template"]["metadata"]["whatever"]["deep"], 1);
}

#[test]
fn nulls_of_non_nullable_fields_are_pruned_and_nullable_ones_kept() {
    let schema = json!({"type": "object", "properties": {
        "a": {"type": "string"},
        "b": {"type": "string", "nullable": true},
    }});
    let mut obj = json!({"a": null, "b": null});
    let outcome = run(&schema, &mut obj);
    assert!(outcome.errors.is_empty());
    assert_eq!(obj, json!({"b": null}));
    let mut unpruned = json!({"a": null});
    let outcome = process(
        &schema,
        &Definitions::new(),
        &mut unpruned,
        ProcessOptions::validate_only(),
    );
    assert_eq!(
        outcome.errors[0].message,
        "Invalid value: \"null\": a in body must be of type string: \"null\""
    );
}

#[test]
fn bounds_lengths_and_counts_are_validated() {
    let schema = json!({"type": "object", "properties": {
        "n": {"type": "integer", "minimum": 1, "maximum": 5, "exclusiveMaximum": true},
        "s": {"type": "string", "minLength": 2},
        "l": {"type": "array", "maxItems": 1, "items": {"type": "integer"}},
        "m": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 2},
    }});
    let mut obj = json!({"n": 5, "s": "x", "l": [1, 2], "m": {"k": "v"}});
    let outcome = run(&schema, &mut obj);
    let messages: Vec<String> = outcome.errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages, vec![
        "n: Invalid value: 5: n in body should be less than 5",
        "s: Invalid value: \"x\": s in body should be at least 2 chars long",
        "l: Too many: 2: must have at most 1 items",
        "m: Invalid value: map[string]interface {}{\"k\":\"v\"}: m in body should have at least 2 properties",
    ]);
}

#[test]
fn any_of_and_one_of_are_validation_only() {
    let schema = json!({"type": "object", "properties": {"x": {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
    }}});
    let mut ok = json!({"x": {"a": "1"}});
    assert!(run(&schema, &mut ok).errors.is_empty());
    let mut both = json!({"x": {"a": "1", "b": "2"}});
    let outcome = run(&schema, &mut both);
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert!(outcome.errors[0]
        .message
        .ends_with("x in body must validate one and only one schema (oneOf)"));
    assert!(outcome.unknown_fields.is_empty());
}

#[test]
fn int_or_string_accepts_both_and_rejects_others() {
    let schema = json!({"type": "object", "properties": {"port": {
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
    }}});
    for ok in [json!(8080), json!("http")] {
        let mut obj = json!({"port": ok});
        assert!(run(&schema, &mut obj).errors.is_empty());
    }
    let mut bad = json!({"port": true});
    let outcome = run(&schema, &mut bad);
    assert_eq!(outcome.errors[0].reason, FieldErrorKind::TypeInvalid);
}

#[test]
fn embedded_resources_allow_type_and_object_meta() {
    let schema = json!({"type": "object", "properties": {"template": {
        "type": "object",
        "x-kubernetes-embedded-resource": true,
        "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}},
    }}});
    let mut obj = json!({"template": {"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "n", "nope": 1}, "spec": {"x": "y"}}});
    let outcome = run(&schema, &mut obj);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(
        outcome.unknown_fields,
        vec![".template.metadata.nope".to_string()]
    );
    let mut missing = json!({"template": {"spec": {}}});
    let outcome = run(&schema, &mut missing);
    let fields: Vec<&str> = outcome.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["template.apiVersion", "template.kind"]);
}

#[test]
fn unresolved_references_become_internal_errors() {
    let schema = json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/Missing"}}});
    let mut obj = json!({"a": 1});
    let outcome = run(&schema, &mut obj);
    assert_eq!(outcome.errors[0].reason, FieldErrorKind::Internal);
}

#[test]
fn crd_carrying_the_vm_schema_passes_the_core_crd_schema_untouched() {
    let core = core_schemas();
    let schema = core
        .schema("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
        .expect("crd schema")
        .clone();
    let original = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "virtualmachines.kubevirt.io"},
        "spec": {
            "group": "kubevirt.io",
            "names": {"kind": "VirtualMachine", "plural": "virtualmachines", "shortNames": ["vm"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": vm_schema()},
                "subresources": {"status": {}},
            }],
        },
    });
    let mut crd = original.clone();
    let outcome = process(&schema, core.definitions(), &mut crd, ProcessOptions::all());
    assert!(
        outcome.errors.is_empty(),
        "{:?}",
        &outcome.errors[..outcome.errors.len().min(5)]
    );
    assert!(
        outcome.unknown_fields.is_empty(),
        "{:?}",
        outcome.unknown_fields
    );
    assert_eq!(crd, original);
}
