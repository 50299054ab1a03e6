//! The scheduler against real Nodes and Pods.

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::{json, Value};

use crate::harness::{eventually, phase, start, uid, Cluster};

fn small_vmi() -> Value {
    json!({"domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}}})
}

async fn bound_node(c: &Cluster, vmi: &Value) -> String {
    eventually(20, "the Pod to be bound", || async {
        c.launcher_pods(&uid(vmi))
            .await
            .into_iter()
            .find_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
    })
    .await
}

fn pod_scheduled(obj: &Value) -> Option<Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .cloned()
}

#[tokio::test]
async fn a_pod_that_fits_nowhere_is_marked_unschedulable_with_an_event() {
    let c = start(true).await;
    c.create_node("tiny", "4", "256Mi", json!({})).await;
    c.create_vm(
        "big",
        json!({"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {},
            "resources": {"requests": {"memory": "1Gi"}}}}}}),
    )
    .await;
    let vmi = eventually(20, "the VMI", || async { c.vmi("big").await }).await;
    let pod = eventually(20, "PodScheduled=False on the Pod", || async {
        c.launcher_pods(&uid(&vmi))
            .await
            .into_iter()
            .find(|p| pod_scheduled(p).is_some_and(|c| c["status"] == "False"))
    })
    .await;
    let condition = pod_scheduled(&pod).unwrap();
    assert_eq!(condition["reason"], "Unschedulable");
    let message = "0/1 nodes are available: 1 Insufficient memory.";
    assert_eq!(condition["message"], message);
    let pod_name = pod["metadata"]["name"].as_str().unwrap();
    // The Event is recorded right after the condition is written.
    let failed = eventually(20, "a FailedScheduling Event", || async {
        let events = c.events("Pod", pod_name).await;
        events
            .into_iter()
            .find(|e| e["reason"] == "FailedScheduling")
    })
    .await;
    assert_eq!(failed["message"], message, "{failed}");
    let vmi = eventually(20, "PodScheduled=False on the VMI", || async {
        c.vmi("big").await.filter(|v| pod_scheduled(v).is_some())
    })
    .await;
    assert_eq!(phase(&vmi), "Scheduling");
    let on_vmi = pod_scheduled(&vmi).unwrap();
    assert_eq!(
        (on_vmi["status"].as_str(), on_vmi["reason"].as_str()),
        (Some("False"), Some("Unschedulable"))
    );
    assert_eq!(on_vmi["message"], message);
    eventually(20, "ErrorUnschedulable", || async {
        (c.vm("big").await["status"]["printableStatus"] == "ErrorUnschedulable").then_some(())
    })
    .await;
    c.create_node("roomy", "4", "8Gi", json!({})).await;
    assert_eq!(
        bound_node(&c, &vmi).await,
        "roomy",
        "retried when a node appears"
    );
}

#[tokio::test]
async fn cordoned_nodes_are_skipped() {
    let c = start(true).await;
    c.create_node("a-cordoned", "64", "256Gi", json!({"unschedulable": true}))
        .await;
    c.create_node("b-open", "2", "2Gi", json!({})).await;
    let vmi = c.create_vmi("placed", small_vmi()).await;
    assert_eq!(bound_node(&c, &vmi).await, "b-open");
}

#[tokio::test]
async fn a_taint_without_a_toleration_keeps_pods_off_the_node() {
    let c = start(true).await;
    let taint = json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]});
    c.create_node("a-tainted", "64", "256Gi", taint).await;
    c.create_node("b-plain", "2", "2Gi", json!({})).await;
    let vmi = c.create_vmi("untolerant", small_vmi()).await;
    assert_eq!(bound_node(&c, &vmi).await, "b-plain");
    let mut tolerant = small_vmi();
    tolerant["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
    tolerant["nodeSelector"] = json!({"kubernetes.io/hostname": "a-tainted"});
    let vmi = c.create_vmi("tolerant", tolerant).await;
    assert_eq!(bound_node(&c, &vmi).await, "a-tainted");
}

#[tokio::test]
async fn pods_for_another_scheduler_stay_pending() {
    let c = start(true).await;
    c.create_node("node1", "4", "8Gi", json!({})).await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "elsewhere"},
        "spec": {"schedulerName": "other-scheduler", "containers": [{"name": "c", "image": "x"}]},
    }))
    .unwrap();
    c.pods().create(&PostParams::default(), &pod).await.unwrap();
    let vmi = c.create_vmi("mine", small_vmi()).await;
    assert_eq!(bound_node(&c, &vmi).await, "node1");
    let other = c.pods().get("elsewhere").await.unwrap();
    assert_eq!(other.spec.unwrap().node_name, None);
}
