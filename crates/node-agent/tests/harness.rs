//! The in-process API server, an agent on it, and the objects the tests create.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Api;
use oxivirt_apiserver::ServerConfig;
use oxivirt_node_agent::AgentConfig;
use serde_json::{json, Value};

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub client: kube::Client,
    /// The cluster CA (DER), which agents need for their endpoint.
    pub ca: Vec<Vec<u8>>,
    _server: oxivirt_apiserver::RunningServer,
}

pub async fn cluster() -> Cluster {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let server = oxivirt_apiserver::start(ServerConfig {
        data_dir: dir.path().join("server"),
        listen: "127.0.0.1:0".into(),
    })
    .await
    .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.components_kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    Cluster {
        ca: config.root_cert.clone().unwrap_or_default(),
        client: kube::Client::try_from(config).unwrap(),
        dir,
        _server: server,
    }
}

impl Cluster {
    /// Short, so run directories stay within Unix socket path limits.
    pub fn agent_dir(&self) -> PathBuf {
        self.dir.path().join("a")
    }

    /// An agent config with the fake launcher, fast heartbeats and a pre-decided TCG (so
    /// only the node test pays for the real KVM probe).
    pub fn agent_config(&self, node: &str, seed_tcg: bool) -> AgentConfig {
        let mut config = AgentConfig::new(node, self.agent_dir());
        config.launcher_command = crate::fake_launcher::command();
        config.endpoint_listen = "127.0.0.1:0".into();
        config.cluster_ca = self.ca.clone();
        config.lease_interval = Duration::from_millis(500);
        config.status_interval = Duration::from_secs(1);
        config.poll_interval = Duration::from_millis(100);
        if seed_tcg {
            seed_accel(&config.data_dir, &config.qemu);
        }
        config
    }

    pub fn start_agent(&self, config: AgentConfig) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        tokio::spawn(oxivirt_node_agent::run(self.client.clone(), config))
    }

    pub fn vmis(&self) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstance");
        Api::namespaced_with(self.client.clone(), "default", &ApiResource::from_gvk(&gvk))
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates VMI `name` and its launcher Pod bound to `node`; returns the Pod.
    pub async fn launcher_pod(&self, name: &str, node: &str) -> Pod {
        let spec =
            json!({"domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}});
        self.launcher_pod_for(name, node, spec, &[]).await
    }

    /// Creates VMI `name` with `spec` and its launcher Pod (with `pull_secrets` as
    /// `imagePullSecrets`) bound to `node`; returns the Pod.
    pub async fn launcher_pod_for(
        &self,
        name: &str,
        node: &str,
        spec: Value,
        pull_secrets: &[&str],
    ) -> Pod {
        let vmi: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .unwrap();
        let vmi = self
            .vmis()
            .create(&PostParams::default(), &vmi)
            .await
            .unwrap();
        let uid = vmi.metadata.uid.clone().unwrap();
        let secrets: Vec<Value> = pull_secrets.iter().map(|s| json!({"name": s})).collect();
        self.pod(json!({
            "metadata": {"name": format!("virt-launcher-{name}-abcde"),
                "labels": {"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": uid,
                           "vm.kubevirt.io/name": name},
                "annotations": {"kubevirt.io/domain": name}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 5,
                "imagePullSecrets": secrets, "containers": [
                {"name": "compute", "image": "oxivirt/virt-launcher:0.1.0"},
                {"name": "guest-console-log", "image": "oxivirt/virt-launcher:0.1.0"}]},
        }))
        .await
    }

    pub async fn pod(&self, mut body: Value) -> Pod {
        body["apiVersion"] = json!("v1");
        body["kind"] = json!("Pod");
        let pod: Pod = serde_json::from_value(body).unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    pub fn run_dir(&self, pod: &Pod) -> PathBuf {
        // Run directories are named after the Pod's uid (see rundir.rs).
        self.agent_dir()
            .join("pods")
            .join(pod.metadata.uid.as_deref().unwrap())
    }
}

fn seed_accel(data_dir: &Path, qemu: &str) {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    std::fs::create_dir_all(data_dir.join("node")).unwrap();
    let decision = json!({"accel": "tcg", "reason": "KVMProbeFailed",
        "message": "seeded by the test: TCG", "bootId": boot_id.trim(), "qemu": qemu});
    std::fs::write(data_dir.join("node/accel.json"), decision.to_string()).unwrap();
}

/// Polls `check` every 100 ms until it returns `Some`, failing after `secs` seconds.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// True while `pid` runs (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !matches!(
                s.rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next()),
                Some("Z" | "X")
            )
        })
        .unwrap_or(false)
}

/// Kills a fake launcher left behind by a failed test (only if that PID is still one).
pub struct KillOnDrop(pub Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let Some(pid) = self.0 else { return };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if alive(pid) && String::from_utf8_lossy(&cmdline).contains("fake_launcher::fake_launcher")
        {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}
