//! Provisioning and deleting hostpath volumes on this node.
//!
//! A claim is ours to provision when its provisioner annotation names the hostpath
//! provisioner and its selected node is this node (the binder chose it). The volume is a
//! directory `<pool>/pvc-<claim uid>` (Filesystem mode: the disk image `disk.img` goes in
//! it), and a PersistentVolume pre-bound to the claim with node affinity to this node.
//!
//! # Guarantees
//! The volume name derives from the claim's uid, so a repeated pass (stale cache, restart)
//! finds the directory and the PersistentVolume it made before: creation is idempotent.
//! Deletion only removes `pvc-*` directories directly inside a known pool.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{NodeConfig, Pools};
use crate::classes::is_ours;
use crate::events::Recorder;
use crate::kinds::{annotation, name, namespace, phase, str_at, uid, PV, PVC, STORAGE_CLASS};
use crate::well_known as wk;
use crate::world::World;

/// Annotation on our PersistentVolumes naming the node that holds the data (as HPP does).
pub const ANN_PROVISION_ON_NODE: &str = "kubevirt.io/provisionOnNode";

/// One pass: provision selected claims, delete released volumes.
pub async fn reconcile(
    client: &kube::Client,
    world: &World,
    events: &Recorder,
    config: &NodeConfig,
    pools: &Pools,
) {
    for claim in world.list(PVC) {
        let mine = annotation(&claim, wk::ANN_STORAGE_PROVISIONER).is_some_and(is_ours)
            && annotation(&claim, wk::ANN_SELECTED_NODE) == Some(config.node_name.as_str());
        let pending = phase(&claim) != "Bound"
            && str_at(&claim, "/spec/volumeName").is_none_or(str::is_empty)
            && !crate::kinds::is_deleting(&claim);
        if mine && pending {
            provision(client, world, events, config, pools, &claim).await;
        }
    }
    for volume in world.list(PV) {
        let mine = annotation(&volume, wk::ANN_PROVISIONED_BY).is_some_and(is_ours)
            && annotation(&volume, ANN_PROVISION_ON_NODE) == Some(config.node_name.as_str());
        let released = phase(&volume) == "Released"
            && str_at(&volume, "/spec/persistentVolumeReclaimPolicy").unwrap_or("Delete")
                == "Delete";
        if mine && released {
            delete(client, world, events, pools, &volume).await;
        }
    }
}

/// The volume name of a claim (`pvc-<uid>`, as external provisioners name them).
pub fn volume_name(claim: &Value) -> String {
    format!("pvc-{}", uid(claim))
}

