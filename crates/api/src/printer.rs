//! Printer columns (`additionalPrinterColumns`) of the kinds we serve, as upstream declares
//! them: what `kubectl get` prints after NAME (priority 1 columns only with `-o wide`).

use serde_json::{json, Value};

const READY: &str = ".status.conditions[?(@.type=='Ready')].status";

/// One column: `kind` is the OpenAPI type (`string`, `integer`, `boolean`, `date`, ...).
fn column(name: &str, kind: &str, path: &str) -> Value {
    json!({"name": name, "type": kind, "jsonPath": path})
}

fn described(mut column: Value, description: &str) -> Value {
    column["description"] = json!(description);
    column
}

fn wide(mut column: Value) -> Value {
    column["priority"] = json!(1);
    column
}

fn age() -> Value {
    column("Age", "date", ".metadata.creationTimestamp")
}

fn phase() -> Value {
    column("Phase", "string", ".status.phase")
}

/// `vm`: AGE, STATUS, READY.
pub(crate) fn virtual_machine() -> Vec<Value> {
    vec![
        age(),
        described(
            column("Status", "string", ".status.printableStatus"),
            "Human Readable Status",
        ),
        column("Ready", "string", READY),
    ]
}

/// `vmi`: AGE, PHASE, IP, NODENAME, READY; wide adds LIVE-MIGRATABLE and PAUSED.
pub(crate) fn virtual_machine_instance() -> Vec<Value> {
    vec![
        age(),
        phase(),
        column("IP", "string", ".status.interfaces[0].ipAddress"),
        column("NodeName", "string", ".status.nodeName"),
        column("Ready", "string", READY),
        wide(column(
            "Live-Migratable",
            "string",
            ".status.conditions[?(@.type=='LiveMigratable')].status",
        )),
        wide(column(
            "Paused",
            "string",
            ".status.conditions[?(@.type=='Paused')].status",
        )),
    ]
}

/// `vmim`: PHASE, VMI.
pub(crate) fn migration() -> Vec<Value> {
    vec![
        described(phase(), "The current phase of VM instance migration"),
        described(
            column("VMI", "string", ".spec.vmiName"),
            "The name of the VMI to perform the migration on",
        ),
    ]
}

/// `vmirs` and `vmpool`: DESIRED, CURRENT, READY, AGE; `what` names the replicas.
pub(crate) fn replicas(what: &str) -> Vec<Value> {
    vec![
        described(
            column("Desired", "integer", ".spec.replicas"),
            &format!("Number of desired {what}"),
        ),
        described(
            column("Current", "integer", ".status.replicas"),
            &format!("Number of managed and not final or deleted {what}"),
        ),
        described(
            column("Ready", "integer", ".status.readyReplicas"),
            &format!("Number of managed {what} which are ready to receive traffic"),
        ),
        age(),
    ]
}

/// `kv` and `cdi`: AGE, PHASE.
pub(crate) fn age_and_phase() -> Vec<Value> {
    vec![age(), phase()]
}

/// `vmsnapshot`: SOURCEKIND, SOURCENAME, PHASE, READYTOUSE, CREATIONTIME, ERROR.
pub(crate) fn vm_snapshot() -> Vec<Value> {
    vec![
        column("SourceKind", "string", ".spec.source.kind"),
        column("SourceName", "string", ".spec.source.name"),
        phase(),
        column("ReadyToUse", "boolean", ".status.readyToUse"),
        column("CreationTime", "date", ".status.creationTime"),
        column("Error", "string", ".status.error.message"),
    ]
}

/// `vmsnapshotcontent`: READYTOUSE, CREATIONTIME, ERROR.
pub(crate) fn vm_snapshot_content() -> Vec<Value> {
    vec![
        column("ReadyToUse", "boolean", ".status.readyToUse"),
        column("CreationTime", "date", ".status.creationTime"),
        column("Error", "string", ".status.error.message"),
    ]
}

/// `vmrestore`: TARGETKIND, TARGETNAME, COMPLETE, RESTORETIME (a restore status has no
/// `error`, so upstream dropped the ERROR column).
pub(crate) fn vm_restore() -> Vec<Value> {
    vec![
        column("TargetKind", "string", ".spec.target.kind"),
        column("TargetName", "string", ".spec.target.name"),
        column("Complete", "boolean", ".status.complete"),
        column("RestoreTime", "date", ".status.restoreTime"),
    ]
}

/// `vmexport`: SOURCEKIND, SOURCENAME, PHASE.
pub(crate) fn vm_export() -> Vec<Value> {
    vec![
        column("SourceKind", "string", ".spec.source.kind"),
        column("SourceName", "string", ".spec.source.name"),
        phase(),
    ]
}

/// `vmclone`: PHASE, SOURCEVIRTUALMACHINE, TARGETVIRTUALMACHINE.
pub(crate) fn vm_clone() -> Vec<Value> {
    vec![
        phase(),
        column("SourceVirtualMachine", "string", ".spec.source.name"),
        column("TargetVirtualMachine", "string", ".spec.target.name"),
    ]
}

