//! Names, scopes, versions and printer columns, as upstream declares them.

use serde_json::Value;

use crate::common::{crd, crds};

struct Expected {
    kind: &'static str,
    group: &'static str,
    plural: &'static str,
    cluster: bool,
    short: &'static [&'static str],
    all: bool,
    versions: &'static [&'static str],
}

const fn kind(
    kind: &'static str,
    group: &'static str,
    plural: &'static str,
    cluster: bool,
    short: &'static [&'static str],
    all: bool,
    versions: &'static [&'static str],
) -> Expected {
    Expected {
        kind,
        group,
        plural,
        cluster,
        short,
        all,
        versions,
    }
}

const KV: &str = "kubevirt.io";
const IT: &str = "instancetype.kubevirt.io";
const SNAP: &str = "snapshot.kubevirt.io";
const CDI: &str = "cdi.kubevirt.io";
const V1: &[&str] = &["v1", "v1alpha3"];
const BETA_ALPHA: &[&str] = &["v1beta1", "v1alpha1"];
const BETA: &[&str] = &["v1beta1"];

/// The full list of CRDs we install; the first version is the storage version.
#[rustfmt::skip]
const EXPECTED: &[Expected] = &[
    kind("VirtualMachine", KV, "virtualmachines", false, &["vm", "vms"], true, V1),
    kind("VirtualMachineInstance", KV, "virtualmachineinstances", false, &["vmi", "vmis"], true, V1),
    kind("VirtualMachineInstanceMigration", KV, "virtualmachineinstancemigrations", false, &["vmim", "vmims"], true, V1),
    kind("VirtualMachineInstanceReplicaSet", KV, "virtualmachineinstancereplicasets", false, &["vmirs", "vmirss"], true, V1),
    kind("VirtualMachineInstancePreset", KV, "virtualmachineinstancepresets", false, &["vmipreset", "vmipresets"], true, &["v1alpha3", "v1"]),
    kind("KubeVirt", KV, "kubevirts", false, &["kv", "kvs"], true, V1),
    kind("VirtualMachinePool", "pool.kubevirt.io", "virtualmachinepools", false, &["vmpool", "vmpools"], true, &["v1beta1", "v1alpha1"]),
    kind("VirtualMachineInstancetype", IT, "virtualmachineinstancetypes", false, &["vminstancetype", "vminstancetypes", "vmf", "vmfs"], true, BETA),
    kind("VirtualMachineClusterInstancetype", IT, "virtualmachineclusterinstancetypes", true, &["vmclusterinstancetype", "vmclusterinstancetypes", "vmcf", "vmcfs"], false, BETA),
    kind("VirtualMachinePreference", IT, "virtualmachinepreferences", false, &["vmpref", "vmprefs", "vmp", "vmps"], true, BETA),
    kind("VirtualMachineClusterPreference", IT, "virtualmachineclusterpreferences", true, &["vmcp", "vmcps"], false, BETA),
    kind("MigrationPolicy", "migrations.kubevirt.io", "migrationpolicies", true, &[], false, &["v1alpha1"]),
    kind("VirtualMachineSnapshot", SNAP, "virtualmachinesnapshots", false, &["vmsnapshot", "vmsnapshots"], true, BETA_ALPHA),
    kind("VirtualMachineSnapshotContent", SNAP, "virtualmachinesnapshotcontents", false, &["vmsnapshotcontent", "vmsnapshotcontents"], true, BETA_ALPHA),
    kind("VirtualMachineRestore", SNAP, "virtualmachinerestores", false, &["vmrestore", "vmrestores"], true, BETA_ALPHA),
    kind("VirtualMachineExport", "export.kubevirt.io", "virtualmachineexports", false, &["vmexport", "vmexports"], true, &["v1", "v1beta1", "v1alpha1"]),
    kind("VirtualMachineClone", "clone.kubevirt.io", "virtualmachineclones", false, &["vmclone", "vmclones"], true, BETA_ALPHA),
    kind("DataVolume", CDI, "datavolumes", false, &["dv", "dvs"], true, BETA),
    kind("DataSource", CDI, "datasources", false, &["das"], true, BETA),
    kind("DataImportCron", CDI, "dataimportcrons", false, &["dic", "dics"], true, BETA),
    kind("StorageProfile", CDI, "storageprofiles", true, &[], false, BETA),
    kind("CDIConfig", CDI, "cdiconfigs", true, &[], false, BETA),
    kind("CDI", CDI, "cdis", true, &["cdi", "cdis"], false, BETA),
    kind("VolumeImportSource", CDI, "volumeimportsources", false, &[], false, BETA),
    kind("VolumeUploadSource", CDI, "volumeuploadsources", false, &[], false, BETA),
    kind("VolumeCloneSource", CDI, "volumeclonesources", false, &[], false, BETA),
    kind("ObjectTransfer", CDI, "objecttransfers", true, &["ot", "ots"], false, BETA),
    kind("UploadTokenRequest", "upload.cdi.kubevirt.io", "uploadtokenrequests", false, &["utr", "utrs"], false, BETA),
    kind("VolumeSnapshot", "snapshot.storage.k8s.io", "volumesnapshots", false, &["vs"], false, &["v1"]),
    kind("VolumeSnapshotClass", "snapshot.storage.k8s.io", "volumesnapshotclasses", true, &["vsclass", "vsclasses"], false, &["v1"]),
    kind("VolumeSnapshotContent", "snapshot.storage.k8s.io", "volumesnapshotcontents", true, &["vsc", "vscs"], false, &["v1"]),
    kind("HostPathProvisioner", "hostpathprovisioner.kubevirt.io", "hostpathprovisioners", true, &[], false, BETA),
    kind("HyperConverged", "hco.kubevirt.io", "hyperconvergeds", false, &["hco", "hcos"], true, &["v1beta1", "v1"]),
    kind("NetworkAttachmentDefinition", "k8s.cni.cncf.io", "network-attachment-definitions", false, &["net-attach-def"], false, &["v1"]),
    kind("NodeNetworkConfigurationPolicy", "nmstate.io", "nodenetworkconfigurationpolicies", true, &["nncp"], false, &["v1", "v1beta1"]),
    kind("NodeNetworkState", "nmstate.io", "nodenetworkstates", true, &["nns"], false, &["v1beta1"]),
    kind("SriovNetworkNodePolicy", "sriovnetwork.openshift.io", "sriovnetworknodepolicies", false, &[], false, &["v1"]),
    kind("SriovNetwork", "sriovnetwork.openshift.io", "sriovnetworks", false, &[], false, &["v1"]),
    kind("Template", "template.openshift.io", "templates", false, &[], false, &["v1"]),
    kind("ServiceMonitor", "monitoring.coreos.com", "servicemonitors", false, &["smon"], false, &["v1"]),
    kind("PrometheusRule", "monitoring.coreos.com", "prometheusrules", false, &["promrule"], false, &["v1"]),
];

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn columns(kind: &str) -> Vec<(String, String, i64)> {
    crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .map(|c| {
                    let name = c["name"].as_str().unwrap_or_default().to_string();
                    let path = c["jsonPath"].as_str().unwrap_or_default().to_string();
                    (name, path, c["priority"].as_i64().unwrap_or(0))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn column_names(kind: &str) -> Vec<String> {
    columns(kind).into_iter().map(|(name, _, _)| name).collect()
}

#[test]
fn the_crd_list_is_exactly_the_expected_kinds_in_order() {
    let kinds: Vec<&str> = crds()
        .iter()
        .filter_map(|c| c["spec"]["names"]["kind"].as_str())
        .collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, expected);
}

#[test]
fn names_scopes_categories_and_versions_are_upstreams() {
    for e in EXPECTED {
        let crd = crd(e.kind);
        let spec = &crd["spec"];
        assert_eq!(
            crd["metadata"]["name"],
            format!("{}.{}", e.plural, e.group),
            "{}",
            e.kind
        );
        assert_eq!(spec["group"], e.group, "{}", e.kind);
        assert_eq!(spec["names"]["plural"], e.plural, "{}", e.kind);
        assert_eq!(
            spec["names"]["singular"],
            e.kind.to_lowercase(),
            "{}",
            e.kind
        );
        assert_eq!(
            spec["names"]["listKind"],
            format!("{}List", e.kind),
            "{}",
            e.kind
        );
        let scope = if e.cluster { "Cluster" } else { "Namespaced" };
        assert_eq!(spec["scope"], scope, "{}", e.kind);
        assert_eq!(strings(&spec["names"]["shortNames"]), e.short, "{}", e.kind);
        assert_eq!(
            strings(&spec["names"]["categories"]).contains(&"all"),
            e.all,
            "{}",
            e.kind
        );
        let versions: Vec<&str> = spec["versions"]
            .as_array()
            .map(|v| v.iter().filter_map(|v| v["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(versions, e.versions, "{}", e.kind);
        assert_eq!(spec["versions"][0]["storage"], true, "{}", e.kind);
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "oxivirt"
        );
    }
}

#[test]
fn short_names_are_unique() {
    let mut seen = std::collections::BTreeSet::new();
    for crd in crds() {
        for short in strings(&crd["spec"]["names"]["shortNames"]) {
            assert!(seen.insert(short), "{short} is used twice");
        }
    }
}

#[test]
fn deprecated_versions_carry_a_warning() {
    let deprecated = |kind: &str, version: &str| {
        crd(kind)["spec"]["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == version))
            .map(|v| {
                (
                    v["deprecated"] == true,
                    v["deprecationWarning"].as_str().unwrap_or("").to_string(),
                )
            })
            .unwrap_or_default()
    };
    assert_eq!(
        deprecated("VirtualMachine", "v1alpha3"),
        (
            true,
            "kubevirt.io/v1alpha3 is now deprecated and will be removed in a future release."
                .to_string()
        )
    );
    assert!(!deprecated("VirtualMachine", "v1").0);
    let (preset, warning) = deprecated("VirtualMachineInstancePreset", "v1");
    assert!(preset);
    assert_eq!(
        warning,
        "kubevirt.io/v1 VirtualMachineInstancePresets is now deprecated and will be removed in v2."
    );
    assert!(deprecated("VirtualMachineInstancePreset", "v1alpha3").0);
    assert_eq!(
        deprecated("VirtualMachineExport", "v1beta1").1,
        "export.kubevirt.io/v1beta1 VirtualMachineExport is now deprecated and will be removed in a future version."
    );
    assert!(!deprecated("VirtualMachineExport", "v1").0);
    assert!(!deprecated("VirtualMachineSnapshot", "v1alpha1").0);
}

#[test]
fn vm_vmi_and_vmim_print_upstreams_columns() {
    assert_eq!(column_names("VirtualMachine"), ["Age", "Status", "Ready"]);
    let vmi = columns("VirtualMachineInstance");
    let names: Vec<&str> = vmi.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Age",
            "Phase",
            "IP",
            "NodeName",
            "Ready",
            "Live-Migratable",
            "Paused"
        ]
    );
    assert_eq!(vmi[2].1, ".status.interfaces[0].ipAddress");
    let wide: Vec<&str> = vmi
        .iter()
        .filter(|c| c.2 == 1)
        .map(|c| c.0.as_str())
        .collect();
    assert_eq!(wide, ["Live-Migratable", "Paused"]);
    assert_eq!(
        columns("VirtualMachineInstanceMigration"),
        [
            ("Phase".to_string(), ".status.phase".to_string(), 0),
            ("VMI".to_string(), ".spec.vmiName".to_string(), 0)
        ]
    );
}

#[test]
fn other_kinds_print_upstreams_columns() {
    assert_eq!(
        column_names("VirtualMachineInstanceReplicaSet"),
        ["Desired", "Current", "Ready", "Age"]
    );
    assert_eq!(
        column_names("VirtualMachinePool"),
        ["Desired", "Current", "Ready", "Age"]
    );
    assert_eq!(column_names("KubeVirt"), ["Age", "Phase"]);
    assert_eq!(
        column_names("VirtualMachineSnapshot"),
        [
            "SourceKind",
            "SourceName",
            "Phase",
            "ReadyToUse",
            "CreationTime",
            "Error"
        ]
    );
    assert_eq!(
        column_names("VirtualMachineRestore"),
        ["TargetKind", "TargetName", "Complete", "RestoreTime"]
    );
    assert_eq!(
        column_names("VirtualMachineExport"),
        ["SourceKind", "SourceName", "Phase"]
    );
    assert_eq!(
        column_names("DataVolume"),
        ["Phase", "Progress", "Restarts", "Age"]
    );
    assert_eq!(columns("DataVolume")[2].1, ".status.restartCount");
    assert_eq!(
        column_names("NodeNetworkConfigurationPolicy"),
        ["Status", "Reason"]
    );
    assert_eq!(
        column_names("VolumeSnapshot"),
        [
            "ReadyToUse",
            "SourcePVC",
            "SourceSnapshotContent",
            "RestoreSize",
            "SnapshotClass",
            "SnapshotContent",
            "CreationTime",
            "Age"
        ]
    );
    assert_eq!(
        column_names("VolumeSnapshotClass"),
        ["Driver", "DeletionPolicy", "Age"]
    );
}

#[test]
fn status_and_scale_subresources_are_upstreams() {
    let subresources = |kind: &str| crd(kind)["spec"]["versions"][0]["subresources"].clone();
    assert_eq!(
        subresources("VirtualMachine")["status"],
        serde_json::json!({})
    );
    // virt-handler writes the whole VMI, so upstream's VMI CRD has no status subresource.
    assert!(subresources("VirtualMachineInstance").is_null());
    assert_eq!(
        subresources("VirtualMachineInstanceReplicaSet")["scale"]["specReplicasPath"],
        ".spec.replicas"
    );
    assert_eq!(
        subresources("VirtualMachinePool")["scale"]["statusReplicasPath"],
        ".status.replicas"
    );
    assert!(subresources("VirtualMachineInstancetype").is_null());
    assert_eq!(subresources("KubeVirt")["status"], serde_json::json!({}));
    // CDI's controllers write whole objects: only ObjectTransfer has a status subresource.
    assert!(subresources("DataVolume").is_null());
    assert_eq!(
        subresources("ObjectTransfer")["status"],
        serde_json::json!({})
    );
}
