//! Pure mapping from what the agent observes of a launcher to Pod status and to the VMI
//! status fields the agent owns (design 0004). Timestamps come from the caller so that an
//! unchanged observation yields an identical status (no write churn).

use serde_json::{json, Value};

use crate::accel::{Accel, AccelDecision};
use crate::rundir::{LauncherPhase, LauncherStatus};
use crate::well_known as wk;

/// What the agent knows about a launcher Pod's runtime.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Observed {
    /// Before the launcher runs: pulling images, writing `launch.json`. `reason` is a kubelet
    /// waiting reason (`ContainerCreating`, `ErrImagePull`, `ImagePullBackOff`).
    Preparing { reason: String, message: String },
    /// The launcher runs but the guest is not running yet.
    Starting,
    /// The guest runs (or is paused).
    Running(LauncherStatus),
    /// The launcher has ended (or reported a final phase) at `finished_at`.
    Finished {
        status: LauncherStatus,
        finished_at: String,
    },
    /// The Pod cannot run at all (no VMI, not a launcher Pod, bad spec).
    CannotRun { reason: String, message: String },
}

/// Classifies a launcher from its `status.json` and whether its process is alive.
/// `finished_at` is used when this observation is the first final one.
pub(crate) fn observe(status: Option<LauncherStatus>, alive: bool, finished_at: &str) -> Observed {
    match status {
        Some(s) if s.phase.is_final() => Observed::Finished {
            finished_at: s.updated_at.clone().unwrap_or_else(|| finished_at.into()),
            status: s,
        },
        _ if !alive => Observed::Finished {
            status: LauncherStatus {
                phase: LauncherPhase::Failed,
                reason: Some("LauncherExited".into()),
                message: Some("the launcher exited without reporting a final state".into()),
                qemu_pid: None,
                launcher_pid: None,
                started_at: None,
                accel: None,
                guest_os_info: None,
                updated_at: None,
            },
            finished_at: finished_at.into(),
        },
        Some(s) if matches!(s.phase, LauncherPhase::Running | LauncherPhase::Paused) => {
            Observed::Running(s)
        }
        _ => Observed::Starting,
    }
}

/// The Pod's `status` for an observation. `previous` is the Pod's current status (for
/// condition transition times); `start_time` is when the agent first took the Pod on.
pub(crate) fn pod_status(
    pod: &Value,
    observed: &Observed,
    host_ip: &str,
    start_time: &str,
) -> Value {
    let previous = &pod["status"];
    let (phase, ready) = match observed {
        Observed::Preparing { .. } | Observed::Starting => ("Pending", false),
        Observed::Running(_) => ("Running", true),
        Observed::Finished { status, .. } if status.phase == LauncherPhase::Succeeded => {
            ("Succeeded", false)
        }
        Observed::Finished { .. } | Observed::CannotRun { .. } => ("Failed", false),
    };
    let started_at = match observed {
        Observed::Running(s) | Observed::Finished { status: s, .. } => {
            s.started_at.clone().unwrap_or_else(|| start_time.into())
        }
        _ => start_time.into(),
    };
    let state = match observed {
        Observed::Preparing { reason, message } => {
            json!({"waiting": {"reason": reason, "message": message}})
        }
        Observed::Starting | Observed::Running(_) => json!({"running": {"startedAt": started_at}}),
        Observed::Finished {
            status,
            finished_at,
        } => {
            let ok = status.phase == LauncherPhase::Succeeded;
            json!({"terminated": {
                "exitCode": if ok { 0 } else { 1 },
                "reason": if ok { "Completed" } else { "Error" },
                "message": status.message.clone().or_else(|| status.reason.clone()).unwrap_or_default(),
                "startedAt": started_at, "finishedAt": finished_at,
            }})
        }
        Observed::CannotRun { reason, message } => json!({"terminated": {
            "exitCode": 128, "reason": reason, "message": message,
            "startedAt": start_time, "finishedAt": start_time,
        }}),
    };
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default();
            let image = c["image"].as_str().unwrap_or_default();
            let running = state.get("running").is_some();
            json!({
                "name": name, "image": image, "imageID": image,
                "containerID": format!("oxivirt://{}/{name}", pod["metadata"]["uid"].as_str().unwrap_or_default()),
                "ready": ready, "started": running, "restartCount": 0, "state": state,
            })
        })
        .collect();
    let initialized = !matches!(observed, Observed::Preparing { .. });
    let cond = |kind: &str, value: bool, reason: Option<&str>| {
        let status = if value { "True" } else { "False" };
        let since = previous["conditions"]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["type"] == kind))
            .filter(|c| c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(start_time);
        let mut c = json!({"type": kind, "status": status, "lastProbeTime": null,
                           "lastTransitionTime": since});
        if let (Some(reason), false) = (reason, value) {
            c["reason"] = json!(reason);
        }
        c
    };
    let not_ready = match observed {
        Observed::Finished { .. } | Observed::CannotRun { .. } => "PodCompleted",
        _ => "ContainersNotReady",
    };
    json!({
        "phase": phase,
        "conditions": [
            cond("PodReadyToStartContainers", true, None),
            cond("Initialized", initialized, Some("ContainersNotInitialized")),
            cond("Ready", ready, Some(not_ready)),
            cond("ContainersReady", ready, Some(not_ready)),
            cond("PodScheduled", true, None),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "qosClass": previous.get("qosClass").cloned().unwrap_or(json!("Burstable")),
        "containerStatuses": containers,
        "reason": match observed { Observed::CannotRun { reason, .. } => json!(reason), _ => Value::Null },
        "message": match observed { Observed::CannotRun { message, .. } => json!(message), _ => Value::Null },
    })
}