async fn provision(
    client: &kube::Client,
    world: &World,
    events: &Recorder,
    config: &NodeConfig,
    pools: &Pools,
    claim: &Value,
) {
    let volume = volume_name(claim);
    if world.get(PV, "", &volume).is_some() {
        return; // made in an earlier pass; the binder binds it
    }
    let class_name = str_at(claim, "/spec/storageClassName").unwrap_or_default();
    let Some(class) = world.get(STORAGE_CLASS, "", class_name) else {
        return;
    };
    let fail = |message: String| async move {
        let message =
            format!("failed to provision volume with StorageClass \"{class_name}\": {message}");
        events
            .warning(claim, PVC, "ProvisioningFailed", &message)
            .await;
    };
    let block = str_at(claim, "/spec/volumeMode") == Some("Block");
    if block && clone_source_name(claim).is_some() {
        return fail(
            "cloning into a Block volume is not supported yet: clone into a Filesystem volume"
                .into(),
        )
        .await;
    }
    let shared = crate::classes::shared_path(&class).map(PathBuf::from);
    let modes: Vec<&str> = claim["spec"]["accessModes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if shared.is_none() {
        let node_local = ["ReadWriteOnce", "ReadWriteOncePod"];
        if let Some(mode) = modes.iter().find(|m| !node_local.contains(m)) {
            return fail(format!(
                "access mode {mode} is not offered by a node-local class: use a class with parameters.{} (a directory every node mounts)",
                wk::SHARED_PATH_PARAMETER
            ))
            .await;
        }
    }
    if block && shared.is_some() {
        return fail(
            "a Block volume is a loop device of one node: use a class without parameters.sharedPath"
                .into(),
        )
        .await;
    }
    let pool_name = str_at(
        &class,
        &format!("/parameters/{}", wk::STORAGE_POOL_PARAMETER),
    );
    let Some(pool) = shared.clone().or_else(|| pools.resolve(world, pool_name)) else {
        let pool_name = pool_name.unwrap_or_default();
        return fail(format!(
            "storage pool \"{pool_name}\" is not defined by any HostPathProvisioner (spec.storagePools)"
        ))
        .await;
    };
    let Some(size) = str_at(claim, "/spec/resources/requests/storage")
        .filter(|s| crate::quantity::parse(s).is_some())
    else {
        return fail("the claim requests no storage size (spec.resources.requests.storage)".into())
            .await;
    };
    let dir = pool.join(&volume);
    let source = match clone_source(world, claim, pools) {
        Ok(source) => source,
        Err(why) => {
            events.normal(claim, PVC, "CloneSourceNotReady", &why).await;
            return;
        }
    };
    if let Some(source_dir) = &source {
        if let Some(user) = source_in_use(client, world, claim).await {
            let message = format!(
                "source PVC {}/{} is in use by pod {user}",
                namespace(claim),
                clone_source_name(claim).unwrap_or_default()
            );
            events
                .normal(claim, PVC, "CloneSourceInUse", &message)
                .await;
            return;
        }
        let (source_dir, target_dir, pool) = (source_dir.clone(), dir.clone(), pool.clone());
        let size = crate::quantity::parse(size).unwrap_or(0);
        let cloned = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            std::fs::create_dir_all(&target_dir).map_err(|e| format!("cannot create {}: {e}", target_dir.display()))?;
            super::clone::clone_volume(&source_dir, &target_dir, &pool, size)?;
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(source = %source_dir.display(), target = %target_dir.display(), elapsed_ms, "cloned volume");
            Ok(())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(message) = cloned {
            let _ = std::fs::remove_dir_all(&dir);
            return fail(message).await;
        }
    } else if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(format!("cannot create {}: {e}", dir.display())).await;
    }
    let device = if block {
        let (target, bytes) = (dir.clone(), crate::quantity::parse(size).unwrap_or(0));
        let attached = tokio::task::spawn_blocking(move || super::block::create(&target, bytes))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match attached {
            Ok(device) => Some(device),
            Err(message) => {
                let _ = std::fs::remove_dir_all(&dir);
                return fail(message).await;
            }
        }
    } else {
        None
    };
    let message = format!(
        "External provisioner is provisioning volume for claim \"{}/{}\"",
        namespace(claim),
        name(claim)
    );
    events.normal(claim, PVC, "Provisioning", &message).await;
    let mut pv = persistent_volume(claim, &class, &volume, &dir, size, &config.node_name);
    if let Some(device) = &device {
        pv["spec"]["hostPath"] = json!({"path": device.to_string_lossy(), "type": "BlockDevice"});
        pv["metadata"]["annotations"][super::block::ANN_BACKING_FILE] =
            json!(dir.join("disk.img").to_string_lossy());
    }
    if shared.is_some() {
        // Every node mounts the directory: the volume is not tied to the one that made it.
        if let Some(spec) = pv["spec"].as_object_mut() {
            spec.remove("nodeAffinity");
        }
    }
    match crate::ops::create(client, PV, &pv).await {
        Ok(_) => {
            tracing::info!(volume, path = %dir.display(), "provisioned");
            let message = format!("Successfully provisioned volume {volume}");
            events
                .normal(claim, PVC, "ProvisioningSucceeded", &message)
                .await;
        }
        Err(e) => fail(e.to_string()).await,
    }
}

/// The claim a new claim clones (`spec.dataSource` of kind PersistentVolumeClaim).
pub fn clone_source_name(claim: &Value) -> Option<&str> {
    let source = &claim["spec"]["dataSource"];
    (source["kind"] == "PersistentVolumeClaim")
        .then(|| source["name"].as_str())
        .flatten()
}

/// The directory of the volume a claim clones: `Ok(None)` for no clone, `Err` while the
/// source is not a bound hostpath volume of this node.
fn clone_source(world: &World, claim: &Value, pools: &Pools) -> Result<Option<PathBuf>, String> {
    let Some(source_name) = clone_source_name(claim) else {
        return Ok(None);
    };
    let ns = namespace(claim);
    let source = world
        .get(PVC, ns, source_name)
        .ok_or_else(|| format!("source PVC {ns}/{source_name} not found"))?;
    let volume = str_at(&source, "/spec/volumeName")
        .filter(|_| phase(&source) == "Bound")
        .and_then(|v| world.get(PV, "", v))
        .ok_or_else(|| format!("source PVC {ns}/{source_name} is not bound"))?;
    volume_dir(world, pools, &volume).map(Some).ok_or_else(|| {
        format!("source PVC {ns}/{source_name} is not a hostpath volume of this node")
    })
}

