//! Captures the instance type and preference a VirtualMachine references as
//! ControllerRevisions owned by the VM, so later changes to the shared objects do not
//! change existing VMs, and records them in `status.instancetypeRef` /
//! `status.preferenceRef` as upstream does.
//!
//! # Guarantees
//! Idempotent: the revision name is derived from the VM and the captured object's uid and
//! generation, so a repeated reconcile finds the revision it made before.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

use crate::context::Context;
use crate::error::{Error, Result};

const GROUP: &str = "instancetype.kubevirt.io";
const VERSION: &str = "v1beta1";
const MANAGER: &str = "oxivirt-instancetype-controller";

/// One of the two references a VM may carry.
struct Reference {
    /// `instancetype` or `preference`: the field under `spec`.
    field: &'static str,
    /// The namespaced kind; the cluster kind is the default.
    namespaced_kind: &'static str,
    cluster_kind: &'static str,
}

const REFERENCES: [Reference; 2] = [
    Reference {
        field: "instancetype",
        namespaced_kind: "VirtualMachineInstancetype",
        cluster_kind: "VirtualMachineClusterInstancetype",
    },
    Reference {
        field: "preference",
        namespaced_kind: "VirtualMachinePreference",
        cluster_kind: "VirtualMachineClusterPreference",
    },
];

fn vm_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "kubevirt.io",
        "v1",
        "VirtualMachine",
    ))
}

pub async fn run(ctx: Context) {
    let vms: Api<DynamicObject> = Api::all_with(ctx.client().clone(), &vm_resource());
    Controller::new_with(vms, watcher::Config::default(), vm_resource())
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "instancetype reconcile failed");
            }
        })
        .await;
}

fn error_policy(_vm: Arc<DynamicObject>, error: &Error, _ctx: Arc<Context>) -> Action {
    match error {
        Error::ReferenceNotFound { .. } => Action::requeue(Duration::from_secs(10)),
        _ => Action::requeue(Duration::from_secs(2)),
    }
}

/// # Errors
/// API failures, and a referenced object that does not exist (retried).
async fn reconcile(vm: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    if vm.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = vm
        .namespace()
        .ok_or(Error::Malformed("metadata.namespace"))?;
    let mut status_patch = serde_json::Map::new();
    for reference in &REFERENCES {
        let wanted = vm
            .data
            .pointer(&format!("/spec/{}", reference.field))
            .filter(|v| v.is_object());
        let status_key = format!("{}Ref", reference.field);
        let recorded = vm.data.pointer(&format!("/status/{status_key}"));
        match wanted {
            None => {
                if recorded.is_some() {
                    status_patch.insert(status_key, Value::Null);
                }
            }
            Some(wanted) => {
                let name = wanted["name"].as_str().unwrap_or("").to_string();
                let kind = match wanted["kind"].as_str() {
                    Some(k) if k.eq_ignore_ascii_case(reference.namespaced_kind) => {
                        reference.namespaced_kind
                    }
                    _ => reference.cluster_kind,
                };
                let up_to_date = recorded.is_some_and(|r| {
                    r["name"] == name.as_str()
                        && r["kind"] == kind
                        && r.pointer("/controllerRevisionRef/name").is_some()
                });
                if up_to_date {
                    continue;
                }
                let revision = capture(&ctx, &vm, &ns, kind, &name).await?;
                status_patch.insert(
                    status_key,
                    json!({"name": name, "kind": kind, "controllerRevisionRef": {"name": revision}}),
                );
            }
        }
    }
    if !status_patch.is_empty() {
        let vms: Api<DynamicObject> =
            Api::namespaced_with(ctx.client().clone(), &ns, &vm_resource());
        let patch = json!({"status": Value::Object(status_patch)});
        vms.patch_status(
            &vm.name_any(),
            &PatchParams::apply(MANAGER),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(Error::api(format!(
            "status of VirtualMachine {ns}/{}",
            vm.name_any()
        )))?;
    }
    Ok(Action::await_change())
}

/// Copies the referenced object into a ControllerRevision owned by the VM; returns its name.
async fn capture(
    ctx: &Context,
    vm: &DynamicObject,
    ns: &str,
    kind: &str,
    name: &str,
) -> Result<String> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, VERSION, kind));
    let api: Api<DynamicObject> = if kind.contains("Cluster") {
        Api::all_with(ctx.client().clone(), &resource)
    } else {
        Api::namespaced_with(ctx.client().clone(), ns, &resource)
    };
    let object = api
        .get_opt(name)
        .await
        .map_err(Error::api(format!("{kind} {name}")))?
        .ok_or_else(|| Error::ReferenceNotFound {
            kind: kind.into(),
            name: name.into(),
            vm: vm.name_any(),
        })?;
    let uid = object.uid().ok_or(Error::Malformed("metadata.uid"))?;
    let generation = object.metadata.generation.unwrap_or(1);
    let revision_name = format!(
        "{}-{}-{}-{generation}",
        vm.name_any(),
        name,
        &uid[..uid.len().min(8)]
    )
    .to_lowercase();
    let data = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": kind,
        "metadata": {
            "name": name, "uid": uid, "generation": generation,
            "labels": object.metadata.labels, "annotations": object.metadata.annotations,
        },
        "spec": object.data.get("spec").cloned().unwrap_or(json!({})),
    });
    let revision: ControllerRevision = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name,
            "namespace": ns,
            "labels": {
                "instancetype.kubevirt.io/object-kind": kind,
                "instancetype.kubevirt.io/object-name": name,
                "instancetype.kubevirt.io/object-uid": uid,
                "instancetype.kubevirt.io/object-generation": generation.to_string(),
                "instancetype.kubevirt.io/object-version": VERSION,
            },
            "ownerReferences": [{
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": vm.name_any(),
                "uid": vm.uid().unwrap_or_default(), "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "data": data,
        "revision": generation,
    }))
    .map_err(|_| Error::Malformed("a ControllerRevision"))?;
    let revisions: Api<ControllerRevision> = Api::namespaced(ctx.client().clone(), ns);
    match revisions
        .create(
            &PostParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            },
            &revision,
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => {
            return Err(Error::Api {
                what: format!("ControllerRevision {ns}/{revision_name}"),
                source: e,
            })
        }
    }
    Ok(revision_name)
}
