//! CDI DataVolume admission: the mutating webhook's garbage-collection annotation and the
//! validating webhook's rules (target storage, exactly one source, URLs, content types,
//! `sourceRef`, immutable spec).
//!
//! Upstream: CDI `pkg/apiserver/webhooks/datavolume-{mutate,validate}.go`; CDI UPSTREAM-FACTS
//! A.3 lists the source types and content types. The clone-authorization token the mutating
//! webhook stamps on cross-namespace clones is not produced here (it needs a signer).

use serde_json::{json, Value};

use crate::json::{array, at, child, has, int_at, nonempty, object_at, str_at};
use crate::quantity::from_json;
use crate::review::{Cause, Operation, Outcome, Request};
use crate::Cluster;

const GROUP: &str = "cdi.kubevirt.io";
/// `DataVolumeSource` members (CDI UPSTREAM-FACTS A.3).
const SOURCE_TYPES: [&str; 10] = [
    "http", "s3", "gcs", "registry", "pvc", "snapshot", "upload", "blank", "imageio", "vddk",
];
const ACCESS_MODES: [&str; 3] = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce"];
/// Annotation that marks a DataVolume for garbage collection once it succeeded.
const ANN_DELETE_AFTER_COMPLETION: &str = "cdi.kubevirt.io/storage.deleteAfterCompletion";
/// Annotation a populated PVC carries naming the DataVolume it belongs to.
const ANN_POPULATED_FOR: &str = "cdi.kubevirt.io/storage.populatedFor";

pub(crate) async fn admit(
    req: &Request<'_>,
    obj: &mut Value,
    cluster: &dyn Cluster,
    out: &mut Outcome,
) {
    if has(obj, &["metadata", "deletionTimestamp"]) {
        return;
    }
    if req.operation == Operation::Create {
        mark_for_garbage_collection(obj, cluster).await;
    }
    if let (Operation::Update, Some(old)) = (req.operation, req.old) {
        if !same_spec_but_checkpoints(obj, old) {
            out.causes
                .push(Cause::duplicate("spec", "Cannot update DataVolume Spec"));
        }
        return;
    }
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    validate_storage(&spec, "spec", &mut out.causes);
    if !out.causes.is_empty() {
        return; // upstream stops at the first storage problem
    }
    validate_source(&spec, "spec", &mut out.causes);
    if out.causes.is_empty() {
        validate_references(obj, req.namespace, cluster, &mut out.causes).await;
    }
}

/// CDIConfig `spec.dataVolumeTTLSeconds >= 0` turns garbage collection on (off by default).
async fn mark_for_garbage_collection(obj: &mut Value, cluster: &dyn Cluster) {
    let Some(config) = cluster.get(GROUP, "cdiconfigs", "", "config").await else {
        return;
    };
    if int_at(&config, &["spec", "dataVolumeTTLSeconds"]).is_none_or(|ttl| ttl < 0) {
        return;
    }
    if str_at(
        obj,
        &["metadata", "annotations", ANN_DELETE_AFTER_COMPLETION],
    ) == Some("false")
    {
        return;
    }
    if let Some(annotations) = object_at(obj, &["metadata", "annotations"]) {
        annotations.insert(ANN_DELETE_AFTER_COMPLETION.into(), json!("true"));
    }
}

/// Multi-stage (warm) imports may advance `checkpoints`/`finalCheckpoint`; nothing else changes.
fn same_spec_but_checkpoints(obj: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
        let multi_stage = !array(&spec, &["checkpoints"]).is_empty()
            && (has(&spec, &["source", "vddk"]) || has(&spec, &["source", "imageio"]));
        if let (true, Some(map)) = (multi_stage, spec.as_object_mut()) {
            map.remove("checkpoints");
            map.remove("finalCheckpoint");
        }
        spec
    };
    strip(obj) == strip(old)
}