/// A running Pod on this node using the clone source (directly or through its VMI).
async fn source_in_use(client: &kube::Client, world: &World, claim: &Value) -> Option<String> {
    let source = clone_source_name(claim)?;
    let ns = namespace(claim);
    for pod in world.list(crate::kinds::POD) {
        if namespace(&pod) != ns || matches!(phase(&pod), "Succeeded" | "Failed") {
            continue;
        }
        let mut claims = oxivirt_api::vmi_claims::claim_names(&pod["spec"]["volumes"]);
        if let Some(vmi) = annotation(&pod, "kubevirt.io/domain") {
            if let Ok(Some(vmi)) = crate::ops::get(client, crate::kinds::VMI, ns, vmi).await {
                claims.extend(oxivirt_api::vmi_claims::claim_names(
                    &vmi["spec"]["volumes"],
                ));
            }
        }
        if claims.iter().any(|c| c == source) {
            return Some(name(&pod).to_string());
        }
    }
    None
}

/// The PersistentVolume for a provisioned directory, pre-bound to its claim.
pub fn persistent_volume(
    claim: &Value,
    class: &Value,
    volume: &str,
    dir: &Path,
    size: &str,
    node: &str,
) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {
            "name": volume,
            "annotations": {wk::ANN_PROVISIONED_BY: wk::PROVISIONER, ANN_PROVISION_ON_NODE: node},
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": claim["spec"]["accessModes"],
            "volumeMode": str_at(claim, "/spec/volumeMode").unwrap_or("Filesystem"),
            "persistentVolumeReclaimPolicy": class["reclaimPolicy"].as_str().unwrap_or("Delete"),
            "storageClassName": name(class),
            "hostPath": {"path": dir.to_string_lossy(), "type": ""},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": wk::HOSTNAME_LABEL, "operator": "In", "values": [node]},
            ]}]}},
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": namespace(claim), "name": name(claim), "uid": uid(claim),
            },
        },
    })
}

/// The directory behind one of our volumes, if it is a `pvc-*` directory inside a pool.
pub fn volume_dir(world: &World, pools: &Pools, volume: &Value) -> Option<PathBuf> {
    // A Block volume's path is its loop device; its directory holds the backing file.
    let path = match annotation(volume, super::block::ANN_BACKING_FILE) {
        Some(file) => PathBuf::from(file).parent()?.to_path_buf(),
        None => PathBuf::from(str_at(volume, "/spec/hostPath/path")?),
    };
    let inside = path
        .parent()
        .is_some_and(|parent| pools.all(world).iter().any(|p| p == parent));
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("pvc-"));
    (inside && named).then_some(path)
}

async fn delete(
    client: &kube::Client,
    world: &World,
    events: &Recorder,
    pools: &Pools,
    volume: &Value,
) {
    let volume_name = name(volume);
    if let (Some(file), Some(device)) = (
        annotation(volume, super::block::ANN_BACKING_FILE),
        str_at(volume, "/spec/hostPath/path"),
    ) {
        let (file, device) = (PathBuf::from(file), PathBuf::from(device));
        let detached =
            tokio::task::spawn_blocking(move || super::block::detach(&device, &file)).await;
        if let Ok(Err(message)) = detached {
            events
                .warning(volume, PV, "VolumeFailedDelete", &message)
                .await;
            return;
        }
    }
    if let Some(dir) = volume_dir(world, pools, volume) {
        let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("removing {}: {e}", dir.display()))
            }
            _ => Ok(()),
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(message) = removed {
            events
                .warning(volume, PV, "VolumeFailedDelete", &message)
                .await;
            return;
        }
    }
    if let Some(pool) =
        volume_dir(world, pools, volume).and_then(|d| d.parent().map(Path::to_path_buf))
    {
        // Clone bases only this volume used go with it.
        let _ = tokio::task::spawn_blocking(move || super::clone::collect_bases(&pool)).await;
    }
    match crate::ops::delete(client, PV, "", volume_name).await {
        Ok(()) => tracing::info!(volume = volume_name, "deleted released volume"),
        Err(e) => tracing::warn!(error = %e, "cannot delete a released volume"),
    }
}
