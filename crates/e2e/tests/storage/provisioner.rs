//! The hostpath provisioner, binding, StorageProfiles and CDIConfig through kubectl.

use std::time::Duration;

use oxivirt_e2e::{wait_until, Server};

use crate::common::{condition, wait_for};

const WAIT: Duration = Duration::from_secs(90);

#[test]
fn first_start_has_a_default_virt_class_its_profile_and_cdiconfig_with_the_overhead() {
    let server = Server::start();
    let kubectl = server.kubectl();
    wait_until("the default StorageClass", WAIT, || {
        let out = kubectl.ok(&["get", "sc"]);
        out.contains("hostpath-csi-basic (default)").then_some(())
    });
    let annotations =
        kubectl.json(&["get", "sc", "hostpath-csi-basic"])["metadata"]["annotations"].clone();
    assert_eq!(
        annotations["storageclass.kubevirt.io/is-default-virt-class"],
        "true"
    );
    wait_for(
        &kubectl,
        &["get", "storageprofile", "hostpath-csi-basic"],
        "{.status.claimPropertySets[0].volumeMode}",
        "Filesystem",
        WAIT,
    );
    wait_for(
        &kubectl,
        &["get", "cdiconfig", "config"],
        "{.status.filesystemOverhead.global}",
        "0.055",
        WAIT,
    );
    wait_for(
        &kubectl,
        &["get", "cdiconfig", "config"],
        "{.status.filesystemOverhead.storageClass.hostpath-csi-basic}",
        "0.055",
        WAIT,
    );

    // HyperConverged's filesystemOverhead wins (manual §9.4), globally and per class.
    kubectl.ok(&["patch", "hyperconverged", "-n", "openshift-cnv", "kubevirt-hyperconverged", "--type", "merge", "-p",
        r#"{"spec": {"filesystemOverhead": {"global": "0.07", "storageClass": {"hostpath-csi-basic": "0.04"}}}}"#]);
    wait_for(
        &kubectl,
        &["get", "cdiconfig"],
        "{.items..status.filesystemOverhead.global}",
        "0.07",
        WAIT,
    );
    wait_for(
        &kubectl,
        &["get", "cdiconfig", "config"],
        "{.status.filesystemOverhead.storageClass.hostpath-csi-basic}",
        "0.04",
        WAIT,
    );
}

#[test]
fn an_unknown_provisioner_gets_an_empty_profile_and_its_data_volume_waits_saying_why() {
    let server = Server::start();
    let kubectl = server.kubectl();
    kubectl.apply(r#"{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "mystery"},
        "provisioner": "example.com/unknown"}"#);
    wait_for(
        &kubectl,
        &["get", "storageprofile", "mystery"],
        "{.status.provisioner}",
        "example.com/unknown",
        WAIT,
    );
    let status = kubectl.json(&["get", "storageprofile", "mystery"])["status"].clone();
    assert!(status["claimPropertySets"].is_null(), "{status}");
    kubectl.apply(r#"{"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": "waits"},
        "spec": {"source": {"blank": {}}, "storage": {"storageClassName": "mystery", "resources": {"requests": {"storage": "1Gi"}}}}}"#);
    wait_until("the Bound condition explains", WAIT, || {
        let (_, reason, message) = condition(&kubectl, "waits", "Bound");
        (reason == "ErrClaimNotValid"
            && message == "no accessMode specified in StorageProfile mystery")
            .then_some(())
    });
    assert_eq!(
        kubectl.jsonpath(&["dv", "waits"], "{.status.phase}"),
        "Pending"
    );
    assert!(
        !kubectl.exists(&["pvc", "waits"]),
        "no claim is created without access modes"
    );

    // The admin fills the profile in (manual §9.2.1) and the DataVolume proceeds.
    kubectl.ok(&["patch", "storageprofile", "mystery", "--type", "merge", "-p",
        r#"{"spec": {"claimPropertySets": [{"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}]}}"#]);
    wait_until("the claim is created", WAIT, || {
        kubectl.exists(&["pvc", "waits"]).then_some(())
    });
    assert_eq!(
        kubectl.jsonpath(&["pvc", "waits"], "{.spec.accessModes[0]}"),
        "ReadWriteOnce"
    );
}

#[test]
fn claims_bind_immediately_or_wait_for_a_consumer_and_reclaim_policies_apply() {
    let server = Server::start();
    let kubectl = server.kubectl();
    for (name, policy) in [("keep", "Retain"), ("drop", "Delete")] {
        kubectl.apply(&format!(r#"{{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {{"name": "{name}"}},
            "provisioner": "kubevirt.io/hostpath-provisioner", "reclaimPolicy": "{policy}", "volumeBindingMode": "Immediate"}}"#));
        kubectl.apply(&format!(r#"{{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {{"name": "{name}"}},
            "spec": {{"storageClassName": "{name}", "accessModes": ["ReadWriteOnce"], "resources": {{"requests": {{"storage": "1Gi"}}}}}}}}"#));
    }
    // No class: the default one (WaitForFirstConsumer) is assigned, and it waits.
    kubectl.apply(r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "later"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}"#);
    for name in ["keep", "drop"] {
        wait_for(
            &kubectl,
            &["get", "pvc", name],
            "{.status.phase}",
            "Bound",
            WAIT,
        );
        assert_eq!(
            kubectl.jsonpath(&["pvc", name], "{.status.capacity.storage}"),
            "1Gi"
        );
    }
    wait_for(
        &kubectl,
        &["get", "pvc", "later"],
        "{.spec.storageClassName}",
        "hostpath-csi-basic",
        WAIT,
    );
    wait_until("the WaitForFirstConsumer event", WAIT, || {
        let events = kubectl.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=later",
        ]);
        events
            .contains("waiting for first consumer to be created before binding")
            .then_some(())
    });
    assert_eq!(
        kubectl.jsonpath(&["pvc", "later"], "{.status.phase}"),
        "Pending"
    );
    let kept = crate::common::volume_dir(&server, "keep");
    let dropped = crate::common::volume_dir(&server, "drop");
    assert!(
        kept.is_dir() && dropped.is_dir() && kept.starts_with(server.data_dir().join("storage"))
    );
    let kept_pv = kubectl.jsonpath(&["pvc", "keep"], "{.spec.volumeName}");
    let dropped_pv = kubectl.jsonpath(&["pvc", "drop"], "{.spec.volumeName}");
    kubectl.ok(&["delete", "pvc", "keep", "drop"]);
    wait_for(
        &kubectl,
        &["get", "pv", &kept_pv],
        "{.status.phase}",
        "Released",
        WAIT,
    );
    wait_until("the Delete volume is gone", WAIT, || {
        (!kubectl.exists(&["pv", &dropped_pv])).then_some(())
    });
    assert!(
        !dropped.exists(),
        "the Delete volume's directory is removed"
    );
    assert!(kept.is_dir(), "the Retain volume's directory stays");
}

#[test]
fn a_claim_of_an_expandable_class_grows_its_volume_and_disk() {
    let server = Server::start();
    let kubectl = server.kubectl();
    kubectl.apply(&crate::common::data_volume(
        "grow",
        r#"{"blank": {}}"#,
        "1Gi",
    ));
    wait_for(
        &kubectl,
        &["get", "dv", "grow"],
        "{.status.phase}",
        "Succeeded",
        WAIT,
    );
    let disk = crate::common::volume_dir(&server, "grow").join("disk.img");
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 1 << 30);
    kubectl.ok(&[
        "patch",
        "pvc",
        "grow",
        "--type",
        "merge",
        "-p",
        r#"{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}"#,
    ]);
    wait_for(
        &kubectl,
        &["get", "pvc", "grow"],
        "{.status.capacity.storage}",
        "2Gi",
        WAIT,
    );
    let volume = kubectl.jsonpath(&["pvc", "grow"], "{.spec.volumeName}");
    assert_eq!(
        kubectl.jsonpath(&["pv", &volume], "{.spec.capacity.storage}"),
        "2Gi"
    );
    // 2Gi less the 5.5% overhead, in whole MiB.
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 1935 << 20);
}

