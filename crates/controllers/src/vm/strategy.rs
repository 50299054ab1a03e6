//! What a run strategy asks for, given the VM and its VMI: upstream's `syncRunStrategy`,
//! `isSetToStart`, state change request handling and start-failure backoff, as pure
//! functions over JSON.

use rand::Rng;
use serde_json::{json, Value};

use crate::object::{is_deleting, phase, rfc3339_in, seconds_until, str_at};

/// Upstream's `defaultMaxCrashLoopBackoffDelaySeconds`.
const MAX_BACKOFF_SECONDS: i64 = 300;
/// Upstream's minimum backoff interval.
const MIN_BACKOFF_INTERVAL: i64 = 10;

/// `spec.runStrategy`, or `spec.running` mapped as upstream (`true` → Always, else Halted).
pub(crate) fn run_strategy(vm: &Value) -> &str {
    match str_at(vm, "/spec/runStrategy") {
        Some(s) if !s.is_empty() => s,
        _ if vm.pointer("/spec/running") == Some(&json!(true)) => "Always",
        _ => "Halted",
    }
}

/// What the controller does this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Leave things as they are.
    Nothing,
    /// Create the VMI.
    Start,
    /// Delete the VMI.
    Stop,
    /// Record a Start request, then delete the failed VMI (RerunOnFailure).
    StopAndRequestStart,
    /// A Start request on a Halted VM: switch the VM to Always (or `running: true`).
    SwitchToAlways,
    /// A start is due but the start-failure backoff has this many seconds left.
    Backoff(i64),
}

pub(crate) fn is_final(vmi: &Value) -> bool {
    matches!(phase(vmi), "Succeeded" | "Failed")
}

fn requests(vm: &Value) -> &[Value] {
    vm.pointer("/status/stateChangeRequests")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Only the first request counts: later ones have not been acted upon yet.
fn first_request(vm: &Value) -> Option<&Value> {
    requests(vm).first()
}

pub(crate) fn has_start_request(vm: &Value) -> bool {
    first_request(vm).is_some_and(|r| r["action"] == "Start")
}

/// A Start request carrying `data.paused: "true"` (`virtctl start --paused`).
pub(crate) fn has_start_paused_request(vm: &Value) -> bool {
    first_request(vm).is_some_and(|r| r["action"] == "Start" && r["data"]["paused"] == "true")
}

/// A Stop request naming this VMI's uid.
pub(crate) fn has_stop_request_for(vm: &Value, vmi: &Value) -> bool {
    let Some(uid) = str_at(vmi, "/metadata/uid") else {
        return false;
    };
    first_request(vm).is_some_and(|r| r["action"] == "Stop" && r["uid"] == uid)
}

/// Whether the first state change request has been acted upon and can be dropped
/// (upstream `isTrimFirstChangeRequestNeeded`).
pub(crate) fn first_request_done(vm: &Value, vmi: Option<&Value>) -> bool {
    let Some(request) = first_request(vm) else {
        return false;
    };
    match (request["action"].as_str(), vmi) {
        (Some("Stop"), None) => true,
        (Some("Stop"), Some(vmi)) => match request["uid"].as_str() {
            // A Stop without a uid cannot be acted upon.
            None | Some("") => true,
            Some(uid) => str_at(vmi, "/metadata/uid") != Some(uid),
        },
        (Some("Start"), Some(vmi)) => !is_deleting(vmi) && !is_final(vmi),
        _ => false,
    }
}

/// Seconds left of the start-failure backoff (`status.startFailure.retryAfterTimestamp`).
pub(crate) fn backoff_left(vm: &Value) -> i64 {
    str_at(vm, "/status/startFailure/retryAfterTimestamp")
        .and_then(seconds_until)
        .unwrap_or(0)
        .max(0)
}

/// The run strategy's decision (upstream `syncRunStrategy`).
pub(crate) fn decide(vm: &Value, vmi: Option<&Value>) -> Decision {
    let strategy = run_strategy(vm);
    let start = || match backoff_left(vm) {
        0 => Decision::Start,
        left => Decision::Backoff(left),
    };
    match (strategy, vmi) {
        ("Always", Some(vmi)) => {
            if !is_deleting(vmi) && (has_stop_request_for(vm, vmi) || is_final(vmi)) {
                Decision::Stop
            } else {
                Decision::Nothing
            }
        }
        ("Always", None) => start(),
        ("RerunOnFailure", Some(vmi)) => {
            if is_deleting(vmi) {
                Decision::Nothing
            } else if phase(vmi) == "Failed" {
                Decision::StopAndRequestStart
            } else if has_stop_request_for(vm, vmi) || phase(vmi) == "Succeeded" {
                Decision::Stop
            } else {
                Decision::Nothing
            }
        }
        ("RerunOnFailure", None) => {
            // Started once already and ended well: only an explicit start runs it again.
            if !has_start_request(vm) && str_at(vm, "/status/runStrategy") == Some(strategy) {
                Decision::Nothing
            } else {
                start()
            }
        }
        ("Manual", Some(vmi)) if has_stop_request_for(vm, vmi) && !is_deleting(vmi) => {
            Decision::Stop
        }
        ("Manual", None) if has_start_request(vm) => Decision::Start,
        ("Halted", Some(vmi)) if !is_deleting(vmi) => Decision::Stop,
        ("Halted", None) if has_start_request(vm) => Decision::SwitchToAlways,
        ("Once", None) => Decision::Start,
        _ => Decision::Nothing,
    }
}

/// Whether the VM is configured to run (upstream `isSetToStart`).
pub(crate) fn is_set_to_start(vm: &Value, vmi: Option<&Value>) -> bool {
    match (run_strategy(vm), vmi) {
        ("Always", _) => true,
        ("Manual", Some(vmi)) => !has_stop_request_for(vm, vmi),
        ("Manual", None) => has_start_request(vm),
        ("RerunOnFailure", Some(vmi)) => phase(vmi) != "Succeeded",
        ("RerunOnFailure", None) => true,
        ("Once", None) => true,
        _ => false,
    }
}

fn was_running(vmi: &Value) -> bool {
    phase(vmi) == "Running"
        || vmi
            .pointer("/status/phaseTransitionTimestamps")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|t| t["phase"] == "Running"))
}

