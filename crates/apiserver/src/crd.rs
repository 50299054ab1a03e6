//! CustomResourceDefinitions: validation, status, turning a CRD into served resources,
//! and the KubeVirt CRDs oxivirt installs on first start.

use serde_json::{json, Value};

use crate::error::Cause;
use crate::objects;
use crate::registry::{ResourceInfo, SchemaSource};
use crate::service::Api;
use crate::table::{CellSource, Column};

pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Validates a CRD and fills in its status as the apiextensions apiserver would.
pub fn admit(api: &Api, crd: &mut Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let group = s(crd, "/spec/group").to_string();
    let plural = s(crd, "/spec/names/plural").to_string();
    let kind = s(crd, "/spec/names/kind").to_string();
    let mut require = |field: &str, ok: bool, message: String| {
        if !ok {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message,
                field: field.into(),
            });
        }
    };
    require(
        "spec.group",
        !group.is_empty() && group.contains('.'),
        format!("Invalid value: {group:?}: should be a domain with at least one dot"),
    );
    require(
        "spec.names.plural",
        !plural.is_empty() && objects::is_dns_label_1123(&plural),
        format!("Invalid value: {plural:?}: a lowercase RFC 1123 label is required"),
    );
    require("spec.names.kind", !kind.is_empty(), "Required value".into());
    let expected = format!("{plural}.{group}");
    require(
        "metadata.name",
        objects::name(crd) == expected,
        format!(
            "Invalid value: {:?}: must be spec.names.plural+\".\"+spec.group",
            objects::name(crd)
        ),
    );
    let scope = s(crd, "/spec/scope");
    require(
        "spec.scope",
        scope == "Namespaced" || scope == "Cluster",
        format!("Unsupported value: {scope:?}: supported values: \"Cluster\", \"Namespaced\""),
    );
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage: Vec<&Value> = versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .collect();
    require(
        "spec.versions",
        storage.len() == 1,
        "Invalid value: must have exactly one version marked as storage version".into(),
    );
    if let Some(old) = old {
        require(
            "spec.group",
            s(old, "/spec/group") == group,
            "Invalid value: field is immutable".into(),
        );
    }
    if let Some(existing) = api.registry.by_group_resource(&group, &plural) {
        if existing.crd_name.is_none() {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {plural:?}: conflicts with a built-in resource"),
                field: "spec.names.plural".into(),
            });
        }
    }
    let mut finalizers = objects::finalizers(crd);
    if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) && !objects::is_deleting(crd) {
        finalizers.push(CLEANUP_FINALIZER.into());
        objects::set_finalizers(crd, &finalizers);
    }
    let now = objects::now_rfc3339();
    let mut names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    if names.get("singular").is_none() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names.get("listKind").is_none() {
        names["listKind"] = json!(format!("{kind}List"));
    }
    crd["spec"]["names"] = names.clone();
    let stored: Vec<String> = storage
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    crd["status"] = json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": stored,
    });
    if objects::is_deleting(crd) {
        crd["status"]["conditions"].as_array_mut().into_iter().for_each(|c| {
            c.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
                          "message": "CustomResource deletion is in progress", "lastTransitionTime": now}));
        });
    }
}

/// The resource a CRD defines, or None when it is malformed.
pub fn resource_info(crd: &Value) -> Option<ResourceInfo> {
    let group = s(crd, "/spec/group");
    let kind = s(crd, "/spec/names/kind");
    let plural = s(crd, "/spec/names/plural");
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return None;
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array)?;
    let storage = versions.iter().find(|v| v["storage"] == json!(true))?;
    let served: Vec<String> = versions
        .iter()
        .filter(|v| v["served"] != json!(false))
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    let mut info = ResourceInfo::builtin(
        group,
        storage["name"].as_str()?,
        kind,
        plural,
        s(crd, "/spec/scope") != "Cluster",
    );
    info.versions = served;
    // CDI serves UploadTokenRequests for create only (every other verb is answered 405).
    if group == "upload.cdi.kubevirt.io" && plural == "uploadtokenrequests" {
        info.verbs = vec!["create"];
    }
    info.singular = match s(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        singular => singular.to_string(),
    };
    if let Some(list_kind) = crd.pointer("/spec/names/listKind").and_then(Value::as_str) {
        info.list_kind = list_kind.to_string();
    }
    info.short_names = strings(crd, "/spec/names/shortNames");
    info.categories = strings(crd, "/spec/names/categories");
    info.has_status = storage.pointer("/subresources/status").is_some();
    info.schema = match storage.pointer("/schema/openAPIV3Schema") {
        Some(schema) => SchemaSource::Structural(schema.clone()),
        None => SchemaSource::None,
    };
    info.crd_name = Some(objects::name(crd).to_string());
    info.tracks_generation = true;
    info.field_selectors = storage
        .get("selectableFields")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|f| f["jsonPath"].as_str())
                .map(|p| p.trim_start_matches('.').to_string())
                .collect()
        })
        .unwrap_or_default();
    let printer = storage
        .get("additionalPrinterColumns")
        .and_then(Value::as_array);
    info.columns = match printer {
        Some(cols) if !cols.is_empty() => {
            let mut columns = vec![Column::name()];
            for c in cols {
                let kind: &'static str = match c["type"].as_str().unwrap_or("string") {
                    "integer" => "integer",
                    "number" => "number",
                    "boolean" => "boolean",
                    "date" => "date",
                    _ => "string",
                };
                let mut col = Column::new(
                    c["name"].as_str().unwrap_or(""),
                    kind,
                    c["priority"].as_i64().unwrap_or(0),
                    CellSource::JsonPath(c["jsonPath"].as_str().unwrap_or("").to_string()),
                );
                col.description = c["description"].as_str().unwrap_or("").to_string();
                columns.push(col);
            }
            columns
        }
        _ => crate::table::default_columns(),
    };
    Some(info)
}

/// Starts serving what a stored CRD defines (or stops, once it is being deleted).
pub fn serve(api: &Api, crd: &Value) {
    if objects::is_deleting(crd) {
        return;
    }
    if let Some(info) = resource_info(crd) {
        api.registry.insert(info);
    }
}
