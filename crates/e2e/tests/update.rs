//! `kubectl replace` (optimistic concurrency), `kubectl label` and `kubectl annotate`.

use oxivirt_e2e::Server;

#[test]
fn replace_with_a_stale_resource_version_is_a_conflict() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("cas", &[("v", "1")]);
    let stale = k.ok(&["get", "configmap", "cas", "-o", "yaml"]);
    let stale_path = server.write_file("stale.yaml", &stale.replace("v: \"1\"", "v: \"stale\""));

    k.ok(&[
        "patch",
        "configmap",
        "cas",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"v":"2"}}"#,
    ]);

    let err = k.fails(&["replace", "-f", stale_path.to_str().expect("utf-8 path")]);
    assert!(err.contains("Conflict"), "{err}");
    assert!(err.contains("the object has been modified"), "{err}");
    assert_eq!(k.jsonpath(&["configmap", "cas"], "{.data.v}"), "2");

    let fresh = k.ok(&["get", "configmap", "cas", "-o", "yaml"]);
    let fresh_path = server.write_file("fresh.yaml", &fresh.replace("v: \"2\"", "v: \"3\""));
    let out = k.ok(&["replace", "-f", fresh_path.to_str().expect("utf-8 path")]);
    assert_eq!(out.trim(), "configmap/cas replaced");
    assert_eq!(k.jsonpath(&["configmap", "cas"], "{.data.v}"), "3");
}

#[test]
fn every_update_changes_the_resource_version_and_keeps_the_uid() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("rv", &[]);
    let before = k.json(&["get", "configmap", "rv"]);
    k.ok(&["label", "configmap", "rv", "x=y"]);
    let after = k.json(&["get", "configmap", "rv"]);
    assert_ne!(
        before["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
    assert_eq!(before["metadata"]["uid"], after["metadata"]["uid"]);
    assert_eq!(
        before["metadata"]["creationTimestamp"],
        after["metadata"]["creationTimestamp"]
    );
}

#[test]
fn edit_saves_what_the_editor_changed() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("edited", &[("colour", "red")]);
    // A non-interactive "editor": kubectl passes it the path of the object's YAML.
    let editor = server.write_file(
        "editor.sh",
        "#!/bin/sh\nsed -i 's/^  colour: .*/  colour: green/' \"$1\"\n",
    );
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status();
    assert!(chmod.is_ok_and(|s| s.success()));
    let editor = editor.to_str().expect("utf-8 path");
    let out = k
        .run_with_env(&["edit", "configmap", "edited"], &[("KUBE_EDITOR", editor)])
        .ok();
    assert_eq!(out.trim(), "configmap/edited edited");
    assert_eq!(
        k.jsonpath(&["configmap", "edited"], "{.data.colour}"),
        "green"
    );
}

#[test]
fn label_adds_refuses_to_overwrite_without_flag_and_removes_labels() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("lab", &[]);
    assert_eq!(
        k.ok(&["label", "configmap", "lab", "tier=web"]).trim(),
        "configmap/lab labeled"
    );

    let err = k.fails(&["label", "configmap", "lab", "tier=db"]);
    assert!(err.contains("already has a value"), "{err}");
    k.ok(&["label", "configmap", "lab", "tier=db", "--overwrite"]);
    assert_eq!(
        k.jsonpath(&["configmap", "lab"], "{.metadata.labels.tier}"),
        "db"
    );

    assert_eq!(
        k.ok(&["label", "configmap", "lab", "tier-"]).trim(),
        "configmap/lab unlabeled"
    );
    assert_eq!(
        k.jsonpath(&["configmap", "lab"], "{.metadata.labels.tier}"),
        ""
    );
}

#[test]
fn annotate_adds_overwrites_and_removes_annotations() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("ann", &[]);
    let out = k.ok(&[
        "annotate",
        "configmap",
        "ann",
        "example.com/note=hello world",
    ]);
    assert_eq!(out.trim(), "configmap/ann annotated");
    assert_eq!(
        k.jsonpath(
            &["configmap", "ann"],
            r"{.metadata.annotations.example\.com/note}"
        ),
        "hello world"
    );
    k.ok(&[
        "annotate",
        "configmap",
        "ann",
        "example.com/note=bye",
        "--overwrite",
    ]);
    assert_eq!(
        k.jsonpath(
            &["configmap", "ann"],
            r"{.metadata.annotations.example\.com/note}"
        ),
        "bye"
    );
    k.ok(&["annotate", "configmap", "ann", "example.com/note-"]);
    assert_eq!(
        k.jsonpath(
            &["configmap", "ann"],
            r"{.metadata.annotations.example\.com/note}"
        ),
        ""
    );
}
