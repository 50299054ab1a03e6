//! The scheduler: binds Pods that name no node (and no other scheduler) to a Node chosen
//! by [`fit::place`], or marks them `PodScheduled=False` (reason `Unschedulable`, with
//! kube-scheduler's message) and records a `FailedScheduling` Event. Every change to a Pod
//! or Node wakes it, and it retries on its own every few seconds.
//!
//! # Guarantees
//! Pods and Nodes are read from watch caches; a Pod bound in a pass is counted against its
//! node until the cache shows the binding (kube-scheduler's "assumed" Pods), so two Pods
//! are never placed on room only one has. Binding goes through the Pod's `binding`
//! subresource, which refuses a Pod that already has a node: a stale view loses the race
//! and is retried, it never rebinds a Pod. Every `.await` is a cancellation point.

mod fit;
mod selectors;
mod volumes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::context::Context;
use crate::events::{EventType, Recorder, Regarding};
use crate::object::{
    condition, is_deleting, new_condition, phase, resource_version, set_condition, str_at,
};
use crate::well_known::{reason, DEFAULT_SCHEDULER};
use fit::Placement;

/// How often unschedulable Pods are retried when nothing changes.
const RETRY: Duration = Duration::from_secs(10);

/// Runs the scheduler until one of its watches ends.
pub async fn run(ctx: Context) {
    let client = ctx.client().clone();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (nodes, node_writer) = reflector::store::<Node>();
    let wake = Arc::new(Notify::new());
    let pod_watch = watch_into(Api::<Pod>::all(client.clone()), pod_writer, wake.clone());
    let node_watch = watch_into(Api::<Node>::all(client.clone()), node_writer, wake.clone());
    let mut scheduler = Scheduler {
        client: client.clone(),
        recorder: Recorder::new(client, DEFAULT_SCHEDULER),
        pods,
        nodes,
        assumed: HashMap::new(),
        reported: HashMap::new(),
    };
    tokio::select! {
        () = pod_watch => tracing::warn!("scheduler Pod watch ended"),
        () = node_watch => tracing::warn!("scheduler Node watch ended"),
        () = scheduler.serve(&wake) => {}
    }
}

/// Mirrors `api` into a store and wakes the scheduler on every change.
async fn watch_into<K>(api: Api<K>, writer: reflector::store::Writer<K>, wake: Arc<Notify>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .for_each(|event| {
            match event {
                Ok(_) => wake.notify_one(),
                Err(e) => tracing::debug!(error = %e, "scheduler watch error"),
            }
            futures::future::ready(())
        })
        .await;
}

struct Scheduler {
    client: kube::Client,
    recorder: Recorder,
    pods: Store<Pod>,
    nodes: Store<Node>,
    /// Pods bound by this scheduler that the cache does not show bound yet, by uid.
    assumed: HashMap<String, Value>,
    /// The unschedulable message last written to each waiting Pod, by uid.
    reported: HashMap<String, String>,
}

fn json_of<T: serde::Serialize>(obj: &T) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

fn uid(obj: &Value) -> &str {
    str_at(obj, "/metadata/uid").unwrap_or_default()
}

fn node_name(pod: &Value) -> Option<&str> {
    str_at(pod, "/spec/nodeName").filter(|n| !n.is_empty())
}

/// Unbound, alive, and for this scheduler.
fn wants_scheduling(pod: &Value) -> bool {
    node_name(pod).is_none()
        && !is_deleting(pod)
        && !matches!(phase(pod), "Succeeded" | "Failed")
        && matches!(
            str_at(pod, "/spec/schedulerName"),
            None | Some("") | Some(DEFAULT_SCHEDULER)
        )
}

