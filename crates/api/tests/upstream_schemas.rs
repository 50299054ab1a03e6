//! Our generated schemas accept everything upstream's CRD schemas accept.
//!
//! Upstream's `openAPIV3Schema`s (extracted from KubeVirt, embedded in `oxivirt-schema`) are
//! the reference for six kinds. Every property path they declare must be kept by ours, and
//! where theirs keeps unknown fields, ours must too.

use serde_json::Value;

use crate::common::{accepts, is_open, render, schema, Step};

const KINDS: [&str; 6] = [
    "VirtualMachine",
    "VirtualMachineInstance",
    "VirtualMachineInstanceMigration",
    "VirtualMachineInstanceReplicaSet",
    "VirtualMachinePool",
    "MigrationPolicy",
];

/// Every property path of `schema`, and whether the node there is open.
fn paths(schema: &Value, prefix: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, bool)>) {
    if !prefix.is_empty() {
        out.push((prefix.clone(), is_open(schema)));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            if prefix.is_empty() && name == "metadata" {
                continue;
            }
            prefix.push(Step::Property(name.clone()));
            paths(child, prefix, out);
            prefix.pop();
        }
    }
    if let Some(items) = schema.get("items") {
        prefix.push(Step::Item);
        paths(items, prefix, out);
        prefix.pop();
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        prefix.push(Step::MapValue);
        paths(additional, prefix, out);
        prefix.pop();
    }
}

/// Whether the node at `steps` (or an ancestor) keeps unknown fields.
fn open_at(schema: &Value, steps: &[Step]) -> bool {
    let mut node = schema;
    for step in steps {
        if is_open(node) {
            return true;
        }
        let next = match step {
            Step::Property(name) => node["properties"].get(name),
            Step::Item => node.get("items"),
            Step::MapValue => node.get("additionalProperties"),
        };
        match next {
            Some(next) => node = next,
            None => return false,
        }
    }
    is_open(node)
}

#[test]
fn generated_schemas_accept_every_path_upstreams_crd_schemas_accept() {
    let mut failures = Vec::new();
    for kind in KINDS {
        let upstream = oxivirt_schema::kubevirt_schema(kind).expect("embedded upstream schema");
        let ours = schema(kind);
        let mut all = Vec::new();
        paths(&upstream, &mut Vec::new(), &mut all);
        assert!(
            all.len() > 10,
            "{kind}: upstream schema has {} paths",
            all.len()
        );
        for (steps, open) in all {
            if !accepts(ours, &steps) {
                failures.push(format!("{kind}: {} is pruned", render(&steps)));
            } else if open && !open_at(ours, &steps) {
                failures.push(format!(
                    "{kind}: {} must keep unknown fields",
                    render(&steps)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn generated_schemas_type_every_path_upstream_types() {
    // Accepting is not enough: where upstream checks a field's type, so do we.
    let mut failures = Vec::new();
    for kind in KINDS {
        let upstream = oxivirt_schema::kubevirt_schema(kind).expect("embedded upstream schema");
        let ours = schema(kind);
        let mut all = Vec::new();
        paths(&upstream, &mut Vec::new(), &mut all);
        for (steps, _) in all {
            let parent = &steps[..steps.len() - 1];
            if open_at(ours, parent) && !open_at(&upstream, parent) {
                failures.push(format!("{kind}: {} is untyped", render(&steps)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
