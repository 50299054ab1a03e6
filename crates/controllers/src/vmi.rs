//! The VirtualMachineInstance controller: creates the launcher Pod of a pending VMI,
//! follows it through scheduling (phases Pending → Scheduling → Scheduled, `nodeName`,
//! the `PodScheduled` condition), fails the VMI when its Pod fails or vanishes early, and
//! on deletion removes the Pod and then the `kubevirt.io/foregroundDeleteVirtualMachine`
//! finalizer. From `Running` on the node agent owns the VMI status (contract 0004).
//!
//! # Guarantees
//! Idempotent and level-triggered: Pods are found by listing the API (label
//! `kubevirt.io/created-by=<uid>`, controller owner reference) before one is created, and
//! status writes carry the resourceVersion they were computed from, so a race with the
//! node agent ends in a conflict and a retry, never in a phase going backwards. Every
//! `.await` is a cancellation point.

mod nad_resources;
mod phase;
mod pod;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::{json, Map, Value};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::{EventType, Regarding};
use crate::object::{
    finalizers_with, has_finalizer, is_controlled_by, is_deleting, resource_version, seconds_until,
    str_at, to_json, vmi_resource,
};
use crate::well_known::{reason, CREATED_BY_LABEL, VMI_FINALIZER};

/// How many names a Pod creation tries before giving up on name collisions.
const NAME_ATTEMPTS: usize = 3;

/// What a pass reads besides the API: the Pod cache, filled by the watch that also wakes
/// the controller for Pod changes.
struct Shared {
    ctx: Context,
    pods: Store<Pod>,
}

/// Runs the controller until its watches end.
pub async fn run(ctx: Context) {
    let client = ctx.client().clone();
    let vmis: Api<DynamicObject> = Api::all_with(client.clone(), &vmi_resource());
    let (pod_cache, pod_changes) = crate::cache::reflected(Api::<Pod>::all(client), ());
    let shared = Shared {
        ctx,
        pods: pod_cache,
    };
    Controller::new_with(vmis, watcher::Config::default(), vmi_resource())
        .owns_stream(pod_changes)
        .run(reconcile, error_policy, Arc::new(shared))
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "virtualmachineinstance reconcile failed");
            }
        })
        .await;
}

fn error_policy(_vmi: Arc<DynamicObject>, error: &Error, _shared: Arc<Shared>) -> Action {
    match error {
        Error::Api {
            source: kube::Error::Api(s),
            ..
        } if s.code == 409 => Action::requeue(Duration::from_millis(200)),
        _ => Action::requeue(Duration::from_secs(2)),
    }
}

struct Pass<'a> {
    ctx: &'a Context,
    pod_cache: &'a Store<Pod>,
    vmis: Api<DynamicObject>,
    pods: Api<Pod>,
    vmi: Value,
    what: String,
    regarding: Regarding,
}

/// # Errors
/// API failures (conflicts are retried quickly by [`error_policy`]).
///
/// The VMI is the one from the controller's cache: status writes carry its
/// resourceVersion, so a pass computed from an older VMI than the stored one ends in a
/// conflict and a quick retry instead of a phase going backwards.
async fn reconcile(vmi: Arc<DynamicObject>, shared: Arc<Shared>) -> Result<Action> {
    let ns = vmi
        .namespace()
        .ok_or(Error::Malformed("metadata.namespace"))?;
    let name = vmi.name_any();
    let ctx = &shared.ctx;
    let vmis: Api<DynamicObject> = Api::namespaced_with(ctx.client().clone(), &ns, &vmi_resource());
    let what = format!("VirtualMachineInstance {ns}/{name}");
    let vmi = to_json(&vmi);
    let pass = Pass {
        ctx,
        pod_cache: &shared.pods,
        pods: Api::namespaced(ctx.client().clone(), &ns),
        regarding: Regarding::of(&vmi, "kubevirt.io/v1", "VirtualMachineInstance"),
        vmis,
        vmi,
        what,
    };
    let mut pods = pass.launcher_pods().await?;
    if is_deleting(&pass.vmi) {
        if !has_finalizer(&pass.vmi, VMI_FINALIZER) {
            return Ok(Action::await_change());
        }
        if let Some(wait) = pass.agent_grace_left() {
            return Ok(Action::requeue(wait));
        }
        pods = pass.delete_pods(pods).await;
        let current = pass.write_status(pods.first()).await?;
        if pods.is_empty() {
            pass.remove_finalizer(&current).await?;
        }
        return Ok(Action::await_change());
    }
    pods.sort_by_key(is_deleting);
    let mut pod = pods.into_iter().next();
    if phase::next(&pass.vmi, pod.as_ref()).create_pod {
        pod = Some(pass.create_pod().await?);
    }
    pass.write_status(pod.as_ref()).await?;
    Ok(Action::await_change())
}

