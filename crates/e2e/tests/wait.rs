//! `kubectl wait` for conditions, deletion and JSONPath values.

use std::time::Duration;

use oxivirt_e2e::Server;

use crate::crd::install_widget_crd;

#[test]
fn wait_for_condition_established_succeeds_for_a_new_crd() {
    let server = Server::start();
    // install_widget_crd runs `kubectl wait --for=condition=Established` and checks its output.
    install_widget_crd(&server.kubectl());
}

#[test]
fn wait_for_condition_times_out_when_the_condition_never_appears() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_namespace("quiet");
    let err = k.fails(&[
        "wait",
        "--for=condition=Ready",
        "namespace/quiet",
        "--timeout=2s",
    ]);
    assert!(err.contains("timed out"), "{err}");
}

#[test]
fn wait_for_jsonpath_sees_a_namespace_become_active_and_a_value_change() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_namespace("watched");
    let out = k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Active",
        "namespace/watched",
        "--timeout=30s",
    ]);
    assert_eq!(out.trim(), "namespace/watched condition met");

    k.create_configmap("flag", &[("state", "off")]);
    let mut waiter = k.spawn(&[
        "wait",
        "--for=jsonpath={.data.state}=on",
        "configmap/flag",
        "--timeout=30s",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    k.ok(&[
        "patch",
        "configmap",
        "flag",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"state":"on"}}"#,
    ]);
    waiter.expect_line(&["configmap/flag condition met"], Duration::from_secs(30));
}

#[test]
fn wait_for_delete_returns_once_the_object_is_gone() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("doomed", &[]);
    let waiter = k.spawn(&["wait", "--for=delete", "configmap/doomed", "--timeout=30s"]);
    std::thread::sleep(Duration::from_millis(300));
    k.ok(&["delete", "configmap", "doomed"]);
    let run = waiter.finish(Duration::from_secs(30));
    assert!(run.status.success(), "{run:?}");

    // Waiting for the deletion of something already gone succeeds at once.
    k.ok(&["wait", "--for=delete", "configmap/doomed", "--timeout=5s"]);
}
