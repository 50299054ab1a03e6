//! The VirtualMachine controller: run strategies, state change requests, status.

use serde_json::{json, Value};

use crate::harness::{eventually, small_template, start_with_node, uid, Cluster};

fn spec(strategy: &str) -> Value {
    json!({"runStrategy": strategy, "template": small_template()})
}

async fn vmi_created(c: &Cluster, name: &str) -> Value {
    eventually(20, "the VMI", || async { c.vmi(name).await }).await
}

async fn new_vmi_after(c: &Cluster, name: &str, old_uid: &str) -> Value {
    eventually(20, "a new VMI", || async {
        c.vmi(name).await.filter(|v| uid(v) != old_uid)
    })
    .await
}

async fn vmi_gone(c: &Cluster, name: &str) {
    eventually(20, "the VMI to go", || async {
        c.vmi(name).await.is_none().then_some(())
    })
    .await;
}

async fn printable(c: &Cluster, name: &str, want: &str) -> Value {
    eventually(20, &format!("printableStatus {want}"), || async {
        let vm = c.vm(name).await;
        (vm["status"]["printableStatus"] == want).then_some(vm)
    })
    .await
}

/// Waits until the controller has acted on every state change request (a Start request
/// is consumed once it sees the new VMI alive).
async fn requests_consumed(c: &Cluster, name: &str) {
    eventually(20, "the state change requests consumed", || async {
        let vm = c.vm(name).await;
        let requests = &vm["status"]["stateChangeRequests"];
        (requests.is_null() || *requests == json!([])).then_some(())
    })
    .await;
}

/// What the node agent writes when a guest ran and then ended.
fn ended(phase: &str) -> Value {
    json!({"phase": phase, "phaseTransitionTimestamps": [
        {"phase": "Running", "phaseTransitionTimestamp": "2024-01-01T00:00:00Z"},
        {"phase": phase, "phaseTransitionTimestamp": "2024-01-01T00:01:00Z"},
    ]})
}

#[tokio::test]
async fn always_creates_the_vmi_owned_by_the_vm_and_recreates_it_when_it_ends() {
    let c = start_with_node().await;
    let vm = c.create_vm("always", spec("Always")).await;
    let vmi = vmi_created(&c, "always").await;
    let owner = &vmi["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "VirtualMachine");
    assert_eq!(owner["uid"], vm["metadata"]["uid"]);
    assert_eq!(owner["controller"], true);
    assert_eq!(vmi["metadata"]["labels"]["app"], "small");
    assert_eq!(
        vmi["spec"]["domain"]["resources"]["requests"]["memory"],
        "128Mi"
    );
    printable(&c, "always", "Starting").await;
    // The pass that creates the VMI shows Starting before its cache has the VMI; `created`
    // follows on the next pass.
    let vm = eventually(20, "status.created", || async {
        let vm = c.vm("always").await;
        (vm["status"]["created"] == true).then_some(vm)
    })
    .await;
    assert_eq!(vm["status"]["printableStatus"], "Starting");
    assert_eq!(vm["status"]["runStrategy"], "Always");
    assert!(vm["metadata"]["finalizers"]
        .as_array()
        .unwrap()
        .contains(&json!("kubevirt.io/virtualMachineControllerFinalize")));
    c.patch_vmi_status("always", ended("Succeeded")).await;
    new_vmi_after(&c, "always", &uid(&vmi)).await;
    let events = c.events("VirtualMachine", "always").await;
    let reasons: Vec<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.contains(&"SuccessfulCreate"), "{reasons:?}");
    assert!(reasons.contains(&"SuccessfulDelete"), "{reasons:?}");
}

#[tokio::test]
async fn rerun_on_failure_recreates_a_failed_vmi_but_not_a_succeeded_one() {
    let c = start_with_node().await;
    c.create_vm("rerun", spec("RerunOnFailure")).await;
    let first = vmi_created(&c, "rerun").await;
    c.patch_vmi_status("rerun", ended("Failed")).await;
    let second = new_vmi_after(&c, "rerun", &uid(&first)).await;
    requests_consumed(&c, "rerun").await;
    c.patch_vmi_status("rerun", ended("Succeeded")).await;
    vmi_gone(&c, "rerun").await;
    let vm = printable(&c, "rerun", "Stopped").await;
    assert_eq!(vm["status"]["stateChangeRequests"], json!([]), "{vm}");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        c.vmi("rerun").await.is_none(),
        "not restarted after {second}"
    );
}

