//! Namespaces: the built-in ones, creation, and deletion of a namespace with its contents.

use std::time::Duration;

use oxivirt_e2e::{wait_until, Server};

#[test]
fn the_four_system_namespaces_exist_on_first_start() {
    let server = Server::start();
    let names = server.kubectl().ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            names.lines().any(|l| l == format!("namespace/{ns}")),
            "{ns} missing:\n{names}"
        );
    }
}

#[test]
fn the_default_and_kube_system_namespaces_may_not_be_deleted() {
    let server = Server::start();
    let k = server.kubectl();
    for ns in ["default", "kube-system", "kube-public"] {
        let err = k.fails(&["delete", "namespace", ns, "--wait=false"]);
        assert!(
            err.contains("Forbidden") && err.contains("may not be deleted"),
            "{ns}: {err}"
        );
        assert_eq!(
            k.jsonpath(&["namespace", ns], "{.status.phase}"),
            "Active",
            "{ns}"
        );
    }
}

#[test]
fn deleting_a_namespace_removes_its_contents_and_then_the_namespace() {
    let server = Server::start();
    let k = server.kubectl();
    assert_eq!(
        k.create_namespace("doomed").trim(),
        "namespace/doomed created"
    );
    assert_eq!(
        k.jsonpath(&["namespace", "doomed"], "{.status.phase}"),
        "Active"
    );
    k.create_configmap_in("doomed", "inside", &[]);
    k.create(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-inside\n  namespace: doomed\n",
    );

    let out = k.ok(&["delete", "namespace", "doomed", "--timeout=60s"]);
    assert_eq!(out.trim(), r#"namespace "doomed" deleted"#);
    assert!(!k.exists(&["namespace", "doomed"]));
    let left = k.ok(&["get", "configmaps,secrets", "-n", "doomed", "-o", "name"]);
    assert!(
        left.lines()
            .all(|l| l.is_empty() || l.ends_with("kube-root-ca.crt")),
        "left behind: {left}"
    );
}

#[test]
fn a_namespace_is_terminating_while_its_content_has_a_finalizer() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_namespace("slow");
    k.create(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: slow\n  finalizers:\n  - example.com/hold\n",
    );
    k.ok(&["delete", "namespace", "slow", "--wait=false"]);
    wait_until("phase Terminating", Duration::from_secs(20), || {
        (k.jsonpath(&["namespace", "slow"], "{.status.phase}") == "Terminating").then_some(())
    });
    let late = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late\n  namespace: slow\n";
    let err = k.run_stdin(&["create", "-f", "-"], late).fails();
    assert!(
        err.contains("Forbidden") || err.contains("being terminated"),
        "{err}"
    );

    k.ok(&[
        "patch",
        "configmap",
        "held",
        "-n",
        "slow",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_until("the namespace to be gone", Duration::from_secs(30), || {
        (!k.exists(&["namespace", "slow"])).then_some(())
    });
}
