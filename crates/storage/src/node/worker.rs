//! CDI worker Pods (label `app: containerized-data-importer`) bound to this node, run as
//! `oxivirt importer` processes: the node's stand-in for a kubelet running CDI's images.
//!
//! The Pod spec is honoured the way a container would see it: `env` (values, Secret and
//! ConfigMap keys), `volumeMounts` of PVC, Secret and ConfigMap volumes. There is no mount
//! namespace, so a mount is realised as a host directory (a PVC's volume directory; Secrets
//! and ConfigMaps written under the worker's directory) and every env value naming a mount
//! path is rewritten to that directory. `restartPolicy` OnFailure/Always restarts a failed
//! process with the kubelet's backoff (10 s doubling to 5 min), counting `restartCount`.
//! The process's `termination-log` file becomes the container's termination message and its
//! `progress` file the claim's `cdi.kubevirt.io/storage.populator.progress`.
//!
//! # Guarantees
//! A process is killed when its Pod goes away (`kill_on_drop`), and exits by itself if this
//! agent dies (the importer watches its parent). After an agent restart an unfinished Pod is
//! started again from scratch: imports are idempotent (they rewrite the target).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::{NodeConfig, Pools};
use crate::kinds::{
    self, label, name, namespace, phase, str_at, uid, CONFIG_MAP, POD, PV, PVC, SECRET,
};
use crate::well_known as wk;
use crate::world::World;

/// The kubelet's first restart delay; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Whether a Pod is a CDI worker this runner realises.
pub fn is_cdi_worker(pod: &Value) -> bool {
    label(pod, wk::APP_LABEL) == Some(wk::CDI_APP)
}

#[derive(Default)]
struct Worker {
    child: Option<Child>,
    restarts: u32,
    started_at: Option<String>,
    start_time: Option<String>,
    last_terminated: Option<Value>,
    terminated: Option<Value>,
    waiting: Option<(String, String)>,
    next_start: Option<Instant>,
    finished: Option<&'static str>,
    written: Option<Value>,
    progress: Option<String>,
}

/// The runner: one [`Worker`] per Pod uid.
pub struct Workers {
    client: kube::Client,
    config: Arc<NodeConfig>,
    pools: Pools,
    workers: Mutex<HashMap<String, Worker>>,
}

impl Workers {
    pub fn new(client: kube::Client, config: Arc<NodeConfig>, pools: Pools) -> Workers {
        Workers {
            client,
            config,
            pools,
            workers: Mutex::default(),
        }
    }

