//! Storage kinds outside CDI: CSI snapshots (`snapshot.storage.k8s.io/v1`, as the
//! external-snapshotter CRDs define them) and the hostpath provisioner operator's
//! `HostPathProvisioner` (`hostpathprovisioner.kubevirt.io/v1beta1`). Written by hand.

use serde_json::{json, Value};

use crate::crd::{Crd, Version};
use crate::printer;
use crate::schema::{
    array, boolean, cdi, conditions, date_time, doc, int_or_string, integer, object, one_of,
    open_object, required, root, spec_status, string, string_map, strings,
};

const SNAPSHOT: &str = "snapshot.storage.k8s.io";
const HPP: &str = "hostpathprovisioner.kubevirt.io";

fn deletion_policy() -> Value {
    one_of(&["Delete", "Retain"])
}

fn snapshot_error() -> Value {
    doc(
        object(json!({"message": string(), "time": date_time()})),
        "error is the last observed error during snapshot creation, if any.",
    )
}

fn volume_snapshot() -> Value {
    let source = object(json!({
        "persistentVolumeClaimName": doc(string(), "persistentVolumeClaimName specifies the name of the PersistentVolumeClaim object representing the volume from which a snapshot should be created."),
        "volumeSnapshotContentName": doc(string(), "volumeSnapshotContentName specifies the name of a pre-existing VolumeSnapshotContent object representing an existing volume snapshot."),
    }));
    let spec = required(
        object(json!({
            "source": doc(source, "source specifies where a snapshot will be created from."),
            "volumeSnapshotClassName": doc(string(), "VolumeSnapshotClassName is the name of the VolumeSnapshotClass requested by the VolumeSnapshot."),
        })),
        &["source"],
    );
    let status = object(json!({
        "boundVolumeSnapshotContentName": string(),
        "creationTime": date_time(),
        "error": snapshot_error(),
        "readyToUse": boolean(),
        "restoreSize": int_or_string(),
        "volumeGroupSnapshotName": string(),
    }));
    required(
        spec_status(
            "VolumeSnapshot is a user's request for either creating a point-in-time snapshot of a persistent volume, or binding to a pre-existing snapshot.",
            spec,
            status,
        ),
        &["spec"],
    )
}

fn volume_snapshot_class() -> Value {
    required(
        root(
            "VolumeSnapshotClass specifies parameters that a underlying storage system uses when creating a volume snapshot.",
            json!({
                "driver": doc(string(), "driver is the name of the storage driver that handles this VolumeSnapshotClass."),
                "deletionPolicy": doc(deletion_policy(), "deletionPolicy determines whether a VolumeSnapshotContent created through the VolumeSnapshotClass should be deleted when its bound VolumeSnapshot is deleted."),
                "parameters": doc(string_map(), "parameters is a key-value map with storage driver specific parameters for creating snapshots."),
            }),
        ),
        &["deletionPolicy", "driver"],
    )
}

fn volume_snapshot_content() -> Value {
    let reference = object(json!({
        "apiVersion": string(),
        "fieldPath": string(),
        "kind": string(),
        "name": string(),
        "namespace": string(),
        "resourceVersion": string(),
        "uid": string(),
    }));
    let spec = required(
        object(json!({
            "deletionPolicy": deletion_policy(),
            "driver": string(),
            "source": object(json!({"snapshotHandle": string(), "volumeHandle": string()})),
            "sourceVolumeMode": string(),
            "volumeSnapshotClassName": string(),
            "volumeSnapshotRef": reference,
        })),
        &["deletionPolicy", "driver", "source", "volumeSnapshotRef"],
    );
    let status = object(json!({
        "creationTime": doc(integer(), "creationTime is the timestamp when the point-in-time snapshot is taken by the underlying storage system, in nanoseconds since the epoch."),
        "error": snapshot_error(),
        "readyToUse": boolean(),
        "restoreSize": json!({"type": "integer", "minimum": 0}),
        "snapshotHandle": string(),
        "volumeGroupSnapshotHandle": string(),
    }));
    required(
        spec_status(
            "VolumeSnapshotContent represents the actual \"on-disk\" snapshot object in the underlying storage system",
            spec,
            status,
        ),
        &["spec"],
    )
}

fn host_path_provisioner() -> Value {
    let pool = required(
        object(json!({
            "name": doc(string(), "Name specifies an identifier that is used in the storage class arguments to identify the source path"),
            "path": doc(string(), "path the path to use on the host, this is required"),
            "pvcTemplate": doc(cdi("v1.PersistentVolumeClaimSpec"), "PVCTemplate is the template of the PVC to create as the storage pool"),
        })),
        &["name", "path"],
    );
    let spec = object(json!({
        "imagePullPolicy": one_of(&["Always", "IfNotPresent", "Never"]),
        "pathConfig": doc(object(json!({
            "path": doc(string(), "Path The path the directories for the PVs are created under"),
            "useNamingPrefix": doc(boolean(), "UseNamingPrefix Use the name of the PVC requesting the PV as part of the directory created"),
        })), "PathConfig describes the location and layout of PV storage on nodes. Deprecated"),
        "storagePools": doc(array(pool), "StoragePools are a list of storage pools"),
        "workload": doc(cdi("api.NodePlacement"), "Restrict on which nodes HPP workload pods will be scheduled"),
        "featureGates": doc(strings(), "FeatureGates are a list of specific enabled feature gates"),
    }));
    let status = open_object(json!({
        "conditions": conditions(),
        "observedVersion": string(),
        "operatorVersion": string(),
        "targetVersion": string(),
        "storagePoolStatuses": array(open_object(json!({"name": string(), "phase": string()}))),
    }));
    spec_status(
        "HostPathProvisioner is the Schema for the hostpathprovisioners API",
        spec,
        status,
    )
}

/// The snapshot.storage.k8s.io and hostpathprovisioner CRDs.
pub(crate) fn crds() -> Vec<Crd> {
    vec![
        Crd::new(SNAPSHOT, "VolumeSnapshot", "volumesnapshots")
            .short_names(&["vs"])
            .versions(vec![Version::storage("v1")])
            .schema(volume_snapshot())
            .columns(printer::volume_snapshot())
            .status_subresource(),
        Crd::new(SNAPSHOT, "VolumeSnapshotClass", "volumesnapshotclasses")
            .short_names(&["vsclass", "vsclasses"])
            .cluster_scoped()
            .versions(vec![Version::storage("v1")])
            .schema(volume_snapshot_class())
            .columns(printer::volume_snapshot_class()),
        Crd::new(SNAPSHOT, "VolumeSnapshotContent", "volumesnapshotcontents")
            .short_names(&["vsc", "vscs"])
            .cluster_scoped()
            .versions(vec![Version::storage("v1")])
            .schema(volume_snapshot_content())
            .columns(printer::volume_snapshot_content())
            .status_subresource(),
        Crd::new(HPP, "HostPathProvisioner", "hostpathprovisioners")
            .cluster_scoped()
            .versions(vec![Version::storage("v1beta1")])
            .schema(host_path_provisioner())
            .status_subresource(),
    ]
}
