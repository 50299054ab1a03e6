//! Every upstream example manifest (`../shared/reference/{kubevirt,cdi}/examples`) goes through
//! `admit` as a user would apply it: the examples are admitted, except the ones upstream itself
//! refuses, which are refused for the same reason.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use oxivirt_webhooks::{admit, Cluster, Operation, Outcome, Request};
use serde_json::Value;

/// Objects keyed by `group/resource/namespace/name`, filled with the examples' instance types
/// and preferences so that VMs referring to them resolve, as after `kubectl apply -f examples/`.
#[derive(Default)]
struct Store(HashMap<String, Value>);

#[async_trait::async_trait]
impl Cluster for Store {
    async fn get(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.0
            .get(&format!("{group}/{resource}/{namespace}/{name}"))
            .cloned()
    }
    async fn any(&self, group: &str, resource: &str) -> bool {
        let prefix = format!("{group}/{resource}/");
        self.0.keys().any(|k| k.starts_with(&prefix))
    }
    async fn list(&self, group: &str, resource: &str) -> Vec<Value> {
        let prefix = format!("{group}/{resource}/");
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn shared_dir() -> PathBuf {
    std::env::var_os("OXIVIRT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                &*std::env::var("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
            )
            .join("../../../shared")
        })
}

/// (file, kind, name, object) of every document in the example folders.
fn examples() -> Option<Vec<(String, Value)>> {
    let mut docs = Vec::new();
    for dir in ["reference/kubevirt/examples", "reference/cdi/examples"] {
        let dir = shared_dir().join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for file in files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        {
            let text = std::fs::read_to_string(&file).expect("readable example");
            let label = file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(doc).expect("valid YAML");
                if value.get("kind").is_some() {
                    docs.push((label.clone(), value));
                }
            }
        }
    }
    Some(docs)
}

fn group_of(obj: &Value) -> String {
    let api = obj["apiVersion"].as_str().unwrap_or("");
    api.rsplit_once('/')
        .map(|(g, _)| g.to_string())
        .unwrap_or_default()
}

fn resource_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "VirtualMachineInstancetype" => "virtualmachineinstancetypes",
        "VirtualMachineClusterInstancetype" => "virtualmachineclusterinstancetypes",
        "VirtualMachinePreference" => "virtualmachinepreferences",
        "VirtualMachineClusterPreference" => "virtualmachineclusterpreferences",
        _ => return None,
    })
}

/// Examples that upstream's own webhooks refuse, with the message they refuse them with.
///
/// The generated instance-type examples also set `memory.guest` in the VM template, which
/// upstream's `applyMemory` reports as a conflict whatever the value.
const REFUSED_BY_UPSTREAM: &[(&str, &str)] = &[
    ("vm-cirros-clarge-virtio.yaml", CONFLICT),
    ("vm-cirros-clarge-windows.yaml", CONFLICT),
    ("vm-cirros-clarge.yaml", CONFLICT),
    ("vm-cirros-cluster-csmall.yaml", CONFLICT),
    ("vm-cirros-csmall.yaml", CONFLICT),
    ("vm-windows-clarge-windows.yaml", CONFLICT),
];
const CONFLICT: &str =
    "VM field(s) spec.template.spec.domain.memory.guest conflicts with selected instance type";

#[test]
fn upstream_examples_are_admitted_unless_upstream_refuses_them() {
    let Some(docs) = examples() else {
        println!(
            "skipped: no example manifests under {}",
            shared_dir().display()
        );
        return;
    };
    let mut store = Store::default();
    for (_, obj) in &docs {
        let kind = obj["kind"].as_str().unwrap_or("");
        if let Some(resource) = resource_of(kind) {
            let namespaced = !kind.contains("Cluster");
            let ns = if namespaced {
                obj["metadata"]["namespace"].as_str().unwrap_or("default")
            } else {
                ""
            };
            let name = obj["metadata"]["name"].as_str().unwrap_or("");
            store.0.insert(
                format!("{}/{resource}/{ns}/{name}", group_of(obj)),
                obj.clone(),
            );
        }
    }
    let mut refused = Vec::new();
    for (file, obj) in &docs {
        let mut obj = obj.clone();
        let group = group_of(&obj);
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        let namespace = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let req = Request {
            group: &group,
            kind: &kind,
            operation: Operation::Create,
            namespace: &namespace,
            old: None,
            user: "alice",
        };
        let out: Outcome = block_on(admit(&req, &mut obj, &store));
        if !out.allowed() {
            refused.push((
                file.clone(),
                out.causes
                    .iter()
                    .map(|c| format!("{}: {}", c.field, c.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
    }
    for (file, why) in &refused {
        println!("{file}: {why}");
    }
    let unexpected: Vec<_> = refused
        .iter()
        .filter(|(file, why)| {
            !REFUSED_BY_UPSTREAM
                .iter()
                .any(|(f, msg)| f == file && why.contains(msg))
        })
        .collect();
    assert!(unexpected.is_empty(), "refused: {unexpected:#?}");
    for (file, msg) in REFUSED_BY_UPSTREAM {
        assert!(
            refused
                .iter()
                .any(|(f, why)| f == file && why.contains(msg)),
            "{file} should be refused with {msg}"
        );
    }
}

#[test]
fn admit_future_is_send_so_the_server_can_spawn_it() {
    fn is_send<T: Send>(_: &T) {}
    let store = Store::default();
    let req = Request {
        group: "kubevirt.io",
        kind: "VirtualMachine",
        operation: Operation::Create,
        namespace: "default",
        old: None,
        user: "alice",
    };
    let mut obj = serde_json::json!({});
    let fut = admit(&req, &mut obj, &store);
    is_send(&fut);
    let out = block_on(fut);
    assert_eq!(out.causes[0].message, "missing virtual machine template.");
}
