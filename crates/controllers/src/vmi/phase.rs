//! The VMI phases the VMI controller owns (contract 0004): Pending → Scheduling (Pod
//! created, unbound) → Scheduled (Pod bound), and Failed when the launcher Pod fails or
//! disappears before the VMI ends. Running and the terminal phases after it belong to the
//! node agent. Pure: what to do is decided here, the API calls are made by the caller.

use serde_json::{json, Value};

use crate::events::EventType;
use crate::object::{
    condition, is_deleting, now_rfc3339, phase, remove_condition, set_condition, str_at,
};
use crate::well_known::reason;

/// What a pass should write and say.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Next {
    /// The phase after this pass.
    pub phase: &'static str,
    /// `status.nodeName` to write, if it changes.
    pub node_name: Option<String>,
    /// `status.conditions` after this pass.
    pub conditions: Vec<Value>,
    /// No launcher Pod exists and one must be created.
    pub create_pod: bool,
    /// An Event for the transition: type, reason, message.
    pub event: Option<(EventType, &'static str, String)>,
}

fn known(phase: &str) -> &'static str {
    match phase {
        "Scheduling" => "Scheduling",
        "Scheduled" => "Scheduled",
        "Running" => "Running",
        "Succeeded" => "Succeeded",
        "Failed" => "Failed",
        "WaitingForSync" => "WaitingForSync",
        "Unknown" => "Unknown",
        _ => "Pending",
    }
}

/// Whether a Pod has ended or is going away (upstream `isPodDownOrGoingDown`).
fn is_down(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed") || is_deleting(pod)
}

fn pod_name(pod: &Value) -> &str {
    str_at(pod, "/metadata/name").unwrap_or_default()
}

fn failed(conditions: Vec<Value>, message: String) -> Next {
    Next {
        phase: "Failed",
        node_name: None,
        conditions,
        create_pod: false,
        event: Some((EventType::Warning, reason::FAILED, message)),
    }
}

/// The next state of `vmi` given its launcher Pod (`None` when there is none).
pub(crate) fn next(vmi: &Value, pod: Option<&Value>) -> Next {
    let current = known(phase(vmi));
    let mut conditions = crate::object::conditions(vmi);
    let stay = |conditions: Vec<Value>| Next {
        phase: current,
        node_name: None,
        conditions,
        create_pod: false,
        event: None,
    };
    match (current, pod) {
        ("Pending", None) if is_deleting(vmi) => failed(
            conditions,
            "The VirtualMachineInstance was deleted before it was scheduled".into(),
        ),
        ("Pending", None) => Next {
            create_pod: true,
            ..stay(conditions)
        },
        ("Pending" | "Scheduling", Some(pod)) => {
            copy_pod_scheduled(&mut conditions, pod);
            let node = str_at(pod, "/spec/nodeName").filter(|n| !n.is_empty());
            match node {
                _ if is_down(pod) => failed(
                    conditions,
                    format!(
                        "The virt-launcher pod {} failed before the VirtualMachineInstance ran",
                        pod_name(pod)
                    ),
                ),
                Some(node) => Next {
                    phase: "Scheduled",
                    node_name: Some(node.to_string()),
                    conditions,
                    create_pod: false,
                    event: Some((
                        EventType::Normal,
                        reason::SUCCESSFUL_HAND_OVER,
                        format!("Pod owner ship transferred to the node {node}"),
                    )),
                },
                None => Next {
                    phase: "Scheduling",
                    ..stay(conditions)
                },
            }
        }
        ("Scheduling" | "Scheduled" | "Running", None) => failed(
            conditions,
            "The virt-launcher pod disappeared before the VirtualMachineInstance ended".into(),
        ),
        ("Scheduled", Some(pod)) if is_down(pod) => failed(
            conditions,
            format!(
                "The virt-launcher pod {} failed before the VirtualMachineInstance ran",
                pod_name(pod)
            ),
        ),
        _ => stay(conditions),
    }
}

