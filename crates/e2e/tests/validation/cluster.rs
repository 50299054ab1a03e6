//! Rules of the other kinds: CDI DataVolume, the HyperConverged singleton, StorageClass and
//! SR-IOV.

use oxivirt_e2e::Kubectl;

use super::{create, refused, refused_command, setup, vm, SERVER};

// ---- Service ----

fn node_port_service(name: &str, node_port: u32) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{type: NodePort, selector: {{app: x}}, ports: [{{port: 80, nodePort: {node_port}}}]}}\n")
}

#[test]
fn a_node_port_out_of_range_or_already_allocated_is_refused() {
    let (_s, k) = setup("val-node-port");
    refused(
        &k,
        "val-node-port",
        &node_port_service("low", 80),
        "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
    );
    create(&k, "val-node-port", &node_port_service("first", 31999)).ok();
    refused(
        &k,
        "val-node-port",
        &node_port_service("second", 31999),
        "spec.ports[0].nodePort: Invalid value: 31999: provided port is already allocated",
    );
}

// ---- DataVolume ----

/// A DataVolume whose `spec` (besides a 1Gi `storage`) is `spec`.
fn data_volume(name: &str, spec: &str) -> String {
    format!("apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata: {{name: {name}}}\nspec:\n  storage: {{resources: {{requests: {{storage: 1Gi}}}}}}\n{spec}\n")
}

#[test]
fn data_volume_with_two_source_types_is_refused() {
    let (_s, k) = setup("val-dv-two-sources");
    refused(
        &k,
        "val-dv-two-sources",
        &data_volume(
            "two",
            "  source: {http: {url: 'http://example.com/disk.img'}, blank: {}}",
        ),
        "spec.source: Multiple Data volume sources",
    );
}

#[test]
fn data_volume_without_a_source_is_refused() {
    let (_s, k) = setup("val-dv-no-source");
    refused(
        &k,
        "val-dv-no-source",
        &data_volume("none", ""),
        "Data volume should have either Source or SourceRef",
    );
}

#[test]
fn data_volume_with_both_source_and_source_ref_is_refused() {
    let (_s, k) = setup("val-dv-source-and-ref");
    refused(
        &k,
        "val-dv-source-and-ref",
        &data_volume(
            "both",
            "  source: {blank: {}}\n  sourceRef: {kind: DataSource, name: fedora}",
        ),
        "Data volume should have either Source or SourceRef",
    );
}

#[test]
fn data_volume_referring_to_a_missing_data_source_is_refused() {
    let (_s, k) = setup("val-dv-source-ref");
    refused(
        &k,
        "val-dv-source-ref",
        &data_volume(
            "golden",
            "  sourceRef: {kind: DataSource, name: no-such-image}",
        ),
        "SourceRef DataSource/val-dv-source-ref/no-such-image not found",
    );
}

#[test]
fn data_volume_http_source_needs_an_http_url() {
    let (_s, k) = setup("val-dv-url");
    refused(
        &k,
        "val-dv-url",
        &data_volume(
            "ftp",
            "  source: {http: {url: 'ftp://example.com/disk.img'}}",
        ),
        "spec.source Invalid source URL scheme: ftp://example.com/disk.img",
    );
}

#[test]
fn data_volume_spec_is_immutable() {
    let ns = "val-dv-immutable";
    let (_s, k) = setup(ns);
    create(&k, ns, &data_volume("fixed", "  source: {blank: {}}")).ok();
    refused_command(
        &k,
        &[
            "patch",
            "dv",
            "fixed",
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"storage":{"resources":{"requests":{"storage":"2Gi"}}}}}"#,
        ],
        "Cannot update DataVolume Spec",
    );
}

// ---- HyperConverged ----

const HCO: &str = "kubevirt-hyperconverged";
const CNV: &str = "openshift-cnv";

fn patch_hco(k: &Kubectl, patch: &str) -> String {
    k.run(&["patch", "hco", HCO, "-n", CNV, "--type=merge", "-p", patch])
        .fails()
}

#[test]
fn hyperconverged_outside_openshift_cnv_is_refused() {
    let ns = "val-hco-namespace";
    let (_s, k) = setup(ns);
    refused(
        &k,
        ns,
        "apiVersion: hco.kubevirt.io/v1beta1\nkind: HyperConverged\nmetadata: {name: kubevirt-hyperconverged}\nspec: {}\n",
        r#"admission webhook "validate-hco.kubevirt.io" denied the request: invalid namespace for v1beta1.HyperConverged - please use the openshift-cnv namespace"#,
    );
}

