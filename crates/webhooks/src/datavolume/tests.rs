use serde_json::{json, Value};

use super::*;
use crate::testing::{messages, run, FakeCluster};

fn dv(source: Value) -> Value {
    json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": "fedora-dv", "namespace": "default"},
        "spec": {"source": source, "storage": {"resources": {"requests": {"storage": "10Gi"}}}},
    })
}

fn admit_dv(cluster: &FakeCluster, obj: &mut Value) -> Outcome {
    run(cluster, GROUP, "DataVolume", None, "alice", obj)
}

#[test]
fn single_source_datavolume_is_accepted() {
    for source in [
        json!({"http": {"url": "https://mirror.example/Fedora.qcow2"}}),
        json!({"registry": {"url": "docker://quay.io/containerdisks/fedora:latest"}}),
        json!({"blank": {}}),
        json!({"upload": {}}),
        json!({"pvc": {"namespace": "golden", "name": "fedora"}}),
    ] {
        let out = admit_dv(&FakeCluster::default(), &mut dv(source.clone()));
        assert!(out.allowed(), "{source}: {out:?}");
    }
}

#[test]
fn datavolume_with_two_source_types_is_rejected() {
    let mut obj = dv(
        json!({"http": {"url": "https://x/f.qcow2"}, "registry": {"url": "docker://quay.io/f"}}),
    );
    let out = admit_dv(&FakeCluster::default(), &mut obj);
    assert_eq!(
        out.causes,
        vec![Cause::invalid(
            "spec.source",
            "Multiple Data volume sources"
        )]
    );
}

#[test]
fn datavolume_needs_a_source_or_source_ref_but_not_both() {
    let mut obj = dv(json!({}));
    assert_eq!(
        messages(&admit_dv(&FakeCluster::default(), &mut obj)),
        vec!["Missing Data volume source"]
    );
    let mut obj = dv(json!({"blank": {}}));
    obj["spec"]["sourceRef"] = json!({"kind": "DataSource", "name": "fedora"});
    assert_eq!(
        messages(&admit_dv(&FakeCluster::default(), &mut obj)),
        vec!["Data volume should have either Source or SourceRef"]
    );
}

#[test]
fn datavolume_http_urls_must_be_http_or_https() {
    let mut obj = dv(json!({"http": {"url": "quay.io/capk/ubuntu:v1"}}));
    let out = admit_dv(&FakeCluster::default(), &mut obj);
    assert_eq!(
        out.causes,
        vec![Cause::invalid(
            "spec.source.http.url",
            "spec.source Invalid source URL: quay.io/capk/ubuntu:v1"
        )]
    );
    let mut obj = dv(json!({"http": {"url": "ftp://x/f.img"}}));
    assert_eq!(
        messages(&admit_dv(&FakeCluster::default(), &mut obj)),
        vec!["spec.source Invalid source URL scheme: ftp://x/f.img"]
    );
}

#[test]
fn datavolume_registry_and_content_type_rules() {
    let mut obj = dv(json!({"registry": {"url": "https://quay.io/f"}}));
    assert_eq!(
        messages(&admit_dv(&FakeCluster::default(), &mut obj)),
        vec!["Illegal registry source URL scheme https://quay.io/f"]
    );
    let mut obj = dv(json!({"registry": {"url": "docker://quay.io/f"}}));
    obj["spec"]["contentType"] = json!("archive");
    assert_eq!(
        messages(&admit_dv(&FakeCluster::default(), &mut obj)),
        vec!["ContentType must be kubevirt when Source is Registry"]
    );
    let mut obj = dv(json!({"blank": {}}));
    obj["spec"]["contentType"] = json!("tarball");
    assert_eq!(
        messages(&admit_dv(&FakeCluster::default(), &mut obj)),
        vec!["ContentType not one of: kubevirt, archive"]
    );
}

#[test]
fn datavolume_storage_rules() {
    let mut obj = dv(json!({"blank": {}}));
    obj["spec"].as_object_mut().expect("spec").remove("storage");
    assert_eq!(
        messages(&admit_dv(&FakeCluster::default(), &mut obj)),
        vec!["Missing Data volume PVC"]
    );
    obj["spec"]["pvc"] = json!({"accessModes": ["ReadWriteOnce"]});
    assert_eq!(
        messages(&admit_dv(&FakeCluster::default(), &mut obj)),
        vec!["PVC size is missing"]
    );
    obj["spec"]["pvc"] = json!({"accessModes": [], "resources": {"requests": {"storage": "1Gi"}}});
    assert_eq!(
        messages(&admit_dv(&FakeCluster::default(), &mut obj)),
        vec!["Required value: at least 1 access mode is required"]
    );
    let mut obj = dv(json!({"pvc": {"namespace": "a", "name": "b"}}));
    obj["spec"]["storage"] = json!({});
    assert!(
        admit_dv(&FakeCluster::default(), &mut obj).allowed(),
        "clone size is inferred"
    );
}

