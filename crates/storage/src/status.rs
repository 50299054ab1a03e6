//! DataVolume conditions with upstream's update rules, and the Events their changes cause.
//!
//! A condition's `lastTransitionTime` moves when its status changes, `lastHeartbeatTime`
//! when anything about it changes (CDI's `updateCondition`).

use serde_json::{json, Value};

use crate::kinds::{name, phase};

/// The `Bound`, `Running` and `Ready` conditions of one DataVolume.
pub struct Conditions(Vec<Value>);

impl Conditions {
    /// The conditions in `dv`'s status, with the three types present.
    pub fn from_status(dv: &Value) -> Conditions {
        let mut list: Vec<Value> = dv["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for kind in ["Bound", "Running", "Ready"] {
            if !list.iter().any(|c| c["type"] == kind) {
                let now = crate::kinds::now();
                list.push(
                    json!({"type": kind, "status": "False", "reason": "", "message": "",
                                 "lastTransitionTime": now, "lastHeartbeatTime": now}),
                );
            }
        }
        Conditions(list)
    }

    fn set(&mut self, kind: &str, status: &str, reason: &str, message: &str) {
        let now = crate::kinds::now();
        let Some(c) = self.0.iter_mut().find(|c| c["type"] == kind) else {
            return;
        };
        if c["status"] != status {
            c["lastTransitionTime"] = json!(now);
            c["lastHeartbeatTime"] = json!(now);
        } else if c["reason"] != reason || c["message"] != message {
            c["lastHeartbeatTime"] = json!(now);
        }
        c["status"] = json!(status);
        c["reason"] = json!(reason);
        c["message"] = json!(message);
    }

    fn truth(value: bool) -> &'static str {
        if value {
            "True"
        } else {
            "False"
        }
    }

    pub fn set_bound(&mut self, bound: bool, reason: &str, message: &str) {
        self.set("Bound", Self::truth(bound), reason, message);
        if !bound {
            self.set_ready(false, "", "");
        }
    }

    pub fn set_running(&mut self, running: bool, reason: &str, message: &str) {
        self.set("Running", Self::truth(running), reason, message);
    }

    pub fn set_ready(&mut self, ready: bool, reason: &str, message: &str) {
        self.set("Ready", Self::truth(ready), reason, message);
    }

    /// `Bound` from the claim's phase (upstream `updateBoundCondition`).
    pub fn bound_from_claim(&mut self, claim: &Value) {
        let claim_name = name(claim);
        match phase(claim) {
            "Bound" => self.set_bound(true, "Bound", &format!("PVC {claim_name} Bound")),
            "Lost" => self.set_bound(false, "ClaimLost", "Claim Lost"),
            _ => self.set_bound(false, "Pending", &format!("PVC {claim_name} Pending")),
        }
    }

    pub fn into_value(self) -> Value {
        Value::Array(self.0)
    }
}

fn strip_times(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(list) = v["conditions"].as_array_mut() {
        for c in list {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
                o.remove("lastHeartbeatTime");
            }
        }
    }
    v
}

/// Whether two statuses differ only in condition timestamps.
pub fn same_ignoring_times(old: &Value, new: &Value) -> bool {
    strip_times(old) == strip_times(new)
}

/// An Event a condition change causes.
pub struct ConditionEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// Reasons of a not-running worker that are normal steps, not errors.
const QUIET: [&str; 5] = [
    "",
    "Pending",
    "ContainerCreating",
    "Completed",
    "Pod is running",
];

/// Events for conditions whose reason or message changed: `Bound` changes as Normal
/// Events, a `Running=False` for an error reason as a Warning (the manual's
/// `Warning  Error  ...  Unable to connect to http data source: ...`).
pub fn condition_events(old: &Value, new: &Value) -> Vec<ConditionEvent> {
    let find = |status: &Value, kind: &str| -> Option<Value> {
        status["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == kind)
            .cloned()
    };
    let mut out = Vec::new();
    for kind in ["Bound", "Running"] {
        let Some(now) = find(new, kind) else { continue };
        let before = find(old, kind);
        let key = |c: &Value| {
            (
                c["status"].clone(),
                c["reason"].clone(),
                c["message"].clone(),
            )
        };
        if before.as_ref().map(key) == Some(key(&now)) {
            continue;
        }
        let reason = now["reason"].as_str().unwrap_or_default().to_string();
        let message = now["message"].as_str().unwrap_or_default().to_string();
        match kind {
            "Bound" if !reason.is_empty() => out.push(ConditionEvent {
                warning: false,
                reason,
                message,
            }),
            "Running" if now["status"] == "False" && !QUIET.contains(&reason.as_str()) => {
                out.push(ConditionEvent {
                    warning: true,
                    reason,
                    message,
                })
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transition_moves_both_times_and_a_message_change_only_the_heartbeat() {
        let mut c = Conditions::from_status(&json!({}));
        c.set_running(true, "Pod is running", "");
        c.0.iter_mut().for_each(|c| {
            c["lastTransitionTime"] = json!("t0");
            c["lastHeartbeatTime"] = json!("t0");
        });
        c.set_running(true, "Pod is running", "other");
        let running = c.0.iter().find(|c| c["type"] == "Running").unwrap().clone();
        assert_eq!(running["lastTransitionTime"], "t0");
        assert_ne!(running["lastHeartbeatTime"], "t0");
    }

    #[test]
    fn an_import_error_is_a_warning_event_and_a_bound_claim_a_normal_one() {
        let old = json!({"conditions": []});
        let new = json!({"conditions": [
            {"type": "Bound", "status": "True", "reason": "Bound", "message": "PVC d Bound"},
            {"type": "Running", "status": "False", "reason": "Error", "message": "Unable to connect"},
        ]});
        let events = condition_events(&old, &new);
        assert_eq!(events.len(), 2);
        assert!(!events[0].warning && events[0].reason == "Bound");
        assert!(events[1].warning && events[1].message == "Unable to connect");
        assert!(condition_events(&new, &new).is_empty());
    }
}
