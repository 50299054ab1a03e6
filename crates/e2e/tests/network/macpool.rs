//! KubeMacPool: unique MACs from the pool for VMs, kept across restarts; opted-out
//! namespaces and standalone VMIs untouched; a collision reported.

use std::process::Command;
use std::time::Duration;

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
fn vms_get_unique_pool_macs_unless_their_namespace_opts_out_and_collisions_are_reported() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    k.create(&stopped_vm("a", "default", None).to_string());
    k.create(&stopped_vm("b", "default", None).to_string());
    let wait_mac = |name: &str| {
        wait_until(
            &format!("a MAC for {name}"),
            Duration::from_secs(10),
            || {
                let mac = template_mac(&k, "default", name);
                (!mac.is_empty()).then_some(mac)
            },
        )
    };
    let (a, b) = (wait_mac("a"), wait_mac("b"));
    assert_ne!(a, b);
    for mac in [&a, &b] {
        assert!(
            mac.starts_with("02:"),
            "{mac} is outside the default pool 02:00:00:00:00:00-02:ff:ff:ff:ff:ff"
        );
    }
    k.create(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "optout",
        "labels": {"mutatevirtualmachines.kubemacpool.io": "ignore"}}})
        .to_string(),
    );
    k.create(&stopped_vm("c", "optout", None).to_string());
    k.create(&stopped_vm("d", "default", Some(&a)).to_string());
    let event = wait_until("the collision event", Duration::from_secs(10), || {
        let events = k.json(&["get", "events", "--field-selector", "involvedObject.name=d"]);
        events["items"]
            .as_array()?
            .iter()
            .find(|e| e["reason"] == "MacAddressCollision")
            .cloned()
    });
    assert!(
        event["message"]
            .as_str()
            .unwrap_or_default()
            .contains("default/a"),
        "{event}"
    );
    assert_eq!(
        template_mac(&k, "optout", "c"),
        "",
        "an opted-out namespace got a MAC"
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
