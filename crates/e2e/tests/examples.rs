//! Upstream's example manifests (`<shared>/reference/{kubevirt,cdi}/examples/`) through
//! `kubectl apply --validate=strict`: every file lands in a namespace of its own and keeps every
//! field it sets; the few files upstream itself refuses are refused for the same reason.
//!
//! To keep the suite fast, the accepted files go through one `kubectl apply` of a stream in
//! which each file's namespaced objects carry the file's namespace (what `-n` would do; objects
//! that name a namespace, like CDI's `vddk-args-*.yaml` in `cdi`, keep it). The manifests are
//! read as YAML 1.2; none of them uses a YAML 1.1-only scalar (`yes`, `on`, octal) that kubectl
//! would read differently.

use std::collections::BTreeSet;
use std::path::PathBuf;

use oxivirt_e2e::{
    cluster_scoped_kinds, describe, items, namespace_of, namespaces, placed_in, shared_dir, stream,
    subset_difference, without_nulls, yaml_documents, Server, SharedServer,
};
use serde_json::Value;

/// Shared by the tests of refused examples (the accepted ones get a server of their own, as
/// they also create cluster-scoped objects the refused ones depend on).
static SERVER: SharedServer = SharedServer::new();

/// What upstream's VM admission says when a VM with an instance type also sets `memory.guest`
/// (`pkg/instancetype/apply` conflicts; the generated examples set it for the preference-less
/// case and upstream refuses them all).
const MEMORY_CONFLICT: &str =
    "VM field(s) spec.template.spec.domain.memory.guest conflicts with selected instance type";

/// KubeVirt examples upstream refuses with [`MEMORY_CONFLICT`], with the example files holding
/// the instance types and preferences they refer to (without those, the refusal would be
/// "Failure to find instancetype" instead).
const REFUSED_WITH_MEMORY_CONFLICT: &[(&str, &[&str])] = &[
    (
        "vm-cirros-clarge-virtio.yaml",
        &["clarge.yaml", "virtio.yaml"],
    ),
    (
        "vm-cirros-clarge-windows.yaml",
        &["clarge.yaml", "windows.yaml"],
    ),
    ("vm-cirros-clarge.yaml", &["clarge.yaml"]),
    ("vm-cirros-cluster-csmall.yaml", &["cluster-csmall.yaml"]),
    ("vm-cirros-csmall.yaml", &["csmall.yaml"]),
    (
        "vm-windows-clarge-windows.yaml",
        &["clarge.yaml", "windows.yaml"],
    ),
];

/// KubeVirt examples of kinds OpenShift Virtualization 4.16 does not serve: DRA's
/// `resource.k8s.io` API is not served by OpenShift 4.16 (Kubernetes 1.29), so kubectl finds no
/// REST mapping for the kind and refuses the file.
const NOT_SERVED: &[(&str, &str)] = &[(
    "pgpu-resource-claim-tmpl.yaml",
    r#"no matches for kind "ResourceClaimTemplate" in version "resource.k8s.io/v1""#,
)];

/// Examples of kinds that, as upstream's CDI API server serves them, can only be created:
/// `kubectl apply` (which reads first) is answered 405, `kubectl create` returns a token.
const CREATE_ONLY: &[&str] = &[
    "upload-datavolume-token.yaml",
    "upload-block-datavolume-token.yaml",
];

/// Fields an example sets to an empty value that upstream's mutating webhook fills with a
/// default, so the stored object rightly differs there: `machine: {type: ""}` gets the
/// cluster's machine type (`q35`), as upstream's VM mutator does for an empty type.
const FILLED_BY_DEFAULTS: &[(&str, &[&str])] = &[(
    "cdi/vm-dv.yaml",
    &["spec", "template", "spec", "domain", "machine", "type"],
)];

/// `object` without the fields [`FILLED_BY_DEFAULTS`] lists for `label`.
fn without_defaulted_fields(label: &str, object: &Value) -> Value {
    let mut object = without_nulls(object);
    for (_, path) in FILLED_BY_DEFAULTS.iter().filter(|(l, _)| *l == label) {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let parent = parents
            .iter()
            .try_fold(&mut object, |node, key| node.get_mut(*key));
        if let Some(Value::Object(map)) = parent {
            map.remove(*last);
        }
    }
    object
}

/// One example file and its objects.
struct Example {
    /// `kubevirt/<file>` or `cdi/<file>`, for messages.
    label: String,
    /// The file name alone.
    file: String,
    path: PathBuf,
    objects: Vec<Value>,
}

fn examples_dir(project: &str) -> PathBuf {
    shared_dir().join(format!("reference/{project}/examples"))
}

/// Every `*.yaml` example of KubeVirt, then of CDI, sorted by name.
fn examples() -> Vec<Example> {
    let mut out = Vec::new();
    for project in ["kubevirt", "cdi"] {
        let dir = examples_dir(project);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| {
                panic!(
                    "{} is readable ({e}); set OXIVIRT_SHARED_DIR",
                    dir.display()
                )
            })
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        for path in paths {
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .expect("utf-8 file name")
                .to_owned();
            let text = std::fs::read_to_string(&path).expect("example is readable");
            let label = format!("{project}/{file}");
            let objects = yaml_documents(&text, &label);
            out.push(Example {
                label,
                file,
                path,
                objects,
            });
        }
    }
    out
}

/// The fresh namespace of one example file: `ex-<file stem>`.
fn namespace_for(file: &str) -> String {
    let stem = file.trim_end_matches(".yaml").trim_end_matches(".yml");
    let name: String = stem
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("ex-{name}").chars().take(63).collect()
}

