//! NIC hot-plug on the VM controller's side (manual §8.9): a bridge interface added to a
//! running VM's template reaches the VMI's spec and asks for a restart; the restarted VMI has
//! it; `state: absent` reaches the VMI and is left out of the next one; dropping the absent
//! interface from the template then asks for nothing.

use serde_json::{json, Value};

use crate::harness::{eventually, small_template, start_with_node, uid, Cluster};

fn interfaces(vmi: &Value) -> Vec<Value> {
    vmi["spec"]["domain"]["devices"]["interfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn restart_required(c: &Cluster, name: &str) -> bool {
    let vm = c.vm(name).await;
    vm["status"]["conditions"].as_array().is_some_and(|l| {
        l.iter()
            .any(|c| c["type"] == "RestartRequired" && c["status"] == "True")
    })
}

/// Waits until the controller has looked at the VM's current generation.
async fn settled(c: &Cluster, name: &str) {
    eventually(20, "the VM status to catch up", || async {
        let vm = c.vm(name).await;
        (vm["status"]["desiredGeneration"] == vm["metadata"]["generation"]).then_some(())
    })
    .await;
}

/// Ends the VMI as the node agent reports a guest that ran and stopped; the `Always` VM
/// makes a new one from its template.
async fn restart(c: &Cluster, name: &str) -> Value {
    let old = c.vmi(name).await.map(|v| uid(&v)).unwrap_or_default();
    let ended = json!({"phase": "Succeeded", "phaseTransitionTimestamps": [
        {"phase": "Running", "phaseTransitionTimestamp": "2024-01-01T00:00:00Z"},
        {"phase": "Succeeded", "phaseTransitionTimestamp": "2024-01-01T00:01:00Z"},
    ]});
    c.patch_vmi_status(name, ended).await;
    eventually(30, "a new VMI", || async {
        c.vmi(name).await.filter(|v| uid(v) != old)
    })
    .await
}

#[tokio::test]
async fn hot_plugged_interfaces_reach_the_vmi_and_apply_at_restart() {
    let c = start_with_node().await;
    let mut template = small_template();
    template["spec"]["domain"]["devices"]["interfaces"] =
        json!([{"name": "default", "masquerade": {}}]);
    template["spec"]["networks"] = json!([{"name": "default", "pod": {}}]);
    c.create_vm("hp", json!({"runStrategy": "Always", "template": template}))
        .await;
    eventually(20, "the VMI", || async { c.vmi("hp").await }).await;
    settled(&c, "hp").await;

    let mut added = template.clone();
    added["spec"]["domain"]["devices"]["interfaces"] = json!([
        {"name": "default", "masquerade": {}},
        {"name": "sec", "bridge": {}, "macAddress": "02:00:00:00:00:42"}
    ]);
    added["spec"]["networks"] = json!([
        {"name": "default", "pod": {}},
        {"name": "sec", "multus": {"networkName": "br"}}
    ]);
    c.patch_vm("hp", json!({"spec": {"template": added.clone()}}))
        .await;
    let vmi = eventually(20, "the interface on the VMI", || async {
        c.vmi("hp").await.filter(|v| interfaces(v).len() == 2)
    })
    .await;
    assert_eq!(interfaces(&vmi)[1]["macAddress"], "02:00:00:00:00:42");
    assert_eq!(vmi["spec"]["networks"][1]["multus"]["networkName"], "br");
    eventually(20, "RestartRequired", || async {
        restart_required(&c, "hp").await.then_some(())
    })
    .await;

    let vmi = restart(&c, "hp").await;
    assert_eq!(interfaces(&vmi).len(), 2, "{vmi}");
    settled(&c, "hp").await;
    eventually(20, "RestartRequired to clear", || async {
        (!restart_required(&c, "hp").await).then_some(())
    })
    .await;

    let mut absent = added.clone();
    absent["spec"]["domain"]["devices"]["interfaces"][1]["state"] = json!("absent");
    c.patch_vm("hp", json!({"spec": {"template": absent}}))
        .await;
    eventually(20, "absent on the VMI", || async {
        c.vmi("hp")
            .await
            .filter(|v| interfaces(v).get(1).is_some_and(|i| i["state"] == "absent"))
    })
    .await;
    eventually(20, "RestartRequired for the unplug", || async {
        restart_required(&c, "hp").await.then_some(())
    })
    .await;
    let vmi = restart(&c, "hp").await;
    assert_eq!(
        interfaces(&vmi).len(),
        1,
        "absent interfaces are left out: {vmi}"
    );
    assert_eq!(vmi["spec"]["networks"].as_array().map(Vec::len), Some(1));
    settled(&c, "hp").await;
    eventually(20, "RestartRequired to clear", || async {
        (!restart_required(&c, "hp").await).then_some(())
    })
    .await;

    c.patch_vm("hp", json!({"spec": {"template": template}}))
        .await;
    settled(&c, "hp").await;
    assert!(
        !restart_required(&c, "hp").await,
        "dropping an absent interface asked for a restart"
    );
}