    /// Whether a worker process is running.
    pub fn busy(&self) -> bool {
        self.lock().values().any(|w| w.child.is_some())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Worker>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dir(&self, pod_uid: &str) -> PathBuf {
        self.pools.workers_dir().join(pod_uid)
    }

    /// One pass over the node's worker Pods.
    pub async fn reconcile(&self, world: &World) {
        let pods: Vec<Value> = world.list(POD).into_iter().filter(is_cdi_worker).collect();
        let live: Vec<String> = pods
            .iter()
            .filter(|p| !kinds::is_deleting(p))
            .map(|p| uid(p).to_string())
            .collect();
        let gone: Vec<String> = self
            .lock()
            .keys()
            .filter(|u| !live.contains(u))
            .cloned()
            .collect();
        for pod_uid in gone {
            // Dropping the worker kills its process (kill_on_drop).
            self.lock().remove(&pod_uid);
            let _ = std::fs::remove_dir_all(self.dir(&pod_uid));
            tracing::info!(pod_uid, "CDI worker Pod gone; its process is stopped");
        }
        for pod in pods.iter().filter(|p| !kinds::is_deleting(p)) {
            let known = self.lock().contains_key(uid(pod));
            if !known && matches!(phase(pod), "Succeeded" | "Failed") {
                continue; // finished before this agent started
            }
            self.step(world, pod).await;
        }
    }

    async fn step(&self, world: &World, pod: &Value) {
        let pod_uid = uid(pod).to_string();
        let dir = self.dir(&pod_uid);
        let policy = str_at(pod, "/spec/restartPolicy")
            .unwrap_or("Always")
            .to_string();
        let mut start_now = false;
        {
            let mut workers = self.lock();
            let w = workers.entry(pod_uid.clone()).or_default();
            w.start_time.get_or_insert_with(kinds::now);
            if let Some(child) = w.child.as_mut() {
                if let Ok(Some(exit)) = child.try_wait() {
                    w.child = None;
                    let code = exit.code().unwrap_or(137);
                    let message =
                        std::fs::read_to_string(dir.join("termination-log")).unwrap_or_default();
                    let terminated = json!({
                        "exitCode": code,
                        "reason": if code == 0 { "Completed" } else { "Error" },
                        "message": message.trim_end(),
                        "startedAt": w.started_at,
                        "finishedAt": kinds::now(),
                    });
                    if code == 0 {
                        w.finished = Some("Succeeded");
                        w.terminated = Some(terminated);
                    } else if policy == "Never" {
                        w.finished = Some("Failed");
                        w.terminated = Some(terminated);
                    } else {
                        w.last_terminated = Some(terminated);
                        w.restarts += 1;
                        let backoff = FIRST_BACKOFF
                            .saturating_mul(1 << (w.restarts - 1).min(5))
                            .min(MAX_BACKOFF);
                        w.next_start = Some(Instant::now() + backoff);
                        w.waiting = Some((
                            "CrashLoopBackOff".into(),
                            format!(
                                "back-off {}s restarting failed container={} pod={}",
                                backoff.as_secs(),
                                wk::IMPORTER_CONTAINER,
                                name(pod)
                            ),
                        ));
                    }
                }
            }
            if w.child.is_none()
                && w.finished.is_none()
                && w.next_start.is_none_or(|t| Instant::now() >= t)
            {
                start_now = true;
            }
        }
        if start_now {
            let started = self.start(world, pod, &dir).await;
            let mut workers = self.lock();
            let w = workers.entry(pod_uid.clone()).or_default();
            match started {
                Ok(child) => {
                    tracing::info!(pod = %format!("{}/{}", namespace(pod), name(pod)), "CDI worker started");
                    w.child = Some(child);
                    w.started_at = Some(kinds::now());
                    w.waiting = None;
                    w.next_start = None;
                }
                Err(message) => {
                    w.waiting = Some(("CreateContainerConfigError".into(), message));
                    w.next_start = Some(Instant::now() + Duration::from_secs(2));
                }
            }
        }
        let (status, progress) = {
            let mut workers = self.lock();
            let w = workers.entry(pod_uid.clone()).or_default();
            // An upload worker is Ready once its socket exists (it binds before serving).
            let upload = label(pod, wk::CDI_COMPONENT_LABEL) == Some(wk::UPLOAD_COMPONENT);
            let ready = w.child.is_some() && (!upload || dir.join(wk::UPLOAD_SOCKET).exists());
            let status = pod_status(pod, w, ready);
            let progress = if w.child.is_some() || w.finished.is_some() {
                std::fs::read_to_string(dir.join("progress"))
                    .ok()
                    .map(|p| p.trim().to_string())
            } else {
                None
            };
            let changed_status = (w.written.as_ref() != Some(&status)).then_some(status);
            let changed_progress =
                progress.filter(|p| w.progress.as_ref() != Some(p) && !p.is_empty());
            (changed_status, changed_progress)
        };
        if let Some(status) = status {
            let patch = json!({"status": status});
            match crate::ops::merge_status(&self.client, POD, namespace(pod), name(pod), &patch)
                .await
            {
                Ok(()) => {
                    if let Some(w) = self.lock().get_mut(&pod_uid) {
                        w.written = Some(status);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot write a CDI worker Pod's status"),
            }
        }
        if let Some(progress) = progress {
            if let Some(claim) = target_claim(pod) {
                let patch = json!({"metadata": {"annotations": {wk::ann::PROGRESS: format!("{progress}%")}}});
                if crate::ops::merge(&self.client, PVC, namespace(pod), &claim, &patch)
                    .await
                    .is_ok()
                {
                    if let Some(w) = self.lock().get_mut(&pod_uid) {
                        w.progress = Some(progress);
                    }
                }
            }
        }
    }

    /// Materialises mounts and env, then spawns the process.
    async fn start(&self, world: &World, pod: &Value, dir: &Path) -> Result<Child, String> {
        let ns = namespace(pod);
        let container = &pod["spec"]["containers"][0];
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            let (Some(volume_name), Some(mount_path)) =
                (mount["name"].as_str(), mount["mountPath"].as_str())
            else {
                continue;
            };
            let volume = pod["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == volume_name)
                .ok_or_else(|| format!("volumeMount {volume_name} names no volume of the Pod"))?;
            let host = self
                .realise_volume(world, ns, volume, &dir.join("mounts").join(volume_name))
                .await?;
            mounts.push((mount_path.to_string(), host));
        }
        let mut env: Vec<(String, String)> = Vec::new();
        for var in container["env"].as_array().into_iter().flatten() {
            let Some(var_name) = var["name"].as_str() else {
                continue;
            };
            let value = match (&var["value"], &var["valueFrom"]) {
                (Value::String(v), _) => v.clone(),
                (_, from) if from.is_object() => self.env_from(ns, from).await?,
                _ => String::new(),
            };
            env.push((var_name.to_string(), rewrite(&value, &mounts)));
        }
        let log = std::fs::File::create(dir.join("importer.log"))
            .map_err(|e| format!("creating the log: {e}"))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("duplicating the log: {e}"))?;
        let mut command = Command::new(&self.config.worker_program);
        command
            .arg("importer")
            .envs(env)
            .env(wk::env::STATUS_DIR, dir)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        command.spawn().map_err(|e| {
            format!(
                "starting {} importer: {e}",
                self.config.worker_program.display()
            )
        })
    }

    async fn realise_volume(
        &self,
        world: &World,
        ns: &str,
        volume: &Value,
        at: &Path,
    ) -> Result<PathBuf, String> {
        if let Some(claim_name) = str_at(volume, "/persistentVolumeClaim/claimName") {
            let claim = world
                .get(PVC, ns, claim_name)
                .ok_or_else(|| format!("persistentvolumeclaim \"{claim_name}\" not found"))?;
            let volume_name = str_at(&claim, "/spec/volumeName")
                .filter(|v| !v.is_empty() && phase(&claim) == "Bound")
                .ok_or_else(|| format!("persistentvolumeclaim \"{claim_name}\" is not bound"))?;
            let pv = world
                .get(PV, "", volume_name)
                .ok_or_else(|| format!("persistentvolume \"{volume_name}\" not found"))?;
            let path = str_at(&pv, "/spec/hostPath/path")
                .or_else(|| str_at(&pv, "/spec/local/path"))
                .ok_or_else(|| {
                    format!("persistentvolume \"{volume_name}\" is not a local volume of this node")
                })?;
            return Ok(PathBuf::from(path));
        }
        if let Some(path) = str_at(volume, "/hostPath/path") {
            return Ok(PathBuf::from(path));
        }
        let (kind, source_name, key) = if let Some(n) = str_at(volume, "/configMap/name") {
            (CONFIG_MAP, n, "data")
        } else if let Some(n) = str_at(volume, "/secret/secretName") {
            (SECRET, n, "data")
        } else {
            return Err(format!(
                "volume {} has a type this node cannot mount",
                volume["name"]
            ));
        };
        let object = crate::ops::get(&self.client, kind, ns, source_name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} \"{source_name}\" not found", kind.kind.to_lowercase()))?;
        std::fs::create_dir_all(at).map_err(|e| format!("creating {}: {e}", at.display()))?;
        for (file, content) in object[key].as_object().into_iter().flatten() {
            if file.contains('/') || file.starts_with('.') {
                continue; // keys are file names; refuse anything that could leave the directory
            }
            let bytes = match (kind == SECRET, content.as_str()) {
                (true, Some(b64)) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| format!("secret {source_name} key {file}: {e}"))?,
                (false, Some(text)) => text.as_bytes().to_vec(),
                _ => continue,
            };
            std::fs::write(at.join(file), bytes).map_err(|e| format!("writing {file}: {e}"))?;
        }
        Ok(at.to_path_buf())
    }

    async fn env_from(&self, ns: &str, from: &Value) -> Result<String, String> {
        let (kind, reference) = if from["secretKeyRef"].is_object() {
            (SECRET, &from["secretKeyRef"])
        } else if from["configMapKeyRef"].is_object() {
            (CONFIG_MAP, &from["configMapKeyRef"])
        } else {
            return Ok(String::new());
        };
        let (source_name, key) = (
            reference["name"].as_str().unwrap_or_default(),
            reference["key"].as_str().unwrap_or_default(),
        );
        let optional = reference["optional"] == true;
        let object = crate::ops::get(&self.client, kind, ns, source_name)
            .await
            .map_err(|e| e.to_string())?;
        let value = object
            .as_ref()
            .map(|o| o["data"][key].clone())
            .unwrap_or(Value::Null);
        match (value.as_str(), kind == SECRET) {
            (Some(b64), true) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("secret {source_name} key {key}: {e}"))
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            (Some(text), false) => Ok(text.to_string()),
            (None, _) if optional => Ok(String::new()),
            (None, _) => Err(format!(
                "couldn't find key {key} in {} {ns}/{source_name}",
                if kind == SECRET {
                    "Secret"
                } else {
                    "ConfigMap"
                }
            )),
        }
    }
}

