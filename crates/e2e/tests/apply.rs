//! `kubectl apply` (client-side and server-side) and `kubectl create`.

use oxivirt_e2e::{assert_subset, shared_dir, Server};
use serde_json::Value;

fn cirros_example() -> std::path::PathBuf {
    shared_dir().join("reference/kubevirt/examples/vm-cirros.yaml")
}

#[test]
fn apply_of_the_cirros_example_creates_a_vm_that_keeps_every_field() {
    let server = Server::start();
    let k = server.kubectl();
    let path = cirros_example();
    let path = path.to_str().expect("utf-8 path");

    let out = k.ok(&["apply", "-f", path]);
    assert!(
        out.contains("virtualmachine.kubevirt.io/vm-cirros created"),
        "{out}"
    );

    let sent: Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("read the example"))
            .expect("the example is YAML");
    let stored = k.json(&["get", "virtualmachine", "vm-cirros"]);
    assert_subset(&sent, &stored);
    assert_eq!(stored["metadata"]["generation"], 1, "{stored}");
    assert!(stored["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));

    let again = k.ok(&["apply", "-f", path]);
    assert!(
        again.contains("virtualmachine.kubevirt.io/vm-cirros unchanged"),
        "{again}"
    );

    let table = k.ok(&["get", "vm"]);
    // KubeVirt's printer columns for VirtualMachine: Age, Status, Ready.
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "AGE", "STATUS", "READY"], "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("vm-cirros ")),
        "{table}"
    );
}

#[test]
fn apply_updates_an_object_and_removes_fields_dropped_from_the_manifest() {
    let server = Server::start();
    let k = server.kubectl();
    let first = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n  b: \"2\"\n";
    assert!(k.apply(first).contains("configmap/settings created"));
    let second =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"10\"\n";
    assert!(k.apply(second).contains("configmap/settings configured"));
    let data = k.json(&["get", "cm", "settings"])["data"].clone();
    assert_eq!(data, serde_json::json!({"a": "10"}));
}

#[test]
fn diff_shows_a_pending_change_through_a_server_dry_run() {
    let server = Server::start();
    let k = server.kubectl();
    let manifest = |value: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: diffed\ndata:\n  key: \"{value}\"\n")
    };
    k.apply(&manifest("old"));
    let same = server.write_file("same.yaml", &manifest("old"));
    let run = k.run(&["diff", "-f", same.to_str().expect("utf-8 path")]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "no difference expected: {run:?}"
    );

    let changed = server.write_file("changed.yaml", &manifest("new"));
    let run = k.run(&["diff", "-f", changed.to_str().expect("utf-8 path")]);
    assert_eq!(
        run.status.code(),
        Some(1),
        "kubectl diff exits 1 on differences: {run:?}"
    );
    assert!(
        run.stdout.contains("-  key: old") && run.stdout.contains("+  key: new"),
        "{}",
        run.stdout
    );
    assert_eq!(
        k.jsonpath(&["configmap", "diffed"], "{.data.key}"),
        "old",
        "diff changed nothing"
    );
}

#[test]
fn create_from_a_manifest_makes_an_object_and_refuses_a_duplicate() {
    let server = Server::start();
    let k = server.kubectl();
    let secret =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: from-file\nstringData:\n  token: abc\n";
    assert_eq!(k.create(secret).trim(), "secret/from-file created");
    // stringData is write-only: it lands base64-encoded in data.
    assert_eq!(
        k.jsonpath(&["secret", "from-file"], "{.data.token}"),
        "YWJj"
    );
    assert_eq!(k.jsonpath(&["secret", "from-file"], "{.stringData}"), "");

    let err = k.run_stdin(&["create", "-f", "-"], secret).fails();
    assert!(
        err.contains("AlreadyExists") && err.contains("already exists"),
        "{err}"
    );
}

/// The `kubectl create <kind>` subcommands go through kubectl's typed client, which sends
/// protobuf bodies (`Content-Type: application/vnd.kubernetes.protobuf`) for built-in kinds.
#[test]
fn create_subcommands_make_configmaps_namespaces_secrets_and_services() {
    let server = Server::start();
    let k = server.kubectl();
    let out = k.ok(&[
        "create",
        "configmap",
        "from-flags",
        "--from-literal=greeting=hello",
    ]);
    assert_eq!(out.trim(), "configmap/from-flags created");
    assert_eq!(
        k.jsonpath(&["configmap", "from-flags"], "{.data.greeting}"),
        "hello"
    );
    assert_eq!(
        k.ok(&["create", "namespace", "imperative"]).trim(),
        "namespace/imperative created"
    );
    let out = k.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "imperative",
        "--from-literal=a=b",
    ]);
    assert_eq!(out.trim(), "secret/s created");
    let out = k.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    assert_eq!(out.trim(), "service/web created");
    assert_eq!(
        k.jsonpath(&["service", "web"], "{.spec.ports[0].targetPort}"),
        "8080"
    );

    // The typed client's error has no "(AlreadyExists)" prefix, unlike `create -f`.
    let err = k.fails(&["create", "configmap", "from-flags"]);
    assert!(
        err.contains(r#"configmaps "from-flags" already exists"#),
        "{err}"
    );
}

#[test]
fn create_with_server_dry_run_stores_nothing() {
    let server = Server::start();
    let k = server.kubectl();
    let out = k
        .run_stdin(
            &["create", "--dry-run=server", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n",
        )
        .ok();
    assert!(
        out.contains("configmap/dry created (server dry run)"),
        "{out}"
    );
    assert!(!k.exists(&["configmap", "dry"]));
}

#[test]
fn server_side_apply_reports_conflicts_between_field_managers_until_forced() {
    let server = Server::start();
    let k = server.kubectl();
    let manifest = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  key: {value}\n"
        )
    };
    let out = k
        .run_stdin(&["apply", "--server-side", "-f", "-"], &manifest("one"))
        .ok();
    assert!(out.contains("configmap/shared serverside-applied"), "{out}");

    let err = k
        .run_stdin(
            &["apply", "--server-side", "--field-manager=other", "-f", "-"],
            &manifest("two"),
        )
        .fails();
    assert!(err.contains("conflict"), "{err}");
    assert!(
        err.contains("kubectl") && err.contains(".data.key"),
        "{err}"
    );
    assert_eq!(k.jsonpath(&["cm", "shared"], "{.data.key}"), "one");

    k.run_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &manifest("two"),
    )
    .ok();
    assert_eq!(k.jsonpath(&["cm", "shared"], "{.data.key}"), "two");
    let cm = k.json(&["get", "cm", "shared", "--show-managed-fields"]);
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap_or_else(|| panic!("no managedFields: {cm}"))
        .iter()
        .filter_map(|entry| entry["manager"].as_str())
        .collect();
    assert!(managers.contains(&"other"), "managers: {managers:?}");
}

#[test]
fn server_side_apply_by_the_same_manager_removes_fields_it_no_longer_sets() {
    let server = Server::start();
    let k = server.kubectl();
    let both = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\ndata:\n  a: \"x\"\n  b: \"y\"\n";
    let one = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\ndata:\n  a: \"x\"\n";
    k.run_stdin(&["apply", "--server-side", "-f", "-"], both)
        .ok();
    k.run_stdin(&["apply", "--server-side", "-f", "-"], one)
        .ok();
    let data = k.json(&["get", "cm", "owned"])["data"].clone();
    assert_eq!(data, serde_json::json!({"a": "x"}));
}
