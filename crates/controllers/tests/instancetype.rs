//! Instance type and preference capture into ControllerRevisions.

use std::time::Duration;

use serde_json::json;

use crate::harness::start;

#[tokio::test]
async fn a_vm_referencing_an_instancetype_gets_both_captured_as_controller_revisions() {
    let c = start(true).await;
    c.create_vm(
        "typed",
        json!({
            "runStrategy": "Halted",
            "instancetype": {"name": "u1.small"},
            "preference": {"name": "fedora"},
            "template": {"spec": {"domain": {"devices": {}}}},
        }),
    )
    .await;
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = c.vm("typed").await["status"].clone();
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
    let revisions: kube::Api<k8s_openapi::api::apps::v1::ControllerRevision> =
        kube::Api::namespaced(c.client.clone(), "default");
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