#[tokio::test]
async fn manual_starts_and_stops_only_on_state_change_requests() {
    let c = start_with_node().await;
    c.create_vm("manual", spec("Manual")).await;
    printable(&c, "manual", "Stopped").await;
    assert!(c.vmi("manual").await.is_none());
    c.patch_vm_status(
        "manual",
        json!({"stateChangeRequests": [{"action": "Start"}]}),
    )
    .await;
    let vmi = vmi_created(&c, "manual").await;
    requests_consumed(&c, "manual").await;
    c.patch_vmi_status("manual", ended("Succeeded")).await;
    printable(&c, "manual", "Stopped").await;
    assert_eq!(
        uid(&c.vmi("manual").await.unwrap()),
        uid(&vmi),
        "not restarted"
    );
    let stop =
        json!({"stateChangeRequests": [{"action": "Stop", "uid": uid(&vmi)}, {"action": "Start"}]});
    c.patch_vm_status("manual", stop).await;
    new_vmi_after(&c, "manual", &uid(&vmi)).await;
    requests_consumed(&c, "manual").await;
}

#[tokio::test]
async fn halted_removes_the_vmi_and_running_maps_to_always_and_halted() {
    let c = start_with_node().await;
    c.create_vm(
        "legacy",
        json!({"running": true, "template": small_template()}),
    )
    .await;
    vmi_created(&c, "legacy").await;
    c.patch_vm("legacy", json!({"spec": {"running": false}}))
        .await;
    vmi_gone(&c, "legacy").await;
    let vm = eventually(20, "Stopped without a VMI", || async {
        let vm = c.vm("legacy").await;
        let status = &vm["status"];
        (status["printableStatus"] == "Stopped" && status["created"] == false).then_some(vm)
    })
    .await;
    assert_eq!(vm["status"]["runStrategy"], "Halted");
    c.create_vm("halted", spec("Halted")).await;
    let vm = printable(&c, "halted", "Stopped").await;
    assert_eq!(vm["status"]["ready"], false);
    assert_eq!(vm["status"]["conditions"][0]["reason"], "VMINotExists");
    c.patch_vm("halted", json!({"spec": {"runStrategy": "Always"}}))
        .await;
    vmi_created(&c, "halted").await;
    c.patch_vm("halted", json!({"spec": {"runStrategy": "Halted"}}))
        .await;
    vmi_gone(&c, "halted").await;
}

#[tokio::test]
async fn a_start_request_on_a_halted_vm_switches_it_to_always() {
    let c = start_with_node().await;
    c.create_vm("paused", spec("Halted")).await;
    printable(&c, "paused", "Stopped").await;
    let start = json!({"stateChangeRequests": [{"action": "Start", "data": {"paused": "true"}}]});
    c.patch_vm_status("paused", start).await;
    let vmi = vmi_created(&c, "paused").await;
    assert_eq!(c.vm("paused").await["spec"]["runStrategy"], "Always");
    assert_eq!(vmi["spec"]["startStrategy"], "Paused");
}

#[tokio::test]
async fn once_runs_a_single_vmi_and_never_restarts_it() {
    let c = start_with_node().await;
    c.create_vm("once", spec("Once")).await;
    let vmi = vmi_created(&c, "once").await;
    c.patch_vmi_status("once", ended("Failed")).await;
    printable(&c, "once", "Stopped").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(uid(&c.vmi("once").await.unwrap()), uid(&vmi));
}