#[test]
fn a_second_hyperconverged_with_another_name_is_refused() {
    let server = SERVER.get();
    let k = server.kubectl();
    let err = create(
        &k,
        CNV,
        "apiVersion: hco.kubevirt.io/v1beta1\nkind: HyperConverged\nmetadata: {name: another-hco}\nspec: {}\n",
    )
    .fails();
    assert!(err.contains("kubevirt-hyperconverged"), "{err}");
}

#[test]
fn hyperconverged_cert_config_ordering_is_enforced_with_the_manuals_exact_message() {
    let server = SERVER.get();
    let k = server.kubectl();
    // The manual's troubleshooting example (ch07c.md, 7.14.4.2): removing server.duration
    // makes it default to 24h0m0s, longer than ca.duration.
    let out = k.ok(&[
        "patch",
        "hco",
        HCO,
        "-n",
        CNV,
        "--type=merge",
        "-p",
        r#"{"spec":{"certConfig":{"ca":{"duration":"4h0m0s","renewBefore":"1h0m0s"},"server":{"duration":"4h0m0s","renewBefore":"4h0m0s"}}}}"#,
    ]);
    assert!(out.contains("patched"), "{out}");
    let editor = server.write_file(
        "remove-server-duration.sh",
        "#!/bin/sh\nsed -i '/^    server:/,/^    [a-z]/{/^      duration:/d}' \"$1\"\n",
    );
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status();
    assert!(chmod.is_ok_and(|s| s.success()));
    let run = k.run_with_env(
        &["edit", "hco", HCO, "-n", CNV],
        &[("KUBE_EDITOR", editor.to_str().expect("utf-8 path"))],
    );
    let err = run.fails();
    let manual = r#"error: hyperconvergeds.hco.kubevirt.io "kubevirt-hyperconverged" could not be patched: admission webhook "validate-hco.kubevirt.io" denied the request: spec.certConfig: ca.duration is smaller than server.duration"#;
    assert!(
        err.contains(manual),
        "expected the manual's message:\n{err}"
    );
}

#[test]
fn hyperconverged_cert_durations_under_ten_minutes_are_refused() {
    let server = SERVER.get();
    let k = server.kubectl();
    let err = patch_hco(
        &k,
        r#"{"spec":{"certConfig":{"ca":{"duration":"5m","renewBefore":"1m"},"server":{"duration":"4m","renewBefore":"2m"}}}}"#,
    );
    assert!(
        err.contains("spec.certConfig.ca.duration: value is too small"),
        "{err}"
    );
}

#[test]
fn hyperconverged_cert_renewal_after_expiry_is_refused() {
    let server = SERVER.get();
    let k = server.kubectl();
    let err = patch_hco(
        &k,
        r#"{"spec":{"certConfig":{"ca":{"duration":"1h0m0s","renewBefore":"2h0m0s"},"server":{"duration":"1h0m0s","renewBefore":"30m0s"}}}}"#,
    );
    assert!(
        err.contains("spec.certConfig.ca: duration is smaller than renewBefore"),
        "{err}"
    );
    let err = patch_hco(
        &k,
        r#"{"spec":{"certConfig":{"ca":{"duration":"48h0m0s","renewBefore":"24h0m0s"},"server":{"duration":"1h0m0s","renewBefore":"2h0m0s"}}}}"#,
    );
    assert!(
        err.contains("spec.certConfig.server: duration is smaller than renewBefore"),
        "{err}"
    );
}

#[test]
fn hyperconverged_workload_placement_is_frozen_while_vms_exist() {
    let ns = "val-hco-placement";
    let (_s, k) = setup(ns);
    create(
        &k,
        ns,
        &vm(
            "present",
            "  runStrategy: Halted\n  template: {spec: {domain: {devices: {}, memory: {guest: 64Mi}}}}",
        ),
    )
    .ok();
    let err = patch_hco(
        &k,
        r#"{"spec":{"workloads":{"nodePlacement":{"nodeSelector":{"example.io/example-workloads-key":"example-workloads-value"}}}}}"#,
    );
    assert!(
        err.contains("can't update placement of workload pods while there are running vms"),
        "{err}"
    );
}

// ---- StorageClass ----

#[test]
fn storage_class_parameters_and_provisioner_are_immutable() {
    let (_s, k) = setup("val-storage-class");
    create(
        &k,
        "val-storage-class",
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: val-fixed-parameters}\nprovisioner: kubevirt.io.hostpath-provisioner\nparameters: {storagePool: one}\n",
    )
    .ok();
    refused_command(
        &k,
        &[
            "patch",
            "sc",
            "val-fixed-parameters",
            "--type=merge",
            "-p",
            r#"{"parameters":{"storagePool":"two"}}"#,
        ],
        "parameters: Forbidden: updates to parameters are forbidden.",
    );
    refused_command(
        &k,
        &[
            "patch",
            "sc",
            "val-fixed-parameters",
            "--type=merge",
            "-p",
            r#"{"provisioner":"example.com/other"}"#,
        ],
        "provisioner: Forbidden: updates to provisioner are forbidden.",
    );
}

