//! CDI's kinds: `cdi.kubevirt.io/v1beta1` and `upload.cdi.kubevirt.io/v1beta1`.
//!
//! DataVolume, DataSource, DataImportCron, CDIConfig, CDI and UploadTokenRequest come from
//! CDI's swagger. StorageProfile, the three volume populator sources and ObjectTransfer are
//! not in it, so they are written here from CDI's API types, reusing swagger definitions for
//! their parts (HTTP/registry/... sources, checkpoints).
//!
//! CDI's controllers write whole objects, so only ObjectTransfer has a status subresource.

use serde_json::{json, Value};

use crate::crd::{Crd, Version};
use crate::printer;
use crate::schema::{
    array, boolean, cdi, conditions, doc, object, one_of, required, spec_status, string,
    string_map, strings,
};
use crate::swagger;

const CDI: &str = "cdi.kubevirt.io";
const UPLOAD: &str = "upload.cdi.kubevirt.io";

/// Swagger definition behind each kind that has one, for the completeness tests.
pub(crate) const DEFINITIONS: [(&str, &str); 6] = [
    ("DataVolume", "v1beta1.DataVolume"),
    ("DataSource", "v1beta1.DataSource"),
    ("DataImportCron", "v1beta1.DataImportCron"),
    ("CDIConfig", "v1beta1.CDIConfig"),
    ("CDI", "v1beta1.CDI"),
    ("UploadTokenRequest", "v1beta1.UploadTokenRequest"),
];

fn from_swagger(group: &'static str, kind: &'static str, plural: &'static str) -> Crd {
    let definition = DEFINITIONS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("", |(_, d)| *d);
    Crd::new(group, kind, plural)
        .schema(swagger::cdi().kind_schema(definition))
        .versions(vec![Version::storage("v1beta1")])
}

fn hand_written(kind: &'static str, plural: &'static str, schema: Value) -> Crd {
    Crd::new(CDI, kind, plural)
        .schema(schema)
        .versions(vec![Version::storage("v1beta1")])
}

/// `claimPropertySets[]`: access modes and volume mode CDI should use for a storage class.
fn claim_property_sets() -> Value {
    array(object(json!({
        "accessModes": doc(strings(), "AccessModes contains the desired access modes the volume should have."),
        "volumeMode": doc(string(), "VolumeMode defines what type of volume is required by the claim."),
    })))
}

fn storage_profile() -> Value {
    let fields = json!({
        "claimPropertySets": claim_property_sets(),
        "cloneStrategy": doc(one_of(&["copy", "snapshot", "csi-clone"]), "CloneStrategy defines the preferred method for performing a CDI clone"),
        "dataImportCronSourceFormat": doc(one_of(&["pvc", "snapshot"]), "DataImportCronSourceFormat defines the format of the DataImportCron-created disk image sources"),
        "snapshotClass": doc(string(), "SnapshotClass is optional specific VolumeSnapshotClass for CloneStrategySnapshot. If not set, a VolumeSnapshotClass is chosen according to the provisioner."),
        "minimumSupportedPvcSize": doc(string(), "MinimumSupportedPvcSize is the minimum size of a PVC the storage class supports"),
    });
    let mut status = fields.clone();
    status["storageClass"] = doc(
        string(),
        "The StorageClass name for which capabilities are defined",
    );
    status["provisioner"] = doc(string(), "The Storage class provisioner plugin name");
    spec_status(
        "StorageProfile provides a CDI specific recommendation for storage parameters",
        doc(
            object(fields),
            "StorageProfileSpec defines specification for StorageProfile",
        ),
        doc(
            object(status),
            "StorageProfileStatus provides the most recently observed status of the StorageProfile",
        ),
    )
}

fn content_type() -> Value {
    doc(
        string(),
        "ContentType represents the type of the imported data (Kubevirt or archive)",
    )
}

