//! The kube-rs client (the one oxivirt's controllers use) lists, watches and applies.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, Config};
use oxivirt_e2e::Server;

const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

async fn client(server: &Server) -> Client {
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig()).expect("read the admin kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube-rs accepts the admin kubeconfig");
    Client::try_from(config).expect("build a kube-rs client")
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"from": "kube-rs"},
    }))
    .expect("valid ConfigMap")
}

/// Reads watcher events until `pick` accepts one, failing after [`EVENT_TIMEOUT`].
async fn next_matching<S, T>(
    stream: &mut S,
    what: &str,
    mut pick: impl FnMut(&watcher::Event<ConfigMap>) -> Option<T>,
) -> T
where
    S: futures::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin,
{
    let wait = async {
        while let Some(event) = stream.try_next().await.expect("watch stream error") {
            if let Some(found) = pick(&event) {
                return found;
            }
        }
        panic!("watch stream ended before {what}");
    };
    tokio::time::timeout(EVENT_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {EVENT_TIMEOUT:?}"))
}

fn named(cm: &ConfigMap, name: &str) -> bool {
    cm.metadata.name.as_deref() == Some(name)
}

async fn watch_sees_create_and_delete(config: watcher::Config) {
    let server = Server::start();
    let client = client(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &configmap("existing"))
        .await
        .expect("create");

    let mut events = watcher(api.clone(), config).boxed();
    let initial = next_matching(&mut events, "the initial list", |event| match event {
        watcher::Event::InitApply(cm) if named(cm, "existing") => Some(true),
        _ => None,
    })
    .await;
    assert!(initial);
    next_matching(&mut events, "InitDone", |event| {
        matches!(event, watcher::Event::InitDone).then_some(())
    })
    .await;

    let created = api
        .create(&PostParams::default(), &configmap("watched"))
        .await
        .expect("create");
    let seen = next_matching(&mut events, "the Apply of `watched`", |event| match event {
        watcher::Event::Apply(cm) if named(cm, "watched") => Some(cm.clone()),
        _ => None,
    })
    .await;
    assert_eq!(seen.metadata.uid, created.metadata.uid);
    assert_eq!(seen.data, created.data);

    api.delete("watched", &DeleteParams::default())
        .await
        .expect("delete");
    next_matching(
        &mut events,
        "the Delete of `watched`",
        |event| match event {
            watcher::Event::Delete(cm) if named(cm, "watched") => Some(()),
            _ => None,
        },
    )
    .await;
}

#[tokio::test]
async fn kube_rs_lists_configmaps_and_namespaces_created_by_kubectl() {
    let server = Server::start();
    server.kubectl().create_configmap("listed", &[("a", "b")]);
    let client = client(&server).await;

    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let list = configmaps
        .list(&ListParams::default())
        .await
        .expect("list configmaps");
    let listed = list
        .items
        .iter()
        .find(|cm| named(cm, "listed"))
        .expect("`listed` in the list");
    assert_eq!(
        listed
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("b")
    );
    assert!(list
        .metadata
        .resource_version
        .is_some_and(|rv| !rv.is_empty()));

    let namespaces: Api<Namespace> = Api::all(client);
    let default = namespaces
        .get("default")
        .await
        .expect("get namespace default");
    assert_eq!(
        default.status.and_then(|s| s.phase).as_deref(),
        Some("Active")
    );
}

#[tokio::test]
async fn kube_rs_watcher_observes_objects_created_and_deleted() {
    watch_sees_create_and_delete(watcher::Config::default()).await;
}

#[tokio::test]
async fn kube_rs_watcher_with_streaming_lists_observes_objects_created_and_deleted() {
    // sendInitialEvents=true: the initial state arrives as watch events ending in a bookmark.
    watch_sees_create_and_delete(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test]
async fn kube_rs_server_side_apply_creates_then_updates_a_configmap() {
    let server = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let params = PatchParams::apply("oxivirt-e2e");
    let mut cm = configmap("applied");
    api.patch("applied", &params, &Patch::Apply(&cm))
        .await
        .expect("first apply");
    cm.data = Some([("from".to_owned(), "second".to_owned())].into());
    let updated = api
        .patch("applied", &params, &Patch::Apply(&cm))
        .await
        .expect("second apply");
    assert_eq!(
        updated.data.and_then(|d| d.get("from").cloned()).as_deref(),
        Some("second")
    );
    let managers: Vec<String> = updated
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.iter().any(|m| m == "oxivirt-e2e"), "{managers:?}");
    assert_eq!(
        server
            .kubectl()
            .jsonpath(&["configmap", "applied"], "{.data.from}"),
        "second"
    );
}