/// The Pod's `PodScheduled=False` condition (the scheduler's reason and message) on the
/// VMI while the Pod waits, removed once it no longer applies.
fn copy_pod_scheduled(conditions: &mut Vec<Value>, pod: &Value) {
    match condition(pod, "PodScheduled").filter(|c| c["status"] == "False") {
        Some(c) => {
            let mut copy = json!({
                "type": "PodScheduled", "status": "False", "lastProbeTime": null,
                "lastTransitionTime": c.get("lastTransitionTime").cloned().unwrap_or_else(|| json!(now_rfc3339())),
            });
            for key in ["reason", "message"] {
                if let Some(v) = c.get(key).filter(|v| !v.is_null()) {
                    copy[key] = v.clone();
                }
            }
            set_condition(conditions, copy);
        }
        None => remove_condition(conditions, "PodScheduled"),
    }
}

/// `status.phaseTransitionTimestamps` with an entry for `phase` appended.
pub(crate) fn transition_timestamps(vmi: &Value, phase: &str) -> Vec<Value> {
    let mut stamps = vmi
        .pointer("/status/phaseTransitionTimestamps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    stamps.push(json!({"phase": phase, "phaseTransitionTimestamp": now_rfc3339()}));
    stamps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmi(phase: &str) -> Value {
        json!({"metadata": {"name": "v"}, "status": {"phase": phase}})
    }

    fn pod(node: Option<&str>, conditions: Value) -> Value {
        json!({"metadata": {"name": "virt-launcher-v-abcde"}, "spec": {"nodeName": node},
            "status": {"phase": "Pending", "conditions": conditions}})
    }

    #[test]
    fn a_pending_vmi_without_a_pod_gets_one() {
        let n = next(&vmi("Pending"), None);
        assert!(n.create_pod);
        assert_eq!(n.phase, "Pending");
        assert!(next(&vmi(""), None).create_pod);
    }

    #[test]
    fn an_unbound_pod_means_scheduling_and_a_bound_one_scheduled() {
        let n = next(&vmi("Pending"), Some(&pod(None, json!([]))));
        assert_eq!((n.phase, n.create_pod), ("Scheduling", false));
        let n = next(&vmi("Scheduling"), Some(&pod(Some("node1"), json!([]))));
        assert_eq!(n.phase, "Scheduled");
        assert_eq!(n.node_name.as_deref(), Some("node1"));
        assert_eq!(n.event.expect("event").1, "SuccessfulHandOver");
    }

    #[test]
    fn the_schedulers_verdict_is_copied_and_cleared() {
        let waiting = pod(
            None,
            json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient memory."}]),
        );
        let n = next(&vmi("Scheduling"), Some(&waiting));
        assert_eq!(n.conditions[0]["reason"], "Unschedulable");
        assert_eq!(
            n.conditions[0]["message"],
            "0/1 nodes are available: 1 Insufficient memory."
        );
        let mut stuck = vmi("Scheduling");
        stuck["status"]["conditions"] = json!(n.conditions);
        let n = next(&stuck, Some(&pod(Some("node1"), json!([]))));
        assert!(n.conditions.is_empty());
    }

    #[test]
    fn a_vanished_or_failed_pod_fails_the_vmi() {
        for phase in ["Scheduling", "Scheduled", "Running"] {
            assert_eq!(next(&vmi(phase), None).phase, "Failed", "{phase}");
        }
        let mut dead = pod(Some("n"), json!([]));
        dead["status"]["phase"] = json!("Failed");
        assert_eq!(next(&vmi("Scheduled"), Some(&dead)).phase, "Failed");
        assert_eq!(
            next(&vmi("Running"), Some(&dead)).phase,
            "Running",
            "the agent's call"
        );
        assert_eq!(next(&vmi("Succeeded"), None).phase, "Succeeded");
    }

    #[test]
    fn a_deleted_pending_vmi_fails_instead_of_getting_a_pod() {
        let mut deleting = vmi("Pending");
        deleting["metadata"]["deletionTimestamp"] = json!("now");
        let n = next(&deleting, None);
        assert_eq!((n.phase, n.create_pod), ("Failed", false));
    }
}
