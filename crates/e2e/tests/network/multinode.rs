//! Two nodes: the server's own and a second `oxivirt agent` on the same host, each with its
//! pod prefix and bridge; a guest on one reaches a guest on the other by pod IP.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use oxivirt_e2e::{oxivirt_bin, wait_until};
use serde_json::json;

use crate::support::{self, NetServer};

/// The second node's agent, killed when the test ends.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn guest_ssh(ip: &str, command: &str) -> Option<String> {
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
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn guests_on_two_nodes_reach_each_other_by_pod_ip() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let first = k.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let node2_dir = server.server.data_dir().join("node2");
    std::fs::create_dir_all(&node2_dir).unwrap();
    let log = std::fs::File::create(server.server.scratch().join("node2.log")).unwrap();
    let _agent = Agent(
        Command::new(oxivirt_bin())
            .arg("agent")
            .arg("--kubeconfig")
            .arg(server.server.kubeconfig())
            .args(["--node-name", "node2", "--data-dir"])
            .arg(&node2_dir)
            .env("OXIVIRT_ACCEL", "tcg")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start the second agent"),
    );
    let cidrs = wait_until(
        "two nodes with pod prefixes",
        Duration::from_secs(60),
        || {
            let out = k.ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"]);
            let list: Vec<String> = out.split_whitespace().map(str::to_string).collect();
            (list.len() == 2).then_some(list)
        },
    );
    assert_ne!(cidrs[0], cidrs[1], "two nodes share a pod prefix");
    for (name, node) in [("one", first.as_str()), ("two", "node2")] {
        let vm = support::vm(
            name,
            json!({"app": name}),
            &[80],
            json!({"nodeSelector": {"kubernetes.io/hostname": node}}),
        );
        k.create(&vm.to_string());
    }
    let pod_one = support::wait_guest_ready(&k, "one");
    let pod_two = support::wait_guest_ready(&k, "two");
    let ip = |pod: &str| k.ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]);
    let (one, two) = (ip(&pod_one), ip(&pod_two));
    assert_eq!(
        k.ok(&["get", "pod", &pod_two, "-o", "jsonpath={.spec.nodeName}"]),
        "node2"
    );
    let prefix = |ip: &str| {
        ip.rsplit_once('.')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default()
    };
    assert_ne!(
        prefix(&one),
        prefix(&two),
        "both Pods got addresses of one node"
    );
    let body = wait_until("one → two by pod IP", Duration::from_secs(60), || {
        guest_ssh(&one, &format!("wget -qO- http://{two}/")).filter(|b| !b.is_empty())
    });
    assert_eq!(body, "two:80");
}
