//! StorageClass facts every controller asks: the default classes, the provisioner, the
//! filesystem overhead in force, and the first start's default class.

use serde_json::{json, Value};

use crate::kinds::{self, annotation, name, str_at, CDI_CONFIG, STORAGE_CLASS};
use crate::well_known as wk;
use crate::world::World;

/// Whether a provisioner is ours (both spellings of the hostpath provisioner).
/// The shared directory of one of our classes (`parameters.sharedPath`, absolute), if any.
pub fn shared_path(class: &Value) -> Option<&str> {
    let ours = is_ours(class["provisioner"].as_str().unwrap_or_default());
    class["parameters"][wk::SHARED_PATH_PARAMETER]
        .as_str()
        .filter(|p| ours && p.starts_with('/') && !p.split('/').any(|c| c == ".."))
}

pub fn is_ours(provisioner: &str) -> bool {
    provisioner == wk::PROVISIONER || provisioner == wk::PROVISIONER_CSI
}

fn marked(class: &Value, key: &str) -> bool {
    annotation(class, key) == Some("true")
}

/// The cluster default class (`storageclass.kubernetes.io/is-default-class`); with several,
/// the newest wins, as Kubernetes decides since 1.26.
pub fn default_class(world: &World) -> Option<String> {
    newest_marked(world, wk::ANN_DEFAULT_CLASS)
}

/// The class CDI uses for VM disks: the default virt class, else the cluster default.
pub fn default_virt_class(world: &World) -> Option<String> {
    newest_marked(world, wk::ANN_DEFAULT_VIRT_CLASS).or_else(|| default_class(world))
}

fn newest_marked(world: &World, key: &str) -> Option<String> {
    let mut classes: Vec<Value> = world
        .list(STORAGE_CLASS)
        .into_iter()
        .filter(|c| marked(c, key))
        .collect();
    classes.sort_by(|a, b| {
        let created = |v: &Value| {
            str_at(v, "/metadata/creationTimestamp")
                .unwrap_or_default()
                .to_string()
        };
        created(b)
            .cmp(&created(a))
            .then_with(|| name(a).cmp(name(b)))
    });
    classes.first().map(|c| name(c).to_string())
}

/// The filesystem overhead (a fraction) of `class`, from CDIConfig's status; 0.055 before
/// the first status is written.
pub fn fs_overhead(world: &World, class: &str) -> f64 {
    let config = world.get(CDI_CONFIG, "", wk::CDI_CONFIG_NAME);
    let status = config.as_ref().map(|c| &c["status"]["filesystemOverhead"]);
    let text = status
        .and_then(|s| {
            s["storageClass"][class]
                .as_str()
                .or_else(|| s["global"].as_str())
        })
        .unwrap_or(wk::DEFAULT_FS_OVERHEAD);
    parse_overhead(text).unwrap_or(0.055)
}

/// A filesystem overhead string (`"0.055"`): a fraction in [0, 1).
pub fn parse_overhead(text: &str) -> Option<f64> {
    let value: f64 = text.trim().parse().ok()?;
    (0.0..1.0).contains(&value).then_some(value)
}

/// The StorageClass created on first start: our provisioner, the default (and default virt)
/// class, WaitForFirstConsumer as the hostpath provisioner's classes are (a local volume
/// must be made on the node that runs its first consumer).
pub fn default_storage_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": wk::DEFAULT_CLASS,
            "annotations": {
                wk::ANN_DEFAULT_CLASS: "true",
                wk::ANN_DEFAULT_VIRT_CLASS: "true",
            },
        },
        "provisioner": wk::PROVISIONER,
        "parameters": {wk::STORAGE_POOL_PARAMETER: wk::DEFAULT_POOL},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": true,
    })
}

/// Creates the default StorageClass unless some class of our provisioner exists already (a
/// user who replaced or deleted it keeps their choice), and the CDIConfig singleton.
///
/// # Errors
/// When the API refuses the creates.
pub async fn ensure_first_start_objects(
    client: &kube::Client,
    world: &World,
) -> crate::ops::Result<()> {
    let ours = world
        .list(STORAGE_CLASS)
        .iter()
        .any(|c| is_ours(c["provisioner"].as_str().unwrap_or_default()));
    if !ours && crate::ops::create(client, STORAGE_CLASS, &default_storage_class()).await? {
        tracing::info!(
            class = wk::DEFAULT_CLASS,
            "created the default StorageClass"
        );
    }
    if world.get(CDI_CONFIG, "", wk::CDI_CONFIG_NAME).is_none() {
        let config = json!({
            "apiVersion": CDI_CONFIG.api_version(), "kind": CDI_CONFIG.kind,
            "metadata": {"name": wk::CDI_CONFIG_NAME, "labels": {wk::APP_LABEL: wk::CDI_APP}},
            "spec": {},
        });
        crate::ops::create(client, CDI_CONFIG, &config).await?;
    }
    Ok(())
}

/// `kinds::name` re-exported for callers that only need classes.
pub fn class_of_claim(claim: &Value) -> Option<&str> {
    kinds::str_at(claim, "/spec/storageClassName")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overheads_are_fractions_below_one() {
        assert_eq!(parse_overhead("0.055"), Some(0.055));
        assert_eq!(parse_overhead("0"), Some(0.0));
        assert_eq!(parse_overhead("1"), None);
        assert_eq!(parse_overhead("-0.1"), None);
        assert_eq!(parse_overhead("lots"), None);
    }

    #[test]
    fn the_first_start_class_is_default_for_vms_and_the_cluster() {
        let class = default_storage_class();
        assert_eq!(annotation(&class, wk::ANN_DEFAULT_VIRT_CLASS), Some("true"));
        assert_eq!(annotation(&class, wk::ANN_DEFAULT_CLASS), Some("true"));
        assert!(is_ours(class["provisioner"].as_str().unwrap()));
    }
}
