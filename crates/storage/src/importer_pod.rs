//! The importer worker Pod of a DataVolume (`importer-<claim>`), as CDI's import controller
//! makes it: labels `app: containerized-data-importer`, `cdi.kubevirt.io: importer`; the
//! target claim mounted at `/data` (volume `cdi-data-vol`); the source described in
//! upstream's `IMPORTER_*` environment; owned by the claim; placed on the claim's node.

use serde_json::{json, Map, Value};

use crate::cdiconfig;
use crate::classes::fs_overhead;
use crate::kinds::{self, annotation, name, namespace, str_at, uid, PV, PVC};
use crate::well_known::{self as wk, env};
use crate::world::World;

/// Where the target claim is mounted in the worker (upstream's path).
const DATA_MOUNT: &str = "/data";
/// Where the `certConfigMap` is mounted (upstream's path).
const CERT_MOUNT: &str = "/certs";

/// The importer Pod's name for a claim.
pub fn pod_name(claim: &str) -> String {
    format!("importer-{claim}")
}

/// The upload worker Pod's name for a claim (upstream's `cdi-upload-<claim>`).
pub fn upload_pod_name(claim: &str) -> String {
    format!("cdi-upload-{claim}")
}

fn plain(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

/// The importer Pod for `dv` writing into the bound `claim`; `None` when the claim's node
/// is not known yet.
pub fn importer_pod(world: &World, dv: &Value, claim: &Value) -> Option<Value> {
    let node = claim_node(world, claim)?;
    let source_type = crate::claim::source_type(dv).unwrap_or("blank");
    let source = &dv["spec"]["source"][source_type];
    let upload = source_type == "upload";
    let (pod, component) = if upload {
        (upload_pod_name(name(claim)), wk::UPLOAD_COMPONENT)
    } else {
        (pod_name(name(claim)), "importer")
    };
    let class = str_at(claim, "/spec/storageClassName").unwrap_or_default();
    let mut env_vars = vec![
        plain(
            env::SOURCE,
            if upload {
                wk::source::UPLOAD
            } else {
                annotation(claim, wk::ann::SOURCE).unwrap_or(wk::source::NONE)
            },
        ),
        plain(env::ENDPOINT, source["url"].as_str().unwrap_or_default()),
        plain(
            env::CONTENT_TYPE,
            str_at(dv, "/spec/contentType").unwrap_or("kubevirt"),
        ),
        plain(
            env::IMAGE_SIZE,
            str_at(claim, "/status/capacity/storage")
                .or_else(|| str_at(claim, "/spec/resources/requests/storage"))
                .unwrap_or_default(),
        ),
        plain(env::OWNER_UID, uid(dv)),
        plain(env::FS_OVERHEAD, format!("{}", fs_overhead(world, class))),
        plain(
            env::PREALLOCATION,
            if dv["spec"]["preallocation"] == true {
                "true"
            } else {
                "false"
            },
        ),
        plain(env::DATA_DIR, DATA_MOUNT),
        plain(
            env::VOLUME_MODE,
            str_at(claim, "/spec/volumeMode").unwrap_or("Filesystem"),
        ),
    ];
    let mut volumes = vec![
        json!({"name": wk::DATA_VOLUME_NAME, "persistentVolumeClaim": {"claimName": name(claim)}}),
    ];
    let mut mounts = vec![json!({"name": wk::DATA_VOLUME_NAME, "mountPath": DATA_MOUNT})];
    if let Some(secret) = source["secretRef"].as_str() {
        for (var, key) in [
            (env::ACCESS_KEY_ID, "accessKeyId"),
            (env::SECRET_KEY, "secretKey"),
        ] {
            env_vars.push(
                json!({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}),
            );
        }
    }
    if let Some(config_map) = source["certConfigMap"].as_str() {
        volumes.push(json!({"name": "cdi-cert-vol", "configMap": {"name": config_map}}));
        mounts.push(json!({"name": "cdi-cert-vol", "mountPath": CERT_MOUNT}));
        env_vars.push(plain(env::CERT_DIR, CERT_MOUNT));
    }
    for (i, header) in source["extraHeaders"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        env_vars.push(plain(
            &format!("{}{i}", env::EXTRA_HEADERS),
            header.as_str().unwrap_or_default(),
        ));
    }
    if source_type == "registry" {
        let insecure = registry_insecure(world, source["url"].as_str().unwrap_or_default());
        env_vars.push(plain(
            env::INSECURE_TLS,
            if insecure { "true" } else { "false" },
        ));
    }
    let resources = cdiconfig::pod_resources(world);
    let mut annotations: Map<String, Value> = dv["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    Some(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": pod, "namespace": namespace(claim),
            "labels": {
                wk::APP_LABEL: wk::CDI_APP,
                wk::CDI_COMPONENT_LABEL: component,
                "prometheus.cdi.kubevirt.io": "true",
            },
            "annotations": annotations,
            "ownerReferences": [kinds::owner_ref(claim, &PVC, true)],
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": wk::IMPORTER_CONTAINER,
                "image": wk::IMPORTER_IMAGE,
                "args": ["-v=1"],
                "env": env_vars,
                "volumeMounts": mounts,
                "resources": resources,
                "terminationMessagePath": "/dev/termination-log",
            }],
            "volumes": volumes,
        },
    }))
}

/// Whether the registry of a `docker://` URL is in HyperConverged's insecure registries.
fn registry_insecure(world: &World, url: &str) -> bool {
    let host = url
        .trim_start_matches("docker://")
        .split('/')
        .next()
        .unwrap_or_default();
    cdiconfig::hyperconverged(world).is_some_and(|hco| {
        hco["spec"]["storageImport"]["insecureRegistries"]
            .as_array()
            .is_some_and(|list| list.iter().any(|r| r.as_str() == Some(host)))
    })
}

/// The node holding a bound claim's volume: its PersistentVolume's node affinity, else the
/// claim's selected node.
pub fn claim_node(world: &World, claim: &Value) -> Option<String> {
    let volume = str_at(claim, "/spec/volumeName").and_then(|v| world.get(PV, "", v));
    let from_volume = volume.as_ref().and_then(|pv| {
        pv.pointer("/spec/nodeAffinity/required/nodeSelectorTerms/0/matchExpressions")?
            .as_array()?
            .iter()
            .find(|e| e["key"] == wk::HOSTNAME_LABEL && e["operator"] == "In")?
            .pointer("/values/0")?
            .as_str()
            .map(str::to_string)
    });
    from_volume.or_else(|| annotation(claim, wk::ANN_SELECTED_NODE).map(str::to_string))
}