#[tokio::test]
async fn printable_status_follows_the_vmi_through_its_phases() {
    let c = start_with_node().await;
    c.create_vm("shown", spec("Always")).await;
    vmi_created(&c, "shown").await;
    printable(&c, "shown", "Starting").await;
    c.patch_vmi_status(
        "shown",
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
    )
    .await;
    let vm = printable(&c, "shown", "Running").await;
    assert_eq!(vm["status"]["ready"], true);
    c.patch_vmi_status(
        "shown",
        json!({"conditions": [
            {"type": "Ready", "status": "False", "reason": "Paused"},
            {"type": "Paused", "status": "True", "reason": "PausedByUser"},
        ]}),
    )
    .await;
    let vm = printable(&c, "shown", "Paused").await;
    let paused = vm["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Paused")
        .cloned();
    assert_eq!(paused.unwrap()["status"], "True", "copied from the VMI");
    c.vms().delete("shown", &Default::default()).await.unwrap();
    eventually(20, "the VM to go with its VMI", || async {
        let vm_gone = c.vms().get_opt("shown").await.unwrap().is_none();
        (vm_gone && c.vmi("shown").await.is_none()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_vmi_failing_before_it_ran_backs_off_as_crash_loop() {
    let c = start_with_node().await;
    c.create_vm("crashy", spec("Always")).await;
    let vmi = vmi_created(&c, "crashy").await;
    c.patch_vmi_status("crashy", json!({"phase": "Failed"}))
        .await;
    let vm = printable(&c, "crashy", "CrashLoopBackOff").await;
    let failure = &vm["status"]["startFailure"];
    assert_eq!(failure["consecutiveFailCount"], 1, "{vm}");
    assert_eq!(failure["lastFailedVMIUID"], uid(&vmi));
    assert!(failure["retryAfterTimestamp"].is_string());
    assert!(c.vmi("crashy").await.is_none(), "held back by the backoff");
}

#[tokio::test]
async fn changing_the_template_of_a_running_vm_requires_a_restart() {
    let c = start_with_node().await;
    c.create_vm("edited", spec("Always")).await;
    vmi_created(&c, "edited").await;
    let vm = eventually(20, "generations", || async {
        let vm = c.vm("edited").await;
        vm["status"]["observedGeneration"].is_i64().then_some(vm)
    })
    .await;
    assert_eq!(
        vm["status"]["observedGeneration"],
        vm["status"]["desiredGeneration"]
    );
    let memory = json!({"spec": {"template": {"spec": {"domain": {"resources": {"requests": {"memory": "256Mi"}}}}}}});
    c.patch_vm("edited", memory).await;
    let vm = eventually(20, "RestartRequired", || async {
        let vm = c.vm("edited").await;
        let conditions = vm["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions
            .iter()
            .any(|c| c["type"] == "RestartRequired" && c["status"] == "True")
            .then_some(vm)
    })
    .await;
    assert!(
        vm["status"]["desiredGeneration"].as_i64() > vm["status"]["observedGeneration"].as_i64(),
        "{vm}"
    );
}

#[tokio::test]
async fn data_volume_templates_are_created_and_hold_the_vm_in_provisioning() {
    let c = start_with_node().await;
    let mut vm_spec = spec("Always");
    vm_spec["dataVolumeTemplates"] = json!([{
        "metadata": {"name": "rootdisk"},
        "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}},
    }]);
    vm_spec["template"]["spec"]["domain"]["devices"]["disks"] =
        json!([{"name": "root", "disk": {"bus": "virtio"}}]);
    vm_spec["template"]["spec"]["volumes"] =
        json!([{"name": "root", "dataVolume": {"name": "rootdisk"}}]);
    let vm = c.create_vm("withdisk", vm_spec).await;
    let dv = eventually(20, "the DataVolume", || async {
        c.data_volumes().get_opt("rootdisk").await.unwrap()
    })
    .await;
    let owner = &dv.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.uid, uid(&vm));
    printable(&c, "withdisk", "Provisioning").await;
    assert!(c.vmi("withdisk").await.is_none());
    let done = json!({"status": {"phase": "Succeeded", "progress": "100.0%"}});
    c.data_volumes()
        .patch(
            "rootdisk",
            &Default::default(),
            &kube::api::Patch::Merge(&done),
        )
        .await
        .unwrap();
    vmi_created(&c, "withdisk").await;
}

#[tokio::test]
async fn a_vm_with_an_instancetype_gets_a_vmi_with_its_cpu_and_memory() {
    let c = start_with_node().await;
    c.create_vm(
        "typed",
        json!({
            "runStrategy": "Always",
            "instancetype": {"name": "u1.small"},
            "template": {"spec": {"domain": {"devices": {}}}},
        }),
    )
    .await;
    let vmi = vmi_created(&c, "typed").await;
    assert_eq!(vmi["spec"]["domain"]["cpu"]["sockets"], 1, "{vmi}");
    assert_eq!(vmi["spec"]["domain"]["memory"]["guest"], "2Gi", "{vmi}");
}

#[tokio::test]
async fn deleting_a_vm_stops_its_vmi_first() {
    let c = start_with_node().await;
    c.create_vm("doomed", spec("Always")).await;
    vmi_created(&c, "doomed").await;
    c.vms().delete("doomed", &Default::default()).await.unwrap();
    vmi_gone(&c, "doomed").await;
    eventually(20, "the VM to go", || async {
        c.vms()
            .get_opt("doomed")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}
