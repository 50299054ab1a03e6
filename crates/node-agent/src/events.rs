//! Events for `kubectl describe`: kubelet-style ones on launcher Pods (`Pulling`, `Pulled`,
//! `Failed`, `Started`, `Killing`) and virt-handler-style ones on VMIs (`Started`,
//! `ShuttingDown`, `Stopped`). Publishing is best effort and in the background: a failure is logged, never fatal.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};

use crate::well_known as wk;

/// Publishes the agent's events as `oxivirt-node-agent` on its node.
#[derive(Clone)]
pub(crate) struct Events {
    recorder: Recorder,
}

/// Which object of a launcher Pod an event is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum About {
    Pod,
    Vmi,
}

impl Events {
    pub(crate) fn new(client: kube::Client, node_name: &str) -> Self {
        let reporter = Reporter {
            controller: "oxivirt-node-agent".into(),
            instance: Some(node_name.into()),
        };
        Events {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Publishes `reason`/`note` about the Pod or its VMI; `warning` selects the type.
    pub(crate) async fn publish(
        &self,
        pod: &Pod,
        about: About,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let Some(reference) = reference(pod, about) else {
            return;
        };
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: reason.into(),
            secondary: None,
        };
        // In the background: the agent publishes on the way to starting a guest, and a
        // note about it must not delay it by an API round trip.
        let recorder = self.recorder.clone();
        let reason = reason.to_string();
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::debug!(error = %crate::status::chain(&e), reason, "cannot publish event");
            }
        });
    }
}

fn reference(pod: &Pod, about: About) -> Option<ObjectReference> {
    match about {
        About::Pod => Some(pod.object_ref(&())),
        About::Vmi => Some(ObjectReference {
            api_version: Some("kubevirt.io/v1".into()),
            kind: Some("VirtualMachineInstance".into()),
            name: Some(pod.annotations().get(wk::DOMAIN_ANNOTATION)?.clone()),
            namespace: pod.namespace(),
            uid: pod.labels().get("kubevirt.io/created-by").cloned(),
            ..ObjectReference::default()
        }),
    }
}
