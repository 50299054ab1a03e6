//! Every upstream example (KubeVirt's and CDI's `examples/`) whose kind we define validates
//! against our schema with no unknown field and no error, in a version the CRD serves.

use std::path::Path;

use serde_json::Value;

use crate::common::{check, crds, shared_dir, yaml_documents};

/// The CRD serving `apiVersion`/`kind`, if any.
fn served_by(object: &Value) -> Option<&'static Value> {
    let api_version = object["apiVersion"].as_str()?;
    let (group, version) = api_version.split_once('/')?;
    let kind = object["kind"].as_str()?;
    crds().iter().find(|crd| {
        crd["spec"]["group"] == group
            && crd["spec"]["names"]["kind"] == kind
            && crd["spec"]["versions"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v["name"] == version))
    })
}

/// Checks every example in `dir`; returns how many objects were checked.
fn check_examples(dir: &Path, failures: &mut Vec<String>) -> usize {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "{} is readable ({e}); set OXIVIRT_SHARED_DIR",
                dir.display()
            )
        })
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    entries.sort();
    let mut checked = 0;
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("example is readable");
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        for object in yaml_documents(&text) {
            let kind = object["kind"].as_str().unwrap_or_default();
            let ours = crds().iter().any(|c| c["spec"]["names"]["kind"] == kind);
            if !ours {
                continue;
            }
            if served_by(&object).is_none() {
                failures.push(format!(
                    "{file}: {} {kind} is not served",
                    object["apiVersion"]
                ));
                continue;
            }
            checked += 1;
            let (unknown, errors) = check(&object);
            for field in unknown {
                failures.push(format!("{file}: unknown field {field}"));
            }
            for error in errors {
                failures.push(format!("{file}: {error}"));
            }
        }
    }
    checked
}

#[test]
fn every_kubevirt_and_cdi_example_validates_with_no_unknown_fields() {
    let reference = shared_dir().join("reference");
    let mut failures = Vec::new();
    let kubevirt = check_examples(&reference.join("kubevirt/examples"), &mut failures);
    let cdi = check_examples(&reference.join("cdi/examples"), &mut failures);
    println!("checked {kubevirt} KubeVirt and {cdi} CDI example objects");
    assert!(
        kubevirt >= 40,
        "only {kubevirt} KubeVirt example objects found"
    );
    assert!(cdi >= 18, "only {cdi} CDI example objects found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_unknown_field_in_an_example_is_reported() {
    let mut vm = serde_json::json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "vm"},
        "spec": {"runStrategy": "Halted", "bogus": 1, "template": {"spec": {"domain": {"devices": {}}}}},
    });
    let (unknown, errors) = check(&vm);
    assert_eq!(unknown, vec![".spec.bogus".to_string()]);
    assert!(errors.is_empty(), "{errors:?}");
    vm["spec"]["runStrategy"] = serde_json::json!(3);
    let (_, errors) = check(&vm);
    assert_eq!(errors.len(), 1, "{errors:?}");
}