/// Facts the VMI status needs beside the observation.
pub(crate) struct VmiFacts<'a> {
    pub(crate) node_name: &'a str,
    pub(crate) accel: &'a AccelDecision,
    pub(crate) launcher_image: &'a str,
    pub(crate) now: &'a str,
}

/// Applies an observation to the VMI's status in place: phase (never leaving a final phase,
/// never writing the VMI controller's Pending/Scheduling/Scheduled), `nodeName`, conditions
/// `Ready`, `Paused`, `SoftwareEmulation`, `launcherContainerImageVersion`, `guestOSInfo`.
pub(crate) fn apply_vmi_status(vmi: &mut Value, observed: &Observed, facts: &VmiFacts<'_>) {
    if !vmi["status"].is_object() {
        vmi["status"] = json!({});
    }
    let status = &mut vmi["status"];
    let current = status["phase"].as_str().unwrap_or_default().to_string();
    let target = match observed {
        Observed::Running(_) => Some("Running"),
        Observed::Finished { status, .. } if status.phase == LauncherPhase::Succeeded => {
            Some("Succeeded")
        }
        Observed::Finished { .. } | Observed::CannotRun { .. } => Some("Failed"),
        Observed::Preparing { .. } | Observed::Starting => None,
    };
    if let Some(target) = target {
        if current != target && current != "Succeeded" && current != "Failed" {
            status["phase"] = json!(target);
            let mut stamps = status["phaseTransitionTimestamps"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            stamps.push(json!({"phase": target, "phaseTransitionTimestamp": facts.now}));
            status["phaseTransitionTimestamps"] = json!(stamps);
        }
    }
    status["nodeName"] = json!(facts.node_name);
    if !facts.launcher_image.is_empty() {
        status["launcherContainerImageVersion"] = json!(facts.launcher_image);
    }
    let launcher = match observed {
        Observed::Running(s) | Observed::Finished { status: s, .. } => Some(s),
        _ => None,
    };
    let guest_info = launcher.and_then(|s| s.guest_os_info.as_ref());
    if let Some(info) = guest_info {
        status["guestOSInfo"] = crate::guest_info::os_info(info);
    }
    let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let running = matches!(observed, Observed::Running(_));
    // The launcher reports the OS only once the guest agent answered on its channel.
    if running && guest_info.is_some() {
        set_condition(&mut conditions, "AgentConnected", Ok(("", "")), facts.now);
    } else {
        conditions.retain(|c| c["type"] != "AgentConnected");
    }
    set_condition(
        &mut conditions,
        "Ready",
        running
            .then_some(("", ""))
            .ok_or(("GuestNotRunning", "the guest is not running")),
        facts.now,
    );
    let paused = matches!(observed, Observed::Running(s) if s.phase == LauncherPhase::Paused);
    if paused {
        set_condition(
            &mut conditions,
            "Paused",
            Ok(("PausedByUser", "VMI was paused by user")),
            facts.now,
        );
    } else {
        conditions.retain(|c| c["type"] != "Paused");
    }
    let accel = launcher.and_then(|s| s.accel).unwrap_or(facts.accel.accel);
    if accel == Accel::Tcg {
        // TCG on a KVM node: the cluster configuration's useEmulation chose it.
        let why = if facts.accel.accel == Accel::Kvm {
            (
                crate::accel::USE_EMULATION,
                crate::accel::USE_EMULATION_MESSAGE,
            )
        } else {
            (facts.accel.reason.as_str(), facts.accel.message.as_str())
        };
        set_condition(&mut conditions, wk::SOFTWARE_EMULATION, Ok(why), facts.now);
    } else {
        conditions.retain(|c| c["type"] != wk::SOFTWARE_EMULATION);
    }
    status["conditions"] = json!(conditions);
}

/// Sets condition `kind` to True (`Ok((reason, message))`) or False (`Err(..)`), keeping
/// `lastTransitionTime` while status and reason stay the same.
fn set_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    value: Result<(&str, &str), (&str, &str)>,
    now: &str,
) {
    let (status, (reason, message)) = match value {
        Ok(rm) => ("True", rm),
        Err(rm) => ("False", rm),
    };
    let since = conditions
        .iter()
        .find(|c| {
            c["type"] == kind
                && c["status"] == status
                && c["reason"].as_str().unwrap_or("") == reason
        })
        .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
        .unwrap_or_else(|| now.to_string());
    let mut c = json!({"type": kind, "status": status, "lastProbeTime": null,
                       "lastTransitionTime": since});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(slot) => *slot = c,
        None => conditions.push(c),
    }
}

