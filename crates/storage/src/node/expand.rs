//! Volume expansion (`allowVolumeExpansion`, grow only): when a bound claim of this node asks
//! for more than its volume holds, the PersistentVolume grows, `disk.img` grows to the new
//! usable size (less the filesystem overhead), and the claim's `status.capacity` follows —
//! the external-resizer's job, done in place since a hostpath volume is a directory.
//!
//! A running guest sees the new size only when its launcher resizes the block device
//! (`block_resize`); that is the node agent's part.

use serde_json::{json, Value};

use super::{clone, provision, Pools};
use crate::events::Recorder;
use crate::kinds::{
    annotation, name, namespace, phase, str_at, CDI_CONFIG, PV, PVC, STORAGE_CLASS,
};
use crate::quantity;
use crate::well_known as wk;
use crate::world::World;

/// Grows every volume of this node whose claim asks for more. Idempotent.
pub async fn reconcile(
    client: &kube::Client,
    world: &World,
    events: &Recorder,
    node: &str,
    pools: &Pools,
) {
    for claim in world.list(PVC) {
        if phase(&claim) != "Bound" {
            continue;
        }
        let Some(volume) = str_at(&claim, "/spec/volumeName").and_then(|v| world.get(PV, "", v))
        else {
            continue;
        };
        let ours = annotation(&volume, provision::ANN_PROVISION_ON_NODE) == Some(node);
        let wanted = str_at(&claim, "/spec/resources/requests/storage")
            .and_then(quantity::parse)
            .unwrap_or(0);
        let has = str_at(&volume, "/spec/capacity/storage")
            .and_then(quantity::parse)
            .unwrap_or(0);
        if !ours || wanted <= has {
            continue;
        }
        let class =
            crate::classes::class_of_claim(&claim).and_then(|c| world.get(STORAGE_CLASS, "", c));
        if !class
            .as_ref()
            .is_some_and(|c| c["allowVolumeExpansion"] == true)
        {
            let message = "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize";
            events
                .warning(&claim, PVC, "VolumeResizeFailed", message)
                .await;
            continue;
        }
        if let Err(message) = expand(client, world, pools, &claim, &volume, wanted).await {
            events
                .warning(&claim, PVC, "VolumeResizeFailed", &message)
                .await;
        } else {
            let message = format!(
                "resize volume \"{}\" by resizer \"{}\" succeeded",
                name(&volume),
                wk::PROVISIONER
            );
            events
                .normal(&claim, PVC, "VolumeResizeSuccessful", &message)
                .await;
        }
    }
}

async fn expand(
    client: &kube::Client,
    world: &World,
    pools: &Pools,
    claim: &Value,
    volume: &Value,
    wanted: u64,
) -> Result<(), String> {
    if str_at(volume, "/spec/volumeMode") == Some("Block") {
        return Err("expanding a Block volume (loop device) is not supported yet".into());
    }
    let dir = provision::volume_dir(world, pools, volume)
        .ok_or("the volume is not a hostpath volume of this node")?;
    let size = quantity::format(wanted);
    let class = crate::classes::class_of_claim(claim)
        .unwrap_or_default()
        .to_string();
    let overhead = overhead(client, &class).await;
    let image = dir.join("disk.img");
    if image.exists() && str_at(volume, "/spec/volumeMode").unwrap_or("Filesystem") == "Filesystem"
    {
        let format = clone::volume_format(&dir);
        // Exact for real volume sizes (< 2^53 bytes).
        let usable = (wanted as f64 * (1.0 - overhead)) as u64 / (1 << 20) * (1 << 20);
        let current = clone::virtual_size(&image, format)
            .map_err(|e| format!("reading {}: {e}", image.display()))?;
        if usable > current {
            let output = tokio::process::Command::new("qemu-img")
                .args(["resize", "-f", format])
                .arg(&image)
                .arg(usable.to_string())
                .output()
                .await
                .map_err(|e| format!("running qemu-img resize: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "qemu-img resize: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
    }
    let pv_patch = json!({"spec": {"capacity": {"storage": size}}});
    crate::ops::merge(client, PV, "", name(volume), &pv_patch)
        .await
        .map_err(|e| e.to_string())?;
    let status = json!({"status": {"capacity": {"storage": size}, "conditions": null}});
    crate::ops::merge_status(client, PVC, namespace(claim), name(claim), &status)
        .await
        .map_err(|e| e.to_string())
}

/// The filesystem overhead of `class` from CDIConfig's status (5.5% when unknown).
async fn overhead(client: &kube::Client, class: &str) -> f64 {
    let config = crate::ops::get(client, CDI_CONFIG, "", wk::CDI_CONFIG_NAME)
        .await
        .ok()
        .flatten();
    config
        .as_ref()
        .and_then(|c| {
            let o = &c["status"]["filesystemOverhead"];
            o["storageClass"][class]
                .as_str()
                .or_else(|| o["global"].as_str())
        })
        .and_then(crate::classes::parse_overhead)
        .unwrap_or(0.055)
}