#[test]
fn a_data_volume_on_a_wait_for_first_consumer_class_waits_until_asked_to_bind() {
    let server = Server::start();
    let kubectl = server.kubectl();
    kubectl.apply(r#"{"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": "lazy"},
        "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "64Mi"}}}}}"#);
    wait_for(
        &kubectl,
        &["get", "dv", "lazy"],
        "{.status.phase}",
        "WaitForFirstConsumer",
        WAIT,
    );
    assert_eq!(
        kubectl.jsonpath(&["pvc", "lazy"], "{.status.phase}"),
        "Pending"
    );
    // virtctl's --force-bind: the annotation binds the claim without a consumer.
    kubectl.ok(&[
        "annotate",
        "pvc",
        "lazy",
        "cdi.kubevirt.io/storage.bind.immediate.requested=true",
    ]);
    wait_for(
        &kubectl,
        &["get", "dv", "lazy"],
        "{.status.phase}",
        "Succeeded",
        WAIT,
    );
}

#[test]
fn hyperconverged_data_import_cron_templates_become_crons_unless_disabled() {
    let server = Server::start();
    let kubectl = server.kubectl();
    let template = |annotations: &str| {
        format!(
            r#"{{"spec": {{"dataImportCronTemplates": [{{"metadata": {{"name": "custom-image-cron", "annotations": {{{annotations}}}}},
              "spec": {{"schedule": "0 */12 * * *", "managedDataSource": "custom",
                "template": {{"spec": {{"source": {{"registry": {{"url": "docker://127.0.0.1:1/none:latest"}}}},
                  "storage": {{"resources": {{"requests": {{"storage": "1Gi"}}}}}}}}}}}}}}]}}}}"#
        )
    };
    let hco = [
        "patch",
        "hyperconverged",
        "-n",
        "openshift-cnv",
        "kubevirt-hyperconverged",
        "--type",
        "merge",
        "-p",
    ];
    kubectl.ok(&[&hco[..], &[template("").as_str()]].concat());
    let ns = ["-n", "openshift-virtualization-os-images"];
    wait_for(
        &kubectl,
        &[&["get", "dataimportcron", "custom-image-cron"][..], &ns].concat(),
        "{.spec.managedDataSource}",
        "custom",
        WAIT,
    );
    wait_for(
        &kubectl,
        &[
            "get",
            "hyperconverged",
            "-n",
            "openshift-cnv",
            "kubevirt-hyperconverged",
        ],
        "{.status.dataImportCronTemplates[0].metadata.name}",
        "custom-image-cron",
        WAIT,
    );
    let status = kubectl.jsonpath(
        &[
            "hyperconverged",
            "-n",
            "openshift-cnv",
            "kubevirt-hyperconverged",
        ],
        "{.status.dataImportCronTemplates[0].status}",
    );
    assert_eq!(status, "{}", "a custom template has an empty status");
    kubectl.ok(&[
        &hco[..],
        &[template(r#""dataimportcrontemplate.kubevirt.io/enable": "false""#).as_str()],
    ]
    .concat());
    oxivirt_e2e::wait_until("the disabled template's cron is deleted", WAIT, || {
        (!kubectl.exists(&[&["dataimportcron", "custom-image-cron"][..], &ns].concat()))
            .then_some(())
    });
}

#[test]
fn a_shared_directory_class_offers_read_write_many_and_node_local_classes_refuse_it() {
    let server = Server::start();
    let kubectl = server.kubectl();
    let shared = server.scratch().join("shared");
    kubectl.apply(&format!(
        r#"{{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {{"name": "shared"}},
            "provisioner": "kubevirt.io/hostpath-provisioner", "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate", "parameters": {{"sharedPath": "{}"}}}}"#,
        shared.display()
    ));
    // CDI picks ReadWriteMany for the class (its StorageProfile's first property set).
    wait_for(
        &kubectl,
        &["get", "storageprofile", "shared"],
        "{.status.claimPropertySets[0].accessModes[0]}",
        "ReadWriteMany",
        WAIT,
    );
    kubectl.apply(
        r#"{"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": "rwx"},
            "spec": {"source": {"blank": {}}, "storage": {"storageClassName": "shared",
              "resources": {"requests": {"storage": "64Mi"}}}}}"#,
    );
    wait_for(
        &kubectl,
        &["get", "dv", "rwx"],
        "{.status.phase}",
        "Succeeded",
        WAIT,
    );
    let pv = kubectl.jsonpath(&["pvc", "rwx"], "{.spec.volumeName}");
    let volume = kubectl.json(&["get", "pv", &pv]);
    assert_eq!(volume["spec"]["accessModes"][0], "ReadWriteMany");
    assert!(
        volume["spec"]["nodeAffinity"].is_null(),
        "a shared volume is tied to no node: {volume}"
    );
    let dir = volume["spec"]["hostPath"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(dir.starts_with(&shared.display().to_string()), "{dir}");
    assert!(std::path::Path::new(&dir).join("disk.img").exists());
    // The node-local default class cannot honour ReadWriteMany and says so.
    kubectl.apply(
        r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "rwx-local",
              "annotations": {"cdi.kubevirt.io/storage.bind.immediate.requested": "true"}},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "64Mi"}}}}"#,
    );
    wait_until("ProvisioningFailed for ReadWriteMany", WAIT, || {
        let events = kubectl.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=rwx-local,reason=ProvisioningFailed",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        events
            .contains("access mode ReadWriteMany is not offered by a node-local class")
            .then_some(())
    });
    // Deleting the DataVolume removes the shared volume's directory (reclaimPolicy Delete).
    kubectl.ok(&["delete", "dv", "rwx"]);
    wait_until("the shared directory is removed", WAIT, || {
        (!std::path::Path::new(&dir).exists()).then_some(())
    });
}
