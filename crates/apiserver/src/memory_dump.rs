//! `virtualmachines/{name}/memorydump` and `removememorydump` (`virtctl memory-dump`,
//! manual 3.2.2.7). The request is recorded in the VM's `status.memoryDumpRequest`
//! (`InProgress`), and the node agent of the VMI's node is asked to dump the guest's memory
//! into a file on the claim; it moves the request to `Completed` (with `endTimestamp`) or
//! `Failed` (with `message`) when QEMU is done. Removing the request forgets it; the file
//! stays on the claim, as upstream leaves it.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::context::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::service::{Api, Subresource};

/// Upstream's room for the dump's headers on top of the guest memory.
const OVERHEAD_BYTES: u64 = 100 << 20;

fn conflict(name: &str, detail: &str) -> ApiError {
    ApiError::conflict("kubevirt.io", "virtualmachine", name, detail)
}

/// A Kubernetes quantity in bytes (the project's one quantity parser, rounded up as
/// Kubernetes' `Value()`); `None` for text outside the grammar or a negative value.
fn bytes(text: &str) -> Option<u64> {
    let quantity = oxivirt_webhooks::Quantity::parse(text).ok()?;
    u64::try_from(quantity.value()).ok()
}

/// The guest memory of a VMI spec: `memory.guest`, else the memory request.
fn guest_memory(vmi: &Value) -> Option<u64> {
    let domain = &vmi["spec"]["domain"];
    domain["memory"]["guest"]
        .as_str()
        .or_else(|| domain["resources"]["requests"]["memory"].as_str())
        .and_then(bytes)
}

/// What a claim must hold for a guest of `memory` bytes (memory plus overhead).
pub fn claim_size_for(memory: u64) -> u64 {
    memory + OVERHEAD_BYTES
}

/// `{vm}-{claim}-{YYYYMMDD-HHMMSS}.memory.dump`, upstream's file name.
fn file_name(vm: &str, claim: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{vm}-{claim}-{}.memory.dump", now.format("%Y%m%d-%H%M%S"))
}