impl Scheduler {
    async fn serve(&mut self, wake: &Notify) {
        if self.pods.wait_until_ready().await.is_err()
            || self.nodes.wait_until_ready().await.is_err()
        {
            return;
        }
        loop {
            self.pass().await;
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }

    /// Places every waiting Pod, highest priority and oldest first.
    async fn pass(&mut self) {
        // Most wake-ups are status changes of bound Pods: without a Pod to place there is
        // nothing to do, and the JSON copies of every Pod and Node below (Nodes carry
        // hundreds of CPU labels) would cost a starting VM more than its placement.
        let any_waiting = self.pods.state().iter().any(|pod| {
            pod.spec
                .as_ref()
                .is_none_or(|spec| spec.node_name.as_deref().unwrap_or_default().is_empty())
        });
        if !any_waiting {
            self.assumed.clear();
            self.reported.clear();
            return;
        }
        let nodes: Vec<Value> = self
            .nodes
            .state()
            .iter()
            .map(|n| json_of(n.as_ref()))
            .collect();
        let pods: Vec<Value> = self
            .pods
            .state()
            .iter()
            .map(|p| json_of(p.as_ref()))
            .collect();
        let waiting = |u: &str| pods.iter().any(|p| uid(p) == u && node_name(p).is_none());
        self.assumed.retain(|u, _| waiting(u));
        self.reported.retain(|u, _| waiting(u));
        let mut bound: Vec<Value> = pods
            .iter()
            .filter(|p| node_name(p).is_some())
            .chain(self.assumed.values())
            .cloned()
            .collect();
        let mut queue: Vec<&Value> = pods
            .iter()
            .filter(|p| wants_scheduling(p) && !self.assumed.contains_key(uid(p)))
            .collect();
        queue.sort_by_key(|p| {
            (
                -p["spec"]["priority"].as_i64().unwrap_or(0),
                str_at(p, "/metadata/creationTimestamp")
                    .unwrap_or_default()
                    .to_string(),
                str_at(p, "/metadata/name").unwrap_or_default().to_string(),
            )
        });
        // Placements are decided one after another (each counts the ones before it), the
        // bindings are then written together: one at a time, three writes each, they
        // capped a node at a handful of VM starts a second.
        let mut placements: Vec<(&Value, String)> = Vec::new();
        for pod in queue {
            let volume_terms = volumes::node_terms(&self.client, pod).await;
            match fit::place_with_volumes(pod, &nodes, &bound, &volume_terms) {
                Placement::Node(node) => {
                    let mut placed = pod.clone();
                    placed["spec"]["nodeName"] = json!(node);
                    bound.push(placed);
                    placements.push((pod, node));
                }
                Placement::Unschedulable(message) => self.mark_unschedulable(pod, &message).await,
            }
        }
        let binds = placements.iter().map(|(pod, node)| self.bind(pod, node));
        let results = futures::future::join_all(binds).await;
        for ((pod, _), placed) in placements.iter().zip(results) {
            if let Some(placed) = placed {
                self.assumed.insert(uid(pod).to_string(), placed);
            }
        }
    }

    fn pods_in(&self, pod: &Value) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            str_at(pod, "/metadata/namespace").unwrap_or("default"),
        )
    }

    /// Binds the Pod through its `binding` subresource, which sets `spec.nodeName` and
    /// `PodScheduled=True` in one write and refuses a Pod already assigned. Returns the Pod
    /// as bound (to count against the node until the cache shows it).
    async fn bind(&self, pod: &Value, node: &str) -> Option<Value> {
        let api = self.pods_in(pod);
        let name = str_at(pod, "/metadata/name").unwrap_or_default();
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "uid": uid(pod)},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        if let Err(e) = api
            .create_subresource::<Value, Value>("binding", name, &PostParams::default(), &binding)
            .await
        {
            tracing::debug!(error = %e, pod = name, node, "binding failed; retrying later");
            return None;
        }
        let mut bound = pod.clone();
        bound["spec"]["nodeName"] = json!(node);
        let ns = str_at(pod, "/metadata/namespace").unwrap_or_default();
        let message = format!("Successfully assigned {ns}/{name} to {node}");
        self.recorder
            .publish(
                &Regarding::of(pod, "v1", "Pod"),
                EventType::Normal,
                reason::SCHEDULED,
                &message,
            )
            .await;
        Some(bound)
    }

    /// Writes `PodScheduled=False` with the reason, and a `FailedScheduling` Event, when
    /// the message is new for this Pod.
    async fn mark_unschedulable(&mut self, pod: &Value, message: &str) {
        let pod_uid = uid(pod).to_string();
        if self.reported.get(&pod_uid).is_some_and(|m| m == message) {
            return;
        }
        let current = condition(pod, "PodScheduled");
        let already = current.is_some_and(|c| {
            c["status"] == "False"
                && c["reason"] == reason::UNSCHEDULABLE
                && c["message"] == message
        });
        if !already {
            let mut conditions = crate::object::conditions(pod);
            set_condition(
                &mut conditions,
                new_condition("PodScheduled", "False", reason::UNSCHEDULABLE, message),
            );
            let name = str_at(pod, "/metadata/name").unwrap_or_default();
            let patch = json!({"metadata": {"resourceVersion": resource_version(pod)}, "status": {"conditions": conditions}});
            let api = self.pods_in(pod);
            if let Err(e) = api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(error = %e, pod = name, "could not mark the Pod unschedulable");
                return;
            }
            self.recorder
                .publish(
                    &Regarding::of(pod, "v1", "Pod"),
                    EventType::Warning,
                    reason::FAILED_SCHEDULING,
                    message,
                )
                .await;
        }
        self.reported.insert(pod_uid, message.to_string());
    }
}
