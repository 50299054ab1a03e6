//! Persistent disks of a VMI (issue 5): `persistentVolumeClaim` and `dataVolume` volumes as
//! `launch.json` disks, and the CDI worker Pods this agent leaves to the node's storage
//! runner (`oxivirt_storage::node`), which runs them as `oxivirt importer` processes.
//!
//! A claim's disk is `<volume directory>/disk.img` (Filesystem mode: the hostpath
//! provisioner's PersistentVolumes are `hostPath`/`local` directories on this node). A
//! DataVolume must have `Succeeded`; a claim must be `Bound`; until then the Pod waits in
//! `ContainerCreating`, as a kubelet waits for volumes. A blank claim gets a sparse raw
//! `disk.img` the size of the claim less the filesystem overhead, as KubeVirt creates one.
//!
//! A VMI of a VirtualMachine that asks for a persistent TPM or persistent EFI variables also
//! gets its VM's state claim (`persistent-state-for-<vm>`, made by the VM controller) as the
//! launcher's `persistentState` entry: the volume's directory, in which the launcher keeps
//! `swtpm/` and `nvram/` across runs, as upstream's virt-launcher mounts that PVC.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, Pod,
};
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, ResourceExt};
use serde_json::Value;

use crate::rundir::DiskSpec;

/// CDI's worker Pods carry `app: containerized-data-importer`.
pub(crate) fn is_cdi_worker(pod: &Pod) -> bool {
    pod.labels().get("app").map(String::as_str) == Some("containerized-data-importer")
}

/// Why a volume cannot be given to the launcher yet (or at all).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The volume's claim or DataVolume is not ready; retried.
    #[error("volume {volume}: {why}")]
    NotReady { volume: String, why: String },
    /// An API read failed; retried.
    #[error("volume {volume}: reading {what} failed")]
    Api {
        volume: String,
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// The `launch.json` key of the state claim (the launcher's `PERSISTENT_STATE_DISK`).
const PERSISTENT_STATE_KEY: &str = "persistentState";

/// KubeVirt's filesystem overhead when creating `disk.img` on a blank claim (CDI's default).
const FS_OVERHEAD: f64 = 0.055;

/// The `launch.json` disks of the VMI's claim-backed volumes.
///
/// # Errors
/// [`Error::NotReady`] while a claim is unbound or a DataVolume is still populating.
pub(crate) async fn claim_disks(
    client: &kube::Client,
    vmi: &Value,
    qemu_owner: Option<(u32, u32)>,
) -> Result<BTreeMap<String, DiskSpec>, Error> {
    let namespace = vmi["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut disks = BTreeMap::new();
    for volume in vmi["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or_default().to_string();
        let (claim, data_volume, readonly) = match (
            volume.get("persistentVolumeClaim"),
            volume.get("dataVolume"),
        ) {
            (Some(pvc), _) => (pvc["claimName"].as_str(), None, pvc["readOnly"] == true),
            (None, Some(dv)) => (dv["name"].as_str(), dv["name"].as_str(), false),
            (None, None) => continue,
        };
        let claim = claim.unwrap_or_default();
        let not_ready = |why: String| Error::NotReady {
            volume: name.clone(),
            why,
        };
        let api_error = |what: String| {
            let volume = name.clone();
            move |source| Error::Api {
                volume,
                what,
                source,
            }
        };
        if let Some(dv_name) = data_volume {
            let gvk = GroupVersionKind::gvk("cdi.kubevirt.io", "v1beta1", "DataVolume");
            let dvs: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk));
            if let Some(dv) = dvs
                .get_opt(dv_name)
                .await
                .map_err(api_error(format!("DataVolume {dv_name}")))?
            {
                let phase = dv.data["status"]["phase"].as_str().unwrap_or("Pending");
                if phase != "Succeeded" {
                    return Err(not_ready(format!("DataVolume {dv_name} is {phase}")));
                }
            }
        }
        let (dir, spec) = local_volume(client, namespace, claim, &name).await?;
        let block = spec.volume_mode.as_deref() == Some("Block");
        let path = if block {
            PathBuf::from(&dir)
        } else {
            Path::new(&dir).join("disk.img")
        };
        if !block && !path.exists() {
            if data_volume.is_some() {
                return Err(not_ready(format!("{} is missing", path.display())));
            }
            let capacity = spec
                .capacity
                .and_then(|c| c.get("storage").map(|q| q.0.clone()))
                .and_then(|q| parse_bytes(&q))
                .unwrap_or(0);
            create_blank(&path, capacity)
                .map_err(|e| not_ready(format!("creating {}: {e}", path.display())))?;
        }
        // QEMU opens the disk — a Block volume's loop device too — as its own user (CDI
        // makes its images 107's, virt-handler its block devices, for the same reason).
        crate::qemu_user::hand_over(&path, qemu_owner).map_err(not_ready)?;
        let format = if !block && is_qcow2_volume(Path::new(&dir)) {
            "qcow2"
        } else {
            "raw"
        };
        disks.insert(
            name,
            DiskSpec {
                path,
                format: format.into(),
                readonly,
                ephemeral: false,
            },
        );
    }
    if let Some(claim) = oxivirt_api::vmi_claims::state_claim(vmi) {
        let dir = state_claim_dir(client, namespace, &claim).await?;
        disks.insert(
            PERSISTENT_STATE_KEY.to_string(),
            DiskSpec {
                path: dir,
                format: "raw".into(),
                readonly: false,
                ephemeral: false,
            },
        );
    }
    Ok(disks)
}