/// Upstream `calculateStartBackoffTime`: 10 s × failures², plus up to half again at
/// random (so failing VMs spread out), at most 300 s.
pub(crate) fn backoff_seconds(fail_count: i64) -> i64 {
    let count = fail_count.max(1);
    let interval = (MAX_BACKOFF_SECONDS / 30).max(MIN_BACKOFF_INTERVAL);
    let delay = interval.saturating_mul(count.saturating_mul(count));
    let jitter = rand::rng().random_range(0..=delay / 2);
    (delay + jitter).min(MAX_BACKOFF_SECONDS)
}

/// The new `status.startFailure` (`Value::Null` to clear it) or `None` to leave it
/// (upstream `syncStartFailureStatus`): a VMI that ended without ever running counts as a
/// start failure for the strategies that restart by themselves.
pub(crate) fn start_failure(vm: &Value, vmi: Option<&Value>) -> Option<Value> {
    let current = vm.pointer("/status/startFailure").filter(|v| !v.is_null());
    let restarts_by_itself = matches!(run_strategy(vm), "Always" | "RerunOnFailure" | "Once");
    if vmi.is_some_and(was_running) || !restarts_by_itself {
        return current.map(|_| Value::Null);
    }
    let vmi = vmi.filter(|v| is_final(v))?;
    let uid = str_at(vmi, "/metadata/uid").unwrap_or_default();
    if current.is_some_and(|c| c["lastFailedVMIUID"] == uid) {
        return None;
    }
    let count = current
        .and_then(|c| c["consecutiveFailCount"].as_i64())
        .unwrap_or(0)
        + 1;
    Some(json!({
        "lastFailedVMIUID": uid,
        "retryAfterTimestamp": rfc3339_in(backoff_seconds(count)),
        "consecutiveFailCount": count,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(strategy: &str) -> Value {
        json!({"spec": {"runStrategy": strategy}, "status": {}})
    }

    fn vmi(phase: &str) -> Value {
        json!({"metadata": {"uid": "u1"}, "status": {"phase": phase}})
    }

    #[test]
    fn running_maps_to_always_and_halted() {
        assert_eq!(run_strategy(&json!({"spec": {"running": true}})), "Always");
        assert_eq!(run_strategy(&json!({"spec": {"running": false}})), "Halted");
        assert_eq!(run_strategy(&json!({"spec": {}})), "Halted");
    }

    #[test]
    fn always_starts_a_missing_vmi_and_restarts_a_finished_one() {
        assert_eq!(decide(&vm("Always"), None), Decision::Start);
        assert_eq!(
            decide(&vm("Always"), Some(&vmi("Running"))),
            Decision::Nothing
        );
        assert_eq!(
            decide(&vm("Always"), Some(&vmi("Succeeded"))),
            Decision::Stop
        );
        assert_eq!(decide(&vm("Always"), Some(&vmi("Failed"))), Decision::Stop);
    }

    #[test]
    fn rerun_on_failure_reruns_only_after_a_failure() {
        let mut started = vm("RerunOnFailure");
        started["status"]["runStrategy"] = json!("RerunOnFailure");
        assert_eq!(decide(&vm("RerunOnFailure"), None), Decision::Start);
        assert_eq!(decide(&started, None), Decision::Nothing);
        assert_eq!(
            decide(&started, Some(&vmi("Failed"))),
            Decision::StopAndRequestStart
        );
        assert_eq!(decide(&started, Some(&vmi("Succeeded"))), Decision::Stop);
        started["status"]["stateChangeRequests"] = json!([{"action": "Start"}]);
        assert_eq!(decide(&started, None), Decision::Start);
    }

    #[test]
    fn manual_acts_only_on_requests() {
        let mut manual = vm("Manual");
        assert_eq!(decide(&manual, None), Decision::Nothing);
        assert_eq!(decide(&manual, Some(&vmi("Succeeded"))), Decision::Nothing);
        manual["status"]["stateChangeRequests"] =
            json!([{"action": "Stop", "uid": "u1"}, {"action": "Start"}]);
        assert_eq!(decide(&manual, Some(&vmi("Running"))), Decision::Stop);
        assert!(!first_request_done(&manual, Some(&vmi("Running"))));
        assert!(first_request_done(&manual, None));
        manual["status"]["stateChangeRequests"] = json!([{"action": "Start"}]);
        assert_eq!(decide(&manual, None), Decision::Start);
        assert!(first_request_done(&manual, Some(&vmi("Pending"))));
    }

    #[test]
    fn halted_stops_and_once_never_restarts() {
        assert_eq!(decide(&vm("Halted"), Some(&vmi("Running"))), Decision::Stop);
        assert_eq!(decide(&vm("Halted"), None), Decision::Nothing);
        let mut halted = vm("Halted");
        halted["status"]["stateChangeRequests"] = json!([{"action": "Start"}]);
        assert_eq!(decide(&halted, None), Decision::SwitchToAlways);
        assert_eq!(decide(&vm("Once"), None), Decision::Start);
        assert_eq!(decide(&vm("Once"), Some(&vmi("Failed"))), Decision::Nothing);
    }

    #[test]
    fn a_vmi_failing_before_it_ran_counts_as_a_start_failure_once() {
        let failed = vmi("Failed");
        let first = start_failure(&vm("Always"), Some(&failed)).expect("recorded");
        assert_eq!(first["consecutiveFailCount"], 1);
        let mut again = vm("Always");
        again["status"]["startFailure"] = first.clone();
        assert_eq!(start_failure(&again, Some(&failed)), None, "same VMI");
        let mut other = failed.clone();
        other["metadata"]["uid"] = json!("u2");
        assert_eq!(
            start_failure(&again, Some(&other)).expect("counted")["consecutiveFailCount"],
            2
        );
        let mut ran = failed;
        ran["status"]["phaseTransitionTimestamps"] = json!([{"phase": "Running"}]);
        assert_eq!(start_failure(&again, Some(&ran)), Some(Value::Null));
        assert_eq!(start_failure(&vm("Manual"), None), None);
    }

    #[test]
    fn backoff_grows_with_the_square_of_failures_up_to_five_minutes() {
        for _ in 0..20 {
            assert!((10..=15).contains(&backoff_seconds(1)));
            assert!((40..=60).contains(&backoff_seconds(2)));
            assert_eq!(backoff_seconds(9), 300);
        }
    }
}
