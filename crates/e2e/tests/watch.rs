//! `kubectl get --watch`: events reach a watching client.

use std::time::Duration;

use oxivirt_e2e::Server;

const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

#[test]
fn get_watch_prints_a_configmap_created_after_it_started() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("before", &[]);
    let mut watch = k.spawn(&["get", "configmaps", "--watch"]);
    watch.expect_line(&["before"], EVENT_TIMEOUT);
    k.create_configmap("after", &[("a", "b")]);
    let line = watch.expect_line(&["after"], EVENT_TIMEOUT);
    assert!(
        line.split_whitespace().nth(1) == Some("1"),
        "DATA column: {line}"
    );
}

#[test]
fn get_watch_with_event_types_reports_added_modified_and_deleted() {
    let server = Server::start();
    let k = server.kubectl();
    let mut watch = k.spawn(&["get", "configmaps", "--watch", "--output-watch-events"]);
    k.create_configmap("evt", &[]);
    // Seen either in the initial list (also printed as ADDED) or as a watch event; either
    // way the watch is open before the changes below.
    watch.expect_line(&["ADDED", "evt"], EVENT_TIMEOUT);
    k.ok(&["label", "configmap", "evt", "x=y"]);
    watch.expect_line(&["MODIFIED", "evt"], EVENT_TIMEOUT);
    k.ok(&["delete", "configmap", "evt"]);
    watch.expect_line(&["DELETED", "evt"], EVENT_TIMEOUT);
}

#[test]
fn watch_resumes_from_a_resource_version() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("old", &[]);
    let list = k.ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps"]);
    let list: serde_json::Value = serde_json::from_str(&list).expect("list JSON");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("list resourceVersion")
        .to_owned();
    k.create_configmap("new", &[]);
    // A watch from the list's revision replays only what happened after it.
    let mut watch = k.spawn(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
    ]);
    let line = watch.expect_line(&["\"ADDED\""], EVENT_TIMEOUT);
    assert!(
        line.contains("\"name\":\"new\""),
        "first event is not `new`: {line}"
    );
}