// ---- SR-IOV ----

const SRIOV_NS: &str = "openshift-sriov-network-operator";

/// A SriovNetworkNodePolicy named `name` with `extra` spec lines.
fn sriov_policy(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetworkNodePolicy\nmetadata: {{name: {name}}}\nspec:\n  resourceName: intelnics\n  numVfs: 4\n  nodeSelector: {{feature.node.kubernetes.io/network-sriov.capable: 'true'}}\n{extra}\n"
    )
}

/// A SriovNetwork named `name` with `extra` spec lines.
fn sriov_network(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetwork\nmetadata: {{name: {name}}}\nspec:\n  resourceName: intelnics\n  networkNamespace: default\n{extra}\n"
    )
}

/// The SR-IOV operator namespace, created once (tests may race to create it).
fn sriov_namespace(k: &Kubectl) {
    let run = k.run_stdin(
        &["apply", "--validate=false", "-f", "-"],
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {SRIOV_NS}}}\n"),
    );
    assert!(
        run.status.success() || run.stderr.contains("AlreadyExists"),
        "{}",
        run.stderr
    );
}

#[test]
fn sriov_policy_priority_must_be_between_0_and_99() {
    let server = SERVER.get();
    let k = server.kubectl();
    sriov_namespace(&k);
    let nic = "  nicSelector: {vendor: '8086', pfNames: [ens1f0]}";
    refused(
        &k,
        SRIOV_NS,
        &sriov_policy("val-priority-high", &format!("  priority: 100\n{nic}")),
        "spec.priority: Invalid value: 100: spec.priority in body should be less than or equal to 99",
    );
    refused(
        &k,
        SRIOV_NS,
        &sriov_policy("val-priority-low", &format!("  priority: -1\n{nic}")),
        "spec.priority: Invalid value: -1: spec.priority in body should be greater than or equal to 0",
    );
}

#[test]
fn sriov_policy_vendor_must_be_intel_or_mellanox() {
    let server = SERVER.get();
    let k = server.kubectl();
    sriov_namespace(&k);
    // RULES.md: the operator webhook's wording, `vendor <v> is not supported`.
    refused(
        &k,
        SRIOV_NS,
        &sriov_policy(
            "val-vendor",
            "  nicSelector: {vendor: '10de', pfNames: [ens1f0]}",
        ),
        "vendor 10de is not supported",
    );
}

#[test]
fn sriov_policy_root_devices_need_another_selector() {
    let server = SERVER.get();
    let k = server.kubectl();
    sriov_namespace(&k);
    refused(
        &k,
        SRIOV_NS,
        &sriov_policy(
            "val-root-devices",
            "  nicSelector: {rootDevices: ['0000:19:00.2']}",
        ),
        "If rootDevices is specified, vendor, deviceID or pfNames must also be specified",
    );
}

#[test]
fn sriov_policy_device_type_is_netdevice_or_vfio_pci() {
    let server = SERVER.get();
    let k = server.kubectl();
    sriov_namespace(&k);
    refused(
        &k,
        SRIOV_NS,
        &sriov_policy(
            "val-device-type",
            "  deviceType: uio\n  nicSelector: {vendor: '8086', pfNames: [ens1f0]}",
        ),
        r#"spec.deviceType: Unsupported value: "uio": supported values: "netdevice", "vfio-pci""#,
    );
}

#[test]
fn sriov_network_vlan_must_be_between_0_and_4095() {
    let server = SERVER.get();
    let k = server.kubectl();
    sriov_namespace(&k);
    refused(
        &k,
        SRIOV_NS,
        &sriov_network("val-vlan", "  vlan: 4096"),
        "spec.vlan: Invalid value: 4096: spec.vlan in body should be less than or equal to 4095",
    );
    refused(
        &k,
        SRIOV_NS,
        &sriov_network("val-vlan-qos", "  vlanQoS: 8"),
        "spec.vlanQoS: Invalid value: 8: spec.vlanQoS in body should be less than or equal to 7",
    );
}

#[test]
fn sriov_network_spoof_check_must_be_a_quoted_on_or_off() {
    let server = SERVER.get();
    let k = server.kubectl();
    sriov_namespace(&k);
    // Unquoted, YAML 1.1 (kubectl's reader) turns `off` into the boolean false.
    refused(
        &k,
        SRIOV_NS,
        &sriov_network("val-spoof", "  spoofChk: off"),
        "spec.spoofChk in body must be of type string",
    );
}
