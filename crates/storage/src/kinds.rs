//! The API resources this crate reads and writes, all handled as JSON (`DynamicObject`), and
//! the small helpers over Kubernetes JSON the reconcilers share.

use k8s_openapi::jiff::Timestamp;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// One served kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

impl Kind {
    /// The kube-rs resource description.
    pub fn resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk(self.group, self.version, self.kind);
        ApiResource::from_gvk_with_plural(&gvk, self.plural)
    }

    /// `apiVersion` as objects carry it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
        namespaced,
    }
}

pub const PVC: Kind = kind(
    "",
    "v1",
    "PersistentVolumeClaim",
    "persistentvolumeclaims",
    true,
);
pub const PV: Kind = kind("", "v1", "PersistentVolume", "persistentvolumes", false);
pub const POD: Kind = kind("", "v1", "Pod", "pods", true);
pub const NODE: Kind = kind("", "v1", "Node", "nodes", false);
pub const SECRET: Kind = kind("", "v1", "Secret", "secrets", true);
pub const CONFIG_MAP: Kind = kind("", "v1", "ConfigMap", "configmaps", true);
pub const STORAGE_CLASS: Kind = kind(
    "storage.k8s.io",
    "v1",
    "StorageClass",
    "storageclasses",
    false,
);
pub const DATA_VOLUME: Kind = kind(
    "cdi.kubevirt.io",
    "v1beta1",
    "DataVolume",
    "datavolumes",
    true,
);
pub const DATA_SOURCE: Kind = kind(
    "cdi.kubevirt.io",
    "v1beta1",
    "DataSource",
    "datasources",
    true,
);
pub const DATA_IMPORT_CRON: Kind = kind(
    "cdi.kubevirt.io",
    "v1beta1",
    "DataImportCron",
    "dataimportcrons",
    true,
);
pub const STORAGE_PROFILE: Kind = kind(
    "cdi.kubevirt.io",
    "v1beta1",
    "StorageProfile",
    "storageprofiles",
    false,
);
pub const CDI_CONFIG: Kind = kind(
    "cdi.kubevirt.io",
    "v1beta1",
    "CDIConfig",
    "cdiconfigs",
    false,
);
pub const HYPERCONVERGED: Kind = kind(
    "hco.kubevirt.io",
    "v1beta1",
    "HyperConverged",
    "hyperconvergeds",
    true,
);
pub const HOSTPATH_PROVISIONER: Kind = kind(
    "hostpathprovisioner.kubevirt.io",
    "v1beta1",
    "HostPathProvisioner",
    "hostpathprovisioners",
    false,
);
pub const VMI: Kind = kind(
    "kubevirt.io",
    "v1",
    "VirtualMachineInstance",
    "virtualmachineinstances",
    true,
);

/// The string at JSON pointer `path`, if any.
pub fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path).and_then(Value::as_str)
}

/// `metadata.name`.
pub fn name(v: &Value) -> &str {
    str_at(v, "/metadata/name").unwrap_or_default()
}

/// `metadata.namespace` (empty for cluster-scoped objects).
pub fn namespace(v: &Value) -> &str {
    str_at(v, "/metadata/namespace").unwrap_or_default()
}

/// `metadata.uid`.
pub fn uid(v: &Value) -> &str {
    str_at(v, "/metadata/uid").unwrap_or_default()
}

/// An annotation's value.
pub fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v["metadata"]["annotations"][key].as_str()
}

/// A label's value.
pub fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v["metadata"]["labels"][key].as_str()
}

/// `status.phase` (empty when unset).
pub fn phase(v: &Value) -> &str {
    str_at(v, "/status/phase").unwrap_or_default()
}

/// Whether the object has a deletion timestamp.
pub fn is_deleting(v: &Value) -> bool {
    v["metadata"]["deletionTimestamp"].is_string()
}

/// Now, as Kubernetes writes `metav1.Time`.
pub fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An ownerReference to `owner` (a controller reference when `controller`).
pub fn owner_ref(owner: &Value, kind: &Kind, controller: bool) -> Value {
    serde_json::json!({
        "apiVersion": kind.api_version(),
        "kind": kind.kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": controller,
        "blockOwnerDeletion": true,
    })
}

/// Whether `obj` has a controller ownerReference with uid `owner_uid`.
pub fn controlled_by(obj: &Value, owner_uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == owner_uid && r["controller"] == true)
        })
}