/// `dv`: PHASE, PROGRESS, RESTARTS, AGE.
pub(crate) fn data_volume() -> Vec<Value> {
    vec![
        described(phase(), "The phase the data volume is in"),
        described(
            column("Progress", "string", ".status.progress"),
            "Transfer progress in percentage if known, N/A otherwise",
        ),
        described(
            column("Restarts", "integer", ".status.restartCount"),
            "The number of times the transfer has been restarted.",
        ),
        age(),
    ]
}

/// `ot` (ObjectTransfer): AGE, PHASE.
pub(crate) fn object_transfer() -> Vec<Value> {
    vec![age(), described(phase(), "The phase of the ObjectTransfer")]
}

/// `hco`: AGE.
pub(crate) fn age_only() -> Vec<Value> {
    vec![age()]
}

/// `nncp`: STATUS (the true condition's type), REASON.
pub(crate) fn node_network_configuration_policy() -> Vec<Value> {
    vec![
        described(
            column(
                "Status",
                "string",
                ".status.conditions[?(@.status==\"True\")].type",
            ),
            "Status",
        ),
        described(
            column(
                "Reason",
                "string",
                ".status.conditions[?(@.status==\"True\")].reason",
            ),
            "Reason",
        ),
    ]
}

/// `vs` (VolumeSnapshot), as external-snapshotter declares it.
pub(crate) fn volume_snapshot() -> Vec<Value> {
    vec![
        described(
            column("ReadyToUse", "boolean", ".status.readyToUse"),
            "Indicates if the snapshot is ready to be used to restore a volume.",
        ),
        described(
            column(
                "SourcePVC",
                "string",
                ".spec.source.persistentVolumeClaimName",
            ),
            "If a new snapshot needs to be created, this contains the name of the source PVC from which this snapshot was (or will be) created.",
        ),
        described(
            column(
                "SourceSnapshotContent",
                "string",
                ".spec.source.volumeSnapshotContentName",
            ),
            "If a snapshot already exists, this contains the name of the existing VolumeSnapshotContent object representing the existing snapshot.",
        ),
        described(
            column("RestoreSize", "string", ".status.restoreSize"),
            "Represents the minimum size of volume required to rehydrate from this snapshot.",
        ),
        described(
            column("SnapshotClass", "string", ".spec.volumeSnapshotClassName"),
            "The name of the VolumeSnapshotClass requested by the VolumeSnapshot.",
        ),
        described(
            column(
                "SnapshotContent",
                "string",
                ".status.boundVolumeSnapshotContentName",
            ),
            "Name of the VolumeSnapshotContent object to which the VolumeSnapshot object intends to bind to. Please note that verification of binding actually requires checking both VolumeSnapshot and VolumeSnapshotContent to ensure both are pointing at each other. Binding MUST be verified prior to usage of this object.",
        ),
        described(
            column("CreationTime", "date", ".status.creationTime"),
            "Timestamp when the point-in-time snapshot was taken by the underlying storage system.",
        ),
        age(),
    ]
}

/// `vsclass` (VolumeSnapshotClass): DRIVER, DELETIONPOLICY, AGE.
pub(crate) fn volume_snapshot_class() -> Vec<Value> {
    vec![
        column("Driver", "string", ".driver"),
        described(
            column("DeletionPolicy", "string", ".deletionPolicy"),
            "Determines whether a VolumeSnapshotContent created through the VolumeSnapshotClass should be deleted when its bound VolumeSnapshot is deleted.",
        ),
        age(),
    ]
}

/// `vsc` (VolumeSnapshotContent).
pub(crate) fn volume_snapshot_content() -> Vec<Value> {
    vec![
        described(
            column("ReadyToUse", "boolean", ".status.readyToUse"),
            "Indicates if the snapshot is ready to be used to restore a volume.",
        ),
        described(
            column("RestoreSize", "integer", ".status.restoreSize"),
            "Represents the complete size of the snapshot in bytes",
        ),
        described(
            column("DeletionPolicy", "string", ".spec.deletionPolicy"),
            "Determines whether this VolumeSnapshotContent and its physical snapshot on the underlying storage system should be deleted when its bound VolumeSnapshot is deleted.",
        ),
        described(
            column("Driver", "string", ".spec.driver"),
            "Name of the CSI driver used to create the physical snapshot on the underlying storage system.",
        ),
        described(
            column(
                "VolumeSnapshotClass",
                "string",
                ".spec.volumeSnapshotClassName",
            ),
            "Name of the VolumeSnapshotClass to which this snapshot belongs.",
        ),
        described(
            column("VolumeSnapshot", "string", ".spec.volumeSnapshotRef.name"),
            "Name of the VolumeSnapshot object to which this VolumeSnapshotContent object is bound.",
        ),
        described(
            column(
                "VolumeSnapshotNamespace",
                "string",
                ".spec.volumeSnapshotRef.namespace",
            ),
            "Namespace of the VolumeSnapshot object to which this VolumeSnapshotContent object is bound.",
        ),
        age(),
    ]
}
