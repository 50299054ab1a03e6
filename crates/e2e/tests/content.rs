//! What a fresh server ships (namespaces, the HyperConverged singleton, common cluster instance
//! types and preferences), how kubectl prints the kinds (upstream's short names, printer
//! columns and `all` category), and the `expand-spec` subresources.

use std::collections::BTreeMap;
use std::path::Path;

use oxivirt_e2e::{Kubectl, SharedServer};
use serde_json::Value;

static SERVER: SharedServer = SharedServer::new();

/// Creates namespace `name` without kubectl's schema download.
fn namespace(k: &Kubectl, name: &str) {
    k.run_stdin(
        &["create", "--validate=false", "-f", "-"],
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"),
    )
    .ok();
}

/// The header cells of every table `kubectl get` printed, keyed by the resource of its rows
/// (`virtualmachine.kubevirt.io` from `virtualmachine.kubevirt.io/vm1`).
fn headers(output: &str) -> BTreeMap<String, Vec<String>> {
    let mut tables = BTreeMap::new();
    for table in output.split("\n\n") {
        let mut lines = table.lines().filter(|l| !l.trim().is_empty());
        let (Some(header), Some(row)) = (lines.next(), lines.next()) else {
            continue;
        };
        let Some(resource) = row
            .split_whitespace()
            .find_map(|cell| cell.split_once('/').map(|(r, _)| r.to_owned()))
        else {
            continue;
        };
        tables.insert(
            resource,
            header.split_whitespace().map(str::to_owned).collect(),
        );
    }
    tables
}

#[test]
fn openshift_namespaces_and_the_hyperconverged_singleton_exist_on_first_start() {
    let server = SERVER.get();
    let k = server.kubectl();
    for namespace in ["openshift-cnv", "openshift-virtualization-os-images"] {
        assert!(k.exists(&["namespace", namespace]), "{namespace}");
    }
    let table = k.ok(&[
        "get",
        "hco",
        "-n",
        "openshift-cnv",
        "kubevirt-hyperconverged",
    ]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "AGE"], "{table}");
    assert!(table.contains("kubevirt-hyperconverged"), "{table}");
}

#[test]
fn common_cluster_instancetypes_are_shipped_with_upstreams_sizes() {
    let server = SERVER.get();
    let k = server.kubectl();
    assert_eq!(
        k.jsonpath(
            &["vmcf", "u1.medium"],
            "{.spec.cpu.guest} {.spec.memory.guest}"
        ),
        "1 4Gi",
        "u1.medium is 1 vCPU and 4Gi (ch07a.md, table 7.1)"
    );
    let names = k.ok(&[
        "get",
        "vmcf",
        "-l",
        "instancetype.kubevirt.io/vendor=kubevirt.io",
        "-o",
        "name",
    ]);
    for series in ["u1.", "o1.", "cx1.", "m1.", "n1.", "gn1."] {
        assert!(
            names.contains(&format!("/{series}")),
            "series {series} is shipped and labelled as upstream:\n{names}"
        );
    }
}

#[test]
fn common_cluster_preferences_include_rhel_9() {
    let server = SERVER.get();
    let k = server.kubectl();
    let table = k.ok(&["get", "vmcps"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().next() == Some("rhel.9")),
        "{table}"
    );
}

/// One object of each kind whose columns are checked, in namespace `content-columns`.
const COLUMN_OBJECTS: &str = r#"apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: vm1}
spec:
  runStrategy: Halted
  template: {spec: {domain: {devices: {}, memory: {guest: 64Mi}}}}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: vmi1}
spec:
  domain: {devices: {}, memory: {guest: 64Mi}}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstanceMigration
metadata: {name: migration1}
spec: {vmiName: vmi1}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: dv1}
spec:
  source: {blank: {}}
  storage: {resources: {requests: {storage: 1Gi}}}
---
apiVersion: snapshot.kubevirt.io/v1beta1
kind: VirtualMachineSnapshot
metadata: {name: snapshot1}
spec:
  source: {apiGroup: kubevirt.io, kind: VirtualMachine, name: vm1}
