//! Runs the real `virtctl` binary: exit codes, stdout/stderr separation, and `version`
//! against a minimal fake API server (plain HTTP on a loopback port).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

fn virtctl(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_virtctl"));
    command
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent-virtctl-home");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("virtctl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn create_vm_prints_yaml_on_stdout_and_exits_zero() {
    let output = virtctl(
        &[
            "create",
            "vm",
            "--name",
            "a",
            "--volume-containerdisk",
            "src:quay.io/img:1",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let yaml: serde_yaml::Value = serde_yaml::from_str(&stdout(&output)).expect("stdout is YAML");
    assert_eq!(yaml["apiVersion"].as_str(), Some("kubevirt.io/v1"));
    assert_eq!(yaml["kind"].as_str(), Some("VirtualMachine"));
    assert!(stderr(&output).is_empty());
}

#[test]
fn create_instancetype_matches_the_manual_example() {
    let output = virtctl(
        &["create", "instancetype", "--cpu", "2", "--memory", "256Mi"],
        &[],
    );
    assert_eq!(output.status.code(), Some(0));
    let yaml: serde_yaml::Value = serde_yaml::from_str(&stdout(&output)).expect("stdout is YAML");
    assert_eq!(
        yaml["apiVersion"].as_str(),
        Some("instancetype.kubevirt.io/v1beta1")
    );
    assert_eq!(
        yaml["kind"].as_str(),
        Some("VirtualMachineClusterInstancetype")
    );
    assert_eq!(yaml["spec"]["cpu"]["guest"].as_u64(), Some(2));
    assert_eq!(yaml["spec"]["memory"]["guest"].as_str(), Some("256Mi"));

    let output = virtctl(
        &[
            "create",
            "instancetype",
            "--namespaced",
            "--cpu",
            "2",
            "--memory",
            "256Mi",
            "-o",
            "json",
        ],
        &[],
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("stdout is JSON");
    assert_eq!(json["kind"], "VirtualMachineInstancetype");
}

#[test]
fn missing_required_flags_exit_two() {
    let output = virtctl(&["create", "instancetype", "--cpu", "2"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--memory"));
    assert!(stdout(&output).is_empty());
}

#[test]
fn bad_flag_values_exit_two_with_the_flag_named_once() {
    let output = virtctl(
        &["create", "vm", "--volume-containerdisk", "src:a,foo:bar"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(err.matches("--volume-containerdisk").count(), 1, "{err}");
    assert!(err.contains("unknown param(s): foo:bar"), "{err}");
}

#[test]
fn unsupported_commands_exit_three() {
    for args in [
        vec!["migrate", "my-vm"],
        vec!["usbredir", "0951:1666", "my-vm"],
        vec!["create", "clone"],
    ] {
        let output = virtctl(&args, &[]);
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        assert!(stderr(&output).contains("not supported by this oxivirt build yet"));
    }
}

#[test]
fn unknown_commands_exit_two_and_help_exits_zero() {
    assert_eq!(virtctl(&["frobnicate"], &[]).status.code(), Some(2));
    let help = virtctl(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Exit codes:"));
    assert!(stdout(&help).contains("not supported by this build yet"));
}

#[test]
fn version_without_a_cluster_prints_the_client_version() {
    let output = virtctl(&["version"], &[]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).starts_with("Client Version: version.Info{GitVersion:\"v"));
    assert!(stderr(&output).contains("Server Version: unavailable"));
}

/// Serves `requests` HTTP requests: 404 for KubeVirt's version path, a version document for
/// `/version`. Returns the URL.
fn fake_apiserver(requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let (status, body) = if request_line.starts_with("GET /version ") {
                (
                    "200 OK",
                    r#"{"gitVersion":"v1.33.0","platform":"linux/amd64"}"#,
                )
            } else {
                (
                    "404 Not Found",
                    r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn version_reports_the_server_version_through_a_kubeconfig() {
    let url = fake_apiserver(4);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: {url}\n\
             contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .expect("write kubeconfig");
    let config = config.to_string_lossy().into_owned();
    let output = virtctl(&["version"], &[("KUBECONFIG", config.as_str())]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(
            "Server Version: version.Info{GitVersion:\"v1.33.0\", Platform:\"linux/amd64\"}"
        ),
        "stdout: {} stderr: {}",
        stdout(&output),
        stderr(&output)
    );
}
