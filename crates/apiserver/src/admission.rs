//! Admission: defaulting, pruning and validation of every write, plus the per-kind
//! hooks (Namespaces, CustomResourceDefinitions) that run around it.

use serde_json::{json, Value};

use crate::context::{FieldValidation, RequestCtx};
use crate::crd;
use crate::error::{ApiError, ApiResult, Cause};
use crate::objects::{self, meta_mut};
use crate::registry::{CreatePolicy, NameRule, ResourceInfo};
use crate::schemas;
use crate::service::Api;

/// Defaults, prunes and validates `obj` (a create when `old` is None).
pub async fn admit(
    api: &Api,
    info: &ResourceInfo,
    obj: &mut Value,
    old: Option<&Value>,
    ctx: &RequestCtx,
) -> ApiResult<()> {
    let name = objects::name(obj).to_string();
    if old.is_none() && info.create_policy == CreatePolicy::SystemOnly && !ctx.user.is_component() {
        return Err(ApiError::Forbidden(format!(
            "{} \"{name}\" is forbidden: oxivirt has no container runtime, so {} are created only by oxivirt itself \
             (a VirtualMachineInstance gets its virt-launcher Pod automatically); create a VirtualMachine instead",
            info.plural, info.plural
        )));
    }
    let outcome = schemas::process(info, obj);
    let mut causes = outcome.errors;
    if !outcome.unknown_fields.is_empty() {
        match ctx.field_validation {
            FieldValidation::Ignore => {}
            FieldValidation::Warn => {
                for field in &outcome.unknown_fields {
                    ctx.warn(format!(
                        "unknown field \"{}\"",
                        field.trim_start_matches('.')
                    ));
                }
            }
            FieldValidation::Strict => {
                let list: Vec<String> = outcome
                    .unknown_fields
                    .iter()
                    .map(|f| format!("unknown field \"{}\"", f.trim_start_matches('.')))
                    .collect();
                let version = obj["apiVersion"]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                return Err(ApiError::BadRequest(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                    list.join(", "),
                    kind = info.kind
                )));
            }
        }
    }
    if old.is_none() {
        validate_name(info, &name, &mut causes);
    }
    objects::validate_labels_and_annotations(obj, &mut causes);
    kind_hooks(api, info, obj, old, &mut causes)?;
    if !causes.is_empty() {
        return Err(ApiError::invalid(&info.group, &info.kind, &name, causes));
    }
    crate::unsupported::warn(info, obj, ctx);
    crate::rbac::escalation::check(api, info, obj, ctx).await?;
    crate::handlers::clone_auth::check(api, info, obj, old, ctx).await?;
    crate::webhook::run(api, info, obj, old, ctx).await
}

fn validate_name(info: &ResourceInfo, name: &str, causes: &mut Vec<Cause>) {
    let (ok, msg) = match info.name_rule {
        NameRule::Subdomain => (objects::is_dns_subdomain(name), objects::SUBDOMAIN_MSG),
        NameRule::Label => (objects::is_dns_label_1123(name), objects::LABEL_MSG),
        NameRule::Rfc1035Label => (objects::is_dns_label_1035(name), objects::RFC1035_MSG),
        NameRule::PathSegment => (
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%']),
            "may not contain '/' or '%' and may not be '.' or '..'",
        ),
    };
    if !ok {
        causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {name:?}: {msg}"),
            field: "metadata.name".into(),
        });
    }
}

fn kind_hooks(
    api: &Api,
    info: &ResourceInfo,
    obj: &mut Value,
    old: Option<&Value>,
    causes: &mut Vec<Cause>,
) -> ApiResult<()> {
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Namespace") => {
            if old.is_none() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
            }
            let label = json!(objects::name(obj));
            let meta = meta_mut(obj);
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(map) = labels.as_object_mut() {
                map.insert("kubernetes.io/metadata.name".into(), label);
            }
        }
        ("", "Secret") => {
            if obj.get("type").is_none_or(Value::is_null) {
                obj["type"] = json!("Opaque");
            }
            fold_string_data(obj);
        }
        ("", "Service") => default_service(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd::admit(api, obj, old, causes),
        _ => {}
    }
    Ok(())
}

/// `stringData` is write-only: its entries are stored base64-encoded in `data`.
fn fold_string_data(obj: &mut Value) {
    use base64::Engine;
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (key, value) in string_data {
        let text = value.as_str().unwrap_or_default().to_string();
        obj["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// The defaults a Kubernetes apiserver gives a Service.
fn default_service(obj: &mut Value) {
    let spec = obj.get_mut("spec").filter(|s| s.is_object());
    let Some(spec) = spec else { return };
    if spec.get("type").is_none() {
        spec["type"] = json!("ClusterIP");
    }
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            if port.get("protocol").is_none() {
                port["protocol"] = json!("TCP");
            }
            if port.get("targetPort").is_none() {
                port["targetPort"] = port.get("port").cloned().unwrap_or(Value::Null);
            }
        }
    }
}

/// Adjusts an object about to be marked for deletion.
pub fn before_delete(info: &ResourceInfo, obj: &mut Value) {
    if info.group.is_empty() && info.kind == "Namespace" {
        obj["status"] = json!({"phase": "Terminating"});
    }
}

/// Runs after a successful create or update is stored.
pub async fn after_write(api: &Api, info: &ResourceInfo, obj: &Value) {
    if info.group == "apiextensions.k8s.io" && info.kind == "CustomResourceDefinition" {
        crd::serve(api, obj);
    }
}

/// Runs after an object is removed from the store.
pub async fn after_delete(api: &Api, info: &ResourceInfo, obj: &Value) {
    if info.group == "apiextensions.k8s.io" && info.kind == "CustomResourceDefinition" {
        api.registry.remove_crd(objects::name(obj));
    }
}
