//! Durability: objects survive a clean restart (SIGTERM) and a crash (`kill -9`).

use oxivirt_e2e::{Kubectl, Server};

fn resource_version(k: &Kubectl, args: &[&str]) -> u64 {
    let rv = k.jsonpath(args, "{.metadata.resourceVersion}");
    rv.parse()
        .unwrap_or_else(|_| panic!("resourceVersion {rv:?} is not a number"))
}

#[test]
fn objects_survive_a_clean_restart_with_the_same_data_dir() {
    let mut server = Server::start();
    let k = server.kubectl();
    k.create_namespace("kept");
    k.create_configmap_in("kept", "survivor", &[("a", "b")]);
    let before = k.json(&["get", "configmap", "survivor", "-n", "kept"]);
    let rv_before = resource_version(&k, &["configmap", "survivor", "-n", "kept"]);

    let status = server.stop();
    assert!(
        status.success(),
        "SIGTERM should stop the server cleanly, got {status}"
    );
    server.restart();

    let k = server.kubectl();
    let after = k.json(&["get", "configmap", "survivor", "-n", "kept"]);
    assert_eq!(before, after, "object changed across restart");
    k.create_configmap_in("kept", "newer", &[]);
    let rv_after = resource_version(&k, &["configmap", "newer", "-n", "kept"]);
    assert!(
        rv_after > rv_before,
        "resourceVersion went backwards: {rv_before} -> {rv_after}"
    );
}

#[test]
fn acknowledged_objects_survive_kill_9() {
    let mut server = Server::start();
    let k = server.kubectl();
    let manifest: String = (0..30)
        .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: acked-{i:02}\n  namespace: default\ndata:\n  index: \"{i}\"\n---\n"))
        .collect();
    let out = k.create(&manifest);
    assert_eq!(out.lines().count(), 30, "{out}");
    k.ok(&["label", "configmap", "acked-00", "updated=yes"]);
    k.ok(&["delete", "configmap", "acked-29"]);

    server.kill();
    server.restart();

    let k = server.kubectl();
    let names = k.ok(&["get", "configmaps", "-o", "name", "-l", "!updated"]);
    for i in 1..29 {
        assert!(
            names
                .lines()
                .any(|l| l == format!("configmap/acked-{i:02}")),
            "acked-{i:02} lost:\n{names}"
        );
    }
    assert!(
        !names.contains("acked-29"),
        "deleted object came back:\n{names}"
    );
    assert_eq!(
        k.jsonpath(&["configmap", "acked-00"], "{.metadata.labels.updated}"),
        "yes"
    );
    assert_eq!(
        k.jsonpath(&["configmap", "acked-17"], "{.data.index}"),
        "17"
    );
}

#[test]
fn a_crd_and_its_custom_resources_survive_a_restart() {
    let mut server = Server::start();
    crate::crd::install_widget_crd(&server.kubectl());
    server.kubectl().apply(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: lasting\nspec:\n  size: 5\n",
    );
    server.stop();
    server.restart();
    let k = server.kubectl();
    assert_eq!(k.jsonpath(&["widget", "lasting"], "{.spec.size}"), "5");
}
