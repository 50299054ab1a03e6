//! The cluster DNS from inside guests: the headless-Service record of a VM with
//! `hostname`/`subdomain` (the manual's §8.4), resolved and used from another VM; and
//! `kube-dns` of a cluster restarted with an IPv6 range turning dual-stack.

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

/// An `oxivirt server` on `data` with `env` (both runs of the upgrade test share `data`).
fn start_server(data: &std::path::Path, env: &[(&str, &str)]) -> std::process::Child {
    let log = std::fs::File::create(data.with_extension("log")).expect("the server log");
    Command::new(oxivirt_e2e::oxivirt_bin())
        .arg("server")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env("OXIVIRT_ACCEL", "tcg")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("the server log"))
        .stderr(log)
        .spawn()
        .expect("starting oxivirt server")
}

/// `kube-dns`'s `[ipFamilyPolicy, clusterIPs]` once they are `wanted`.
fn kube_dns_addresses(k: &oxivirt_e2e::Kubectl, wanted: serde_json::Value) -> serde_json::Value {
    wait_until("kube-dns's addresses", Duration::from_secs(60), || {
        let run = k.run(&[
            "get",
            "service",
            "-n",
            "kube-system",
            "kube-dns",
            "-o",
            "json",
        ]);
        let svc: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
        let seen = json!([svc["spec"]["ipFamilyPolicy"], svc["spec"]["clusterIPs"]]);
        (seen == wanted).then_some(seen)
    })
}

/// A running server; on drop it is killed and its node's host objects removed (its log
/// printed when the test failed).
struct Running<'a> {
    child: std::process::Child,
    k: &'a oxivirt_e2e::Kubectl,
    log: std::path::PathBuf,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("server log:\n{log}");
        }
        let note = self
            .k
            .run(&[
                "get",
                "nodes",
                "-o",
                "jsonpath={.items[0].metadata.annotations.oxivirt\\.io/pod-network}",
            ])
            .stdout;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let Some(id) = note
            .split_whitespace()
            .last()
            .and_then(|b| b.strip_prefix("oxb"))
        else {
            return;
        };
        let script = format!(
            "nft list tables | awk '$3 == \"oxi-{id}\" || index($3, \"oxi-{id}-\") == 1 {{print $2, $3}}' | \
             while read f t; do nft delete table $f $t; done; ip link del oxb{id} 2>/dev/null; \
             rm -f /run/oxivirt-net/{id}.lock; true"
        );
        let _ = Command::new("sh").args(["-c", &script]).status();
    }
}

#[test]
fn kube_dns_turns_dual_stack_when_the_cluster_does() {
    crate::skip_unless_possible!();
    let root = tempfile::Builder::new()
        .prefix("oxivirt-e2e-net-dns-")
        .tempdir()
        .expect("a temporary directory");
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).expect("the data directory");
    let k = oxivirt_e2e::Kubectl::new(data.join("admin.kubeconfig"), root.path().join("cache"));
    let log = data.with_extension("log");
    // A single-stack cluster: kube-dns has the IPv4 address only.
    let server = Running {
        child: start_server(&data, &[]),
        k: &k,
        log: log.clone(),
    };
    kube_dns_addresses(&k, json!(["SingleStack", ["10.96.0.10"]]));
    drop(server);
    // The same cluster restarted with an IPv6 range: kube-dns gains its IPv6 address.
    let _server = Running {
        child: start_server(&data, &[("OXIVIRT_POD_CIDR_V6", "fd00:10:244::/56")]),
        k: &k,
        log,
    };
    kube_dns_addresses(
        &k,
        json!(["PreferDualStack", ["10.96.0.10", "fd00:10:96::a"]]),
    );
}
