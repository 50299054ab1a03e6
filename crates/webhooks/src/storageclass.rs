//! StorageClass (`storage.k8s.io/v1`): Kubernetes' built-in defaults and update validation.
//!
//! The manual (9.x storage profiles) relies on it: "storage class parameters are immutable; to
//! change them delete & recreate the storage class". Messages are Kubernetes' own
//! (`ValidateStorageClassUpdate`), rendered as field errors.

use serde_json::{json, Value};

use crate::json::{at, default_str, ensure_object, nonempty, str_at};
use crate::review::{Cause, Operation, Outcome, Request};

const RECLAIM_POLICIES: [&str; 2] = ["Delete", "Retain"];
const BINDING_MODES: [&str; 2] = ["Immediate", "WaitForFirstConsumer"];

pub(crate) fn admit(req: &Request<'_>, obj: &mut Value, out: &mut Outcome) {
    if let Some(map) = ensure_object(obj) {
        default_str(map, "reclaimPolicy", "Delete");
        default_str(map, "volumeBindingMode", "Immediate");
    }
    if nonempty(obj, &["provisioner"]).is_none() {
        out.causes
            .push(Cause::required("provisioner", "Required value"));
    }
    for (field, allowed) in [
        ("reclaimPolicy", &RECLAIM_POLICIES),
        ("volumeBindingMode", &BINDING_MODES),
    ] {
        if let Some(v) = str_at(obj, &[field]).filter(|v| !allowed.contains(v)) {
            out.causes.push(Cause::not_supported(
                field,
                format!(
                    "Unsupported value: {v:?}: supported values: \"{}\"",
                    allowed.join("\", \"")
                ),
            ));
        }
    }
    let (Operation::Update, Some(old)) = (req.operation, req.old) else {
        return;
    };
    let empty = json!({});
    let params = |v: &Value| {
        at(v, &["parameters"])
            .cloned()
            .unwrap_or_else(|| empty.clone())
    };
    if params(obj) != params(old) {
        out.causes.push(Cause::forbidden(
            "parameters",
            "Forbidden: updates to parameters are forbidden.",
        ));
    }
    for (field, default) in [("provisioner", ""), ("reclaimPolicy", "Delete")] {
        if str_at(obj, &[field]).unwrap_or(default) != str_at(old, &[field]).unwrap_or(default) {
            out.causes.push(Cause::forbidden(
                field,
                format!("Forbidden: updates to {field} are forbidden."),
            ));
        }
    }
    let mode = str_at(obj, &["volumeBindingMode"]).unwrap_or("Immediate");
    if mode != str_at(old, &["volumeBindingMode"]).unwrap_or("Immediate") {
        out.causes.push(Cause::invalid(
            "volumeBindingMode",
            format!("Invalid value: {mode:?}: field is immutable"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{messages, run, FakeCluster};

    fn sc(params: Value) -> Value {
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "hostpath-csi"},
               "provisioner": "kubevirt.io.hostpath-provisioner", "parameters": params})
    }

    #[test]
    fn storage_class_gets_kubernetes_defaults() {
        let mut obj = sc(json!({"storagePool": "my-storage-pool"}));
        assert!(run(
            &FakeCluster::default(),
            "storage.k8s.io",
            "StorageClass",
            None,
            "admin",
            &mut obj
        )
        .allowed());
        assert_eq!(obj["reclaimPolicy"], "Delete");
        assert_eq!(obj["volumeBindingMode"], "Immediate");
    }

    #[test]
    fn storage_class_parameters_are_immutable() {
        let old = sc(json!({"storagePool": "my-storage-pool"}));
        let mut new = sc(json!({"storagePool": "other-pool"}));
        let out = run(
            &FakeCluster::default(),
            "storage.k8s.io",
            "StorageClass",
            Some(&old),
            "admin",
            &mut new,
        );
        assert_eq!(
            out.causes,
            vec![Cause::forbidden(
                "parameters",
                "Forbidden: updates to parameters are forbidden."
            )]
        );
        let mut labelled = old.clone();
        labelled["metadata"]["labels"] = json!({"a": "b"});
        assert!(run(
            &FakeCluster::default(),
            "storage.k8s.io",
            "StorageClass",
            Some(&old),
            "admin",
            &mut labelled
        )
        .allowed());
    }

    #[test]
    fn storage_class_provisioner_and_binding_mode_are_immutable() {
        let old = sc(json!({}));
        let mut new = old.clone();
        new["provisioner"] = json!("other.csi");
        new["volumeBindingMode"] = json!("WaitForFirstConsumer");
        let out = run(
            &FakeCluster::default(),
            "storage.k8s.io",
            "StorageClass",
            Some(&old),
            "admin",
            &mut new,
        );
        assert_eq!(
            messages(&out),
            vec![
                "Forbidden: updates to provisioner are forbidden.",
                "Invalid value: \"WaitForFirstConsumer\": field is immutable"
            ]
        );
    }

    #[test]
    fn storage_class_enums_are_checked() {
        let mut obj = sc(json!({}));
        obj["reclaimPolicy"] = json!("Recycle");
        let out = run(
            &FakeCluster::default(),
            "storage.k8s.io",
            "StorageClass",
            None,
            "admin",
            &mut obj,
        );
        assert_eq!(
            messages(&out),
            vec!["Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\""]
        );
    }
}
