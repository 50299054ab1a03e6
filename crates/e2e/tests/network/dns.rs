//! The cluster DNS from inside guests: the headless-Service record of a VM with
//! `hostname`/`subdomain` (the manual's §8.4), resolved and used from another VM.

use std::process::Command;
use std::time::Duration;

use oxivirt_e2e::wait_until;
use serde_json::json;

use crate::support::{self, NetServer};

/// Runs `command` in the guest at `ip` over ssh (root, the test key); its stdout on success.
pub(crate) fn guest_ssh(ip: &str, command: &str) -> Option<String> {
    let out = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
        ])
        .arg("-i")
        .arg(support::ssh_key_path())
        .arg(format!("root@{ip}"))
        .arg(command)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn a_vm_resolves_another_vms_headless_name_and_reaches_it() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let target = support::vm(
        "vm-fedora",
        json!({"expose": "me"}),
        &[80],
        json!({"hostname": "myvm", "subdomain": "mysubdomain"}),
    );
    k.create(&target.to_string());
    k.create(&support::vm("client", json!({"app": "client"}), &[], json!({})).to_string());
    k.create(
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mysubdomain"},
                "spec": {"selector": {"expose": "me"}, "clusterIP": "None",
                         "ports": [{"protocol": "TCP", "port": 1234, "targetPort": 1234}]}})
        .to_string(),
    );
    let target_pod = support::wait_guest_ready(&k, "vm-fedora");
    let client_pod = support::wait_guest_ready(&k, "client");
    let target_ip = k.ok(&["get", "pod", &target_pod, "-o", "jsonpath={.status.podIP}"]);
    let client_ip = k.ok(&["get", "pod", &client_pod, "-o", "jsonpath={.status.podIP}"]);
    let name = "myvm.mysubdomain.default.svc.cluster.local";
    let answer = wait_until(
        "the headless name from the client guest",
        Duration::from_secs(60),
        || {
            guest_ssh(&client_ip, &format!("nslookup {name}"))
                .filter(|out| out.contains(&target_ip))
        },
    );
    assert!(answer.contains(&target_ip), "{answer}");
    // DHCP gave the guest the cluster DNS and a Pod's search list.
    let resolv = guest_ssh(&client_ip, "cat /etc/resolv.conf").unwrap_or_default();
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    let target_resolv = guest_ssh(&target_ip, "cat /etc/resolv.conf").unwrap_or_default();
    assert!(
        target_resolv.contains("search mysubdomain.default.svc.cluster.local "),
        "{target_resolv}"
    );
    let body = guest_ssh(&client_ip, &format!("wget -qO- http://{name}/")).unwrap_or_default();
    assert_eq!(body.trim(), "vm-fedora:80");
    let missing =
        guest_ssh(&client_ip, "nslookup nothing.default.svc.cluster.local").unwrap_or_default();
    assert!(
        !missing.contains("10.244."),
        "an unknown name resolved:\n{missing}"
    );
}
