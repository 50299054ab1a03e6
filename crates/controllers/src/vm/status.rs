//! `status.printableStatus` and the VM conditions, computed as upstream's
//! `setPrintableStatus` and `syncConditions` do (first matching status wins).

use serde_json::Value;

use crate::object::{
    condition, has_condition, is_deleting, new_condition, phase, remove_condition, set_condition,
    str_at,
};
use crate::vm::strategy::{is_final, is_set_to_start, run_strategy};

/// Everything the printable status depends on.
pub(crate) struct Observed<'a> {
    pub vm: &'a Value,
    pub vmi: Option<&'a Value>,
    /// A VMI was created in this pass (upstream's pending creation expectation).
    pub start_expected: bool,
    /// A VMI was deleted in this pass (upstream's pending deletion expectation).
    pub stop_expected: bool,
    /// DataVolumes the template's volumes name, as found.
    pub data_volumes: &'a [Value],
    /// PersistentVolumeClaims the template's volumes name, as found.
    pub claims: &'a [Value],
}

type Check = fn(&Observed<'_>) -> bool;

/// Upstream's order; the first status whose check holds is shown, else `Unknown`.
const PRECEDENCE: [(&str, Check); 15] = [
    ("Terminating", |o| is_deleting(o.vm)),
    ("Stopping", |o| {
        o.vmi
            .is_some_and(|v| !is_final(v) && (is_deleting(v) || o.stop_expected))
    }),
    ("Migrating", |o| o.vmi.is_some_and(is_migrating)),
    ("Paused", |o| {
        o.vmi.is_some_and(|v| is_running(v) && is_paused(v))
    }),
    ("Running", |o| {
        o.vmi.is_some_and(|v| is_running(v) && !is_paused(v))
    }),
    ("ErrorPvcNotFound", |o| {
        synchronized_false(o, "FailedPvcNotFound")
    }),
    ("DataVolumeError", |o| {
        o.data_volumes.iter().any(data_volume_failed)
    }),
    ("ErrorUnschedulable", |o| {
        o.vmi
            .is_some_and(|v| has_condition(v, "PodScheduled", "False", Some("Unschedulable")))
    }),
    ("Provisioning", |o| {
        o.data_volumes.iter().any(data_volume_provisioning)
    }),
    ("WaitingForVolumeBinding", |o| {
        is_set_to_start(o.vm, o.vmi) && o.claims.iter().any(|c| phase(c) == "Pending")
    }),
    ("ErrImagePull", |o| synchronized_false(o, "ErrImagePull")),
    ("ImagePullBackOff", |o| {
        synchronized_false(o, "ImagePullBackOff")
    }),
    ("Starting", |o| match o.vmi {
        None => o.start_expected,
        Some(v) => matches!(phase(v), "" | "Pending" | "Scheduling" | "Scheduled"),
    }),
    ("CrashLoopBackOff", crash_loop),
    ("Stopped", |o| match o.vmi {
        Some(v) => is_final(v),
        None => !o.start_expected,
    }),
];

/// `status.printableStatus` for what was observed.
pub(crate) fn printable_status(o: &Observed<'_>) -> &'static str {
    PRECEDENCE
        .iter()
        .find(|(_, check)| check(o))
        .map_or("Unknown", |(status, _)| status)
}

fn is_running(vmi: &Value) -> bool {
    phase(vmi) == "Running"
}

fn is_paused(vmi: &Value) -> bool {
    has_condition(vmi, "Paused", "True", None)
}

/// A migration started and not yet ended (upstream `migrations.IsMigrating`).
fn is_migrating(vmi: &Value) -> bool {
    let state = &vmi["status"]["migrationState"];
    state.get("startTimestamp").is_some_and(|t| !t.is_null())
        && state.get("endTimestamp").is_none_or(Value::is_null)
}

fn synchronized_false(o: &Observed<'_>, reason: &str) -> bool {
    o.vmi
        .is_some_and(|v| has_condition(v, "Synchronized", "False", Some(reason)))
}

fn crash_loop(o: &Observed<'_>) -> bool {
    if o.vmi.is_some_and(|v| !is_final(v)) || o.start_expected {
        return false;
    }
    let failures =
        o.vm.pointer("/status/startFailure/consecutiveFailCount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
    failures > 0 && matches!(run_strategy(o.vm), "Always" | "RerunOnFailure" | "Once")
}

/// Upstream `HasDataVolumeErrors`: failed, or its Running condition says why not.
pub(crate) fn data_volume_failed(dv: &Value) -> bool {
    phase(dv) == "Failed"
        || condition(dv, "Running").is_some_and(|c| {
            c["status"] == "False"
                && matches!(c["reason"].as_str(), Some("Error" | "ImagePullFailed"))
        })
}

/// Still being populated: any phase but the settled ones.
pub(crate) fn data_volume_provisioning(dv: &Value) -> bool {
    !matches!(
        phase(dv),
        "Succeeded" | "Failed" | "WaitForFirstConsumer" | "PendingPopulation"
    )
}

/// Conditions copied from the VMI are every VMI condition but these.
const NOT_COPIED: [&str; 3] = ["Ready", "Failure", "RestartRequired"];

/// The VM's conditions after this pass: `Ready` from the VMI (`VMINotExists` without
/// one), `Failure` from the pass's error, `RestartRequired` as decided, and every other
/// VMI condition copied (and dropped when the VMI no longer has it or is gone).
pub(crate) fn conditions(
    current: &[Value],
    vmi: Option<&Value>,
    failure: Option<(&str, &str)>,
    restart_required: Option<Option<&str>>,
) -> Vec<Value> {
    let mut out = current.to_vec();
    match vmi.map(|v| (v, condition(v, "Ready"))) {
        None => set_condition(
            &mut out,
            new_condition("Ready", "False", "VMINotExists", "VMI does not exist"),
        ),
        Some((_, None)) => set_condition(
            &mut out,
            new_condition(
                "Ready",
                "False",
                "VMIConditionMissing",
                "VMI is missing the Ready condition",
            ),
        ),
        Some((_, Some(ready))) => set_condition(&mut out, ready.clone()),
    }
    match failure {
        Some((reason, message)) => {
            set_condition(&mut out, new_condition("Failure", "True", reason, message))
        }
        None => remove_condition(&mut out, "Failure"),
    }
    match restart_required {
        Some(Some(message)) => set_condition(
            &mut out,
            new_condition("RestartRequired", "True", "", message),
        ),
        Some(None) => remove_condition(&mut out, "RestartRequired"),
        None => {}
    }
    let copied: Vec<&Value> = vmi
        .and_then(|v| v.pointer("/status/conditions"))
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    out.retain(|c| {
        let type_ = str_at(c, "/type").unwrap_or("");
        NOT_COPIED.contains(&type_) || copied.iter().any(|v| v["type"] == type_)
    });
    for c in copied {
        if !NOT_COPIED.iter().any(|t| c["type"] == *t) {
            set_condition(&mut out, c.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(vm: &Value, vmi: Option<&Value>) -> &'static str {
        printable_status(&Observed {
            vm,
            vmi,
            start_expected: false,
            stop_expected: false,
            data_volumes: &[],
            claims: &[],
        })
    }

    fn vmi(phase: &str, conditions: Value) -> Value {
        json!({"metadata": {"uid": "u"}, "status": {"phase": phase, "conditions": conditions}})
    }

    #[test]
    fn a_vm_without_a_vmi_is_stopped_unless_a_start_is_underway() {
        let vm = json!({"spec": {"runStrategy": "Always"}});
        assert_eq!(status(&vm, None), "Stopped");
        let o = Observed {
            vm: &vm,
            vmi: None,
            start_expected: true,
            stop_expected: false,
            data_volumes: &[],
            claims: &[],
        };
        assert_eq!(printable_status(&o), "Starting");
    }

    #[test]
    fn terminating_wins_over_everything() {
        let vm = json!({"metadata": {"deletionTimestamp": "now"}, "spec": {}});
        assert_eq!(status(&vm, Some(&vmi("Running", json!([])))), "Terminating");
    }

    #[test]
    fn paused_wins_over_running_and_stopping_over_paused() {
        let vm = json!({"spec": {"runStrategy": "Always"}});
        let paused = vmi("Running", json!([{"type": "Paused", "status": "True"}]));
        assert_eq!(status(&vm, Some(&paused)), "Paused");
        assert_eq!(status(&vm, Some(&vmi("Running", json!([])))), "Running");
        let mut deleting = paused.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("now");
        assert_eq!(status(&vm, Some(&deleting)), "Stopping");
    }

    #[test]
    fn unschedulable_wins_over_starting() {
        let vm = json!({"spec": {"runStrategy": "Always"}});
        let pending = vmi(
            "Scheduling",
            json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]),
        );
        assert_eq!(status(&vm, Some(&pending)), "ErrorUnschedulable");
        assert_eq!(status(&vm, Some(&vmi("Scheduled", json!([])))), "Starting");
    }

    #[test]
    fn image_pull_errors_and_provisioning_show_before_starting() {
        let vm = json!({"spec": {"runStrategy": "Always"}});
        let pulling = vmi(
            "Scheduled",
            json!([{"type": "Synchronized", "status": "False", "reason": "ImagePullBackOff"}]),
        );
        assert_eq!(status(&vm, Some(&pulling)), "ImagePullBackOff");
        let dvs = [json!({"status": {"phase": "ImportInProgress"}})];
        let o = Observed {
            vm: &vm,
            vmi: None,
            start_expected: true,
            stop_expected: false,
            data_volumes: &dvs,
            claims: &[],
        };
        assert_eq!(printable_status(&o), "Provisioning");
        let failed = [json!({"status": {"phase": "Failed"}})];
        let o = Observed {
            data_volumes: &failed,
            ..o
        };
        assert_eq!(printable_status(&o), "DataVolumeError");
    }

    #[test]
    fn crash_loop_shows_while_the_backoff_keeps_the_vm_down() {
        let vm = json!({"spec": {"runStrategy": "Always"},
            "status": {"startFailure": {"consecutiveFailCount": 2}}});
        assert_eq!(status(&vm, None), "CrashLoopBackOff");
        assert_eq!(
            status(&vm, Some(&vmi("Failed", json!([])))),
            "CrashLoopBackOff"
        );
        let manual = json!({"spec": {"runStrategy": "Manual"},
            "status": {"startFailure": {"consecutiveFailCount": 2}}});
        assert_eq!(status(&manual, None), "Stopped");
    }

    #[test]
    fn ready_is_copied_from_the_vmi_and_missing_without_one() {
        let out = conditions(&[], None, None, None);
        assert_eq!(out[0]["reason"], "VMINotExists");
        let running = vmi(
            "Running",
            json!([{"type": "Ready", "status": "True"}, {"type": "Paused", "status": "True"}]),
        );
        let out = conditions(&out, Some(&running), Some(("FailedCreate", "boom")), None);
        let types: Vec<&str> = out.iter().filter_map(|c| c["type"].as_str()).collect();
        assert_eq!(types, ["Ready", "Failure", "Paused"]);
        let out = conditions(&out, None, None, Some(None));
        assert_eq!(out.len(), 1, "{out:?}");
    }
}
