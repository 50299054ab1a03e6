//! HyperConverged's boot sources (manual §9.3): `spec.dataImportCronTemplates` become
//! DataImportCrons in the golden image namespace, `dataimportcrontemplate.kubevirt.io/enable:
//! 'false'` leaves one out, and `status.dataImportCronTemplates` lists the effective templates
//! (`status: {commonTemplate: true}` for system-defined ones, `{}` for custom ones).
//!
//! oxivirt ships no system-defined templates yet (upstream's point at quay.io images, which an
//! offline cluster cannot reach), so `enableCommonBootImageImport` has nothing to switch.

use serde_json::{json, Value};

use crate::cdiconfig::hyperconverged;
use crate::kinds::{label, name, namespace, DATA_IMPORT_CRON, HYPERCONVERGED};
use crate::world::World;

/// Marks the DataImportCrons this controller owns (as HCO labels its operands).
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "hco-operator");
/// Per-template switch (manual §9.3.3).
const ENABLE_ANNOTATION: &str = "dataimportcrontemplate.kubevirt.io/enable";

/// Makes the golden image namespace's DataImportCrons match HyperConverged's templates.
pub async fn reconcile(client: &kube::Client, world: &World) {
    let Some(hco) = hyperconverged(world) else {
        return;
    };
    let target_ns = oxivirt_api::content::OS_IMAGES_NAMESPACE;
    let templates: Vec<Value> = hco["spec"]["dataImportCronTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let enabled: Vec<&Value> = templates
        .iter()
        .filter(|t| t["metadata"]["annotations"][ENABLE_ANNOTATION].as_str() != Some("false"))
        .filter(|t| t["metadata"]["name"].is_string())
        .collect();
    for template in &enabled {
        let cron_name = template["metadata"]["name"].as_str().unwrap_or_default();
        let mut labels = template["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        labels.insert(MANAGED_BY.0.into(), json!(MANAGED_BY.1));
        let cron = json!({
            "apiVersion": DATA_IMPORT_CRON.api_version(), "kind": DATA_IMPORT_CRON.kind,
            "metadata": {"name": cron_name, "namespace": target_ns, "labels": labels,
                         "annotations": template["metadata"]["annotations"].as_object().cloned().unwrap_or_default()},
            "spec": template["spec"],
        });
        match world.get(DATA_IMPORT_CRON, target_ns, cron_name) {
            None => {
                if let Err(e) = crate::ops::create(client, DATA_IMPORT_CRON, &cron).await {
                    tracing::warn!(error = %e, "cannot create a DataImportCron from HyperConverged");
                }
            }
            Some(existing)
                if existing["spec"] != template["spec"]
                    && label(&existing, MANAGED_BY.0) == Some(MANAGED_BY.1) =>
            {
                let patch = json!({"spec": template["spec"]});
                if let Err(e) =
                    crate::ops::merge(client, DATA_IMPORT_CRON, target_ns, cron_name, &patch).await
                {
                    tracing::warn!(error = %e, "cannot update a DataImportCron from HyperConverged");
                }
            }
            Some(_) => {}
        }
    }
    for cron in world.list(DATA_IMPORT_CRON) {
        let ours =
            namespace(&cron) == target_ns && label(&cron, MANAGED_BY.0) == Some(MANAGED_BY.1);
        if ours && !enabled.iter().any(|t| t["metadata"]["name"] == name(&cron)) {
            if let Err(e) =
                crate::ops::delete(client, DATA_IMPORT_CRON, target_ns, name(&cron)).await
            {
                tracing::warn!(error = %e, "cannot delete a DataImportCron HyperConverged no longer lists");
            }
        }
    }
    let listed: Vec<Value> = templates
        .iter()
        .map(|t| {
            let mut entry = t.clone();
            entry["status"] = json!({});
            entry
        })
        .collect();
    if hco["status"]["dataImportCronTemplates"] != Value::Array(listed.clone()) {
        let patch = json!({"status": {"dataImportCronTemplates": listed}});
        if let Err(e) =
            crate::ops::merge_status(client, HYPERCONVERGED, namespace(&hco), name(&hco), &patch)
                .await
        {
            tracing::warn!(error = %e, "cannot write HyperConverged status.dataImportCronTemplates");
        }
    }
}
