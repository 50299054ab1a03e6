//! The VirtualMachineInstance controller: launcher Pods, phases, deletion.

use serde_json::{json, Value};

use crate::harness::{eventually, phase, start, uid, Cluster};

fn vmi_spec() -> Value {
    json!({
        "domain": {"devices": {}, "cpu": {"cores": 2}, "resources": {"requests": {"memory": "128Mi"}}},
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "vms", "effect": "NoSchedule"}],
        "terminationGracePeriodSeconds": 0,
    })
}

async fn launcher_pod(c: &Cluster, vmi: &Value) -> Value {
    eventually(20, "the launcher Pod", || async {
        c.launcher_pods(&uid(vmi)).await.into_iter().next()
    })
    .await
}

async fn vmi_in_phase(c: &Cluster, name: &str, want: &str) -> Value {
    eventually(20, &format!("VMI phase {want}"), || async {
        c.vmi(name).await.filter(|v| phase(v) == want)
    })
    .await
}

#[tokio::test]
async fn a_vmi_gets_a_launcher_pod_with_the_contracts_labels_requests_and_node_selector() {
    let c = start(true).await;
    let vmi = c.create_vmi("vmi1", vmi_spec()).await;
    let pod = launcher_pod(&c, &vmi).await;
    let name = pod["metadata"]["name"].as_str().unwrap();
    let suffix = name.strip_prefix("virt-launcher-vmi1-").unwrap();
    assert!(
        suffix.len() == 5 && suffix.bytes().all(|b| b.is_ascii_lowercase()),
        "{name}"
    );
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["kubevirt.io"], "virt-launcher");
    assert_eq!(labels["kubevirt.io/created-by"], uid(&vmi).as_str());
    assert_eq!(labels["vm.kubevirt.io/name"], "vmi1");
    assert_eq!(labels["app"], "vmi1");
    assert_eq!(pod["metadata"]["annotations"]["kubevirt.io/domain"], "vmi1");
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["controller"].as_bool()),
        (Some("VirtualMachineInstance"), Some(true))
    );
    let spec = &pod["spec"];
    assert_eq!(
        spec["nodeSelector"],
        json!({"disk": "ssd", "kubevirt.io/schedulable": "true"})
    );
    assert_eq!(spec["tolerations"][0]["value"], "vms");
    assert_eq!(spec["terminationGracePeriodSeconds"], 0);
    let compute = &spec["containers"][0];
    assert_eq!(compute["name"], "compute");
    assert_eq!(spec["containers"][1]["name"], "guest-console-log");
    // 128 Mi + 0.25 Mi page tables + 240 + 8 (IOThread) + 16 (2 vCPUs) + 32 (video).
    assert_eq!(compute["resources"]["requests"]["memory"], "425Mi");
    assert_eq!(compute["resources"]["requests"]["cpu"], "100m");
    vmi_in_phase(&c, "vmi1", "Scheduling").await;
    let events = c.events("VirtualMachineInstance", "vmi1").await;
    assert!(
        events.iter().any(|e| e["reason"] == "SuccessfulCreate"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_bound_pod_makes_the_vmi_scheduled_on_its_node() {
    let c = start(true).await;
    c.create_node("node1", "4", "8Gi", json!({})).await;
    let vmi = c
        .create_vmi(
            "vmi2",
            json!({"domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}}}),
        )
        .await;
    let scheduled = vmi_in_phase(&c, "vmi2", "Scheduled").await;
    assert_eq!(scheduled["status"]["nodeName"], "node1");
    let phases: Vec<&str> = scheduled["status"]["phaseTransitionTimestamps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["phase"].as_str())
        .collect();
    assert_eq!(phases, ["Pending", "Scheduling", "Scheduled"]);
    let pod = launcher_pod(&c, &vmi).await;
    assert_eq!(pod["spec"]["nodeName"], "node1");
    let events = c.events("VirtualMachineInstance", "vmi2").await;
    assert!(
        events.iter().any(|e| e["reason"] == "SuccessfulHandOver"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_launcher_pod_that_disappears_fails_the_vmi() {
    let c = start(true).await;
    let vmi = c
        .create_vmi(
            "vmi3",
            json!({"domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}}}),
        )
        .await;
    let pod = launcher_pod(&c, &vmi).await;
    vmi_in_phase(&c, "vmi3", "Scheduling").await;
    c.pods()
        .delete(
            pod["metadata"]["name"].as_str().unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    vmi_in_phase(&c, "vmi3", "Failed").await;
    assert!(
        c.launcher_pods(&uid(&vmi)).await.is_empty(),
        "no new Pod for a failed VMI"
    );
}

#[tokio::test]
async fn deleting_a_vmi_removes_its_pod_then_the_finalizer() {
    let c = start(true).await;
    c.create_node("node1", "4", "8Gi", json!({})).await;
    let vmi = c
        .create_vmi(
            "vmi4",
            json!({"domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}}}),
        )
        .await;
    assert_eq!(
        vmi["metadata"]["finalizers"],
        json!(["kubevirt.io/foregroundDeleteVirtualMachine"])
    );
    vmi_in_phase(&c, "vmi4", "Scheduled").await;
    c.vmis().delete("vmi4", &Default::default()).await.unwrap();
    eventually(20, "the VMI to go", || async {
        c.vmi("vmi4").await.is_none().then_some(())
    })
    .await;
    assert!(c.launcher_pods(&uid(&vmi)).await.is_empty());
    let events = c.events("VirtualMachineInstance", "vmi4").await;
    assert!(
        events.iter().any(|e| e["reason"] == "SuccessfulDelete"),
        "{events:?}"
    );
}
