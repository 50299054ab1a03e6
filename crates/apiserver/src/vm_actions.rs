//! `virtualmachines/{name}/start|stop|restart` as upstream's virt-api does them: by
//! changing the VM's run strategy or appending `status.stateChangeRequests`, never by
//! touching the guest directly. Success is `202 Accepted`.

use serde_json::{json, Value};

use crate::context::{RequestCtx, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceInfo;
use crate::service::{Api, Subresource};

/// What a user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmAction {
    Start,
    Stop,
    Restart,
}

/// The identity subresource handlers write as: virt-api's, with the requesting user in the
/// field manager (admission lets oxivirt's components write VM and VMI status).
pub(crate) fn virt_api_ctx(user: &UserInfo, dry_run: bool) -> RequestCtx {
    let mut ctx = RequestCtx::new(UserInfo {
        name: "system:oxivirt:virt-api".into(),
        groups: vec![
            crate::context::GROUP_COMPONENTS.into(),
            "system:authenticated".into(),
        ],
    });
    ctx.field_manager = format!("virt-api ({})", user.name);
    ctx.dry_run = dry_run;
    ctx
}

/// The effective run strategy: `spec.runStrategy`, else `spec.running` mapped as upstream.
fn run_strategy(vm: &Value) -> &str {
    match vm.pointer("/spec/runStrategy").and_then(Value::as_str) {
        Some(s) => s,
        None if vm.pointer("/spec/running") == Some(&json!(true)) => "Always",
        None => "Halted",
    }
}

fn conflict(name: &str, message: &str) -> ApiError {
    ApiError::conflict_plain("kubevirt.io", "virtualmachines", name, message)
}

/// Sets the run strategy through the field the VM uses (`running` or `runStrategy`).
fn with_strategy(vm: &Value, strategy: &str) -> Value {
    let mut new = vm.clone();
    if new.pointer("/spec/running").is_some_and(|v| !v.is_null())
        && new.pointer("/spec/runStrategy").is_none()
    {
        new["spec"]["running"] = json!(strategy != "Halted");
    } else {
        new["spec"]["runStrategy"] = json!(strategy);
    }
    new
}

fn vmi_is_final(vmi: &Value) -> bool {
    matches!(
        vmi.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// Performs `action` on VM `ns/name`; `grace` is the stop/restart grace period.
pub async fn perform(
    api: &Api,
    user: &UserInfo,
    ns: &str,
    name: &str,
    action: VmAction,
    grace: Option<i64>,
    dry_run: bool,
) -> ApiResult<()> {
    let vms = resource(api, "virtualmachines")?;
    let vmis = resource(api, "virtualmachineinstances")?;
    let vm = api.get(&vms, ns, name, "v1").await?;
    let vmi = api.get(&vmis, ns, name, "v1").await.ok();
    let strategy = run_strategy(&vm).to_string();
    let ctx = virt_api_ctx(user, dry_run);
    let running = vmi.as_ref().is_some_and(|v| !vmi_is_final(v));
    let vmi_uid = vmi
        .as_ref()
        .and_then(|v| v.pointer("/metadata/uid"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let stop_request = || json!({"action": "Stop", "uid": vmi_uid.clone().unwrap_or_default()});
    let (new_strategy, requests): (Option<&str>, Vec<Value>) = match (action, strategy.as_str()) {
        (VmAction::Start, "Always" | "Once") => {
            return Err(conflict(
                name,
                &format!("RunStrategy {strategy} does not support manual start requests"),
            ))
        }
        (VmAction::Start, _) if running => return Err(conflict(name, "VM is already running")),
        (VmAction::Start, "Halted") => (Some("Always"), vec![]),
        (VmAction::Start, _) if vmi.is_some() => {
            (None, vec![stop_request(), json!({"action": "Start"})])
        }
        (VmAction::Start, _) => (None, vec![json!({"action": "Start"})]),
        (VmAction::Stop, "Always" | "Once") => (Some("Halted"), vec![]),
        // Halted accepts a stop only to shorten the grace period of a VMI still shutting down.
        (VmAction::Stop, "Halted") if running && grace.is_some() => (None, vec![]),
        (VmAction::Stop, _) if !running => return Err(conflict(name, "VM is not running")),
        (VmAction::Stop, "Halted") => return Err(conflict(name, "VM is not running")),
        (VmAction::Stop, _) => (None, vec![stop_request()]),
        (VmAction::Restart, _) if !running => return Err(conflict(name, "VM is not running")),
        (VmAction::Restart, "Halted") => return Err(conflict(name, "VM is not running")),
        (VmAction::Restart, _) => (None, vec![stop_request(), json!({"action": "Start"})]),
    };
    if let (Some(grace), Some(_)) = (grace, &vmi) {
        api.write_loop(
            &vmis,
            ns,
            name,
            &ctx,
            "v1",
            false,
            |old| {
                let mut new = old.clone();
                new["spec"]["terminationGracePeriodSeconds"] = json!(grace);
                strip_rv(&mut new);
                Ok(new)
            },
            Subresource::Main,
        )
        .await?;
    }
    if let Some(strategy) = new_strategy {
        api.write_loop(
            &vms,
            ns,
            name,
            &ctx,
            "v1",
            false,
            |old| {
                let mut new = with_strategy(old, strategy);
                strip_rv(&mut new);
                Ok(new)
            },
            Subresource::Main,
        )
        .await?;
    }
    if !requests.is_empty() {
        api.write_loop(
            &vms,
            ns,
            name,
            &ctx,
            "v1",
            false,
            |old| {
                let mut new = old.clone();
                if new
                    .pointer("/status/stateChangeRequests")
                    .and_then(Value::as_array)
                    .is_some_and(|r| !r.is_empty())
                {
                    return Err(conflict(
                        name,
                        "unable to complete request: stop/start already underway",
                    ));
                }
                if !new.get("status").is_some_and(Value::is_object) {
                    new["status"] = json!({});
                }
                new["status"]["stateChangeRequests"] = json!(requests);
                strip_rv(&mut new);
                Ok(new)
            },
            Subresource::Status,
        )
        .await?;
    }
    Ok(())
}

fn strip_rv(obj: &mut Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
}

fn resource(api: &Api, plural: &str) -> ApiResult<std::sync::Arc<ResourceInfo>> {
    api.registry
        .by_group_resource("kubevirt.io", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural}.kubevirt.io is not served")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_true_means_always_and_absent_means_halted() {
        assert_eq!(run_strategy(&json!({"spec": {"running": true}})), "Always");
        assert_eq!(run_strategy(&json!({"spec": {"running": false}})), "Halted");
        assert_eq!(
            run_strategy(&json!({"spec": {"runStrategy": "Manual"}})),
            "Manual"
        );
    }

    #[test]
    fn a_vm_using_running_is_stopped_through_running() {
        let vm = json!({"spec": {"running": true}});
        assert_eq!(
            with_strategy(&vm, "Halted")["spec"],
            json!({"running": false})
        );
        let vm = json!({"spec": {"runStrategy": "Always"}});
        assert_eq!(
            with_strategy(&vm, "Halted")["spec"]["runStrategy"],
            "Halted"
        );
    }
}
