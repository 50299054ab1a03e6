//! A VM that cannot fit stays `ErrorUnschedulable` and says why (issue 4 item 8).

use oxivirt_e2e::{wait_until, Server};
use serde_json::json;

use crate::common::{get, BOOT};

#[test]
fn a_vm_larger_than_the_node_stays_error_unschedulable_with_the_reason() {
    let server = Server::start();
    let k = server.kubectl();
    let vm = json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "huge"},
        "spec": {"runStrategy": "Always", "template": {"spec": {
            "domain": {"devices": {"interfaces": []}, "resources": {"requests": {"memory": "64Ti"}}},
            "networks": [],
            "volumes": [{"name": "root", "containerDisk": {"image": "127.0.0.1:1/never/pulled"}}],
        }}},
    });
    k.create(&vm.to_string());
    wait_until("VM huge to be ErrorUnschedulable", BOOT, || {
        (get(&k, "vm", "huge")?["status"]["printableStatus"] == "ErrorUnschedulable").then_some(())
    });
    let vmi = get(&k, "vmi", "huge").expect("the VMI exists");
    let condition = vmi["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled").cloned())
        .expect("a PodScheduled condition");
    assert_eq!(condition["status"], "False", "{condition}");
    assert_eq!(condition["reason"], "Unschedulable", "{condition}");
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(message.contains("Insufficient memory"), "{message}");
    assert_eq!(vmi["status"]["phase"], "Scheduling", "{vmi}");
    // The scheduler's reason is an Event on the Pod too, as `kubectl describe` shows it.
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=FailedScheduling",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains("Insufficient memory"), "{events}");
}
