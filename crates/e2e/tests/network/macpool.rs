//! KubeMacPool: unique MACs from the pool for VMs at admission, kept across restarts;
//! a MAC another VM holds rejected; opted-out namespaces and standalone VMIs untouched.

use std::process::Command;

use oxivirt_e2e::{virtctl_bin, wait_until};
use serde_json::{json, Value};

use crate::support::{self, NetServer};

fn stopped_vm(name: &str, ns: &str, mac: Option<&str>) -> Value {
    let mut iface = json!({"name": "default", "masquerade": {}});
    if let Some(mac) = mac {
        iface["macAddress"] = json!(mac);
    }
    json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"runStrategy": "Halted", "template": {"spec": {
               "domain": {"devices": {"interfaces": [iface]}, "resources": {"requests": {"memory": "128Mi"}}},
               "networks": [{"name": "default", "pod": {}}]}}}})
}

fn template_mac(k: &oxivirt_e2e::Kubectl, ns: &str, name: &str) -> String {
    k.ok(&[
        "get",
        "vm",
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.template.spec.domain.devices.interfaces[0].macAddress}",
    ])
}

#[test]
fn vms_get_unique_pool_macs_at_admission_collisions_are_rejected_and_opt_outs_are_left_alone() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    // The webhook writes the MAC into the object kubectl gets back: no waiting.
    let created = |vm: Value| -> Value {
        let out = k.run_stdin(&["create", "-o", "json", "-f", "-"], &vm.to_string());
        assert!(out.status.success(), "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    };
    let mac_of = |vm: &Value| {
        vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let a = mac_of(&created(stopped_vm("a", "default", None)));
    let b = mac_of(&created(stopped_vm("b", "default", None)));
    assert!(
        !a.is_empty() && !b.is_empty(),
        "no MAC at admission: {a:?} {b:?}"
    );
    assert_ne!(a, b);
    for mac in [&a, &b] {
        assert!(
            mac.starts_with("02:"),
            "{mac} is outside the default pool 02:00:00:00:00:00-02:ff:ff:ff:ff:ff"
        );
    }
    assert_eq!(template_mac(&k, "default", "a"), a, "the stored VM differs");

    let refused = k.run_stdin(
        &["create", "-f", "-"],
        &stopped_vm("d", "default", Some(&a)).to_string(),
    );
    assert!(!refused.status.success(), "a VM reusing {a} was admitted");
    for needle in [
        "spec.template.spec.domain.devices.interfaces[0].macAddress",
        &format!("failed to allocate requested mac address {a}"),
        "VirtualMachine default/a",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{needle:?} not in: {}",
            refused.stderr
        );
    }
    assert!(!k.exists(&["vm", "d"]), "the refused VM exists");
    // Changing a VM's MAC to a held one is refused the same way.
    let patch = json!({"spec": {"template": {"spec": {"domain": {"devices": {"interfaces": [
        {"name": "default", "masquerade": {}, "macAddress": a}]}}}}}});
    let refused = k.run(&[
        "patch",
        "vm",
        "b",
        "--type",
        "merge",
        "-p",
        &patch.to_string(),
    ]);
    assert!(
        !refused.status.success() && refused.stderr.contains("already in use"),
        "{}",
        refused.stderr
    );

    k.create(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "optout",
        "labels": {"mutatevirtualmachines.kubemacpool.io": "ignore"}}})
        .to_string(),
    );
    assert_eq!(
        mac_of(&created(stopped_vm("c", "optout", None))),
        "",
        "an opted-out namespace got a MAC"
    );
    assert_eq!(
        mac_of(&created(stopped_vm("e", "optout", Some(&a)))),
        a,
        "an opted-out namespace is checked for collisions"
    );
    // A standalone VMI is not KubeMacPool's.
    let vmi = json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "standalone"},
        "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}}]},
                            "resources": {"requests": {"memory": "128Mi"}}},
                 "networks": [{"name": "default", "pod": {}}]}});
    let out = k.run_stdin(&["create", "-o", "json", "-f", "-"], &vmi.to_string());
    assert!(out.status.success(), "{}", out.stderr);
    let vmi: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        vmi["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"].is_null(),
        "a standalone VMI got a MAC: {vmi}"
    );
}

#[test]
fn a_vms_mac_is_the_guests_and_survives_a_restart() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let mut vm = support::vm("stable", json!({"app": "stable"}), &[], json!({}));
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] =
        json!([{"name": "default", "masquerade": {}}]);
    vm["spec"]["template"]["spec"]["networks"] = json!([{"name": "default", "pod": {}}]);
    k.create(&vm.to_string());
    // Between the old VMI's deletion and the new one's creation there is no VMI at all.
    let vmi_mac = || {
        let run = k.run(&["get", "vmi", "stable", "-o", "json"]);
        if !run.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
        let mac = v["status"]["interfaces"][0]["mac"].as_str()?.to_string();
        Some((v["metadata"]["uid"].as_str()?.to_string(), mac))
    };
    let (first_uid, first_mac) = wait_until("the first VMI's MAC", support::BOOT_TIMEOUT, vmi_mac);
    assert_eq!(first_mac, template_mac(&k, "default", "stable"));
    let out = Command::new(virtctl_bin())
        .arg("--kubeconfig")
        .arg(server.server.kubeconfig())
        .args(["restart", "stable"])
        .output()
        .expect("virtctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, second_mac) = wait_until("the restarted VMI's MAC", support::BOOT_TIMEOUT, || {
        vmi_mac().filter(|(uid, _)| *uid != first_uid)
    });
    assert_eq!(second_mac, first_mac);
}
