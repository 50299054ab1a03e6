//! Small helpers over Kubernetes JSON shared by the reconcilers: field access, conditions,
//! owner references, timestamps and API resources of the kinds the controllers handle.

use k8s_openapi::jiff::Timestamp;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::ResourceExt;
use serde_json::{json, Value};

/// The `kubevirt.io/v1` VirtualMachine resource.
pub(crate) fn vm_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "kubevirt.io",
        "v1",
        "VirtualMachine",
    ))
}

/// The `kubevirt.io/v1` VirtualMachineInstance resource.
pub(crate) fn vmi_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "kubevirt.io",
        "v1",
        "VirtualMachineInstance",
    ))
}

/// The `cdi.kubevirt.io/v1beta1` DataVolume resource.
pub(crate) fn data_volume_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cdi.kubevirt.io",
        "v1beta1",
        "DataVolume",
    ))
}

/// The string at JSON pointer `path`, if any.
pub(crate) fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path).and_then(Value::as_str)
}

/// `status.phase` of an object (empty when unset).
pub(crate) fn phase(v: &Value) -> &str {
    str_at(v, "/status/phase").unwrap_or("")
}

/// Now, as Kubernetes writes `metav1.Time` (RFC 3339, whole seconds, UTC).
pub(crate) fn now_rfc3339() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Seconds from now until the RFC 3339 time `at` (negative when past; `None` if unparsable).
pub(crate) fn seconds_until(at: &str) -> Option<i64> {
    let at: Timestamp = at.parse().ok()?;
    Some(at.as_second() - Timestamp::now().as_second())
}

/// RFC 3339 time `seconds` from now.
pub(crate) fn rfc3339_in(seconds: i64) -> String {
    let at = Timestamp::from_second(Timestamp::now().as_second() + seconds)
        .unwrap_or_else(|_| Timestamp::now());
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The condition of `type_` in `status.conditions`.
pub(crate) fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Whether the condition `type_` has `status` (and `reason`, when given).
pub(crate) fn has_condition(obj: &Value, type_: &str, status: &str, reason: Option<&str>) -> bool {
    condition(obj, type_).is_some_and(|c| {
        c["status"] == status && reason.is_none_or(|r| c["reason"].as_str() == Some(r))
    })
}

/// Puts `new` into `conditions`, replacing one of the same type. The transition time is
/// kept when the status did not change, so rewriting an unchanged condition is a no-op.
pub(crate) fn set_condition(conditions: &mut Vec<Value>, mut new: Value) {
    let type_ = new["type"].clone();
    match conditions.iter_mut().find(|c| c["type"] == type_) {
        Some(old) => {
            if old["status"] == new["status"] && old.get("lastTransitionTime").is_some() {
                new["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

/// Removes the condition of `type_`.
pub(crate) fn remove_condition(conditions: &mut Vec<Value>, type_: &str) {
    conditions.retain(|c| c["type"] != type_);
}

/// A condition object as KubeVirt writes them (`lastProbeTime: null`).
pub(crate) fn new_condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    let mut c = json!({
        "type": type_, "status": status, "lastProbeTime": null,
        "lastTransitionTime": now_rfc3339(),
    });
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

/// `status.conditions` as an owned list.
pub(crate) fn conditions(obj: &Value) -> Vec<Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A controller owner reference to `owner` (`blockOwnerDeletion: true`).
pub(crate) fn controller_ref(owner: &DynamicObject, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind, "name": owner.name_any(),
        "uid": owner.uid().unwrap_or_default(), "controller": true, "blockOwnerDeletion": true,
    })
}

/// Whether `obj` names `owner_uid` as its controller.
pub(crate) fn is_controlled_by(obj: &Value, owner_uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == owner_uid && r["controller"] == true)
        })
}

/// Whether `metadata.deletionTimestamp` is set.
pub(crate) fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Whether `metadata.finalizers` holds `finalizer`.
pub(crate) fn has_finalizer(obj: &Value, finalizer: &str) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f == finalizer))
}

/// `metadata.finalizers` with `finalizer` added (`add`) or removed.
pub(crate) fn finalizers_with(obj: &Value, finalizer: &str, add: bool) -> Vec<Value> {
    let mut list: Vec<Value> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.retain(|f| f != finalizer);
    if add {
        list.push(json!(finalizer));
    }
    list
}

/// The whole object (metadata included) as JSON, for the pure decision functions.
pub(crate) fn to_json(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// `metadata.resourceVersion` of an object.
pub(crate) fn resource_version(obj: &Value) -> Option<&str> {
    str_at(obj, "/metadata/resourceVersion")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewriting_a_condition_with_the_same_status_keeps_its_transition_time() {
        let mut list =
            vec![json!({"type": "Ready", "status": "False", "lastTransitionTime": "then"})];
        set_condition(&mut list, new_condition("Ready", "False", "X", "m"));
        assert_eq!(list[0]["lastTransitionTime"], "then");
        assert_eq!(list[0]["reason"], "X");
        set_condition(&mut list, new_condition("Ready", "True", "", ""));
        assert_ne!(list[0]["lastTransitionTime"], "then");
        assert!(list[0].get("reason").is_none());
    }

    #[test]
    fn times_round_trip_through_rfc3339() {
        let later = rfc3339_in(30);
        let left = seconds_until(&later).expect("parsable");
        assert!((29..=31).contains(&left), "{left}");
        assert!(seconds_until(&now_rfc3339()).expect("parsable") <= 0);
    }

    #[test]
    fn finalizers_are_added_once_and_removed() {
        let obj = json!({"metadata": {"finalizers": ["a"]}});
        assert_eq!(
            finalizers_with(&obj, "b", true),
            vec![json!("a"), json!("b")]
        );
        assert_eq!(finalizers_with(&obj, "a", true), vec![json!("a")]);
        assert!(finalizers_with(&obj, "a", false).is_empty());
    }
}
