//! `kubectl patch` with each patch type, and `generation` bookkeeping.

use oxivirt_e2e::Server;
use serde_json::json;

#[test]
fn patch_applies_merge_json_and_strategic_patches_to_a_configmap() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("p", &[("a", "1")]);

    let out = k.ok(&[
        "patch",
        "configmap",
        "p",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    assert_eq!(out.trim(), "configmap/p patched");
    let out = k.ok(&[
        "patch",
        "configmap",
        "p",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/c","value":"3"},{"op":"remove","path":"/data/a"}]"#,
    ]);
    assert_eq!(out.trim(), "configmap/p patched");
    let out = k.ok(&[
        "patch",
        "configmap",
        "p",
        "--type",
        "strategic",
        "-p",
        r#"{"metadata":{"labels":{"patched":"yes"}},"data":{"b":null}}"#,
    ]);
    assert_eq!(out.trim(), "configmap/p patched");

    let cm = k.json(&["get", "configmap", "p"]);
    assert_eq!(cm["data"], json!({"c": "3"}), "{cm}");
    assert_eq!(cm["metadata"]["labels"]["patched"], "yes", "{cm}");
}

#[test]
fn json_patch_with_a_failing_test_operation_changes_nothing() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("guarded", &[("a", "1")]);
    k.fails(&[
        "patch", "configmap", "guarded", "--type", "json",
        "-p", r#"[{"op":"test","path":"/data/a","value":"2"},{"op":"replace","path":"/data/a","value":"3"}]"#,
    ]);
    assert_eq!(k.jsonpath(&["configmap", "guarded"], "{.data.a}"), "1");
}

#[test]
fn strategic_patch_merges_service_ports_by_key_while_merge_patch_replaces_the_list() {
    let server = Server::start();
    let k = server.kubectl();
    k.create(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n",
    );
    k.ok(&[
        "patch",
        "service",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"ports":[{"name":"https","port":443,"targetPort":8443}]}}"#,
    ]);
    // Kubernetes puts list items that only the patch has first; compare as a set.
    let mut ports: Vec<String> = k
        .jsonpath(&["service", "web"], "{.spec.ports[*].port}")
        .split(' ')
        .map(str::to_owned)
        .collect();
    ports.sort();
    assert_eq!(ports, ["443", "80"]);

    k.ok(&[
        "patch",
        "service",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"ports":[{"name":"only","port":9090}]}}"#,
    ]);
    assert_eq!(
        k.jsonpath(&["service", "web"], "{.spec.ports[*].port}"),
        "9090"
    );
}

#[test]
fn merge_patch_of_a_vm_spec_bumps_generation_but_a_label_change_does_not() {
    let server = Server::start();
    let k = server.kubectl();
    k.apply(
        "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: gen\nspec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        devices: {}\n        memory:\n          guest: 64Mi\n",
    );
    assert_eq!(k.jsonpath(&["vm", "gen"], "{.metadata.generation}"), "1");
    k.ok(&[
        "patch",
        "vm",
        "gen",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"runStrategy":"Always"}}"#,
    ]);
    assert_eq!(k.jsonpath(&["vm", "gen"], "{.metadata.generation}"), "2");
    assert_eq!(k.jsonpath(&["vm", "gen"], "{.spec.runStrategy}"), "Always");
    k.ok(&["label", "vm", "gen", "touched=yes"]);
    assert_eq!(k.jsonpath(&["vm", "gen"], "{.metadata.generation}"), "2");
}

#[test]
fn patch_with_server_dry_run_changes_nothing() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("dry", &[("a", "1")]);
    let out = k.ok(&[
        "patch",
        "configmap",
        "dry",
        "--type",
        "merge",
        "--dry-run=server",
        "-p",
        r#"{"data":{"a":"2"}}"#,
    ]);
    // kubectl 1.32 prints no "(server dry run)" suffix for patch, unlike create.
    assert_eq!(out.trim(), "configmap/dry patched");
    assert_eq!(k.jsonpath(&["configmap", "dry"], "{.data.a}"), "1");
}