impl Pass<'_> {
    async fn event(&self, type_: EventType, reason: &str, message: &str) {
        self.ctx
            .recorder()
            .publish(&self.regarding, type_, reason, message)
            .await;
    }

    fn uid(&self) -> &str {
        str_at(&self.vmi, "/metadata/uid").unwrap_or_default()
    }

    /// The Pods this VMI controls: from the Pod cache, or, when it has none, from the
    /// API, so a Pod created by a previous pass and not yet in the cache is always seen
    /// (a VMI must never get two launchers).
    async fn launcher_pods(&self) -> Result<Vec<Value>> {
        let cached: Vec<Value> = self
            .pod_cache
            .state()
            .iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(CREATED_BY_LABEL))
                    .is_some_and(|uid| uid == self.uid())
            })
            .map(|p| serde_json::to_value(&**p).unwrap_or(Value::Null))
            .filter(|p| is_controlled_by(p, self.uid()))
            .collect();
        if !cached.is_empty() {
            return Ok(cached);
        }
        let selector = format!("{CREATED_BY_LABEL}={}", self.uid());
        let list = self
            .pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(Error::api(format!("Pods of {}", self.what)))?;
        Ok(list
            .items
            .iter()
            .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
            .filter(|p| is_controlled_by(p, self.uid()))
            .collect())
    }

    async fn create_pod(&self) -> Result<Value> {
        let vmi_name = str_at(&self.vmi, "/metadata/name").unwrap_or_default();
        let network_resources =
            nad_resources::network_resources(self.ctx.client(), &self.vmi).await;
        for _ in 0..NAME_ATTEMPTS {
            let name = pod::pod_name(vmi_name);
            let mut pod = pod::launcher_pod(&self.vmi, &name);
            nad_resources::add_to_pod(&mut pod, &network_resources);
            let pod: Pod =
                serde_json::from_value(pod).map_err(|_| Error::Malformed("a launcher Pod"))?;
            match self.pods.create(&PostParams::default(), &pod).await {
                Ok(created) => {
                    let message = format!("Created virtual machine pod {name}");
                    self.event(EventType::Normal, reason::SUCCESSFUL_CREATE, &message)
                        .await;
                    return Ok(serde_json::to_value(created).unwrap_or(Value::Null));
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    let message = format!("Error creating pod: {e}");
                    self.event(EventType::Warning, reason::FAILED_CREATE, &message)
                        .await;
                    return Err(Error::api(format!("launcher Pod of {}", self.what))(e));
                }
            }
        }
        Err(Error::NameCollision {
            what: format!("launcher Pod of {}", self.what),
            attempts: NAME_ATTEMPTS,
        })
    }

    /// A running guest belongs to the node agent, which shuts it down when the VMI is
    /// deleted: its Pod is left alone until the VMI ends or its
    /// `terminationGracePeriodSeconds` have passed since the deletion.
    fn agent_grace_left(&self) -> Option<Duration> {
        if str_at(&self.vmi, "/status/phase") != Some("Running") {
            return None;
        }
        let grace = self.vmi["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(pod::DEFAULT_GRACE_SECONDS);
        let since = str_at(&self.vmi, "/metadata/deletionTimestamp").and_then(seconds_until)?;
        let left = since + grace;
        (left > 0).then(|| Duration::from_secs(left.unsigned_abs()))
    }

    /// Deletes the Pods not yet going away; returns those that remain.
    async fn delete_pods(&self, pods: Vec<Value>) -> Vec<Value> {
        let mut remaining = Vec::new();
        for pod in pods {
            let name = str_at(&pod, "/metadata/name")
                .unwrap_or_default()
                .to_string();
            match self.pods.delete(&name, &DeleteParams::default()).await {
                Ok(either) => {
                    if !is_deleting(&pod) {
                        let message = format!("Deleted virtual machine pod {name}");
                        self.event(EventType::Normal, reason::SUCCESSFUL_DELETE, &message)
                            .await;
                    }
                    if either.is_left() {
                        remaining.push(pod); // accepted, still there (a finalizer holds it)
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    let message = format!("Error deleting pod {name}: {e}");
                    self.event(EventType::Warning, reason::FAILED_DELETE, &message)
                        .await;
                    remaining.push(pod);
                }
            }
        }
        remaining
    }

    /// Writes phase, nodeName, conditions and transition timestamps when they change;
    /// emits the transition's Event once the write succeeded. Returns the VMI as stored.
    ///
    /// The VMI kind has no status subresource (as upstream): status is patched on the
    /// object itself, which admission allows to oxivirt's components only.
    async fn write_status(&self, pod: Option<&Value>) -> Result<Value> {
        let next = phase::next(&self.vmi, pod);
        let status = &self.vmi["status"];
        let mut wanted = Map::new();
        if status["phase"] != next.phase {
            wanted.insert("phase".into(), json!(next.phase));
            wanted.insert(
                "phaseTransitionTimestamps".into(),
                json!(phase::transition_timestamps(&self.vmi, next.phase)),
            );
        }
        if let Some(node) = &next.node_name {
            if status["nodeName"] != node.as_str() {
                wanted.insert("nodeName".into(), json!(node));
            }
        }
        let conditions = json!(next.conditions);
        let current_conditions = status.get("conditions").cloned().unwrap_or(json!([]));
        if conditions != current_conditions {
            wanted.insert("conditions".into(), conditions);
        }
        if wanted.is_empty() {
            return Ok(self.vmi.clone());
        }
        let patch = json!({
            "metadata": {"resourceVersion": resource_version(&self.vmi)},
            "status": Value::Object(wanted.clone()),
        });
        let name = str_at(&self.vmi, "/metadata/name").unwrap_or_default();
        let updated = self
            .vmis
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::api(format!("status of {}", self.what)))?;
        if wanted.contains_key("phase") {
            if let Some((type_, reason, message)) = &next.event {
                self.event(*type_, reason, message).await;
            }
        }
        Ok(to_json(&updated))
    }

    async fn remove_finalizer(&self, vmi: &Value) -> Result<()> {
        let patch = json!({"metadata": {
            "finalizers": finalizers_with(vmi, VMI_FINALIZER, false),
            "resourceVersion": resource_version(vmi),
        }});
        let name = str_at(vmi, "/metadata/name").unwrap_or_default();
        match self
            .vmis
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::api(format!("finalizers of {}", self.what))(e)),
        }
    }
}
