//! The PersistentVolumeClaim a DataVolume populates (same name, owned by it): from
//! `spec.pvc` as written, or from `spec.storage` completed the way CDI does — the default
//! virt StorageClass, access and volume modes from the class's StorageProfile, and for
//! Filesystem volumes the size grown by the filesystem overhead so the image still fits.

use serde_json::{json, Map, Value};

use crate::classes::{default_virt_class, fs_overhead};
use crate::kinds::{self, name, namespace, str_at, DATA_VOLUME};
use crate::quantity;
use crate::well_known::{self as wk, ann};
use crate::world::World;

/// Why no claim can be made yet: the condition reason and message to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid {
        reason: "ErrClaimNotValid",
        message: message.into(),
    }
}

/// The source type of a DataVolume (`http`, `registry`, `blank`, ...), if it has one.
pub fn source_type(dv: &Value) -> Option<&str> {
    dv["spec"]["source"]
        .as_object()
        .and_then(|s| s.keys().next())
        .map(String::as_str)
}

/// The claim spec to create (spec only; see [`claim_for`]).
///
/// # Errors
/// [`Invalid`] when the modes or size cannot be decided (manual §9.2.1: the claim is then
/// not created).
pub fn claim_spec(world: &World, dv: &Value) -> Result<Value, Invalid> {
    if let Some(pvc) = dv["spec"]["pvc"].as_object() {
        return Ok(Value::Object(pvc.clone()));
    }
    let storage = dv["spec"]["storage"]
        .as_object()
        .ok_or_else(|| invalid("DataVolume has neither spec.pvc nor spec.storage"))?;
    let storage = Value::Object(storage.clone());
    let class = str_at(&storage, "/storageClassName")
        .map(str::to_string)
        .or_else(|| default_virt_class(world));
    let mut access: Vec<String> = storage["accessModes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    let mut mode = str_at(&storage, "/volumeMode").map(str::to_string);
    if access.is_empty() || mode.is_none() {
        let Some(class) = class.as_deref() else {
            return Err(invalid("DataVolume.storage spec is missing accessMode and no storageClass to choose profile"));
        };
        match crate::profile::claim_defaults(world, class) {
            Some((profile_modes, profile_mode)) => {
                if access.is_empty() {
                    access = profile_modes;
                }
                mode.get_or_insert(profile_mode);
            }
            None if access.is_empty() => {
                return Err(invalid(format!(
                    "no accessMode specified in StorageProfile {class}"
                )));
            }
            None => {}
        }
    }
    let mode = mode.unwrap_or_else(|| "Filesystem".into());
    let requested = str_at(&storage, "/resources/requests/storage");
    if requested.is_none() {
        // A clone without a size gets its source's (CDI's `storage` API rule).
        if let Some(source) = crate::clone::source_claim(world, dv) {
            let size = str_at(&source, "/spec/resources/requests/storage").unwrap_or_default();
            let mut spec = Map::new();
            spec.insert("accessModes".into(), json!(access));
            spec.insert("volumeMode".into(), json!(mode));
            spec.insert("resources".into(), json!({"requests": {"storage": size}}));
            if let Some(class) = class {
                spec.insert("storageClassName".into(), json!(class));
            }
            return Ok(Value::Object(spec));
        }
    }
    let requested = requested
        .ok_or_else(|| invalid("DataVolume.storage spec is missing resources.requests.storage"))?;
    let bytes = quantity::parse(requested)
        .ok_or_else(|| invalid(format!("invalid storage size {requested:?}")))?;
    let size = if mode == "Filesystem" {
        let overhead = class.as_deref().map_or(0.055, |c| fs_overhead(world, c));
        quantity::format(with_overhead(bytes, overhead))
    } else {
        requested.to_string()
    };
    let mut spec = Map::new();
    spec.insert("accessModes".into(), json!(access));
    spec.insert("volumeMode".into(), json!(mode));
    spec.insert("resources".into(), json!({"requests": {"storage": size}}));
    if let Some(class) = class {
        spec.insert("storageClassName".into(), json!(class));
    }
    for key in ["selector", "dataSource", "volumeName"] {
        if !storage[key].is_null() {
            spec.insert(key.into(), storage[key].clone());
        }
    }
    Ok(Value::Object(spec))
}

/// `bytes` grown so that `bytes` remain after the overhead is reserved, in whole MiB.
pub fn with_overhead(bytes: u64, overhead: f64) -> u64 {
    // Exact for any size a volume has (< 2^53 bytes); the ceil keeps the image fitting.
    let grown = (bytes as f64 / (1.0 - overhead)).ceil() as u64;
    quantity::round_up_mib(grown)
}

/// Whether a claim is bound without waiting for a consumer: CDI's
/// `storage.bind.immediate.requested` (present and not "false", as upstream reads it), or an
/// upload target, whose upload worker is its first consumer.
pub fn binds_immediately(claim: &Value) -> bool {
    crate::kinds::annotation(claim, ann::BIND_IMMEDIATE).is_some_and(|v| v != "false")
        || crate::kinds::annotation(claim, ann::UPLOAD_TARGET).is_some()
}

/// The claim for `dv`, with the annotations CDI's workers read.
///
/// # Errors
/// As [`claim_spec`].
pub fn claim_for(world: &World, dv: &Value) -> Result<Value, Invalid> {
    let spec = claim_spec(world, dv)?;
    let source = &dv["spec"]["source"];
    let mut annotations: Map<String, Value> = dv["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            annotations.insert(k.into(), json!(v));
        }
    };
    match source_type(dv) {
        Some("http") => {
            put(ann::SOURCE, Some(wk::source::HTTP));
            put(ann::ENDPOINT, str_at(source, "/http/url"));
            put(ann::SECRET, str_at(source, "/http/secretRef"));
            put(ann::CERT_CONFIG_MAP, str_at(source, "/http/certConfigMap"));
        }
        Some("registry") => {
            put(ann::SOURCE, Some(wk::source::REGISTRY));
            put(ann::ENDPOINT, str_at(source, "/registry/url"));
            put(ann::SECRET, str_at(source, "/registry/secretRef"));
            put(
                ann::CERT_CONFIG_MAP,
                str_at(source, "/registry/certConfigMap"),
            );
        }
        Some("upload") => put(ann::UPLOAD_TARGET, Some("")),
        _ => put(ann::SOURCE, Some(wk::source::NONE)),
    }
    put(
        ann::CONTENT_TYPE,
        Some(str_at(dv, "/spec/contentType").unwrap_or("kubevirt")),
    );
    if dv["spec"]["preallocation"] == true {
        put(ann::PREALLOCATION_REQUESTED, Some("true"));
    }
    let mut labels: Map<String, Value> = dv["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(wk::APP_LABEL.into(), json!(wk::CDI_APP));
    Ok(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name(dv), "namespace": namespace(dv),
            "labels": labels, "annotations": annotations,
            "ownerReferences": [kinds::owner_ref(dv, &DATA_VOLUME, true)],
        },
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overhead_grows_a_filesystem_claim_so_the_image_still_fits() {
        let grown = with_overhead(1 << 30, 0.055);
        assert!(grown as f64 * (1.0 - 0.055) >= (1u64 << 30) as f64);
        assert_eq!(grown % (1 << 20), 0);
        assert_eq!(with_overhead(1 << 30, 0.0), 1 << 30);
    }

    #[test]
    fn the_source_type_is_the_one_key_of_source() {
        assert_eq!(
            source_type(&json!({"spec": {"source": {"http": {"url": "x"}}}})),
            Some("http")
        );
        assert_eq!(
            source_type(&json!({"spec": {"source": {"blank": {}}}})),
            Some("blank")
        );
        assert_eq!(source_type(&json!({"spec": {}})), None);
    }
}
