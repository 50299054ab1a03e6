//! KubeVirt's kinds: `kubevirt.io` and its satellite groups (pool, instancetype, migrations,
//! snapshot, export, clone). Schemas come from KubeVirt's swagger; names, versions,
//! subresources and columns are upstream's (see `docs/api-compat.md` for the doubtful ones).

use serde_json::Value;

use crate::crd::{Crd, Version};
use crate::printer;
use crate::swagger;

const CORE: &str = "kubevirt.io";
const POOL: &str = "pool.kubevirt.io";
const INSTANCETYPE: &str = "instancetype.kubevirt.io";
const MIGRATIONS: &str = "migrations.kubevirt.io";
const SNAPSHOT: &str = "snapshot.kubevirt.io";
const EXPORT: &str = "export.kubevirt.io";
const CLONE: &str = "clone.kubevirt.io";

/// Swagger definition behind each kind, for the completeness tests.
pub(crate) const DEFINITIONS: [(&str, &str); 17] = [
    ("VirtualMachine", "v1.VirtualMachine"),
    ("VirtualMachineInstance", "v1.VirtualMachineInstance"),
    (
        "VirtualMachineInstanceMigration",
        "v1.VirtualMachineInstanceMigration",
    ),
    (
        "VirtualMachineInstanceReplicaSet",
        "v1.VirtualMachineInstanceReplicaSet",
    ),
    (
        "VirtualMachineInstancePreset",
        "v1.VirtualMachineInstancePreset",
    ),
    ("KubeVirt", "v1.KubeVirt"),
    ("VirtualMachinePool", "v1beta1.VirtualMachinePool"),
    (
        "VirtualMachineInstancetype",
        "v1beta1.VirtualMachineInstancetype",
    ),
    (
        "VirtualMachineClusterInstancetype",
        "v1beta1.VirtualMachineClusterInstancetype",
    ),
    (
        "VirtualMachinePreference",
        "v1beta1.VirtualMachinePreference",
    ),
    (
        "VirtualMachineClusterPreference",
        "v1beta1.VirtualMachineClusterPreference",
    ),
    ("MigrationPolicy", "v1alpha1.MigrationPolicy"),
    ("VirtualMachineSnapshot", "v1beta1.VirtualMachineSnapshot"),
    (
        "VirtualMachineSnapshotContent",
        "v1beta1.VirtualMachineSnapshotContent",
    ),
    ("VirtualMachineRestore", "v1beta1.VirtualMachineRestore"),
    ("VirtualMachineExport", "v1.VirtualMachineExport"),
    ("VirtualMachineClone", "v1beta1.VirtualMachineClone"),
];

fn schema_of(kind: &str) -> Value {
    let definition = DEFINITIONS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("", |(_, d)| *d);
    swagger::kubevirt().kind_schema(definition)
}

/// A KubeVirt kind with its schema from swagger. Most KubeVirt CRDs are in category `all`;
/// the cluster-scoped instancetypes and preferences and MigrationPolicy are not.
fn kind(group: &'static str, kind: &'static str, plural: &'static str) -> Crd {
    Crd::new(group, kind, plural).schema(schema_of(kind))
}

/// `kubevirt.io`: `v1` stored, `v1alpha3` still served but deprecated.
fn core_versions() -> Vec<Version> {
    vec![
        Version::storage("v1"),
        Version::served("v1alpha3").deprecated(
            "kubevirt.io/v1alpha3 is now deprecated and will be removed in a future release.",
        ),
    ]
}

/// `instancetype.kubevirt.io`: upstream dropped `v1alpha1`/`v1alpha2`; only `v1beta1` is left.
fn instancetype_versions() -> Vec<Version> {
    vec![Version::storage("v1beta1")]
}

fn beta_and_alpha() -> Vec<Version> {
    vec![Version::storage("v1beta1"), Version::served("v1alpha1")]
}

/// The `kubevirt.io` kinds.
fn core() -> Vec<Crd> {
    let preset_warning = |version: &str| {
        format!(
            "kubevirt.io/{version} VirtualMachineInstancePresets is now deprecated and will be removed in v2."
        )
    };
    vec![
        kind(CORE, "VirtualMachine", "virtualmachines")
            .short_names(&["vm", "vms"])
            .in_all()
            .versions(core_versions())
            .columns(printer::virtual_machine())
            .status_subresource(),
        // Upstream's VMI CRD has no status subresource: virt-handler writes the whole object.
        kind(CORE, "VirtualMachineInstance", "virtualmachineinstances")
            .short_names(&["vmi", "vmis"])
            .in_all()
            .versions(core_versions())
            .columns(printer::virtual_machine_instance()),
        kind(
            CORE,
            "VirtualMachineInstanceMigration",
            "virtualmachineinstancemigrations",
        )
        .short_names(&["vmim", "vmims"])
        .in_all()
        .versions(core_versions())
        .columns(printer::migration())
        .status_subresource(),
        kind(
            CORE,
            "VirtualMachineInstanceReplicaSet",
            "virtualmachineinstancereplicasets",
        )
        .short_names(&["vmirs", "vmirss"])
        .in_all()
        .versions(core_versions())
        .columns(printer::replicas("VirtualMachineInstances"))
        .status_subresource()
        .scale_subresource(),
        // Presets still store v1alpha3 upstream; both versions warn.
        kind(
            CORE,
            "VirtualMachineInstancePreset",
            "virtualmachineinstancepresets",
        )
        .short_names(&["vmipreset", "vmipresets"])
        .in_all()
        .versions(vec![
            Version::storage("v1alpha3").deprecated(preset_warning("v1alpha3")),
            Version::served("v1").deprecated(preset_warning("v1")),
        ]),
        kind(CORE, "KubeVirt", "kubevirts")
            .short_names(&["kv", "kvs"])
            .in_all()
            .versions(core_versions())
            .columns(printer::age_and_phase())
            .status_subresource(),
    ]
}

