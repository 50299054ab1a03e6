//! Node registration and heartbeats.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;

use crate::harness::{cluster, wait_for};

#[tokio::test]
async fn node_is_registered_with_labels_capacity_and_conditions_and_its_lease_is_renewed() {
    let cluster = cluster().await;
    // No seeded decision: the real acceleration probe runs (TCG on our nested-KVM machines).
    let config = cluster.agent_config("node-a", false);
    let agent = cluster.start_agent(config);
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node = wait_for("Node node-a with a Ready condition", 30, || async {
        let node = nodes.get_opt("node-a").await.unwrap()?;
        node.status.as_ref()?.conditions.as_ref()?;
        Some(serde_json::to_value(node).unwrap())
    })
    .await;
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], "node-a");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["kubernetes.io/arch"], "amd64");
    assert_eq!(labels["node-role.kubernetes.io/worker"], "");
    assert_eq!(labels["kubevirt.io/schedulable"], "true");
    let accel = labels["oxivirt.io/accel"].as_str().unwrap();
    assert!(accel == "tcg" || accel == "kvm", "{accel}");
    let cached = std::fs::read_to_string(cluster.agent_dir().join("node/accel.json")).unwrap();
    assert!(
        cached.contains(&format!("\"accel\": \"{accel}\"")),
        "{cached}"
    );
    if std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .contains("vendor_id")
    {
        let keys: Vec<&String> = labels.as_object().unwrap().keys().collect();
        assert!(
            keys.iter()
                .any(|k| k.starts_with("cpu-vendor.node.kubevirt.io/")),
            "{keys:?}"
        );
        assert!(
            keys.iter()
                .any(|k| k.starts_with("cpu-feature.node.kubevirt.io/")),
            "{keys:?}"
        );
    }
    let status = &node["status"];
    assert_eq!(status["capacity"]["pods"], "110");
    assert_eq!(status["capacity"]["devices.kubevirt.io/kvm"], "1k");
    assert_eq!(status["allocatable"]["devices.kubevirt.io/vhost-net"], "1k");
    let cpus = std::thread::available_parallelism()
        .unwrap()
        .get()
        .to_string();
    assert_eq!(status["capacity"]["cpu"], cpus.as_str());
    assert!(status["capacity"]["memory"]
        .as_str()
        .unwrap()
        .ends_with("Ki"));
    assert_eq!(status["nodeInfo"]["kubeletVersion"], "v1.32.0-oxivirt");
    assert_eq!(status["nodeInfo"]["architecture"], "amd64");
    assert!(status["nodeInfo"]["containerRuntimeVersion"]
        .as_str()
        .unwrap()
        .starts_with("oxivirt://"));
    let types: Vec<&str> = status["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["InternalIP", "Hostname"]);
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("True"), Some("KubeletReady"))
    );
    for pressure in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == pressure)
            .unwrap();
        assert_eq!(c["status"], "False", "{pressure}");
    }

    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let renew = |lease: &Lease| serde_json::to_value(lease).unwrap()["spec"]["renewTime"].clone();
    let first = wait_for("the node Lease", 10, || async {
        leases.get_opt("node-a").await.unwrap()
    })
    .await;
    assert_eq!(
        first.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("node-a")
    );
    let owner = &first.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", "node-a")
    );
    let before = renew(&first);
    wait_for("a renewed Lease", 10, || async {
        let lease = leases.get("node-a").await.unwrap();
        (renew(&lease) != before).then_some(())
    })
    .await;
    let heartbeat = |n: &Node| {
        let v = serde_json::to_value(n).unwrap();
        v["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["lastHeartbeatTime"]
            .clone()
    };
    let before = heartbeat(&nodes.get("node-a").await.unwrap());
    wait_for("a newer Ready heartbeat", 10, || async {
        (heartbeat(&nodes.get("node-a").await.unwrap()) != before).then_some(())
    })
    .await;
    agent.abort();
}