fn is_refused(file: &str) -> bool {
    REFUSED_WITH_MEMORY_CONFLICT.iter().any(|(f, _)| *f == file)
        || NOT_SERVED.iter().any(|(f, _)| *f == file)
        || CREATE_ONLY.contains(&file)
}

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn create_only_examples_are_created_and_answered_with_a_token() {
    let server = Server::start();
    let k = server.kubectl();
    let all = examples();
    for file in CREATE_ONLY {
        let example = all
            .iter()
            .find(|e| e.file == *file)
            .unwrap_or_else(|| panic!("{file} is among the examples"));
        let created = k.json(&["create", "-f", path_str(&example.path), "-o", "json"]);
        let token = created["status"]["token"].as_str().unwrap_or_default();
        assert!(!token.is_empty(), "{file}: no token in {created}");
    }
}

#[test]
fn every_upstream_example_applies_strictly_in_its_own_namespace_and_keeps_every_field() {
    let server = Server::start();
    let k = server.kubectl();
    let cluster_scoped = cluster_scoped_kinds(&k);

    let all = examples();
    let accepted: Vec<&Example> = all.iter().filter(|e| !is_refused(&e.file)).collect();
    assert!(
        accepted.len() >= 60,
        "only {} example files found",
        accepted.len()
    );
    let mut sources = Vec::new();
    let mut objects = Vec::new();
    for example in &accepted {
        let namespace = namespace_for(&example.file);
        for object in &example.objects {
            sources.push(example.label.as_str());
            objects.push(placed_in(object, &namespace, &cluster_scoped));
        }
    }
    let wanted: BTreeSet<&str> = objects.iter().filter_map(namespace_of).collect();
    k.run_stdin(&["apply", "-f", "-"], &namespaces(wanted)).ok();

    let manifests = stream(&objects);
    let out = k
        .run_stdin(&["apply", "--validate=strict", "-f", "-"], &manifests)
        .ok();
    // Singletons the product makes on first start, as CDI's operator does (CDIConfig
    // `config`), exist already: kubectl reports them `configured`.
    let created = out.lines().filter(|l| l.ends_with(" created")).count();
    let configured = out
        .lines()
        .filter(|l| {
            l.ends_with(" configured") && l.starts_with("cdiconfig.cdi.kubevirt.io/config ")
        })
        .count();
    assert_eq!(
        created + configured,
        objects.len(),
        "every object is created:\n{out}"
    );

    let stored = items(
        &k.run_stdin(&["get", "-f", "-", "-o", "json"], &manifests)
            .ok(),
    );
    assert_eq!(stored.len(), objects.len());
    let lost: Vec<String> = sources
        .iter()
        .zip(&objects)
        .zip(&stored)
        .filter_map(|((source, sent), stored)| {
            subset_difference(&without_defaulted_fields(source, sent), stored)
                .map(|diff| format!("{source}: {}: {diff}", describe(sent)))
        })
        .collect();
    assert!(lost.is_empty(), "fields not kept:\n{}", lost.join("\n"));
}

#[test]
fn instancetype_examples_that_also_set_guest_memory_are_refused_with_upstreams_conflict() {
    let server = SERVER.get();
    let k = server.kubectl();
    // One namespace holding every instance type and preference the refused VMs refer to.
    let namespace = "ex-refused-instancetype-vms";
    k.create_namespace(namespace);
    let kubevirt = examples_dir("kubevirt");
    let mut dependencies: Vec<&str> = REFUSED_WITH_MEMORY_CONFLICT
        .iter()
        .flat_map(|(_, deps)| deps.iter().copied())
        .collect();
    dependencies.sort_unstable();
    dependencies.dedup();
    let dependency_paths: Vec<PathBuf> = dependencies.iter().map(|d| kubevirt.join(d)).collect();
    let mut args = vec!["apply", "-n", namespace];
    for path in &dependency_paths {
        args.extend(["-f", path_str(path)]);
    }
    k.ok(&args);

    let refused_paths: Vec<PathBuf> = REFUSED_WITH_MEMORY_CONFLICT
        .iter()
        .map(|(file, _)| kubevirt.join(file))
        .collect();
    let mut args = vec!["apply", "--validate=strict", "-n", namespace];
    for path in &refused_paths {
        args.extend(["-f", path_str(path)]);
    }
    let err = k.fails(&args);
    for (file, _) in REFUSED_WITH_MEMORY_CONFLICT {
        assert!(
            err.lines()
                .any(|line| line.contains(file) && line.contains(MEMORY_CONFLICT)),
            "{file} is refused with {MEMORY_CONFLICT:?}:\n{err}"
        );
    }
    assert_eq!(
        k.ok(&["get", "vm", "-n", namespace, "-o", "name"]),
        "",
        "no refused VM is stored"
    );
}

#[test]
fn the_resource_claim_template_example_is_refused_because_openshift_does_not_serve_its_kind() {
    let server = SERVER.get();
    let k = server.kubectl();
    let namespace = "ex-not-served";
    k.create_namespace(namespace);
    let all = examples();
    for (file, reason) in NOT_SERVED {
        let example = all
            .iter()
            .find(|e| e.file == *file)
            .unwrap_or_else(|| panic!("{file} is among the examples"));
        let err = k.fails(&[
            "apply",
            "--validate=strict",
            "-n",
            namespace,
            "-f",
            path_str(&example.path),
        ]);
        assert!(
            err.contains(reason),
            "{file}: expected {reason:?} in:\n{err}"
        );
    }
}
