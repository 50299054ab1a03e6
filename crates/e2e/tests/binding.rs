//! `pods/binding`, as kube-scheduler uses it: the Pod gets its node and `PodScheduled=True`
//! in one write, and a Pod that has a node cannot be bound again.

use std::time::Duration;

use oxivirt_e2e::{wait_until, Server};
use serde_json::{json, Value};

#[test]
fn a_binding_assigns_an_unbound_pod_once() {
    let server = Server::start();
    let k = server.kubectl();
    // A VMI for another scheduler: its launcher Pod is left to that scheduler (here, us).
    let vmi = json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "v"},
        "spec": {"schedulerName": "another-scheduler",
                 "domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}}});
    k.create(&vmi.to_string());
    let pod = wait_until("the launcher Pod", Duration::from_secs(30), || {
        let name = k.ok(&[
            "get",
            "pods",
            "-l",
            "kubevirt.io=virt-launcher",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        (!name.is_empty()).then_some(name)
    });
    let node = k.ok(&["get", "pod", &pod, "-o", "jsonpath={.spec.nodeName}"]);
    assert_eq!(node, "", "another scheduler's Pod was bound by oxivirt's");
    let binding = |node: &str| {
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
               "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
        .to_string()
    };
    let uri = &format!("/api/v1/namespaces/default/pods/{pod}/binding");
    k.run_stdin(&["create", "--raw", uri, "-f", "-"], &binding("elsewhere"))
        .ok();
    let bound: Value =
        serde_json::from_str(&k.ok(&["get", "pod", &pod, "-o", "json"])).expect("Pod JSON");
    assert_eq!(bound["spec"]["nodeName"], "elsewhere", "{bound}");
    let scheduled = bound["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled").cloned())
        .unwrap_or_default();
    assert_eq!(scheduled["status"], "True", "{bound}");

    let again = k
        .run_stdin(&["create", "--raw", uri, "-f", "-"], &binding("other"))
        .fails();
    assert!(
        again.contains("already assigned to node \"elsewhere\""),
        "{again}"
    );
    let unnamed = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
                         "target": {"kind": "Node"}});
    let invalid = k
        .run_stdin(&["create", "--raw", uri, "-f", "-"], &unnamed.to_string())
        .fails();
    assert!(invalid.contains("target.name"), "{invalid}");
    let node = k.ok(&["get", "pod", &pod, "-o", "jsonpath={.spec.nodeName}"]);
    assert_eq!(node, "elsewhere");
}