fn volume_import_source() -> Value {
    let source = object(json!({
        "http": cdi("v1beta1.DataVolumeSourceHTTP"),
        "s3": cdi("v1beta1.DataVolumeSourceS3"),
        "registry": cdi("v1beta1.DataVolumeSourceRegistry"),
        "gcs": cdi("v1beta1.DataVolumeSourceGCS"),
        "blank": cdi("v1beta1.DataVolumeBlankImage"),
        "imageio": cdi("v1beta1.DataVolumeSourceImageIO"),
        "vddk": cdi("v1beta1.DataVolumeSourceVDDK"),
    }));
    let spec = object(json!({
        "source": doc(source, "Source is the src of the data to be imported in the target PVC"),
        "contentType": content_type(),
        "preallocation": doc(boolean(), "Preallocation controls whether storage for the target PVC should be allocated in advance."),
        "targetClaim": doc(string(), "TargetClaim the target PVC name (for warm migration)"),
        "checkpoints": doc(array(cdi("v1beta1.DataVolumeCheckpoint")), "Checkpoints is a list of DataVolumeCheckpoints, representing stages in a multistage import."),
        "finalCheckpoint": doc(boolean(), "FinalCheckpoint indicates whether the current DataVolumeCheckpoint is the final checkpoint."),
    }));
    spec_status(
        "VolumeImportSource works as a specification to populate PersistentVolumeClaims with data imported from an HTTP/S3/Registry/Blank/ImageIO/VDDK source",
        spec,
        object(json!({})),
    )
}

fn volume_upload_source() -> Value {
    let spec = object(json!({
        "contentType": content_type(),
        "preallocation": doc(boolean(), "Preallocation controls whether storage for the target PVC should be allocated in advance."),
    }));
    spec_status(
        "VolumeUploadSource is a specification to populate PersistentVolumeClaims with upload data",
        spec,
        object(json!({})),
    )
}

fn volume_clone_source() -> Value {
    let spec = required(
        object(json!({
            "source": doc(cdi("v1.TypedLocalObjectReference"), "Source is the src of the data to be cloned to the target PVC"),
            "preallocation": doc(boolean(), "Preallocation controls whether storage for the target PVC should be allocated in advance."),
            "priorityClassName": doc(string(), "PriorityClassName is the priorityclass for the claim"),
        })),
        &["source"],
    );
    spec_status(
        "VolumeCloneSource refers to a PVC/VolumeSnapshot of any storageclass/volumemode to be used as the source of a new PVC",
        spec,
        object(json!({})),
    )
}

fn object_transfer() -> Value {
    let source = required(
        object(json!({
            "kind": string(),
            "namespace": string(),
            "name": string(),
            "requiredAnnotations": string_map(),
        })),
        &["kind", "namespace", "name"],
    );
    let target = object(json!({"namespace": string(), "name": string()}));
    let spec = required(
        object(json!({
            "source": doc(source, "TransferSource is the source of a ObjectTransfer"),
            "target": doc(target, "TransferTarget is the target of an ObjectTransfer"),
            "parentName": string(),
        })),
        &["source", "target"],
    );
    let status = object(json!({
        "data": string_map(),
        "phase": doc(one_of(&["", "Pending", "Running", "Complete", "Error"]), "Phase is the current phase of the transfer"),
        "conditions": conditions(),
    }));
    spec_status(
        "ObjectTransfer is the cluster scoped object transfer resource",
        spec,
        status,
    )
}

/// Every CDI CRD.
pub(crate) fn crds() -> Vec<Crd> {
    vec![
        from_swagger(CDI, "DataVolume", "datavolumes")
            .short_names(&["dv", "dvs"])
            .in_all()
            .columns(printer::data_volume()),
        from_swagger(CDI, "DataSource", "datasources")
            .short_names(&["das"])
            .in_all(),
        from_swagger(CDI, "DataImportCron", "dataimportcrons")
            .short_names(&["dic", "dics"])
            .in_all(),
        hand_written("StorageProfile", "storageprofiles", storage_profile()).cluster_scoped(),
        from_swagger(CDI, "CDIConfig", "cdiconfigs").cluster_scoped(),
        from_swagger(CDI, "CDI", "cdis")
            .short_names(&["cdi", "cdis"])
            .cluster_scoped()
            .columns(printer::age_and_phase()),
        hand_written(
            "VolumeImportSource",
            "volumeimportsources",
            volume_import_source(),
        ),
        hand_written(
            "VolumeUploadSource",
            "volumeuploadsources",
            volume_upload_source(),
        ),
        hand_written(
            "VolumeCloneSource",
            "volumeclonesources",
            volume_clone_source(),
        ),
        hand_written("ObjectTransfer", "objecttransfers", object_transfer())
            .short_names(&["ot", "ots"])
            .cluster_scoped()
            .columns(printer::object_transfer())
            .status_subresource(),
        from_swagger(UPLOAD, "UploadTokenRequest", "uploadtokenrequests")
            .short_names(&["utr", "utrs"]),
    ]
}
