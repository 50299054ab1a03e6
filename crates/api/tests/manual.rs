//! The manual's YAML snippets (`<shared>/spec/ch*.md`) for kinds we define, and the
//! constraints the manual states for SR-IOV and HCO.

use serde_json::{json, Value};

use crate::common::{check, crds, shared_dir, try_yaml_documents};

/// Every fenced block of the manual that parses as YAML and names a kind of ours, with
/// where it came from.
fn manual_objects() -> Vec<(String, Value)> {
    let dir = shared_dir().join("spec");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{} is readable ({e}); set OXIVIRT_SHARED_DIR",
                dir.display()
            )
        })
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("manual is readable");
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_string();
        for (index, block) in text.split("```").enumerate().filter(|(i, _)| i % 2 == 1) {
            let body = block.split_once('\n').map_or("", |(_, body)| body);
            let Some(docs) = try_yaml_documents(body) else {
                continue;
            };
            for object in docs {
                let kind = object["kind"].as_str().unwrap_or_default();
                if object["apiVersion"].is_string()
                    && crds().iter().any(|c| c["spec"]["names"]["kind"] == kind)
                {
                    out.push((format!("{file} block {}", index / 2 + 1), object));
                }
            }
        }
    }
    out
}

/// Whether a CRD serves the object's `apiVersion`.
fn served(object: &Value) -> bool {
    let Some((group, version)) = object["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
    else {
        return false;
    };
    crds().iter().any(|crd| {
        crd["spec"]["group"] == group
            && crd["spec"]["names"]["kind"] == object["kind"]
            && crd["spec"]["versions"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v["name"] == version))
    })
}

/// Manual blocks upstream would refuse as written, and why. Everything else must validate.
const KNOWN_BAD: &[(&str, &str)] = &[
    ("ch04-06.md block 16", "SriovNetworkNodePolicy template with <placeholders>"),
    ("ch08.md block 10", "SriovNetworkNodePolicy template with <placeholders>"),
    ("ch08.md block 11", "SriovNetwork template with <placeholders>"),
    ("ch07a.md block 12", "VolumeSnapshotClass fragment without deletionPolicy"),
    ("ch07c.md block 8", "HCO: spec.configuration.ksmConfiguration; upstream has spec.ksmConfiguration"),
    ("ch07c.md block 9", "HCO: spec.configuration.ksmConfiguration; upstream has spec.ksmConfiguration"),
    ("ch07c.md block 11", "HCO: spec.configuration.ksmConfiguration; upstream has spec.ksmConfiguration"),
    ("ch07c.md block 49", "HCO: nodeMediatedDeviceTypes mis-indented under spec"),
    ("ch09-11.md block 5", "HCO: dataImportCronTemplates[].spec.template.spec.storageClassName; upstream has .storage.storageClassName"),
    ("ch09-11.md block 20", "DataVolume fragment without spec"),
    ("ch12b-14.md block 2", "HCO: callout marker makes virtAPI the string \"5 ①\""),
    ("ch07a.md block 18", "VM fragment without domain"),
    ("ch07c.md block 1", "VM fragment: resources outside domain"),
    ("ch07c.md block 19", "VM fragment without devices"),
    ("ch07c.md block 28", "VM fragment without devices"),
    ("ch07c.md block 29", "VM fragment without devices"),
    ("ch07c.md block 43", "VM fragment: domain directly under spec"),
    ("ch07c.md block 55", "VM fragment: domain directly under spec"),
    ("ch07c.md block 67", "VM: disk fields mis-indented under disk"),
    ("ch08.md block 6", "VM fragment without domain"),
    ("ch08.md block 12", "VM fragment: domain directly under spec"),
    ("ch08.md block 17", "VM: interfaces and memory outside devices/domain"),
    ("ch08.md block 21", "VM: template outside spec"),
    ("ch09-11.md block 26", "VM fragment without domain"),
    ("ch09-11.md block 28", "VM fragment without template"),
    ("ch12a.md block 27", "VM fragment without domain"),
    ("ch12a.md block 28", "VM fragment without domain"),
    ("ch12a.md block 29", "VM fragment without domain"),
    ("ch12a.md block 31", "VM fragment without domain"),
    ("ch12b-14.md block 6", "VM: callout marker makes logSerialConsole a string"),
];