/// The claim a worker writes to (its `cdi-data-vol` volume).
fn target_claim(pod: &Value) -> Option<String> {
    pod["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == wk::DATA_VOLUME_NAME)
        .and_then(|v| str_at(v, "/persistentVolumeClaim/claimName"))
        .map(str::to_string)
}

/// `value` with a leading mount path replaced by the directory that realises it.
fn rewrite(value: &str, mounts: &[(String, PathBuf)]) -> String {
    for (mount_path, host) in mounts {
        if value == mount_path {
            return host.to_string_lossy().into_owned();
        }
        if let Some(rest) = value.strip_prefix(&format!("{}/", mount_path.trim_end_matches('/'))) {
            return host.join(rest).to_string_lossy().into_owned();
        }
    }
    value.to_string()
}

fn condition(kind: &str, status: bool, now: &str) -> Value {
    json!({"type": kind, "status": if status { "True" } else { "False" }, "lastTransitionTime": now})
}

/// The Pod status a kubelet would report for this worker.
fn pod_status(pod: &Value, w: &Worker, ready: bool) -> Value {
    let running = w.child.is_some();
    let pod_phase = match (w.finished, running || w.restarts > 0) {
        (Some(done), _) => done,
        (None, true) => "Running",
        (None, false) => "Pending",
    };
    let state = if let Some(t) = &w.terminated {
        json!({"terminated": t})
    } else if running {
        json!({"running": {"startedAt": w.started_at}})
    } else {
        let (reason, message) = w
            .waiting
            .clone()
            .unwrap_or(("ContainerCreating".into(), String::new()));
        json!({"waiting": {"reason": reason, "message": message}})
    };
    let mut container = Map::new();
    container.insert(
        "name".into(),
        json!(pod["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or(wk::IMPORTER_CONTAINER)),
    );
    container.insert(
        "image".into(),
        pod["spec"]["containers"][0]["image"].clone(),
    );
    container.insert("imageID".into(), json!(""));
    container.insert("ready".into(), json!(ready));
    container.insert("started".into(), json!(running));
    container.insert("restartCount".into(), json!(w.restarts));
    container.insert("state".into(), state);
    if let Some(last) = &w.last_terminated {
        container.insert("lastState".into(), json!({"terminated": last}));
    }
    let start = w.start_time.clone().unwrap_or_default();
    json!({
        "phase": pod_phase,
        "startTime": start,
        "conditions": [
            condition("PodScheduled", true, &start),
            condition("Initialized", true, &start),
            condition("ContainersReady", ready, &start),
            condition("Ready", ready, &start),
        ],
        "containerStatuses": [Value::Object(container)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_naming_a_mount_path_point_at_its_host_directory() {
        let mounts = vec![("/data".to_string(), PathBuf::from("/pool/pvc-1"))];
        assert_eq!(rewrite("/data", &mounts), "/pool/pvc-1");
        assert_eq!(rewrite("/data/disk.img", &mounts), "/pool/pvc-1/disk.img");
        assert_eq!(rewrite("/database", &mounts), "/database");
        assert_eq!(rewrite("http://x/data", &mounts), "http://x/data");
    }

    #[test]
    fn a_restarting_worker_is_running_with_its_last_termination() {
        let pod = json!({"spec": {"containers": [{"name": "importer", "image": "i"}]}});
        let w = Worker {
            restarts: 1,
            last_terminated: Some(json!({"exitCode": 1, "reason": "Error", "message": "boom"})),
            waiting: Some(("CrashLoopBackOff".into(), "back-off".into())),
            ..Worker::default()
        };
        let status = pod_status(&pod, &w, false);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["containerStatuses"][0]["restartCount"], 1);
        assert_eq!(
            status["containerStatuses"][0]["lastState"]["terminated"]["message"],
            "boom"
        );
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["reason"],
            "CrashLoopBackOff"
        );
    }
}
