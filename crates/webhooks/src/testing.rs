//! Test support: an in-memory [`Cluster`] and a tiny executor for the crate's async functions.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use serde_json::Value;

use crate::{admit, Cluster, Operation, Outcome, Request};

/// Objects keyed by `group/resource/namespace/name`.
#[derive(Default)]
pub(crate) struct FakeCluster {
    objects: HashMap<String, Value>,
}

impl FakeCluster {
    pub(crate) fn with(
        mut self,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        obj: Value,
    ) -> Self {
        self.objects
            .insert(format!("{group}/{resource}/{namespace}/{name}"), obj);
        self
    }
}

#[async_trait::async_trait]
impl Cluster for FakeCluster {
    async fn get(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&format!("{group}/{resource}/{namespace}/{name}"))
            .cloned()
    }
    async fn any(&self, group: &str, resource: &str) -> bool {
        let prefix = format!("{group}/{resource}/");
        self.objects.keys().any(|k| k.starts_with(&prefix))
    }
    async fn list(&self, group: &str, resource: &str) -> Vec<Value> {
        let prefix = format!("{group}/{resource}/");
        self.objects
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Runs a future that never waits on I/O (every [`FakeCluster`] answer is immediate).
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Admits `obj` as `user` and returns the outcome (and mutates `obj`).
pub(crate) fn run(
    cluster: &FakeCluster,
    group: &str,
    kind: &str,
    old: Option<&Value>,
    user: &str,
    obj: &mut Value,
) -> Outcome {
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let req = Request {
        group,
        kind,
        operation: if old.is_some() {
            Operation::Update
        } else {
            Operation::Create
        },
        namespace: &namespace,
        old,
        user,
    };
    block_on(admit(&req, obj, cluster))
}

/// The messages of an outcome's causes.
pub(crate) fn messages(out: &Outcome) -> Vec<&str> {
    out.causes.iter().map(|c| c.message.as_str()).collect()
}