#[test]
fn datavolume_source_ref_must_name_an_existing_data_source() {
    let mut obj = dv(json!({}));
    obj["spec"].as_object_mut().expect("spec").remove("source");
    obj["spec"]["sourceRef"] = json!({"kind": "DataSource", "name": "fedora", "namespace": "openshift-virtualization-os-images"});
    let out = admit_dv(&FakeCluster::default(), &mut obj);
    assert_eq!(
        out.causes,
        vec![Cause::not_found(
            "spec.sourceRef",
            "SourceRef DataSource/openshift-virtualization-os-images/fedora not found"
        )]
    );
    let cluster = FakeCluster::default().with(
        GROUP,
        "datasources",
        "openshift-virtualization-os-images",
        "fedora",
        json!({}),
    );
    assert!(admit_dv(&cluster, &mut obj).allowed());
    obj["spec"]["sourceRef"]["kind"] = json!("PersistentVolumeClaim");
    assert_eq!(
        messages(&admit_dv(&cluster, &mut obj)),
        vec!["Unsupported sourceRef kind PersistentVolumeClaim, currently only DataSource is supported"]
    );
}

#[test]
fn datavolume_may_not_take_over_an_unrelated_pvc() {
    let cluster = FakeCluster::default().with(
        "",
        "persistentvolumeclaims",
        "default",
        "fedora-dv",
        json!({"metadata": {}}),
    );
    let out = admit_dv(&cluster, &mut dv(json!({"blank": {}})));
    assert_eq!(
        out.causes,
        vec![Cause::duplicate(
            "metadata.name",
            "Destination PVC default/fedora-dv already exists"
        )]
    );
    let owned = json!({"metadata": {"ownerReferences": [{"kind": "DataVolume", "controller": true, "name": "fedora-dv"}]}});
    let cluster =
        FakeCluster::default().with("", "persistentvolumeclaims", "default", "fedora-dv", owned);
    assert!(admit_dv(&cluster, &mut dv(json!({"blank": {}}))).allowed());
}

#[test]
fn datavolume_spec_is_immutable_except_multi_stage_checkpoints() {
    let old = dv(json!({"blank": {}}));
    let mut new = old.clone();
    new["spec"]["storage"]["resources"]["requests"]["storage"] = json!("20Gi");
    let out = run(
        &FakeCluster::default(),
        GROUP,
        "DataVolume",
        Some(&old),
        "alice",
        &mut new,
    );
    assert_eq!(
        out.causes,
        vec![Cause::duplicate("spec", "Cannot update DataVolume Spec")]
    );

    let mut old = dv(
        json!({"vddk": {"url": "https://vcenter/sdk", "secretRef": "s", "uuid": "u", "backingFile": "b", "thumbprint": "t"}}),
    );
    old["spec"]["checkpoints"] = json!([{"previous": "", "current": "snap-1"}]);
    let mut new = old.clone();
    new["spec"]["checkpoints"] =
        json!([{"previous": "", "current": "snap-1"}, {"previous": "snap-1", "current": "snap-2"}]);
    new["spec"]["finalCheckpoint"] = json!(true);
    assert!(run(
        &FakeCluster::default(),
        GROUP,
        "DataVolume",
        Some(&old),
        "alice",
        &mut new
    )
    .allowed());
    let mut labelled = old.clone();
    labelled["metadata"]["labels"] = json!({"a": "b"});
    assert!(run(
        &FakeCluster::default(),
        GROUP,
        "DataVolume",
        Some(&old),
        "alice",
        &mut labelled
    )
    .allowed());
}

#[test]
fn datavolume_gets_the_gc_annotation_when_cdi_config_enables_it() {
    let cluster = FakeCluster::default().with(
        GROUP,
        "cdiconfigs",
        "",
        "config",
        json!({"spec": {"dataVolumeTTLSeconds": 0}}),
    );
    let mut obj = dv(json!({"blank": {}}));
    assert!(admit_dv(&cluster, &mut obj).allowed());
    assert_eq!(
        obj["metadata"]["annotations"][ANN_DELETE_AFTER_COMPLETION],
        "true"
    );
    let mut obj = dv(json!({"blank": {}}));
    assert!(admit_dv(&FakeCluster::default(), &mut obj).allowed());
    assert!(
        obj["metadata"].get("annotations").is_none(),
        "GC is off by default"
    );
}

#[test]
fn datavolume_imageio_and_vddk_need_their_references() {
    let mut obj = dv(json!({"imageio": {"url": "https://engine/ovirt-engine/api", "diskId": "d"}}));
    assert_eq!(
        messages(&admit_dv(&FakeCluster::default(), &mut obj)),
        vec!["spec.source.imageio source Imageio is not valid"]
    );
}