#[test]
fn manual_snippets_validate_except_the_known_bad_ones() {
    let mut failing = std::collections::BTreeMap::<String, Vec<String>>::new();
    let objects = manual_objects();
    for (place, object) in &objects {
        if !served(object) {
            failing
                .entry(place.clone())
                .or_default()
                .push(format!("{} is not served", object["apiVersion"]));
            continue;
        }
        let (unknown, errors) = check(object);
        for problem in unknown
            .iter()
            .map(|u| format!("unknown field {u}"))
            .chain(errors)
        {
            failing
                .entry(place.clone())
                .or_default()
                .push(format!("{}: {problem}", object["kind"]));
        }
    }
    assert!(
        objects.len() >= 90,
        "only {} manual objects found",
        objects.len()
    );
    let known: std::collections::BTreeSet<&str> =
        KNOWN_BAD.iter().map(|(place, _)| *place).collect();
    let unexpected: Vec<String> = failing
        .iter()
        .filter(|(place, _)| !known.contains(place.as_str()))
        .map(|(place, problems)| format!("{place}: {}", problems.join("; ")))
        .collect();
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
    let fixed: Vec<&&str> = known
        .iter()
        .filter(|place| !failing.contains_key(**place))
        .collect();
    assert!(
        fixed.is_empty(),
        "now valid, drop from KNOWN_BAD: {fixed:?}"
    );
}

fn sriov_policy(priority: Value, vendor: &str) -> Value {
    json!({
        "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": "policy-1", "namespace": "openshift-sriov-network-operator"},
        "spec": {
            "resourceName": "intel_nics_dpdk", "deviceType": "vfio-pci", "mtu": 9000, "numVfs": 4,
            "priority": priority,
            "nicSelector": {"vendor": vendor, "deviceID": "1572", "pfNames": ["eno3"], "rootDevices": ["0000:19:00.2"]},
            "nodeSelector": {"feature.node.kubernetes.io/network-sriov.capable": "true"},
        },
    })
}

#[test]
fn sriov_policy_priority_must_be_0_to_99() {
    for ok in [0, 10, 99] {
        assert_eq!(
            check(&sriov_policy(json!(ok), "8086")).1,
            Vec::<String>::new()
        );
    }
    for bad in [-1, 100] {
        let (_, errors) = check(&sriov_policy(json!(bad), "8086"));
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
        assert!(errors[0].starts_with("spec.priority"), "{errors:?}");
    }
}

#[test]
fn sriov_policy_vendor_is_a_plain_string_in_the_schema() {
    // The vendor allow-list is enforced by the admission rule, with the operator's wording.
    assert!(check(&sriov_policy(json!(99), "15b3")).1.is_empty());
    assert!(check(&sriov_policy(json!(99), "10de")).1.is_empty());
}

#[test]
fn sriov_network_vlan_must_be_0_to_4095() {
    let network = |vlan: i64| {
        json!({
            "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetwork",
            "metadata": {"name": "dpdk-sriovnetwork", "namespace": "openshift-sriov-network-operator"},
            "spec": {"resourceName": "intel_nics_dpdk", "networkNamespace": "dpdk-checkup-ns",
                     "spoofChk": "off", "trust": "on", "vlan": vlan},
        })
    };
    assert!(check(&network(0)).1.is_empty());
    assert!(check(&network(4095)).1.is_empty());
    for bad in [-1, 4096] {
        let (_, errors) = check(&network(bad));
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
        assert!(errors[0].starts_with("spec.vlan"), "{errors:?}");
    }
}

#[test]
fn an_empty_hyperconverged_gets_hcos_schema_defaults() {
    let mut hco = json!({
        "apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged",
        "metadata": {"name": "kubevirt-hyperconverged", "namespace": "openshift-cnv"},
        "spec": {},
    });
    let outcome = oxivirt_schema::process(
        crate::common::schema("HyperConverged"),
        &oxivirt_schema::Definitions::new(),
        &mut hco,
        oxivirt_schema::ProcessOptions::all(),
    );
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let spec = &hco["spec"];
    assert_eq!(
        spec["liveMigrationConfig"]["parallelMigrationsPerCluster"],
        5
    );
    assert_eq!(
        spec["liveMigrationConfig"]["parallelOutboundMigrationsPerNode"],
        2
    );
    assert_eq!(spec["liveMigrationConfig"]["progressTimeout"], 150);
    assert_eq!(spec["certConfig"]["ca"]["duration"], "48h0m0s");
    assert_eq!(
        spec["workloadUpdateStrategy"]["workloadUpdateMethods"],
        json!(["LiveMigrate"])
    );
    assert_eq!(spec["uninstallStrategy"], "BlockUninstallIfWorkloadsExist");
    assert_eq!(spec["featureGates"]["enableCommonBootImageImport"], true);
}

#[test]
fn unknown_hco_feature_gates_are_kept() {
    let hco = json!({
        "apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged",
        "metadata": {"name": "kubevirt-hyperconverged", "namespace": "openshift-cnv"},
        "spec": {"featureGates": {"VMPersistentState": true, "alignCPUs": true}},
    });
    assert_eq!(check(&hco), (vec![], vec![]));
    let bad = json!({
        "apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged",
        "metadata": {"name": "kubevirt-hyperconverged"},
        "spec": {"featureGates": {"alignCPUs": "yes"}},
    });
    assert_eq!(check(&bad).1.len(), 1);
}
