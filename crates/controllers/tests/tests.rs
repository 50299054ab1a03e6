//! Controllers against the real in-process API server (HTTPS, kube-rs client), as the
//! node agent and virt-controller roles will run.

use std::time::Duration;

use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Api;
use oxivirt_apiserver::ServerConfig;
use serde_json::json;

async fn start() -> (tempfile::TempDir, kube::Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = oxivirt_apiserver::start(ServerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
    })
    .await
    .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.components_kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    (dir, kube::Client::try_from(config).unwrap())
}

#[tokio::test]
async fn a_vm_referencing_an_instancetype_gets_both_captured_as_controller_revisions() {
    let (_dir, client) = start().await;
    tokio::spawn(oxivirt_controllers::run(client.clone()));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "kubevirt.io",
        "v1",
        "VirtualMachine",
    ));
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let vm: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "typed"},
        "spec": {
            "runStrategy": "Halted",
            "instancetype": {"name": "u1.small"},
            "preference": {"name": "fedora"},
            "template": {"spec": {"domain": {"devices": {}}}},
        },
    }))
    .unwrap();
    vms.create(&PostParams::default(), &vm).await.unwrap();
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = vms.get("typed").await.unwrap().data["status"].clone();
        if status
            .pointer("/preferenceRef/controllerRevisionRef/name")
            .is_some()
            && status
                .pointer("/instancetypeRef/controllerRevisionRef/name")
                .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status["instancetypeRef"]["kind"], "VirtualMachineClusterInstancetype",
        "{status}"
    );
    let revision = status["instancetypeRef"]["controllerRevisionRef"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let revisions: Api<k8s_openapi::api::apps::v1::ControllerRevision> =
        Api::namespaced(client, "default");
    let captured = revisions.get(&revision).await.unwrap();
    let data = serde_json::to_value(captured.data.unwrap()).unwrap();
    assert_eq!(
        data["spec"]["cpu"]["guest"], 1,
        "u1.small has one vCPU: {data}"
    );
    assert_eq!(data["spec"]["memory"]["guest"], "2Gi");
    let owner = &captured.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("VirtualMachine", "typed")
    );
}
