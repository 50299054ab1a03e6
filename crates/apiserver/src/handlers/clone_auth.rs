//! Clone authorization (CDI's DataVolume mutating webhook and KubeVirt's VM validator): a
//! DataVolume — or a VM's `dataVolumeTemplates` entry — cloning a claim of another namespace
//! is admitted only when its creator may `create` `datavolumes/source` (group
//! `cdi.kubevirt.io`) in the source namespace, as a SubjectAccessReview would decide. The
//! `cdi.kubevirt.io` roles (admin, edit) grant it; a view-only user of the source namespace
//! cannot copy its disks elsewhere.

use serde_json::Value;

use crate::context::RequestCtx;
use crate::error::{ApiError, ApiResult, Cause};
use crate::objects;
use crate::rbac::Attributes;
use crate::registry::ResourceInfo;
use crate::service::Api;

const CDI: &str = "cdi.kubevirt.io";

/// The cross-namespace clone sources of `obj` (a DataVolume or a VirtualMachine): the
/// field path naming each, its namespace and claim.
fn foreign_sources(info: &ResourceInfo, obj: &Value) -> Vec<(String, String, String)> {
    let ns = objects::namespace(obj);
    let of = |spec: &Value, field: String| {
        let pvc = &spec["source"]["pvc"];
        let source_ns = pvc["namespace"]
            .as_str()
            .filter(|n| !n.is_empty() && *n != ns)?;
        Some((
            field,
            source_ns.to_string(),
            pvc["name"].as_str().unwrap_or_default().to_string(),
        ))
    };
    match (info.group.as_str(), info.kind.as_str()) {
        (CDI, "DataVolume") => of(&obj["spec"], "DataVolume.Spec.Source.PVC.Namespace".into())
            .into_iter()
            .collect(),
        ("kubevirt.io", "VirtualMachine") => obj["spec"]["dataVolumeTemplates"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, t)| of(&t["spec"], format!("spec.dataVolumeTemplates[{i}]")))
            .collect(),
        _ => Vec::new(),
    }
}

/// Refuses a new cross-namespace clone its creator may not read out of the source namespace.
///
/// # Errors
/// 422 Invalid with upstream's message; store failures while reading RBAC.
pub async fn check(
    api: &Api,
    info: &ResourceInfo,
    obj: &Value,
    old: Option<&Value>,
    ctx: &RequestCtx,
) -> ApiResult<()> {
    for (field, source_ns, source_name) in foreign_sources(info, obj) {
        // An update keeping the same source was authorised when it was created.
        if old.is_some_and(|old| {
            foreign_sources(info, old)
                .iter()
                .any(|(f, n, s)| *f == field && *n == source_ns && *s == source_name)
        }) {
            continue;
        }
        let attrs = Attributes {
            verb: "create".into(),
            group: CDI.into(),
            resource: "datavolumes".into(),
            subresource: "source".into(),
            name: source_name.clone(),
            namespace: source_ns.clone(),
            path: None,
        };
        if crate::rbac::decide_fresh(api, &ctx.user, &attrs)
            .await?
            .is_some()
        {
            continue;
        }
        let reason = format!(
            "User {} has insufficient permissions in clone source namespace {source_ns}",
            ctx.user.name
        );
        let (webhook, text) = if info.kind == "DataVolume" {
            ("datavolume-mutate.cdi.kubevirt.io", reason.clone())
        } else {
            (
                "virtualmachine-validator.kubevirt.io",
                format!("Authorization failed, message is: {reason}"),
            )
        };
        return Err(ApiError::Invalid {
            message: format!("admission webhook \"{webhook}\" denied the request: {text}"),
            group: info.group.clone(),
            kind: info.kind.clone(),
            name: objects::name(obj).to_string(),
            causes: vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: text,
                field,
            }],
        });
    }
    Ok(())
}
