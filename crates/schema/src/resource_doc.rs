//! [`ResourceDoc`]: everything the OpenAPI builders need to know about one served resource.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// All verbs of a fully featured resource, in Kubernetes discovery order.
pub const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One resource (a kind served under a group/version) for the OpenAPI documents.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDoc {
    /// API group; empty for the core group.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `VirtualMachine`.
    pub kind: String,
    /// Resource name in URLs, e.g. `virtualmachines`.
    pub plural: String,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Component name of the root schema, e.g. `io.kubevirt.v1.VirtualMachine` or
    /// `io.k8s.api.core.v1.Pod`.
    pub schema_name: String,
    /// The root schema.
    pub schema: Value,
    /// Named schemas the root references, transitively (may include the root itself).
    pub definitions: BTreeMap<String, Value>,
    /// Kind of the list type, e.g. `VirtualMachineList`.
    pub list_kind: String,
    /// Supported verbs (see [`ALL_VERBS`]).
    pub verbs: Vec<String>,
    /// Whether a `status` subresource is served.
    pub has_status: bool,
}

impl ResourceDoc {
    /// A custom resource (CRD-style, self-contained schema): schema name from
    /// [`crd_schema_name`], list kind `<Kind>List`, all verbs, and a `status` subresource when
    /// the schema has a `status` property.
    pub fn custom(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        schema: Value,
    ) -> Self {
        let has_status = schema
            .get("properties")
            .and_then(|p| p.get("status"))
            .is_some();
        Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
            schema_name: crd_schema_name(group, version, kind),
            schema,
            definitions: BTreeMap::new(),
            list_kind: format!("{kind}List"),
            verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
            has_status,
        }
    }

    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The OpenAPI v3 document key of this resource's group/version: `api/v1` or
    /// `apis/kubevirt.io/v1`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("api/{}", self.version)
        } else {
            format!("apis/{}/{}", self.group, self.version)
        }
    }

    /// Component name of the list schema: the root schema name with the kind replaced by the
    /// list kind (`io.k8s.api.core.v1.PodList`).
    pub fn list_schema_name(&self) -> String {
        match self.schema_name.rsplit_once('.') {
            Some((prefix, _)) => format!("{prefix}.{}", self.list_kind),
            None => self.list_kind.clone(),
        }
    }

    /// Whether `verb` is among [`Self::verbs`].
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// The `x-kubernetes-group-version-kind` entry for this kind.
    pub fn gvk(&self) -> Value {
        gvk(&self.group, &self.version, &self.kind)
    }

    /// The list schema (`items` of the root kind, `metadata` of `ListMeta`), refs in v3 style.
    pub(crate) fn list_schema(&self) -> Value {
        json!({
            "description": format!("{} is a list of {} objects.", self.list_kind, self.kind),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {
                    "description": "APIVersion names the versioned schema of this object.",
                    "type": "string",
                },
                "items": {
                    "description": format!("The {} objects.", self.kind),
                    "type": "array",
                    "items": {"$ref": format!("#/components/schemas/{}", self.schema_name)},
                },
                "kind": {
                    "description": "Kind names the REST resource this object represents.",
                    "type": "string",
                },
                "metadata": {
                    "description": "Standard list metadata.",
                    "allOf": [{"$ref": format!("#/components/schemas/{LIST_META}")}],
                    "default": {},
                },
            },
            "x-kubernetes-group-version-kind": [gvk(&self.group, &self.version, &self.list_kind)],
        })
    }
}

/// Schema name of `ObjectMeta`.
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
/// Schema name of `ListMeta`.
pub const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
/// Schema name of `Status`.
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
/// Schema name of `DeleteOptions`.
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
/// Schema name of `Patch`.
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

/// The OpenAPI component name Kubernetes gives a custom resource: the group's labels reversed,
/// then version and kind (`kubevirt.io`, `v1`, `VirtualMachine` → `io.kubevirt.v1.VirtualMachine`).
pub fn crd_schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').filter(|s| !s.is_empty()).rev().collect();
    if reversed.is_empty() {
        format!("{version}.{kind}")
    } else {
        format!("{}.{version}.{kind}", reversed.join("."))
    }
}

pub(crate) fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_schema_names_reverse_the_group() {
        assert_eq!(
            crd_schema_name("kubevirt.io", "v1", "VirtualMachine"),
            "io.kubevirt.v1.VirtualMachine"
        );
        assert_eq!(
            crd_schema_name("pool.kubevirt.io", "v1beta1", "VirtualMachinePool"),
            "io.kubevirt.pool.v1beta1.VirtualMachinePool"
        );
    }

    #[test]
    fn custom_docs_know_their_list_and_status() {
        let doc = ResourceDoc::custom(
            "kubevirt.io",
            "v1",
            "VirtualMachine",
            "virtualmachines",
            true,
            json!({"type": "object", "properties": {"status": {"type": "object"}}}),
        );
        assert!(doc.has_status);
        assert_eq!(doc.list_schema_name(), "io.kubevirt.v1.VirtualMachineList");
        assert_eq!(doc.group_version_path(), "apis/kubevirt.io/v1");
        assert_eq!(doc.api_version(), "kubevirt.io/v1");
    }
}
