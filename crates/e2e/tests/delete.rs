//! `kubectl delete`: cascading through ownerReferences, finalizers, and collections.

use std::time::Duration;

use oxivirt_e2e::{wait_until, Kubectl, Server};

const GC_TIMEOUT: Duration = Duration::from_secs(20);

/// Creates ConfigMap `owner` and ConfigMap `dependent` owned by it; returns the owner's uid.
fn owner_and_dependent(k: &Kubectl, block_owner_deletion: bool) -> String {
    k.create_configmap("owner", &[]);
    let uid = k.jsonpath(&["configmap", "owner"], "{.metadata.uid}");
    assert!(!uid.is_empty());
    k.create(&format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: owner
    uid: {uid}
    blockOwnerDeletion: {block_owner_deletion}
data:
  a: b
"
    ));
    uid
}

#[test]
fn background_cascade_deletes_dependents_after_the_owner() {
    let server = Server::start();
    let k = server.kubectl();
    owner_and_dependent(&k, false);
    let out = k.ok(&["delete", "configmap", "owner", "--cascade=background"]);
    assert_eq!(out.trim(), r#"configmap "owner" deleted"#);
    assert!(!k.exists(&["configmap", "owner"]));
    wait_until("the dependent to be garbage-collected", GC_TIMEOUT, || {
        (!k.exists(&["configmap", "dependent"])).then_some(())
    });
}

#[test]
fn foreground_cascade_deletes_dependents_before_the_owner_disappears() {
    let server = Server::start();
    let k = server.kubectl();
    owner_and_dependent(&k, true);
    // kubectl waits for the owner to be gone; with Foreground that implies the blocking
    // dependent went first.
    let out = k.ok(&[
        "delete",
        "configmap",
        "owner",
        "--cascade=foreground",
        "--timeout=30s",
    ]);
    assert_eq!(out.trim(), r#"configmap "owner" deleted"#);
    assert!(!k.exists(&["configmap", "owner"]));
    assert!(!k.exists(&["configmap", "dependent"]));
}

#[test]
fn foreground_deletion_keeps_the_owner_with_a_finalizer_while_a_dependent_blocks() {
    let server = Server::start();
    let k = server.kubectl();
    owner_and_dependent(&k, true);
    // The dependent cannot go away while it has a finalizer of its own.
    k.ok(&[
        "patch",
        "configmap",
        "dependent",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    k.ok(&[
        "delete",
        "configmap",
        "owner",
        "--cascade=foreground",
        "--wait=false",
    ]);
    wait_until(
        "the owner to carry the foregroundDeletion finalizer",
        GC_TIMEOUT,
        || {
            let owner = k.json(&["get", "configmap", "owner"]);
            let finalizers = owner["metadata"]["finalizers"].to_string();
            (finalizers.contains("foregroundDeletion")
                && owner["metadata"]["deletionTimestamp"].is_string())
            .then_some(())
        },
    );
    k.ok(&[
        "patch",
        "configmap",
        "dependent",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_until("owner and dependent to be gone", GC_TIMEOUT, || {
        (!k.exists(&["configmap", "owner"]) && !k.exists(&["configmap", "dependent"])).then_some(())
    });
}

#[test]
fn orphan_cascade_keeps_dependents_and_strips_their_owner_reference() {
    let server = Server::start();
    let k = server.kubectl();
    owner_and_dependent(&k, false);
    k.ok(&[
        "delete",
        "configmap",
        "owner",
        "--cascade=orphan",
        "--timeout=30s",
    ]);
    assert!(!k.exists(&["configmap", "owner"]));
    wait_until(
        "the orphan's ownerReferences to be removed",
        GC_TIMEOUT,
        || {
            let refs = k.jsonpath(&["configmap", "dependent"], "{.metadata.ownerReferences}");
            (refs.is_empty() || refs == "[]").then_some(())
        },
    );
    assert_eq!(k.jsonpath(&["configmap", "dependent"], "{.data.a}"), "b");
}

#[test]
fn finalizer_keeps_a_deleted_object_until_a_patch_removes_it() {
    let server = Server::start();
    let k = server.kubectl();
    k.create(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers:\n  - example.com/hold\n",
    );
    let out = k.ok(&["delete", "configmap", "held", "--wait=false"]);
    assert_eq!(out.trim(), r#"configmap "held" deleted"#);

    let held = k.json(&["get", "configmap", "held"]);
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    assert_eq!(
        held["metadata"]["finalizers"][0], "example.com/hold",
        "{held}"
    );
    // Deleting again is accepted and changes nothing.
    k.ok(&["delete", "configmap", "held", "--wait=false"]);
    assert!(k.exists(&["configmap", "held"]));

    k.ok(&[
        "patch",
        "configmap",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    wait_until("the finalized object to disappear", GC_TIMEOUT, || {
        (!k.exists(&["configmap", "held"])).then_some(())
    });
}

#[test]
fn delete_by_label_and_delete_collection_remove_only_matching_objects() {
    let server = Server::start();
    let k = server.kubectl();
    for (name, app) in [
        ("a1", "a"),
        ("a2", "a"),
        ("b1", "b"),
        ("c1", "c"),
        ("c2", "c"),
    ] {
        k.create_configmap(name, &[]);
        k.ok(&["label", "configmap", name, &format!("app={app}")]);
    }
    k.ok(&["delete", "configmaps", "-l", "app=a"]);
    assert!(!k.exists(&["configmap", "a1"]) && !k.exists(&["configmap", "a2"]));

    // kubectl has no verb for deletecollection, so send the request itself.
    k.ok(&[
        "delete",
        "--raw",
        "/api/v1/namespaces/default/configmaps?labelSelector=app%3Dc",
    ]);
    wait_until("the collection delete", GC_TIMEOUT, || {
        (!k.exists(&["configmap", "c1"]) && !k.exists(&["configmap", "c2"])).then_some(())
    });
    assert!(k.exists(&["configmap", "b1"]));
}
