//! StorageProfiles (manual §9.2): one per StorageClass, same name, created empty; its status
//! says what CDI will use for claims of that class — the admin's `spec` where set, else what
//! CDI knows of the provisioner, else nothing (an unknown provisioner: the status holds only
//! `provisioner` and `storageClass`, and DataVolumes that need access or volume modes wait).

use serde_json::{json, Map, Value};

use crate::kinds::{name, STORAGE_CLASS, STORAGE_PROFILE};
use crate::world::World;

/// What CDI knows of a provisioner: claim property sets and the clone strategy it prefers.
struct Capabilities {
    claim_property_sets: &'static [(&'static [&'static str], &'static str)],
    clone_strategy: Option<&'static str>,
}

const RWO_FS: (&[&str], &str) = (&["ReadWriteOnce"], "Filesystem");
const RWX_FS: (&[&str], &str) = (&["ReadWriteMany"], "Filesystem");
const RWX_BLOCK: (&[&str], &str) = (&["ReadWriteMany"], "Block");
const RWO_BLOCK: (&[&str], &str) = (&["ReadWriteOnce"], "Block");

/// Upstream's table of recognised provisioners (the part a single host can meet, plus the
/// manual's Table 9.1 CSI-clone providers).
fn capabilities(provisioner: &str) -> Option<Capabilities> {
    let caps = |sets, clone| Capabilities {
        claim_property_sets: sets,
        clone_strategy: clone,
    };
    Some(match provisioner {
        // Ours clones natively in O(1) (qcow2 overlays, node::clone).
        // Block volumes are loop devices (node::block); Filesystem stays the default.
        p if crate::classes::is_ours(p) => caps(&[RWO_FS, RWO_BLOCK], Some("csi-clone")),
        "kubernetes.io/host-path" | "rancher.io/local-path" | "topolvm.cybozu.com" => {
            caps(&[RWO_FS], None)
        }
        "rook-ceph.rbd.csi.ceph.com" | "openshift-storage.rbd.csi.ceph.com" => {
            caps(&[RWX_BLOCK, RWO_BLOCK, RWO_FS], Some("snapshot"))
        }
        "cephfs.csi.ceph.com" | "openshift-storage.cephfs.csi.ceph.com" => {
            caps(&[RWX_FS], Some("csi-clone"))
        }
        "csi-vxflexos.dellemc.com"
        | "csi-isilon.dellemc.com"
        | "csi-powermax.dellemc.com"
        | "csi-powerstore.dellemc.com"
        | "hspc.csi.hitachi.com"
        | "csi.hpe.com"
        | "spectrumscale.csi.ibm.com" => caps(&[RWX_BLOCK, RWO_BLOCK, RWO_FS], Some("csi-clone")),
        _ => return None,
    })
}

/// The status a profile should have for `class`.
pub fn status_for(class: &Value, profile: &Value) -> Value {
    let provisioner = class["provisioner"].as_str().unwrap_or_default();
    let mut status = Map::new();
    status.insert("provisioner".into(), json!(provisioner));
    status.insert("storageClass".into(), json!(name(class)));
    let spec = &profile["spec"];
    // A shared-directory class of ours is reachable from every node: ReadWriteMany.
    let known = match crate::classes::shared_path(class) {
        Some(_) => Some(Capabilities {
            claim_property_sets: &[RWX_FS, RWO_FS],
            clone_strategy: Some("csi-clone"),
        }),
        None => capabilities(provisioner),
    };
    let sets = match (spec["claimPropertySets"].as_array(), &known) {
        (Some(sets), _) if !sets.is_empty() => Some(Value::Array(sets.clone())),
        (_, Some(caps)) => Some(Value::Array(
            caps.claim_property_sets
                .iter()
                .map(|(modes, mode)| json!({"accessModes": modes, "volumeMode": mode}))
                .collect(),
        )),
        _ => None,
    };
    if let Some(sets) = sets {
        status.insert("claimPropertySets".into(), sets);
    }
    let clone = spec["cloneStrategy"]
        .as_str()
        .or_else(|| known.as_ref().and_then(|k| k.clone_strategy));
    if let Some(clone) = clone {
        status.insert("cloneStrategy".into(), json!(clone));
    }
    if let Some(format) = spec["dataImportCronSourceFormat"].as_str() {
        status.insert("dataImportCronSourceFormat".into(), json!(format));
    } else if known.is_some() {
        status.insert("dataImportCronSourceFormat".into(), json!("pvc"));
    }
    if let Some(class) = spec["snapshotClass"].as_str() {
        status.insert("snapshotClass".into(), json!(class));
    }
    Value::Object(status)
}