---
apiVersion: snapshot.kubevirt.io/v1beta1
kind: VirtualMachineRestore
metadata: {name: restore1}
spec:
  target: {apiGroup: kubevirt.io, kind: VirtualMachine, name: vm1}
  virtualMachineSnapshotName: snapshot1
---
apiVersion: export.kubevirt.io/v1beta1
kind: VirtualMachineExport
metadata: {name: export1}
spec:
  source: {apiGroup: kubevirt.io, kind: VirtualMachine, name: vm1}
---
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {name: kubevirt}
spec: {}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: bridge1}
spec: {config: '{"cniVersion":"0.3.1","type":"bridge","bridge":"br1"}'}
---
apiVersion: nmstate.io/v1
kind: NodeNetworkConfigurationPolicy
metadata: {name: content-columns-policy}
spec: {desiredState: {interfaces: []}}
"#;

#[test]
fn short_names_and_printer_columns_match_upstream() {
    let server = SERVER.get();
    let k = server.kubectl();
    namespace(&k, "content-columns");
    k.run_stdin(
        &[
            "create",
            "--validate=false",
            "-n",
            "content-columns",
            "-f",
            "-",
        ],
        COLUMN_OBJECTS,
    )
    .ok();
    let output = k.ok(&[
        "get",
        "vm,vmi,vmim,dv,vmsnapshot,vmrestore,vmexport,hco,kv,net-attach-def,nncp",
        "-A",
    ]);
    let tables = headers(&output);
    // Upstream's additionalPrinterColumns (KubeVirt `crds.go`, CDI and HCO kubebuilder
    // markers, nmstate); `-A` adds NAMESPACE to the namespaced kinds.
    let expected: &[(&str, &[&str])] = &[
        (
            "virtualmachine.kubevirt.io",
            &["NAMESPACE", "NAME", "AGE", "STATUS", "READY"],
        ),
        (
            "virtualmachineinstance.kubevirt.io",
            &[
                "NAMESPACE",
                "NAME",
                "AGE",
                "PHASE",
                "IP",
                "NODENAME",
                "READY",
            ],
        ),
        (
            "virtualmachineinstancemigration.kubevirt.io",
            &["NAMESPACE", "NAME", "PHASE", "VMI"],
        ),
        (
            "datavolume.cdi.kubevirt.io",
            &["NAMESPACE", "NAME", "PHASE", "PROGRESS", "RESTARTS", "AGE"],
        ),
        (
            "virtualmachinesnapshot.snapshot.kubevirt.io",
            &[
                "NAMESPACE",
                "NAME",
                "SOURCEKIND",
                "SOURCENAME",
                "PHASE",
                "READYTOUSE",
                "CREATIONTIME",
                "ERROR",
            ],
        ),
        (
            "virtualmachineexport.export.kubevirt.io",
            &["NAMESPACE", "NAME", "SOURCEKIND", "SOURCENAME", "PHASE"],
        ),
        (
            "hyperconverged.hco.kubevirt.io",
            &["NAMESPACE", "NAME", "AGE"],
        ),
        (
            "kubevirt.kubevirt.io",
            &["NAMESPACE", "NAME", "AGE", "PHASE"],
        ),
        (
            "networkattachmentdefinition.k8s.cni.cncf.io",
            &["NAMESPACE", "NAME", "AGE"],
        ),
        (
            "nodenetworkconfigurationpolicy.nmstate.io",
            &["NAMESPACE", "NAME", "STATUS", "REASON"],
        ),
    ];
    for (resource, columns) in expected {
        assert_eq!(
            tables.get(*resource).map(Vec::as_slice),
            Some(
                columns
                    .iter()
                    .map(|c| (*c).to_owned())
                    .collect::<Vec<_>>()
                    .as_slice()
            ),
            "columns of {resource} in:\n{output}"
        );
    }
    // KubeVirt 1.2 (OpenShift 4.16) ends the restore table with ERROR; later releases dropped
    // the column (a restore status has no error), so both are accepted.
    let restore = tables
        .get("virtualmachinerestore.snapshot.kubevirt.io")
        .unwrap_or_else(|| panic!("no vmrestore table in:\n{output}"));
    let without_error: Vec<&str> = restore
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "ERROR")
        .collect();
    assert_eq!(
        without_error,
        [
            "NAMESPACE",
            "NAME",
            "TARGETKIND",
            "TARGETNAME",
            "COMPLETE",
            "RESTORETIME"
        ],
        "{output}"
    );

    // The wide VMI table adds LIVE-MIGRATABLE and PAUSED.
    let wide = k.ok(&["get", "vmi", "vmi1", "-n", "content-columns", "-o", "wide"]);
    let header = wide.lines().next().unwrap_or_default();
    assert!(
        header.ends_with("READY   LIVE-MIGRATABLE   PAUSED"),
        "{wide}"
    );
}

