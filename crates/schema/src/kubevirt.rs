//! KubeVirt's CRD schemas (`openAPIV3Schema` of each CRD version), embedded from `crds/`.
//!
//! The YAML files are upstream API facts extracted from KubeVirt's generated validations;
//! they are parsed once and cached.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::resource_doc::ResourceDoc;

/// Names and scope of one KubeVirt CRD, as its CRD manifest declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubevirtCrd {
    /// API group, e.g. `kubevirt.io`.
    pub group: &'static str,
    /// Served (and storage) version, e.g. `v1`.
    pub version: &'static str,
    /// Kind, e.g. `VirtualMachine`.
    pub kind: &'static str,
    /// Resource name, e.g. `virtualmachines`.
    pub plural: &'static str,
    /// Lower-case singular, e.g. `virtualmachine`.
    pub singular: &'static str,
    /// Short names for kubectl, e.g. `vm`.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    file: &'static str,
    text: &'static str,
}

macro_rules! crd {
    ($group:literal, $version:literal, $kind:literal, $plural:literal, $singular:literal,
     $short:expr, $categories:expr, $namespaced:literal, $file:literal) => {
        KubevirtCrd {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: $short,
            categories: $categories,
            namespaced: $namespaced,
            file: $file,
            text: include_str!(concat!("../crds/", $file)),
        }
    };
}

/// The embedded KubeVirt CRDs.
pub const KUBEVIRT_CRDS: [KubevirtCrd; 6] = [
    crd!(
        "kubevirt.io",
        "v1",
        "VirtualMachine",
        "virtualmachines",
        "virtualmachine",
        &["vm", "vms"],
        &["all"],
        true,
        "virtualmachine.openAPIV3Schema.yaml"
    ),
    crd!(
        "kubevirt.io",
        "v1",
        "VirtualMachineInstance",
        "virtualmachineinstances",
        "virtualmachineinstance",
        &["vmi", "vmis"],
        &["all"],
        true,
        "virtualmachineinstance.openAPIV3Schema.yaml"
    ),
    crd!(
        "kubevirt.io",
        "v1",
        "VirtualMachineInstanceMigration",
        "virtualmachineinstancemigrations",
        "virtualmachineinstancemigration",
        &["vmim", "vmims"],
        &["all"],
        true,
        "virtualmachineinstancemigration.openAPIV3Schema.yaml"
    ),
    crd!(
        "kubevirt.io",
        "v1",
        "VirtualMachineInstanceReplicaSet",
        "virtualmachineinstancereplicasets",
        "virtualmachineinstancereplicaset",
        &["vmirs", "vmirss"],
        &["all"],
        true,
        "virtualmachineinstancereplicaset.openAPIV3Schema.yaml"
    ),
    crd!(
        "pool.kubevirt.io",
        "v1beta1",
        "VirtualMachinePool",
        "virtualmachinepools",
        "virtualmachinepool",
        &["vmpool", "vmpools"],
        &["all"],
        true,
        "virtualmachinepool.openAPIV3Schema.yaml"
    ),
    crd!(
        "migrations.kubevirt.io",
        "v1alpha1",
        "MigrationPolicy",
        "migrationpolicies",
        "migrationpolicy",
        &[],
        &["all"],
        false,
        "migrationpolicy.openAPIV3Schema.yaml"
    ),
];

impl KubevirtCrd {
    /// Parses this CRD's embedded file into its `openAPIV3Schema` object.
    ///
    /// # Errors
    /// [`Error::EmbeddedSchema`] or [`Error::MissingOpenApiSchema`] if the embedded file is
    /// broken (a build-time mistake; the crate's tests parse every file).
    pub fn parse_schema(&self) -> Result<Value> {
        let doc: Value =
            serde_yaml::from_str(self.text).map_err(|source| Error::EmbeddedSchema {
                file: self.file,
                source,
            })?;
        match doc {
            Value::Object(mut map) => match map.remove("openAPIV3Schema") {
                Some(schema @ Value::Object(_)) => Ok(schema),
                _ => Err(Error::MissingOpenApiSchema { file: self.file }),
            },
            _ => Err(Error::MissingOpenApiSchema { file: self.file }),
        }
    }

    /// This CRD as a [`ResourceDoc`] for the OpenAPI documents.
    ///
    /// # Errors
    /// As [`Self::parse_schema`].
    pub fn resource_doc(&self) -> Result<ResourceDoc> {
        let schema = self.parse_schema()?;
        Ok(ResourceDoc::custom(
            self.group,
            self.version,
            self.kind,
            self.plural,
            self.namespaced,
            schema,
        ))
    }
}

fn cache() -> &'static BTreeMap<&'static str, Value> {
    static CACHE: OnceLock<BTreeMap<&'static str, Value>> = OnceLock::new();
    CACHE.get_or_init(|| {
        KUBEVIRT_CRDS
            .iter()
            .filter_map(|crd| Some((crd.kind, crd.parse_schema().ok()?)))
            .collect()
    })
}

/// The `openAPIV3Schema` of a KubeVirt kind (`VirtualMachine`, `VirtualMachineInstance`,
/// `VirtualMachineInstanceMigration`, `VirtualMachineInstanceReplicaSet`,
/// `VirtualMachinePool`, `MigrationPolicy`), or `None` for other kinds.
pub fn kubevirt_schema(kind: &str) -> Option<Value> {
    kubevirt_schema_ref(kind).cloned()
}

/// As [`kubevirt_schema`], borrowing the cached copy instead of cloning it.
pub fn kubevirt_schema_ref(kind: &str) -> Option<&'static Value> {
    cache().get(kind)
}

/// The embedded CRD entry for a kind.
pub fn kubevirt_crd(kind: &str) -> Option<&'static KubevirtCrd> {
    KUBEVIRT_CRDS.iter().find(|crd| crd.kind == kind)
}

/// [`ResourceDoc`]s of all embedded KubeVirt kinds whose schema parses.
pub fn kubevirt_resource_docs() -> Vec<ResourceDoc> {
    KUBEVIRT_CRDS
        .iter()
        .filter_map(|crd| {
            let schema = kubevirt_schema(crd.kind)?;
            Some(ResourceDoc::custom(
                crd.group,
                crd.version,
                crd.kind,
                crd.plural,
                crd.namespaced,
                schema,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_crd_file_parses_to_an_object_schema() {
        for crd in &KUBEVIRT_CRDS {
            let schema = crd.parse_schema().expect("embedded file parses");
            assert_eq!(schema["type"], "object", "{}", crd.kind);
            assert!(schema["properties"]["spec"].is_object(), "{}", crd.kind);
        }
    }

    #[test]
    fn unknown_kinds_have_no_kubevirt_schema() {
        assert!(kubevirt_schema("Pod").is_none());
        assert!(kubevirt_schema("VirtualMachine").is_some());
    }
}