/// The access and volume modes CDI picks for a claim of `class` when a DataVolume's
/// `storage` leaves them out: the first claim property set of the profile's status.
pub fn claim_defaults(world: &World, class: &str) -> Option<(Vec<String>, String)> {
    let profile = world.get(STORAGE_PROFILE, "", class)?;
    let set = profile["status"]["claimPropertySets"].get(0)?;
    let modes: Vec<String> = set["accessModes"]
        .as_array()?
        .iter()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    let mode = set["volumeMode"]
        .as_str()
        .unwrap_or("Filesystem")
        .to_string();
    (!modes.is_empty()).then_some((modes, mode))
}

/// Creates missing profiles, refreshes their status, and deletes profiles whose class is
/// gone. Idempotent.
pub async fn reconcile(client: &kube::Client, world: &World) {
    let classes = world.list(STORAGE_CLASS);
    for class in &classes {
        let existing = world.get(STORAGE_PROFILE, "", name(class));
        let profile = existing.clone().unwrap_or_else(|| {
            json!({
                "apiVersion": STORAGE_PROFILE.api_version(), "kind": STORAGE_PROFILE.kind,
                "metadata": {"name": name(class), "labels": {crate::well_known::APP_LABEL: crate::well_known::CDI_APP}},
                "spec": {},
            })
        });
        let status = status_for(class, &profile);
        if profile["status"] == status {
            continue;
        }
        let result = match existing {
            None => {
                let mut created = profile;
                created["status"] = status;
                crate::ops::create(client, STORAGE_PROFILE, &created)
                    .await
                    .map(|_| ())
            }
            Some(mut current) => {
                // A replace (not a merge) so keys the new status lacks disappear.
                current["status"] = status;
                crate::ops::replace(client, STORAGE_PROFILE, &current).await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot write a StorageProfile");
        }
    }
    for profile in world.list(STORAGE_PROFILE) {
        if !classes.iter().any(|c| name(c) == name(&profile)) {
            if let Err(e) = crate::ops::delete(client, STORAGE_PROFILE, "", name(&profile)).await {
                tracing::warn!(error = %e, "cannot delete an orphaned StorageProfile");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(provisioner: &str) -> Value {
        json!({"metadata": {"name": "c"}, "provisioner": provisioner})
    }

    #[test]
    fn an_unknown_provisioner_gets_only_its_names() {
        let status = status_for(&class("example.com/unknown"), &json!({"spec": {}}));
        assert_eq!(
            status,
            json!({"provisioner": "example.com/unknown", "storageClass": "c"})
        );
    }

    #[test]
    fn the_hostpath_provisioner_offers_rwo_filesystem() {
        let status = status_for(&class(crate::well_known::PROVISIONER), &json!({"spec": {}}));
        assert_eq!(
            status["claimPropertySets"],
            json!([
                {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"},
                {"accessModes": ["ReadWriteOnce"], "volumeMode": "Block"},
            ])
        );
        assert_eq!(status["dataImportCronSourceFormat"], "pvc");
    }

    #[test]
    fn a_shared_directory_class_offers_rwx_first_and_a_relative_path_is_ignored() {
        let mut shared = class(crate::well_known::PROVISIONER);
        shared["parameters"] = json!({"sharedPath": "/mnt/shared"});
        let status = status_for(&shared, &json!({"spec": {}}));
        assert_eq!(
            status["claimPropertySets"][0],
            json!({"accessModes": ["ReadWriteMany"], "volumeMode": "Filesystem"})
        );
        shared["parameters"] = json!({"sharedPath": "../x"});
        let status = status_for(&shared, &json!({"spec": {}}));
        assert_eq!(
            status["claimPropertySets"][0]["accessModes"][0],
            "ReadWriteOnce"
        );
        let mut foreign = class("example.com/unknown");
        foreign["parameters"] = json!({"sharedPath": "/mnt/shared"});
        assert!(crate::classes::shared_path(&foreign).is_none());
    }

    #[test]
    fn the_admins_spec_wins_over_what_cdi_knows() {
        let profile = json!({"spec": {
            "claimPropertySets": [{"accessModes": ["ReadWriteMany"], "volumeMode": "Block"}],
            "cloneStrategy": "csi-clone",
            "dataImportCronSourceFormat": "snapshot",
        }});
        let status = status_for(&class("example.com/unknown"), &profile);
        assert_eq!(status["claimPropertySets"][0]["volumeMode"], "Block");
        assert_eq!(status["cloneStrategy"], "csi-clone");
        assert_eq!(status["dataImportCronSourceFormat"], "snapshot");
    }
}