/// Now as an RFC 3339 `Time` (seconds).
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Now as a `MicroTime`.
pub(crate) fn now_micro() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// An error and its sources on one line, for logs and status messages.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launcher(phase: LauncherPhase) -> LauncherStatus {
        serde_json::from_value::<LauncherStatus>(json!({"phase": "Running", "accel": "tcg",
            "startedAt": "2026-01-01T00:00:01Z", "guestOsInfo": {"id": "oxivirt-test-guest"}}))
        .map(|mut s| {
            s.phase = phase;
            s
        })
        .unwrap()
    }

    fn decision() -> AccelDecision {
        AccelDecision {
            accel: Accel::Tcg,
            reason: "KVMProbeFailed".into(),
            message: "probe hung".into(),
            boot_id: String::new(),
            qemu: String::new(),
        }
    }

    fn pod() -> Value {
        json!({"metadata": {"uid": "u1"}, "spec": {"containers": [
            {"name": "compute", "image": "oxivirt/virt-launcher:0.1.0"},
            {"name": "guest-console-log", "image": "oxivirt/virt-launcher:0.1.0"}]}})
    }

    #[test]
    fn a_dead_launcher_without_final_status_is_failed_and_final_status_wins() {
        let t = "2026-01-01T00:00:09Z";
        assert!(matches!(observe(None, false, t),
            Observed::Finished { status, .. } if status.phase == LauncherPhase::Failed));
        assert_eq!(observe(None, true, t), Observed::Starting);
        assert!(
            matches!(observe(Some(launcher(LauncherPhase::Succeeded)), true, t),
            Observed::Finished { status, .. } if status.phase == LauncherPhase::Succeeded)
        );
        assert!(matches!(
            observe(Some(launcher(LauncherPhase::Paused)), true, t),
            Observed::Running(_)
        ));
    }

    #[test]
    fn running_launcher_makes_a_running_ready_pod_with_both_container_statuses() {
        let status = pod_status(
            &pod(),
            &Observed::Running(launcher(LauncherPhase::Running)),
            "192.0.2.2",
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["hostIP"], "192.0.2.2");
        let names: Vec<_> = status["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("compute"), json!("guest-console-log")]);
        assert_eq!(status["containerStatuses"][0]["ready"], true);
        assert_eq!(
            status["containerStatuses"][0]["state"]["running"]["startedAt"],
            "2026-01-01T00:00:01Z"
        );
        let ready = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
    }

    #[test]
    fn pulling_pod_is_pending_with_the_waiting_reason() {
        let observed = Observed::Preparing {
            reason: "ErrImagePull".into(),
            message: "no such image".into(),
        };
        let status = pod_status(&pod(), &observed, "h", "t");
        assert_eq!(status["phase"], "Pending");
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ErrImagePull"
        );
    }

    #[test]
    fn tcg_on_a_kvm_node_is_reported_as_use_emulation() {
        let kvm = AccelDecision {
            accel: Accel::Kvm,
            reason: "KVMWorks".into(),
            ..decision()
        };
        let facts = VmiFacts {
            node_name: "n1",
            accel: &kvm,
            launcher_image: "img",
            now: "T1",
        };
        let mut vmi = json!({"status": {"phase": "Scheduled"}});
        apply_vmi_status(
            &mut vmi,
            &Observed::Running(launcher(LauncherPhase::Running)),
            &facts,
        );
        let conditions = vmi["status"]["conditions"].as_array().unwrap();
        let emulation = conditions
            .iter()
            .find(|c| c["type"] == "SoftwareEmulation")
            .unwrap();
        assert_eq!(emulation["reason"], "UseEmulation", "{emulation}");
    }

    #[test]
    fn vmi_goes_running_with_software_emulation_and_never_leaves_a_final_phase() {
        let facts = VmiFacts {
            node_name: "n1",
            accel: &decision(),
            launcher_image: "img",
            now: "T1",
        };
        let mut vmi = json!({"status": {"phase": "Scheduled", "conditions": [{"type": "PodScheduled", "status": "True"}]}});
        apply_vmi_status(
            &mut vmi,
            &Observed::Running(launcher(LauncherPhase::Running)),
            &facts,
        );
        let s = &vmi["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["nodeName"], "n1");
        assert_eq!(s["launcherContainerImageVersion"], "img");
        assert_eq!(s["guestOSInfo"]["id"], "oxivirt-test-guest");
        let kinds: Vec<_> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap().to_string())
            .collect();
        // The guest agent answered (the launcher has its OS info): AgentConnected.
        assert_eq!(
            kinds,
            [
                "PodScheduled",
                "AgentConnected",
                "Ready",
                "SoftwareEmulation"
            ]
        );
        assert_eq!(s["conditions"][3]["reason"], "KVMProbeFailed");
        apply_vmi_status(
            &mut vmi,
            &Observed::Running(launcher(LauncherPhase::Paused)),
            &facts,
        );
        assert!(vmi["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Paused"));
        let finished = Observed::Finished {
            status: launcher(LauncherPhase::Failed),
            finished_at: "T2".into(),
        };
        apply_vmi_status(&mut vmi, &finished, &facts);
        assert_eq!(vmi["status"]["phase"], "Failed");
        apply_vmi_status(
            &mut vmi,
            &Observed::Running(launcher(LauncherPhase::Running)),
            &facts,
        );
        assert_eq!(vmi["status"]["phase"], "Failed", "final phases stay");
        assert_eq!(
            vmi["status"]["phaseTransitionTimestamps"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn unchanged_observation_gives_identical_vmi_status() {
        let facts = VmiFacts {
            node_name: "n1",
            accel: &decision(),
            launcher_image: "img",
            now: "T1",
        };
        let mut vmi = json!({});
        apply_vmi_status(
            &mut vmi,
            &Observed::Running(launcher(LauncherPhase::Running)),
            &facts,
        );
        let once = vmi.clone();
        let later = VmiFacts { now: "T9", ..facts };
        apply_vmi_status(
            &mut vmi,
            &Observed::Running(launcher(LauncherPhase::Running)),
            &later,
        );
        assert_eq!(vmi, once);
    }
}