fn validate_storage(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let (pvc, storage) = (has(spec, &["pvc"]), has(spec, &["storage"]));
    if !pvc && !storage {
        // Upstream's own clone example leaves `storage:` empty; a clone can take everything
        // from its source, so oxivirt accepts it (upstream CDI would ask for a target).
        if is_clone(spec) {
            return;
        }
        out.push(Cause::invalid(
            child(path, "pvc"),
            "Missing Data volume PVC",
        ));
        return;
    }
    if pvc && storage {
        out.push(Cause::invalid(
            child(path, "pvc"),
            "Duplicate storage definition, both target storage and target pvc defined",
        ));
        return;
    }
    let (key, label) = if pvc {
        ("pvc", "PVC")
    } else {
        ("storage", "Storage")
    };
    let size_field = child(path, &format!("{key}.resources.requests.storage"));
    match at(spec, &[key, "resources", "requests", "storage"]).and_then(from_json) {
        Some(Ok(q)) if q.is_zero() || q.is_negative() => {
            return out.push(Cause::invalid(
                &size_field,
                format!("{label} size can't be equal or less than zero"),
            ));
        }
        Some(Err(e)) => return out.push(Cause::invalid(&size_field, e.to_string())),
        Some(Ok(_)) => {}
        // The storage API infers the size of clones from their source.
        None if !pvc && is_clone(spec) => {}
        None => {
            return out.push(Cause::invalid(
                &size_field,
                format!("{label} size is missing"),
            ))
        }
    }
    let modes: Vec<&str> = array(spec, &[key, "accessModes"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let modes_field = child(path, &format!("{key}.accessModes"));
    if pvc && modes.is_empty() {
        return out.push(Cause::invalid(
            &modes_field,
            "Required value: at least 1 access mode is required",
        ));
    }
    if let Some(bad) = modes.iter().find(|m| !ACCESS_MODES.contains(m)) {
        out.push(Cause::invalid(
            &modes_field,
            format!("Unsupported value: {bad:?}: supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\""),
        ));
    }
}

fn is_clone(spec: &Value) -> bool {
    has(spec, &["sourceRef"]) || has(spec, &["source", "pvc"]) || has(spec, &["source", "snapshot"])
}

/// Why `url` is not an http(s) URL, in CDI's words.
fn url_problem(url: &str) -> Option<String> {
    if url.is_empty() {
        return Some("source URL is empty".to_string());
    }
    match url.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() && !rest.is_empty() => (scheme != "http"
            && scheme != "https")
            .then(|| format!("Invalid source URL scheme: {url}")),
        _ if url.starts_with('/') => Some(format!("Invalid source URL scheme: {url}")),
        _ => Some(format!("Invalid source URL: {url}")),
    }
}

/// The source rules, shared by DataVolumes (`spec`) and VM DataVolume templates
/// (`spec.dataVolumeTemplates[i].spec`).
pub(crate) fn validate_source(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let externally_populated =
        has(spec, &["pvc", "dataSourceRef"]) || has(spec, &["storage", "dataSourceRef"]);
    let (source, source_ref) = (has(spec, &["source"]), has(spec, &["sourceRef"]));
    if source == source_ref {
        if !externally_populated || source {
            out.push(Cause::invalid(
                child(path, "source"),
                "Data volume should have either Source or SourceRef",
            ));
        }
        return;
    }
    if source_ref {
        let rf = child(path, "sourceRef");
        match str_at(spec, &["sourceRef", "kind"]).unwrap_or("") {
            "" => out.push(Cause::invalid(child(&rf, "kind"), "Missing sourceRef kind")),
            "DataSource" => {}
            other => out.push(Cause::invalid(
                child(&rf, "kind"),
                format!(
                    "Unsupported sourceRef kind {other}, currently only DataSource is supported"
                ),
            )),
        }
        if nonempty(spec, &["sourceRef", "name"]).is_none() {
            out.push(Cause::invalid(child(&rf, "name"), "Missing sourceRef name"));
        }
        return;
    }
    let sp = child(path, "source");
    let types: Vec<&str> = SOURCE_TYPES
        .into_iter()
        .filter(|t| has(spec, &["source", *t]))
        .collect();
    match types.as_slice() {
        [] => return out.push(Cause::invalid(&sp, "Missing Data volume source")),
        [_] => {}
        _ => return out.push(Cause::invalid(&sp, "Multiple Data volume sources")),
    }
    let kind = types[0];
    let src = at(spec, &["source", kind]).cloned().unwrap_or(Value::Null);
    let kf = child(&sp, kind);
    if ["http", "s3", "imageio", "vddk"].contains(&kind) {
        if let Some(problem) = url_problem(str_at(&src, &["url"]).unwrap_or("")) {
            return out.push(Cause::invalid(child(&kf, "url"), format!("{sp} {problem}")));
        }
    }
    let content = str_at(spec, &["contentType"]).unwrap_or("");
    let cf = child(path, "contentType");
    if !["", "kubevirt", "archive"].contains(&content) {
        return out.push(Cause::invalid(
            &cf,
            "ContentType not one of: kubevirt, archive",
        ));
    }
    let required: &[&str] = match kind {
        "blank" if content == "archive" => {
            return out.push(Cause::invalid(
                &cf,
                "SourceType cannot be blank and the contentType be archive",
            ));
        }
        "registry" => return validate_registry(&src, content, &kf, &cf, out),
        "imageio" => &["secretRef", "certConfigMap", "diskId"],
        "vddk" => &["secretRef", "uuid", "backingFile", "thumbprint"],
        "pvc" => &["namespace", "name"],
        _ => &[],
    };
    if required.iter().any(|k| nonempty(&src, &[*k]).is_none()) {
        let label = match kind {
            "imageio" => "Imageio",
            "vddk" => "VDDK",
            _ => "PVC",
        };
        out.push(Cause::invalid(
            &kf,
            format!("{kf} source {label} is not valid"),
        ));
    }
}

fn validate_registry(src: &Value, content: &str, kf: &str, cf: &str, out: &mut Vec<Cause>) {
    if !content.is_empty() && content != "kubevirt" {
        return out.push(Cause::invalid(
            cf,
            "ContentType must be kubevirt when Source is Registry",
        ));
    }
    if let Some(url) = nonempty(src, &["url"]) {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        if !["docker", "oci-archive"].contains(&scheme) {
            return out.push(Cause::invalid(
                child(kf, "url"),
                format!("Illegal registry source URL scheme {url}"),
            ));
        }
    }
    if let Some(method) = nonempty(src, &["pullMethod"]).filter(|m| *m != "pod" && *m != "node") {
        out.push(Cause::invalid(
            child(kf, "pullMethod"),
            format!("ImportMethod {method} is neither pod, node or \"\""),
        ));
    }
}

/// Create-time checks against other objects: the referenced DataSource exists, and the target
/// PVC is not an unrelated existing claim.
async fn validate_references(
    obj: &Value,
    namespace: &str,
    cluster: &dyn Cluster,
    out: &mut Vec<Cause>,
) {
    let name = str_at(obj, &["metadata", "name"]).unwrap_or("");
    if let Some(ds) = nonempty(obj, &["spec", "sourceRef", "name"]) {
        let ns = nonempty(obj, &["spec", "sourceRef", "namespace"]).unwrap_or(namespace);
        if cluster.get(GROUP, "datasources", ns, ds).await.is_none() {
            out.push(Cause::not_found(
                "spec.sourceRef",
                format!("SourceRef DataSource/{ns}/{ds} not found"),
            ));
        }
    }
    if name.is_empty() {
        return;
    }
    let Some(pvc) = cluster
        .get("", "persistentvolumeclaims", namespace, name)
        .await
    else {
        return;
    };
    let ours = str_at(&pvc, &["metadata", "annotations", ANN_POPULATED_FOR]) == Some(name)
        || array(&pvc, &["metadata", "ownerReferences"])
            .iter()
            .any(|o| {
                o.get("controller") == Some(&Value::Bool(true))
                    && str_at(o, &["kind"]) == Some("DataVolume")
            });
    if !ours {
        out.push(Cause::duplicate(
            "metadata.name",
            format!("Destination PVC {namespace}/{name} already exists"),
        ));
    }
}

#[cfg(test)]
mod tests;
