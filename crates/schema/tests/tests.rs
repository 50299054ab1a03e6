//! Drives the real kubectl (`/usr/bin/kubectl`) against a tiny HTTP server that serves only
//! discovery and the OpenAPI documents this crate builds, proving that `kubectl explain` can
//! read them and that kubectl detects server-side field validation from them.
//!
//! Skipped, with a printed reason, when kubectl is not installed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

use oxivirt_schema::{
    content_hash, core_schemas, kubevirt_crd, kubevirt_resource_docs, openapi_v3_group_version,
    openapi_v3_index, ResourceDoc,
};
use serde_json::{json, Value};

const KUBECTL: &str = "/usr/bin/kubectl";

/// Requests seen by the server: `METHOD path?query`.
type Log = Arc<Mutex<Vec<String>>>;

struct Server {
    port: u16,
    log: Log,
    _cache: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn docs_by_group_version() -> BTreeMap<String, Vec<ResourceDoc>> {
    let mut by_gv: BTreeMap<String, Vec<ResourceDoc>> = BTreeMap::new();
    let mut docs = core_schemas().resource_docs();
    docs.extend(kubevirt_resource_docs());
    for doc in docs {
        by_gv.entry(doc.group_version_path()).or_default().push(doc);
    }
    by_gv
}

fn resource_list(gv: &str, docs: &[ResourceDoc]) -> Value {
    let resources: Vec<Value> = docs
        .iter()
        .map(|d| {
            let short: Vec<&str> = kubevirt_crd(&d.kind)
                .filter(|c| c.group == d.group)
                .map(|c| c.short_names.to_vec())
                .unwrap_or_default();
            json!({"name": d.plural, "singularName": d.kind.to_lowercase(),
                   "namespaced": d.namespaced, "kind": d.kind, "verbs": d.verbs,
                   "shortNames": short})
        })
        .collect();
    let group_version = gv.trim_start_matches("api/").trim_start_matches("apis/");
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
           "resources": resources})
}

fn start_server() -> Server {
    let by_gv = docs_by_group_version();
    let mut routes: BTreeMap<String, Value> = BTreeMap::new();
    let mut index = Vec::new();
    let mut groups = Vec::new();
    for (gv, docs) in &by_gv {
        let doc = openapi_v3_group_version(docs);
        let hash = content_hash(doc.to_string().as_bytes());
        index.push((gv.clone(), hash));
        routes.insert(format!("/openapi/v3/{gv}"), doc);
        routes.insert(format!("/{gv}"), resource_list(gv, docs));
        if let Some(group_version) = gv.strip_prefix("apis/") {
            let (group, version) = group_version.split_once('/').expect("group/version");
            let v = json!({"groupVersion": group_version, "version": version});
            groups.push(json!({"name": group, "versions": [v], "preferredVersion": v}));
        }
    }
    routes.insert("/openapi/v3".into(), openapi_v3_index(&index));
    routes.insert(
        "/apis".into(),
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    );
    routes.insert(
        "/api".into(),
        json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
    );
    routes.insert(
        "/version".into(),
        json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0"}),
    );
    let routes = Arc::new(routes);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let log: Log = Arc::default();
    let server_log = log.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let routes = routes.clone();
            let log = server_log.clone();
            thread::spawn(move || serve(stream, &routes, &log));
        }
    });
    let cache = std::env::temp_dir().join(format!("oxivirt-schema-kubectl-{port}"));
    Server {
        port,
        log,
        _cache: TempDir(cache),
    }
}

fn serve(stream: TcpStream, routes: &BTreeMap<String, Value>, log: &Log) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        log.lock().expect("log").push(format!("{method} {target}"));
        let path = target.split('?').next().unwrap_or("");
        let (status, reply) = match (method.as_str(), routes.get(path)) {
            ("GET", Some(doc)) => ("200 OK", doc.clone()),
            ("POST", _) => (
                "201 Created",
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            ),
            _ => (
                "404 Not Found",
                json!({"kind": "Status", "apiVersion": "v1",
                    "status": "Failure", "reason": "NotFound", "code": 404}),
            ),
        };
        let text = reply.to_string();
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        if writer
            .write_all(head.as_bytes())
            .and_then(|_| writer.write_all(text.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

fn kubectl(server: &Server, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(KUBECTL);
    cmd.args(args)
        .arg(format!("--server=http://127.0.0.1:{}", server.port))
        .arg(format!("--cache-dir={}", server._cache.0.display()))
        .env("KUBECONFIG", "/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kubectl");
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).expect("stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("kubectl output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn kubectl_missing() -> bool {
    if Path::new(KUBECTL).exists() {
        return false;
    }
    eprintln!("skipping: {KUBECTL} is not installed");
    true
}

#[test]
fn kubectl_explain_reads_core_fields_through_references() {
    if kubectl_missing() {
        return;
    }
    let server = start_server();
    let (ok, out) = kubectl(&server, &["explain", "pods.spec.containers"], None);
    assert!(ok, "{out}");
    assert!(out.contains("KIND:") && out.contains("Pod"), "{out}");
    assert!(out.contains("FIELD: containers <[]Container>"), "{out}");
    assert!(
        out.contains("image\t<string>") || out.contains("image"),
        "{out}"
    );
    assert!(out.contains("livenessProbe"), "{out}");
}

#[test]
fn kubectl_explain_reads_virtual_machine_template_and_metadata() {
    if kubectl_missing() {
        return;
    }
    let server = start_server();
    let (ok, out) = kubectl(&server, &["explain", "vm.spec.template"], None);
    assert!(ok, "{out}");
    assert!(
        out.contains("VirtualMachine") && out.contains("kubevirt.io"),
        "{out}"
    );
    assert!(out.contains("spec"), "{out}");
    let (ok, out) = kubectl(&server, &["explain", "virtualmachines.metadata"], None);
    assert!(ok, "{out}");
    assert!(out.contains("labels"), "{out}");
}

#[test]
fn kubectl_sees_server_side_field_validation_for_patch() {
    if kubectl_missing() {
        return;
    }
    let server = start_server();
    let vm = include_str!("fixtures/vm-cirros.yaml");
    let (ok, out) = kubectl(
        &server,
        &[
            "create",
            "--validate=strict",
            "-n",
            "default",
            "-o",
            "name",
            "-f",
            "-",
        ],
        Some(vm),
    );
    let log = server.log.lock().expect("log").clone();
    assert!(ok, "{out}\n{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("POST ") && l.contains("fieldValidation=Strict")),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("/openapi/v2")),
        "fell back to v2: {log:#?}"
    );
}

#[test]
fn kubectl_apply_strict_uses_server_side_validation() {
    if kubectl_missing() {
        return;
    }
    let server = start_server();
    let vm = include_str!("fixtures/vm-cirros.yaml");
    let (_, out) = kubectl(
        &server,
        &["apply", "--validate=strict", "-n", "default", "-f", "-"],
        Some(vm),
    );
    let log = server.log.lock().expect("log").clone();
    assert!(
        log.iter()
            .any(|l| l.starts_with("POST ") && l.contains("fieldValidation=Strict")),
        "{out}\n{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("/openapi/v2")),
        "fell back to v2: {log:#?}"
    );
}