/// `PUT …/virtualmachines/{name}/memorydump` with a `VirtualMachineMemoryDumpRequest`.
///
/// # Errors
/// 400 for a missing claim name or an unusable claim, 404 for a missing VM, 409 when the VM
/// is not running or a dump is in progress, 503 when the node agent cannot be reached.
pub async fn dump(api: &Api, user: &UserInfo, ns: &str, name: &str, body: &[u8]) -> ApiResult<()> {
    let options: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("the memory dump request is not valid JSON: {e}"))
    })?;
    let Some(claim) = options["claimName"].as_str().filter(|c| !c.is_empty()) else {
        return Err(ApiError::BadRequest(
            "Memory dump requires claim name to be set".into(),
        ));
    };
    let vms = resource(api, "kubevirt.io", "virtualmachines")?;
    let vmis = resource(api, "kubevirt.io", "virtualmachineinstances")?;
    let vm = api.get(&vms, ns, name, "v1").await?;
    let vmi = api.get(&vmis, ns, name, "v1").await.ok();
    let Some(vmi) = vmi.filter(|v| v["status"]["phase"] == "Running") else {
        return Err(conflict(name, "VM is not running"));
    };
    let node = vmi["status"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| conflict(name, "VM is not running"))?
        .to_string();
    let current = &vm["status"]["memoryDumpRequest"];
    if current.is_object() && !matches!(current["phase"].as_str(), Some("Completed" | "Failed")) {
        return Err(conflict(name, "memory dump in progress"));
    }
    check_claim(api, ns, claim, guest_memory(&vmi)).await?;
    let now = chrono::Utc::now();
    let file = file_name(name, claim, now);
    let request = json!({
        "claimName": claim, "phase": "InProgress", "fileName": file,
        "startTimestamp": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    let ctx = crate::vm_actions::virt_api_ctx(user, false);
    api.write_loop(
        &vms,
        ns,
        name,
        &ctx,
        "v1",
        false,
        |old| {
            let mut new = old.clone();
            if !new["status"].is_object() {
                new["status"] = json!({});
            }
            new["status"]["memoryDumpRequest"] = request.clone();
            if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            Ok(new)
        },
        Subresource::Status,
    )
    .await?;
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("claimName", claim)
        .append_pair("fileName", &file)
        .append_pair("vm", name)
        .finish();
    let path = format!("/v1/namespaces/{ns}/virtualmachineinstances/{name}/memorydump?{query}");
    let relayed = crate::node_relay::of(api)?
        .call(api, &node, Method::PUT, &path)
        .await;
    let failure = match relayed {
        Ok((status, _)) if status.is_success() => return Ok(()),
        Ok((StatusCode::CONFLICT, body)) => {
            conflict(name, &crate::node_relay::agent_message(&body))
        }
        Ok((status, body)) => crate::node_relay::agent_refusal(status, &body),
        Err(e) => e,
    };
    // The dump never started: say so in the status, as upstream's Failed phase does.
    let message = failure.to_string();
    let _ = api
        .write_loop(
            &vms,
            ns,
            name,
            &ctx,
            "v1",
            false,
            |old| {
                let mut new = old.clone();
                new["status"]["memoryDumpRequest"]["phase"] = json!("Failed");
                new["status"]["memoryDumpRequest"]["message"] = json!(message);
                if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                Ok(new)
            },
            Subresource::Status,
        )
        .await;
    Err(failure)
}

/// The claim must exist, be bound, be a Filesystem volume and hold the dump.
async fn check_claim(api: &Api, ns: &str, claim: &str, memory: Option<u64>) -> ApiResult<()> {
    let pvcs = resource(api, "", "persistentvolumeclaims")?;
    let pvc = api.get(&pvcs, ns, claim, "v1").await.map_err(|_| {
        ApiError::BadRequest(format!(
            "can't get pvc {claim}: persistentvolumeclaims \"{claim}\" not found"
        ))
    })?;
    if pvc["status"]["phase"] != "Bound" {
        return Err(ApiError::BadRequest(format!(
            "pvc {claim} is not bound (phase {})",
            pvc["status"]["phase"].as_str().unwrap_or("Pending")
        )));
    }
    if pvc["spec"]["volumeMode"] == "Block" {
        return Err(ApiError::BadRequest(format!(
            "pvc {claim}: a memory dump needs a Filesystem volume, not Block"
        )));
    }
    let size = pvc["status"]["capacity"]["storage"]
        .as_str()
        .or_else(|| pvc["spec"]["resources"]["requests"]["storage"].as_str())
        .and_then(bytes);
    if let (Some(size), Some(memory)) = (size, memory) {
        let needed = claim_size_for(memory);
        if size < needed {
            return Err(ApiError::BadRequest(format!(
                "pvc size [{}] should be bigger then [{}](memory size + overhead)",
                pvc["status"]["capacity"]["storage"].as_str().unwrap_or("?"),
                format_args!("{}Mi", needed >> 20)
            )));
        }
    }
    Ok(())
}

/// `PUT …/virtualmachines/{name}/removememorydump`: forgets the request.
///
/// # Errors
/// 404 for a missing VM, 409 when there is no request or its dump still runs.
pub async fn remove(api: &Api, user: &UserInfo, ns: &str, name: &str) -> ApiResult<()> {
    let vms = resource(api, "kubevirt.io", "virtualmachines")?;
    let ctx = crate::vm_actions::virt_api_ctx(user, false);
    api.write_loop(
        &vms,
        ns,
        name,
        &ctx,
        "v1",
        false,
        |old| {
            let request = &old["status"]["memoryDumpRequest"];
            if !request.is_object() {
                return Err(conflict(name, "memory dump request does not exist"));
            }
            if request["phase"] == "InProgress" {
                return Err(conflict(name, "memory dump in progress"));
            }
            let mut new = old.clone();
            if let Some(status) = new["status"].as_object_mut() {
                status.remove("memoryDumpRequest");
            }
            if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            Ok(new)
        },
        Subresource::Status,
    )
    .await
    .map(drop)
}

fn resource(
    api: &Api,
    group: &str,
    plural: &str,
) -> ApiResult<std::sync::Arc<crate::registry::ResourceInfo>> {
    api.registry
        .by_group_resource(group, plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dump_file_is_named_as_upstream_names_it() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-27T19:05:03Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            file_name("vm1", "dump-pvc", at),
            "vm1-dump-pvc-20261127-190503.memory.dump"
        );
    }

    #[test]
    fn the_claim_must_hold_the_guest_memory_and_the_overhead() {
        let vmi = json!({"spec": {"domain": {"resources": {"requests": {"memory": "128Mi"}}}}});
        assert_eq!(guest_memory(&vmi), Some(128 << 20));
        let vmi = json!({"spec": {"domain": {"memory": {"guest": "1Gi"}}}});
        assert_eq!(
            claim_size_for(guest_memory(&vmi).expect("memory")),
            (1 << 30) + (100 << 20)
        );
    }
}
