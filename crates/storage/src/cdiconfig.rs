//! CDIConfig `config` status (manual §9.4, §9.8): the filesystem overhead in force, globally
//! and for every StorageClass; the scratch space class; default worker Pod resources.
//!
//! Sources, strongest first: HyperConverged `spec.filesystemOverhead` /
//! `spec.scratchSpaceStorageClass` (the operator propagates them), then CDIConfig's own
//! `spec`, then CDI's defaults (5.5%).

use serde_json::{json, Map, Value};

use crate::classes::{default_class, parse_overhead};
use crate::kinds::{name, CDI_CONFIG, HYPERCONVERGED, STORAGE_CLASS};
use crate::well_known as wk;
use crate::world::World;

/// CDI's default worker Pod resources (upstream's defaults).
fn default_pod_resources() -> Value {
    json!({
        "limits": {"cpu": "750m", "memory": "600M"},
        "requests": {"cpu": "100m", "memory": "60M"},
    })
}

/// The worker Pod resources in force (CDIConfig status, else CDI's defaults).
pub fn pod_resources(world: &World) -> Value {
    world
        .get(CDI_CONFIG, "", wk::CDI_CONFIG_NAME)
        .map(|c| c["status"]["defaultPodResourceRequirements"].clone())
        .filter(Value::is_object)
        .unwrap_or_else(default_pod_resources)
}

/// The HyperConverged singleton, if present.
pub fn hyperconverged(world: &World) -> Option<Value> {
    world.get(
        HYPERCONVERGED,
        oxivirt_api::content::OPENSHIFT_CNV_NAMESPACE,
        oxivirt_api::content::HYPERCONVERGED_NAME,
    )
}

/// The status CDIConfig should have.
pub fn desired_status(world: &World, config: &Value) -> Value {
    let hco = hyperconverged(world).unwrap_or(Value::Null);
    let pick = |field: &str| -> Value {
        let from_hco = &hco["spec"][field];
        if !from_hco.is_null() {
            return from_hco.clone();
        }
        config["spec"][field].clone()
    };
    let overhead = pick("filesystemOverhead");
    let valid = |v: &Value| {
        v.as_str()
            .filter(|s| parse_overhead(s).is_some())
            .map(str::to_string)
    };
    let global = valid(&overhead["global"]).unwrap_or_else(|| wk::DEFAULT_FS_OVERHEAD.into());
    let mut per_class = Map::new();
    for class in world.list(STORAGE_CLASS) {
        let value =
            valid(&overhead["storageClass"][name(&class)]).unwrap_or_else(|| global.clone());
        per_class.insert(name(&class).into(), json!(value));
    }
    let mut status = Map::new();
    status.insert(
        "filesystemOverhead".into(),
        json!({"global": global, "storageClass": per_class}),
    );
    if let Some(scratch) = scratch_class(world, pick("scratchSpaceStorageClass").as_str()) {
        status.insert("scratchSpaceStorageClass".into(), json!(scratch));
    }
    // HyperConverged's storageWorkloads resources win over CDIConfig's own (manual §9.7).
    let from_hco = hco["spec"]["resourceRequirements"]["storageWorkloads"].clone();
    let resources = if from_hco.is_object() {
        from_hco
    } else {
        config["spec"]["podResourceRequirements"].clone()
    };
    status.insert(
        "defaultPodResourceRequirements".into(),
        if resources.is_object() {
            resources
        } else {
            default_pod_resources()
        },
    );
    let preallocation = config["spec"]["preallocation"].as_bool().unwrap_or(false);
    status.insert("preallocation".into(), json!(preallocation));
    if let Some(url) = config["spec"]["uploadProxyURLOverride"].as_str() {
        status.insert("uploadProxyURL".into(), json!(url));
    }
    Value::Object(status)
}

/// Manual §9.8: the configured class if it exists, else the cluster default class; `None`
/// means "the class of the volume being populated".
pub fn scratch_class(world: &World, configured: Option<&str>) -> Option<String> {
    let classes = world.list(STORAGE_CLASS);
    if let Some(wanted) = configured.filter(|w| !w.is_empty()) {
        if classes.iter().any(|c| name(c) == wanted) {
            return Some(wanted.to_string());
        }
    }
    default_class(world)
}

/// Writes CDIConfig's status when it changed. Idempotent.
pub async fn reconcile(client: &kube::Client, world: &World) {
    let Some(config) = world.get(CDI_CONFIG, "", wk::CDI_CONFIG_NAME) else {
        return;
    };
    let status = desired_status(world, &config);
    if config["status"] == status {
        return;
    }
    // CDI's kinds have no status subresource: the status is part of the object, replaced
    // whole so classes that went away leave the per-class map.
    let mut updated = config;
    updated["status"] = status;
    if let Err(e) = crate::ops::replace(client, CDI_CONFIG, &updated).await {
        tracing::warn!(error = %e, "cannot write CDIConfig status");
    }
}