/// Pools, instancetypes, preferences and migration policies.
fn satellites() -> Vec<Crd> {
    vec![
        kind(POOL, "VirtualMachinePool", "virtualmachinepools")
            .short_names(&["vmpool", "vmpools"])
            .in_all()
            .versions(beta_and_alpha())
            .columns(printer::replicas("VirtualMachines"))
            .status_subresource()
            .scale_subresource(),
        kind(
            INSTANCETYPE,
            "VirtualMachineInstancetype",
            "virtualmachineinstancetypes",
        )
        .short_names(&["vminstancetype", "vminstancetypes", "vmf", "vmfs"])
        .in_all()
        .versions(instancetype_versions()),
        kind(
            INSTANCETYPE,
            "VirtualMachineClusterInstancetype",
            "virtualmachineclusterinstancetypes",
        )
        .short_names(&[
            "vmclusterinstancetype",
            "vmclusterinstancetypes",
            "vmcf",
            "vmcfs",
        ])
        .cluster_scoped()
        .versions(instancetype_versions()),
        kind(
            INSTANCETYPE,
            "VirtualMachinePreference",
            "virtualmachinepreferences",
        )
        .short_names(&["vmpref", "vmprefs", "vmp", "vmps"])
        .in_all()
        .versions(instancetype_versions()),
        kind(
            INSTANCETYPE,
            "VirtualMachineClusterPreference",
            "virtualmachineclusterpreferences",
        )
        .short_names(&["vmcp", "vmcps"])
        .cluster_scoped()
        .versions(instancetype_versions()),
        kind(MIGRATIONS, "MigrationPolicy", "migrationpolicies")
            .cluster_scoped()
            .versions(vec![Version::storage("v1alpha1")])
            .status_subresource(),
    ]
}

/// Snapshots, restores, exports and clones.
fn data_protection() -> Vec<Crd> {
    let export_warning = |version: &str| {
        format!(
            "{EXPORT}/{version} VirtualMachineExport is now deprecated and will be removed in a future version."
        )
    };
    vec![
        kind(
            SNAPSHOT,
            "VirtualMachineSnapshot",
            "virtualmachinesnapshots",
        )
        .short_names(&["vmsnapshot", "vmsnapshots"])
        .in_all()
        .versions(beta_and_alpha())
        .columns(printer::vm_snapshot())
        .status_subresource(),
        kind(
            SNAPSHOT,
            "VirtualMachineSnapshotContent",
            "virtualmachinesnapshotcontents",
        )
        .short_names(&["vmsnapshotcontent", "vmsnapshotcontents"])
        .in_all()
        .versions(beta_and_alpha())
        .columns(printer::vm_snapshot_content())
        .status_subresource(),
        kind(SNAPSHOT, "VirtualMachineRestore", "virtualmachinerestores")
            .short_names(&["vmrestore", "vmrestores"])
            .in_all()
            .versions(beta_and_alpha())
            .columns(printer::vm_restore())
            .status_subresource(),
        // Upstream serves v1 and a deprecated v1beta1; v1alpha1 (which the manual uses) was
        // dropped upstream and is served here, deprecated, so the manual's YAML applies.
        kind(EXPORT, "VirtualMachineExport", "virtualmachineexports")
            .short_names(&["vmexport", "vmexports"])
            .in_all()
            .versions(vec![
                Version::storage("v1"),
                Version::served("v1beta1").deprecated(export_warning("v1beta1")),
                Version::served("v1alpha1").deprecated(export_warning("v1alpha1")),
            ])
            .columns(printer::vm_export())
            .status_subresource(),
        kind(CLONE, "VirtualMachineClone", "virtualmachineclones")
            .short_names(&["vmclone", "vmclones"])
            .in_all()
            .versions(beta_and_alpha())
            .columns(printer::vm_clone())
            .status_subresource(),
    ]
}

/// Every KubeVirt CRD.
pub(crate) fn crds() -> Vec<Crd> {
    let mut all = core();
    all.extend(satellites());
    all.extend(data_protection());
    all
}
