//! The VM's persistent-state claim (manual §7.11 vTPM, §7.14.6 persistent EFI): a VM whose
//! template asks for `devices.tpm.persistent: true` or
//! `firmware.bootloader.efi.persistent: true` gets a PVC `persistent-state-for-<vm>` before
//! its first VMI, as upstream's backend storage makes one. The node agent hands the claim's
//! directory to the launcher, which keeps swtpm's state and the UEFI variable store there, so
//! both survive stop/start and restart. The claim is owned by the VM (controller reference),
//! so the garbage collector removes it with the VM, and only then.
//!
//! Storage class, first match wins (upstream's order): the KubeVirt CR's
//! `spec.configuration.vmStateStorageClass`, the HyperConverged's `spec.vmStateStorageClass`,
//! the default virtualization class (`storageclass.kubevirt.io/is-default-virt-class`), the
//! cluster's default class. Access mode: `ReadWriteMany` when the class's StorageProfile offers
//! it for Filesystem volumes (upstream's preference: it keeps the VM migratable), else the
//! profile's first Filesystem mode, else `ReadWriteOnce`. Size: upstream's 10Mi.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::object::controller_ref;

/// Upstream's claim name prefix and label (`persistent-state-for-<vm>`, labelled with the VM).
pub(crate) use oxivirt_api::vmi_claims::{
    STATE_CLAIM_LABEL as CLAIM_LABEL, STATE_CLAIM_PREFIX as CLAIM_PREFIX,
};
/// Upstream's size of the claim (swtpm's state and a 4 MiB variable store fit).
const CLAIM_SIZE: &str = "10Mi";
const DEFAULT_VIRT_CLASS: &str = "storageclass.kubevirt.io/is-default-virt-class";
const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

/// Whether the VM's (expanded) template keeps state across runs.
pub(crate) fn wanted(template_spec: &Value) -> bool {
    let domain = &template_spec["domain"];
    let tpm = &domain["devices"]["tpm"];
    let tpm = tpm.is_object() && tpm["enabled"] != false && tpm["persistent"] == true;
    tpm || domain["firmware"]["bootloader"]["efi"]["persistent"] == true
}

/// Creates the VM's state claim when its template needs one and it does not exist yet.
/// Idempotent: an existing claim of that name is left as it is (a VM recreated under the
/// same name gets a new claim only after the garbage collector removed the old one).
///
/// # Errors
/// [`Error::Api`] naming the read or the create that failed; every `.await` is a
/// cancellation point, and a pass cut short creates the claim on the next pass.
pub(crate) async fn ensure(ctx: &Context, vm: &DynamicObject, expanded: &Value) -> Result<()> {
    if !wanted(&expanded["spec"]["template"]["spec"]) {
        return Ok(());
    }
    let namespace = vm.namespace().unwrap_or_default();
    let name = format!("{CLAIM_PREFIX}{}", vm.name_any());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client().clone(), &namespace);
    if claims
        .get_opt(&name)
        .await
        .map_err(Error::api(format!(
            "PersistentVolumeClaim {namespace}/{name}"
        )))?
        .is_some()
    {
        return Ok(());
    }
    let class = storage_class(ctx).await?;
    let access_mode = match &class {
        Some(class) => access_mode(ctx, class).await?,
        None => "ReadWriteOnce".to_string(),
    };
    let mut spec = json!({
        "accessModes": [access_mode],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": CLAIM_SIZE}},
    });
    if let Some(class) = &class {
        spec["storageClassName"] = json!(class);
    }
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": namespace,
            // On a `WaitForFirstConsumer` class the binder provisions it on the node of the
            // VM's launcher Pod (its consumer through the node agent), and the scheduler
            // brings later runs back to that node.
            "labels": {CLAIM_LABEL: vm.name_any()},
            "ownerReferences": [controller_ref(vm, "kubevirt.io/v1", "VirtualMachine")],
        },
        "spec": spec,
    }))
    .map_err(|_| Error::Malformed("persistent-state claim"))?;
    match claims.create(&PostParams::default(), &claim).await {
        Ok(_) => {
            tracing::info!(%namespace, claim = %name, class = ?class, %access_mode, "created the VM's persistent-state claim");
            Ok(())
        }
        // Made by a pass that raced this one.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(Error::Api {
            what: format!("creating PersistentVolumeClaim {namespace}/{name}"),
            source: e,
        }),
    }
}

