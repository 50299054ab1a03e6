//! A real in-process API server (HTTPS, kube-rs client with the components' identity),
//! the controllers running against it, and helpers to create Nodes and wait for things.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::Api;
use oxivirt_apiserver::ServerConfig;
use serde_json::{json, Value};

pub struct Cluster {
    _dir: tempfile::TempDir,
    pub client: kube::Client,
}

/// Starts an API server; `controllers` also starts every controller. Logs go to the test
/// output when `RUST_LOG` is set (`RUST_LOG=oxivirt_controllers=debug`).
pub async fn start(controllers: bool) -> Cluster {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let dir = tempfile::tempdir().unwrap();
    let server = oxivirt_apiserver::start(ServerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
    })
    .await
    .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.components_kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    if controllers {
        tokio::spawn(oxivirt_controllers::run(client.clone()));
    }
    Cluster { _dir: dir, client }
}

/// An API server with the controllers and one roomy Ready node.
pub async fn start_with_node() -> Cluster {
    let c = start(true).await;
    c.create_node("node1", "16", "64Gi", json!({})).await;
    c
}

fn resource(group: &str, version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

impl Cluster {
    pub fn vms(&self) -> Api<DynamicObject> {
        let ar = resource("kubevirt.io", "v1", "VirtualMachine");
        Api::namespaced_with(self.client.clone(), "default", &ar)
    }

    pub fn vmis(&self) -> Api<DynamicObject> {
        let ar = resource("kubevirt.io", "v1", "VirtualMachineInstance");
        Api::namespaced_with(self.client.clone(), "default", &ar)
    }

    pub fn data_volumes(&self) -> Api<DynamicObject> {
        let ar = resource("cdi.kubevirt.io", "v1beta1", "DataVolume");
        Api::namespaced_with(self.client.clone(), "default", &ar)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a VM from `spec` (runStrategy and template) named `name`.
    pub async fn create_vm(&self, name: &str, spec: Value) -> Value {
        let vm: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        to_json(
            &self
                .vms()
                .create(&PostParams::default(), &vm)
                .await
                .unwrap(),
        )
    }

    pub async fn create_vmi(&self, name: &str, spec: Value) -> Value {
        let vmi: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": name, "labels": {"app": name}}, "spec": spec,
        }))
        .unwrap();
        to_json(
            &self
                .vmis()
                .create(&PostParams::default(), &vmi)
                .await
                .unwrap(),
        )
    }

    pub async fn vm(&self, name: &str) -> Value {
        to_json(&self.vms().get(name).await.unwrap())
    }

    pub async fn vmi(&self, name: &str) -> Option<Value> {
        self.vmis()
            .get_opt(name)
            .await
            .unwrap()
            .map(|v| to_json(&v))
    }

    /// Merge-patches a VMI's status, as the node agent would.
    pub async fn patch_vmi_status(&self, name: &str, status: Value) {
        let patch = json!({"status": status});
        self.vmis()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    pub async fn patch_vm(&self, name: &str, patch: Value) {
        self.vms()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    pub async fn patch_vm_status(&self, name: &str, status: Value) {
        let patch = json!({"status": status});
        self.vms()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// The launcher Pods of a VMI.
    pub async fn launcher_pods(&self, vmi_uid: &str) -> Vec<Value> {
        let lp = ListParams::default().labels(&format!("kubevirt.io/created-by={vmi_uid}"));
        let list = self.pods().list(&lp).await.unwrap();
        list.items
            .iter()
            .map(|p| serde_json::to_value(p).unwrap())
            .collect()
    }

    /// Events about the object `name` of `kind`.
    pub async fn events(&self, kind: &str, name: &str) -> Vec<Value> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let list = events.list(&ListParams::default()).await.unwrap();
        list.items
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
            .collect()
    }

    /// Registers a Ready node with `cpu`/`memory` allocatable, labelled schedulable.
    pub async fn create_node(&self, name: &str, cpu: &str, memory: &str, spec: Value) -> Value {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubevirt.io/schedulable": "true",
            }},
            "spec": spec,
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let resources = json!({"cpu": cpu, "memory": memory, "pods": "110"});
        let status = json!({"status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        }});
        let node = nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        serde_json::to_value(node).unwrap()
    }
}

pub fn to_json(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap()
}

/// Polls `check` until it returns `Some`, for up to `seconds`; panics with `what`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A VM template with 128 Mi of memory and nothing else.
pub fn small_template() -> Value {
    json!({
        "metadata": {"labels": {"app": "small"}},
        "spec": {
            "domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}},
            "terminationGracePeriodSeconds": 0,
        },
    })
}

/// The phase path every test reads.
pub fn phase(obj: &Value) -> &str {
    obj["status"]["phase"].as_str().unwrap_or("")
}

pub fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