/// The directory of the bound, node-local Filesystem volume of `claim`.
async fn state_claim_dir(
    client: &kube::Client,
    namespace: &str,
    claim: &str,
) -> Result<PathBuf, Error> {
    let (dir, spec) = local_volume(client, namespace, claim, PERSISTENT_STATE_KEY).await?;
    if spec.volume_mode.as_deref() == Some("Block") {
        return Err(Error::NotReady {
            volume: PERSISTENT_STATE_KEY.to_string(),
            why: format!("the volume of claim \"{claim}\" is a Block volume; the VM state needs a Filesystem volume"),
        });
    }
    Ok(PathBuf::from(dir))
}

/// The node-local directory (or Block device) and spec of the PersistentVolume bound to
/// `claim`; errors name `volume`, the VMI volume that needs it.
async fn local_volume(
    client: &kube::Client,
    namespace: &str,
    claim: &str,
    volume: &str,
) -> Result<(String, PersistentVolumeSpec), Error> {
    let not_ready = |why: String| Error::NotReady {
        volume: volume.to_string(),
        why,
    };
    let api_error = |what: String| {
        move |source| Error::Api {
            volume: volume.to_string(),
            what,
            source,
        }
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let pvc = claims
        .get_opt(claim)
        .await
        .map_err(api_error(format!("PersistentVolumeClaim {claim}")))?
        .ok_or_else(|| not_ready(format!("persistentvolumeclaim \"{claim}\" not found")))?;
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let Some(volume_name) = pvc.spec.and_then(|s| s.volume_name).filter(|_| bound) else {
        return Err(not_ready(format!(
            "persistentvolumeclaim \"{claim}\" is not bound"
        )));
    };
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pvs
        .get(&volume_name)
        .await
        .map_err(api_error(format!("PersistentVolume {volume_name}")))?;
    let spec = pv.spec.unwrap_or_default();
    let dir = spec
        .host_path
        .as_ref()
        .map(|h| h.path.clone())
        .or_else(|| spec.local.as_ref().map(|l| l.path.clone()))
        .ok_or_else(|| {
            not_ready(format!(
                "persistentvolume \"{volume_name}\" is not a local volume"
            ))
        })?;
    Ok((dir, spec))
}

/// Whether the volume's `disk.img` is a qcow2 overlay (a clone), as the node's storage
/// records in `.disk-format` — never by probing the image: a guest can write a qcow2
/// header (naming any host file as backing file) into its own raw disk.
fn is_qcow2_volume(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(".disk-format")).is_ok_and(|f| f.trim() == "qcow2")
}

/// A sparse raw image using the claim less the filesystem overhead, in whole MiB.
fn create_blank(path: &Path, capacity: u64) -> std::io::Result<()> {
    // Exact for real volume sizes (< 2^53 bytes).
    let size = (capacity as f64 * (1.0 - FS_OVERHEAD)) as u64 / (1 << 20) * (1 << 20);
    let file = std::fs::File::create_new(path)?;
    file.set_len(size)
}

/// A Kubernetes quantity in bytes (the project's one quantity parser, rounded up as
/// Kubernetes' `Value()`); `None` for text outside the grammar or a negative value.
fn parse_bytes(text: &str) -> Option<u64> {
    let quantity = oxivirt_webhooks::Quantity::parse(text).ok()?;
    u64::try_from(quantity.value()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_sizes_parse() {
        assert_eq!(parse_bytes("1Gi"), Some(1 << 30));
        assert_eq!(parse_bytes("500M"), Some(500_000_000));
        assert_eq!(parse_bytes("x"), None);
    }

    #[test]
    fn a_blank_claim_disk_leaves_the_overhead_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        create_blank(&path, 1 << 30).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 967 << 20);
        assert!(
            create_blank(&path, 1 << 30).is_err(),
            "an existing disk is never replaced"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(!is_qcow2_volume(dir.path()));
        std::fs::write(dir.path().join("disk.img"), b"QFI\xfb\0\0\0\x03").unwrap();
        assert!(
            !is_qcow2_volume(dir.path()),
            "a qcow2 header written by a guest is still raw"
        );
        std::fs::write(dir.path().join(".disk-format"), "qcow2").unwrap();
        assert!(is_qcow2_volume(dir.path()));
    }
}
