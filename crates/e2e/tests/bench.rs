//! `oxivirt-bench` runs end to end against a server (tiny counts: this checks the tool, not
//! the numbers; real runs are recorded in BENCHMARKS.md).

use std::process::Command;

use oxivirt_e2e::{bench_bin, Server};

#[test]
fn bench_measures_a_running_server_and_prints_a_markdown_table() {
    let server = Server::start();
    let output = Command::new(bench_bin())
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args([
            "--serial",
            "40",
            "--clients",
            "4",
            "--objects",
            "120",
            "--gets",
            "40",
        ])
        .args(["--watch-events", "30", "--reference", "false"])
        .output()
        .expect("run oxivirt-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "oxivirt-bench failed:\n{stdout}\n{stderr}"
    );
    for needle in [
        "| measurement | result | target | etcd reference |",
        "durable creates, 1 client",
        "durable creates, 4 clients (120 objects)",
        "LIST 120 objects",
        "watch delivery p50 / p99 (30 events",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?}:\n{stdout}");
    }
}
