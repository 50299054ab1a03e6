//! The manual's YAML snippets (`<shared>/spec/ch*.md`), collected verbatim as fixtures in
//! `crates/e2e/fixtures/manual/` (see its README for the extraction rule and the skipped
//! placeholders and fragments), applied with `kubectl apply --validate=strict`.
//!
//! Snippets without a namespace land in a fresh namespace per fixture, as in
//! `examples.rs`; HyperConverged snippets go to `openshift-cnv`, where the manual edits the
//! singleton (`oc edit hco -n openshift-cnv`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use oxivirt_e2e::{
    cluster_scoped_kinds, describe, items, namespace_of, namespaces, placed_in, stream,
    subset_difference, without_nulls, yaml_documents, Server,
};
use serde_json::Value;

/// Where the HyperConverged singleton lives.
const HCO_NAMESPACE: &str = "openshift-cnv";

fn fixtures_dir() -> PathBuf {
    Path::new(
        &*std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("fixtures/manual")
}

/// `(fixture stem, objects)` of every fixture, sorted by name (chapter, then block).
fn fixtures() -> Vec<(String, Vec<Value>)> {
    let dir = fixtures_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} is readable: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf-8 fixture name")
                .to_owned();
            let text = std::fs::read_to_string(path).expect("fixture is readable");
            let objects = yaml_documents(&text, &stem);
            (stem, objects)
        })
        .collect()
}

fn is_hyperconverged(object: &Value) -> bool {
    object["kind"] == "HyperConverged"
}

/// `kind/namespace/name`, the identity two snippets share when they edit the same object.
fn identity(object: &Value) -> String {
    describe(object)
}

/// What of a snippet the server keeps: some snippets are `oc get -o yaml` output, whose
/// server-set metadata and `status` a create ignores (status is a subresource).
fn as_kept(object: &Value) -> Value {
    let mut object = without_nulls(object);
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "selfLink",
            "managedFields",
        ] {
            metadata.remove(field);
        }
    }
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    // `machine: {type: ""}` gets the cluster's machine type from the VM mutator, as upstream.
    if let Some(machine) = object
        .pointer_mut("/spec/template/spec/domain/machine")
        .and_then(Value::as_object_mut)
    {
        if machine.get("type").is_some_and(|t| t == "") {
            machine.remove("type");
        }
    }
    object
}

/// Applies `objects` in one strict `kubectl apply`; each must be created or configured.
fn apply_all(k: &oxivirt_e2e::Kubectl, objects: &[Value]) {
    let out = k
        .run_stdin(&["apply", "--validate=strict", "-f", "-"], &stream(objects))
        .ok();
    let applied = out
        .lines()
        .filter(|l| {
            l.ends_with(" created") || l.ends_with(" configured") || l.ends_with(" unchanged")
        })
        .count();
    assert_eq!(applied, objects.len(), "every snippet is applied:\n{out}");
}

#[test]
fn every_collected_manual_snippet_applies_with_strict_validation() {
    // A server of its own: the snippets edit the HyperConverged singleton and cluster objects.
    let server = Server::start();
    let k = server.kubectl();
    let cluster_scoped = cluster_scoped_kinds(&k);
    let fixtures = fixtures();
    assert!(
        fixtures.len() >= 60,
        "only {} manual fixtures found in {}",
        fixtures.len(),
        fixtures_dir().display()
    );

    let mut hyperconverged = Vec::new();
    let mut others = Vec::new();
    let mut sources = Vec::new();
    for (stem, objects) in &fixtures {
        let namespace = format!("man-{stem}");
        for object in objects {
            if is_hyperconverged(object) {
                hyperconverged.push(placed_in(object, HCO_NAMESPACE, &cluster_scoped));
            } else {
                sources.push(stem.as_str());
                others.push(placed_in(object, &namespace, &cluster_scoped));
            }
        }
    }
    assert!(!hyperconverged.is_empty() && others.len() >= 50);

    // The HyperConverged snippets first, one after another as a reader would apply them:
    // the singleton's workload placement may not change once VMs exist.
    apply_all(&k, &hyperconverged);

    let wanted: BTreeSet<&str> = others.iter().filter_map(namespace_of).collect();
    k.run_stdin(&["apply", "-f", "-"], &namespaces(wanted)).ok();
    apply_all(&k, &others);

    // Objects only one snippet defines keep every field it sets (several snippets edit the
    // same StorageClass, HostPathProvisioner or VM; the last one wins there). Snippets copied
    // from `oc get` output with ownerReferences to objects that do not exist here are left
    // out: the garbage collector deletes them, as Kubernetes does.
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for object in &others {
        *count.entry(identity(object)).or_default() += 1;
    }
    let (unique_sources, unique): (Vec<&str>, Vec<Value>) = sources
        .iter()
        .zip(&others)
        .filter(|(_, object)| {
            count[&identity(object)] == 1 && object["metadata"]["ownerReferences"].is_null()
        })
        .map(|(source, object)| (*source, object.clone()))
        .unzip();
    let stored = items(
        &k.run_stdin(&["get", "-f", "-", "-o", "json"], &stream(&unique))
            .ok(),
    );
    assert_eq!(stored.len(), unique.len());
    let lost: Vec<String> = unique_sources
        .iter()
        .zip(&unique)
        .zip(&stored)
        .filter_map(|((source, sent), stored)| {
            subset_difference(&as_kept(sent), stored)
                .map(|diff| format!("{source}: {}: {diff}", describe(sent)))
        })
        .collect();
    assert!(lost.is_empty(), "fields not kept:\n{}", lost.join("\n"));
}
