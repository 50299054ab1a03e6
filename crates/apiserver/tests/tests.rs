//! Component tests: the object service and its background controllers over the
//! in-memory store, without HTTP.

use std::time::Duration;

use oxivirt_apiserver::{
    in_memory_api, Api, ApiError, DeleteOptions, RequestCtx, Subresource, UserInfo,
};
use serde_json::{json, Value};

fn admin() -> RequestCtx {
    let mut ctx = RequestCtx::new(UserInfo {
        name: "admin".into(),
        groups: vec!["system:masters".into()],
    });
    ctx.field_manager = "test".into();
    ctx
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

async fn eventually(
    api: &Api,
    what: &str,
    check: impl Fn(&Api) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>>,
) {
    for _ in 0..200 {
        if check(api).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn stale_resource_version_update_is_a_conflict() {
    let api = in_memory_api().await.unwrap();
    let cm = api.registry.by_group_resource("", "configmaps").unwrap();
    let created = api
        .create(&cm, "default", configmap("a"), &admin(), "v1")
        .await
        .unwrap();
    let mut first = created.clone();
    first["data"]["k"] = json!("1");
    api.update(
        &cm,
        "default",
        "a",
        first,
        &admin(),
        Subresource::Main,
        "v1",
    )
    .await
    .unwrap();
    let mut stale = created.clone();
    stale["data"]["k"] = json!("2");
    let err = api
        .update(
            &cm,
            "default",
            "a",
            stale,
            &admin(),
            Subresource::Main,
            "v1",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Conflict { .. }), "{err}");
}

#[tokio::test]
async fn generation_counts_spec_changes_but_not_metadata_or_status() {
    let api = in_memory_api().await.unwrap();
    let vms = api
        .registry
        .by_group_resource("kubevirt.io", "virtualmachines")
        .unwrap();
    let vm = json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "g"},
        "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}}});
    let created = api
        .create(&vms, "default", vm, &admin(), "v1")
        .await
        .unwrap();
    assert_eq!(created["metadata"]["generation"], 1);
    let mut labelled = created.clone();
    labelled["metadata"]["labels"]["x"] = json!("y");
    let after_label = api
        .update(
            &vms,
            "default",
            "g",
            labelled,
            &admin(),
            Subresource::Main,
            "v1",
        )
        .await
        .unwrap();
    assert_eq!(
        after_label["metadata"]["generation"], 1,
        "metadata changes keep the generation"
    );
    let mut started = after_label.clone();
    started["spec"]["runStrategy"] = json!("Always");
    let after_spec = api
        .update(
            &vms,
            "default",
            "g",
            started,
            &admin(),
            Subresource::Main,
            "v1",
        )
        .await
        .unwrap();
    assert_eq!(after_spec["metadata"]["generation"], 2);
}

#[tokio::test]
async fn configmaps_have_no_generation_and_namespaces_keep_status_on_spec_writes() {
    let api = in_memory_api().await.unwrap();
    let cm = api.registry.by_group_resource("", "configmaps").unwrap();
    let created = api
        .create(&cm, "default", configmap("nogen"), &admin(), "v1")
        .await
        .unwrap();
    assert!(created["metadata"].get("generation").is_none());
    let ns = api.registry.by_group_resource("", "namespaces").unwrap();
    let created = api
        .create(&ns, "", json!({"metadata": {"name": "g"}}), &admin(), "v1")
        .await
        .unwrap();
    let mut labelled = created.clone();
    labelled["metadata"]["labels"]["x"] = json!("y");
    let after = api
        .update(&ns, "", "g", labelled, &admin(), Subresource::Main, "v1")
        .await
        .unwrap();
    assert_eq!(
        after["status"]["phase"], "Active",
        "status is kept on spec writes"
    );
}

#[tokio::test]
async fn background_deletion_collects_dependents_of_a_deleted_owner() {
    let api = in_memory_api().await.unwrap();
    let cm = api.registry.by_group_resource("", "configmaps").unwrap();
    let owner = api
        .create(&cm, "default", configmap("owner"), &admin(), "v1")
        .await
        .unwrap();
    let mut dependent = configmap("dependent");
    dependent["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"],
    }]);
    api.create(&cm, "default", dependent, &admin(), "v1")
        .await
        .unwrap();
    api.delete(
        &cm,
        "default",
        "owner",
        &DeleteOptions::default(),
        &admin(),
        "v1",
    )
    .await
    .unwrap();
    let cm2 = cm.clone();
    eventually(&api, "the dependent to be collected", move |api| {
        let cm = cm2.clone();
        Box::pin(async move { api.get(&cm, "default", "dependent", "v1").await.is_err() })
    })
    .await;
}

#[tokio::test]
async fn a_terminating_namespace_refuses_new_content_and_disappears_when_empty() {
    let api = in_memory_api().await.unwrap();
    let ns = api.registry.by_group_resource("", "namespaces").unwrap();
    let cm = api.registry.by_group_resource("", "configmaps").unwrap();
    api.create(&ns, "", json!({"metadata": {"name": "t"}}), &admin(), "v1")
        .await
        .unwrap();
    let mut held = configmap("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.create(&cm, "t", held, &admin(), "v1").await.unwrap();
    api.delete(&ns, "", "t", &DeleteOptions::default(), &admin(), "v1")
        .await
        .unwrap();
    let status = api.get(&ns, "", "t", "v1").await.unwrap();
    assert_eq!(status["status"]["phase"], "Terminating");
    let err = api
        .create(&cm, "t", configmap("late"), &admin(), "v1")
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Forbidden(_)), "{err}");
    // Releasing the finalizer lets the namespace controller finish.
    let mut released = api.get(&cm, "t", "held", "v1").await.unwrap();
    released["metadata"]["finalizers"] = json!([]);
    api.update(
        &cm,
        "t",
        "held",
        released,
        &admin(),
        Subresource::Main,
        "v1",
    )
    .await
    .unwrap();
    let ns2 = ns.clone();
    eventually(&api, "the namespace to be removed", move |api| {
        let ns = ns2.clone();
        Box::pin(async move { api.get(&ns, "", "t", "v1").await.is_err() })
    })
    .await;
}

#[tokio::test]
async fn users_cannot_create_pods_but_components_can() {
    let api = in_memory_api().await.unwrap();
    let pods = api.registry.by_group_resource("", "pods").unwrap();
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let err = api
        .create(&pods, "default", pod.clone(), &admin(), "v1")
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Forbidden(_)));
    let component = RequestCtx::new(UserInfo::system("test"));
    api.create(&pods, "default", pod, &component, "v1")
        .await
        .unwrap();
}