#[test]
fn get_all_lists_virtual_machines_and_their_instances() {
    let server = SERVER.get();
    let k = server.kubectl();
    namespace(&k, "content-all");
    k.run_stdin(
        &["create", "--validate=false", "-n", "content-all", "-f", "-"],
        "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: in-all}\nspec:\n  runStrategy: Halted\n  template: {spec: {domain: {devices: {}, memory: {guest: 64Mi}}}}\n---\napiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata: {name: standalone}\nspec:\n  domain: {devices: {}, memory: {guest: 64Mi}}\n",
    )
    .ok();
    let all = k.ok(&["get", "all", "-n", "content-all"]);
    for row in [
        "virtualmachine.kubevirt.io/in-all",
        // A VMI of another name: one named like the Halted VM would be adopted and stopped.
        "virtualmachineinstance.kubevirt.io/standalone",
    ] {
        assert!(all.contains(row), "{row} in:\n{all}");
    }
}

/// The manual's `rhel-9-minimal` VM (ch07a.md 7.1.4.2), as collected in the fixtures.
fn rhel_9_minimal() -> String {
    let path = Path::new(
        &*std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("fixtures/manual/ch07a-block-02.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} is readable: {e}", path.display()))
}

#[test]
fn expand_spec_shows_the_manuals_rhel_9_minimal_vm_with_its_instancetype_applied() {
    let server = SERVER.get();
    let k = server.kubectl();
    let ns = "content-expand";
    namespace(&k, ns);
    let manifest = rhel_9_minimal();
    assert!(manifest.contains("name: rhel-9-minimal"), "{manifest}");
    k.run_stdin(
        &["apply", "--validate=strict", "-n", ns, "-f", "-"],
        &manifest,
    )
    .ok();
    let raw = k.ok(&[
        "get",
        "--raw",
        &format!("/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/rhel-9-minimal/expand-spec"),
    ]);
    let vm: Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
    let domain = &vm["spec"]["template"]["spec"]["domain"];
    assert_eq!(domain["cpu"]["sockets"], 1, "u1.medium has 1 vCPU: {raw}");
    assert_eq!(domain["memory"]["guest"], "4Gi", "u1.medium has 4Gi: {raw}");
    assert!(
        vm["spec"]["instancetype"].is_null() && vm["spec"]["preference"].is_null(),
        "the expanded VM no longer refers to its instance type and preference: {raw}"
    );
}

#[test]
fn expand_vm_spec_refuses_a_vm_that_conflicts_with_its_instancetype() {
    let server = SERVER.get();
    let k = server.kubectl();
    let ns = "content-expand-conflict";
    namespace(&k, ns);
    let vm = serde_json::json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "conflicting", "namespace": ns},
        "spec": {
            "runStrategy": "Halted",
            "instancetype": {"name": "u1.medium"},
            "template": {"spec": {"domain": {"devices": {}, "cpu": {"sockets": 2}}}},
        },
    });
    let file = server.write_file("conflicting-vm.json", &vm.to_string());
    let err = k.fails(&[
        "replace",
        "--raw",
        &format!("/apis/subresources.kubevirt.io/v1/namespaces/{ns}/expand-vm-spec"),
        "-f",
        file.to_str().expect("utf-8 path"),
    ]);
    // Upstream's expand-vm-spec handler: 400 "cannot expand instancetype to VM".
    assert!(
        err.contains("cannot expand instancetype to VM"),
        "expected upstream's message in:\n{err}"
    );
}