fn dynamic(ctx: &Context, group: &str, version: &str, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::all_with(ctx.client().clone(), &ApiResource::from_gvk(&gvk))
}

/// A list that fails because its kind is not served counts as empty (a cluster without the
/// HyperConverged CRD, say).
async fn list_or_empty(api: &Api<DynamicObject>, what: &str) -> Result<Vec<DynamicObject>> {
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(e) => Err(Error::Api {
            what: format!("listing {what}"),
            source: e,
        }),
    }
}

/// The class of state claims (see the module doc), `None` when the cluster has no default.
async fn storage_class(ctx: &Context) -> Result<Option<String>> {
    let kubevirts = dynamic(ctx, "kubevirt.io", "v1", "KubeVirt");
    for kv in list_or_empty(&kubevirts, "KubeVirts").await? {
        if let Some(class) = non_empty(&kv.data["spec"]["configuration"]["vmStateStorageClass"]) {
            return Ok(Some(class));
        }
    }
    let hcos = dynamic(ctx, "hco.kubevirt.io", "v1beta1", "HyperConverged");
    for hco in list_or_empty(&hcos, "HyperConvergeds").await? {
        if let Some(class) = non_empty(&hco.data["spec"]["vmStateStorageClass"]) {
            return Ok(Some(class));
        }
    }
    let classes = dynamic(ctx, "storage.k8s.io", "v1", "StorageClass");
    let classes = list_or_empty(&classes, "StorageClasses").await?;
    let marked = |annotation: &str| {
        classes
            .iter()
            .find(|c| c.annotations().get(annotation).map(String::as_str) == Some("true"))
    };
    Ok(marked(DEFAULT_VIRT_CLASS)
        .or_else(|| marked(DEFAULT_CLASS))
        .map(ResourceExt::name_any))
}

fn non_empty(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The access mode for a state claim of `class`, from its StorageProfile.
async fn access_mode(ctx: &Context, class: &str) -> Result<String> {
    let profiles = dynamic(ctx, "cdi.kubevirt.io", "v1beta1", "StorageProfile");
    let profile = profiles
        .get_opt(class)
        .await
        .map_err(Error::api(format!("reading StorageProfile {class}")))?;
    Ok(pick_access_mode(
        profile
            .as_ref()
            .map(|p| &p.data["status"]["claimPropertySets"]),
    ))
}

/// `ReadWriteMany` if a Filesystem property set offers it, else the first Filesystem mode,
/// else `ReadWriteOnce`.
fn pick_access_mode(sets: Option<&Value>) -> String {
    let filesystem: Vec<&Value> = sets
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|set| set["volumeMode"].as_str().unwrap_or("Filesystem") == "Filesystem")
        .collect();
    let modes = || {
        filesystem
            .iter()
            .flat_map(|set| set["accessModes"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
    };
    if modes().any(|m| m == "ReadWriteMany") {
        return "ReadWriteMany".into();
    }
    modes().next().unwrap_or("ReadWriteOnce").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistent_tpm_or_efi_wants_a_state_claim() {
        assert!(wanted(
            &json!({"domain": {"devices": {"tpm": {"persistent": true}}}})
        ));
        assert!(wanted(
            &json!({"domain": {"firmware": {"bootloader": {"efi": {"persistent": true}}}}})
        ));
        assert!(!wanted(&json!({"domain": {"devices": {"tpm": {}}}})));
        assert!(!wanted(
            &json!({"domain": {"devices": {"tpm": {"enabled": false, "persistent": true}}}})
        ));
        assert!(!wanted(&json!({"domain": {}})));
    }

    #[test]
    fn state_claims_prefer_read_write_many_filesystem() {
        let sets = json!([
            {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"},
            {"accessModes": ["ReadWriteMany"], "volumeMode": "Block"},
        ]);
        assert_eq!(pick_access_mode(Some(&sets)), "ReadWriteOnce");
        let sets = json!([
            {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"},
            {"accessModes": ["ReadWriteMany", "ReadWriteOnce"], "volumeMode": "Filesystem"},
        ]);
        assert_eq!(pick_access_mode(Some(&sets)), "ReadWriteMany");
        assert_eq!(pick_access_mode(None), "ReadWriteOnce");
    }
}
