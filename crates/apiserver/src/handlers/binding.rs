//! The Pod `binding` subresource (core/v1 Binding), as the Kubernetes apiserver serves it
//! for schedulers: sets `spec.nodeName` of a Pod no node has yet and marks it
//! `PodScheduled=True`, in one write. A Pod already assigned is a 409, so two schedulers
//! (or a stale view) can never move a Pod.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::json_response;
use crate::context::RequestCtx;
use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::ResourceInfo;
use crate::service::{Api, Subresource};

pub async fn bind(
    api: &Api,
    pods: &ResourceInfo,
    ns: &str,
    name: &str,
    binding: &Value,
    ctx: RequestCtx,
) -> ApiResult<Response> {
    let node = target_node(binding, name)?;
    let wanted_uid = binding
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty());
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    api.write_loop(
        pods,
        ns,
        name,
        &ctx,
        "v1",
        false,
        |old| {
            if let Some(uid) = wanted_uid {
                if old.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
                    return Err(ApiError::conflict(
                        "",
                        "pods",
                        name,
                        &format!(
                            "the UID in the precondition ({uid}) does not match the UID of the Pod"
                        ),
                    ));
                }
            }
            if let Some(current) = old
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    name,
                    &format!("pod {name} is already assigned to node \"{current}\""),
                ));
            }
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    name,
                    &format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            let mut new = old.clone();
            new["spec"]["nodeName"] = json!(node);
            mark_scheduled(&mut new, &now);
            Ok(new)
        },
        Subresource::Binding,
    )
    .await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(json_response(
        StatusCode::CREATED,
        &status,
        ctx.take_warnings(),
    ))
}

/// `target.name` of a Binding whose target is a Node.
fn target_node(binding: &Value, pod: &str) -> ApiResult<String> {
    let invalid = |field: &str, message: &str| {
        ApiError::invalid(
            "",
            "Binding",
            pod,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: message.into(),
                field: field.into(),
            }],
        )
    };
    let kind = binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .unwrap_or("Node");
    if !kind.is_empty() && kind != "Node" {
        return Err(invalid("target.kind", "must be empty or 'Node'"));
    }
    match binding.pointer("/target/name").and_then(Value::as_str) {
        Some(node) if !node.is_empty() => Ok(node.to_string()),
        _ => Err(ApiError::invalid(
            "",
            "Binding",
            pod,
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "target.name".into(),
            }],
        )),
    }
}

/// Sets `PodScheduled=True` (keeping its transition time when it already was).
fn mark_scheduled(pod: &mut Value, now: &str) {
    let conditions = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut kept: Vec<Value> = conditions
        .iter()
        .filter(|c| c["type"] != "PodScheduled")
        .cloned()
        .collect();
    let was_true = conditions
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .filter(|c| c["status"] == "True");
    let since = was_true
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now);
    kept.push(json!({
        "type": "PodScheduled", "status": "True",
        "lastProbeTime": null, "lastTransitionTime": since,
    }));
    pod["status"]["conditions"] = json!(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_must_be_a_named_node() {
        let ok = json!({"target": {"kind": "Node", "name": "n1"}});
        assert_eq!(target_node(&ok, "p").ok().as_deref(), Some("n1"));
        let unnamed = json!({"target": {"kind": "Node"}});
        let e = target_node(&unnamed, "p").err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("target.name")));
        let other = json!({"target": {"kind": "Pod", "name": "x"}});
        assert!(target_node(&other, "p").is_err());
    }

    #[test]
    fn scheduled_replaces_an_unschedulable_condition() {
        let mut pod = json!({"status": {"conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Other", "status": "True"}]}});
        mark_scheduled(&mut pod, "2026-11-28T00:00:00Z");
        let conditions = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(conditions.len(), 2);
        let scheduled = conditions.iter().find(|c| c["type"] == "PodScheduled");
        assert_eq!(scheduled.map(|c| c["status"].clone()), Some(json!("True")));
        assert_eq!(
            scheduled.map(|c| c["lastTransitionTime"].clone()),
            Some(json!("2026-11-28T00:00:00Z"))
        );
    }
}
