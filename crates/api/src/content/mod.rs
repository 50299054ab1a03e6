//! Content oxivirt installs on first start, and the instance type expansion behind
//! `GET …/virtualmachines/{name}/expand-spec`.
//!
//! # Owns
//! - Upstream's `common-instancetypes` as `instancetype.kubevirt.io/v1beta1` objects:
//!   [`common_cluster_instancetypes`] and [`common_cluster_preferences`].
//! - The namespaces and the singleton HyperConverged created on first start:
//!   [`well_known_namespaces`], [`default_hyperconverged`].
//! - The default RBAC: [`cluster_roles`] and [`cluster_role_bindings`].
//! - [`expand_spec`]: a VirtualMachine with its instance type and preference applied the way
//!   upstream's `pkg/instancetype/expand` does it.
//!
//! # Must not
//! Do I/O or look anything up: the caller resolves `spec.instancetype`/`spec.preference`
//! (and their ControllerRevisions) and passes the objects in.
//!
//! # Assumptions
//! The shipped objects follow upstream `common-instancetypes` as of its v1.x releases (the
//! generation OpenShift Virtualization 4.17–4.19 ships), on amd64 only. Where upstream
//! releases differ, the newest composition seen is used; the crate's report lists the
//! uncertain points.

mod expand;
mod instancetypes;
mod preference_apply;
mod preferences;
mod rbac;

pub use expand::{expand_spec, ExpandError};
pub use instancetypes::common_cluster_instancetypes;
pub use preferences::common_cluster_preferences;
pub use rbac::{cluster_role_bindings, cluster_roles};

use serde_json::{json, Map, Value};

use crate::well_known::{MANAGED_BY, MANAGED_BY_LABEL};

/// Group/version of every shipped instance type and preference.
pub const INSTANCETYPE_API_VERSION: &str = "instancetype.kubevirt.io/v1beta1";

/// Label naming the vendor of a shipped instance type or preference (`kubevirt.io`).
pub const VENDOR_LABEL: &str = "instancetype.kubevirt.io/vendor";

/// Label carrying the `common-instancetypes` release the objects were generated from.
pub const COMMON_INSTANCETYPES_VERSION_LABEL: &str =
    "instancetype.kubevirt.io/common-instancetypes-version";

/// The `common-instancetypes` release the shipped content is modelled on.
pub const COMMON_INSTANCETYPES_VERSION: &str = "v1.3.0";

/// `app.kubernetes.io/name` label key.
pub const APP_NAME_LABEL: &str = "app.kubernetes.io/name";

/// Value of [`APP_NAME_LABEL`] on every shipped instance type and preference.
pub const COMMON_INSTANCETYPES_APP: &str = "common-instancetypes";

/// Namespace of the operator and of the HyperConverged singleton.
pub const OPENSHIFT_CNV_NAMESPACE: &str = "openshift-cnv";

/// Namespace holding the golden images (DataSources, DataImportCrons).
pub const OS_IMAGES_NAMESPACE: &str = "openshift-virtualization-os-images";

/// Name of the HyperConverged singleton.
pub const HYPERCONVERGED_NAME: &str = "kubevirt-hyperconverged";

/// The namespaces oxivirt creates on first start: the operator namespace and the golden
/// image namespace.
pub fn well_known_namespaces() -> &'static [&'static str] {
    &[OPENSHIFT_CNV_NAMESPACE, OS_IMAGES_NAMESPACE]
}

/// The HyperConverged singleton created on first start: `kubevirt-hyperconverged` in
/// `openshift-cnv` with an empty spec (defaults come from its schema).
pub fn default_hyperconverged() -> Value {
    json!({
        "apiVersion": "hco.kubevirt.io/v1beta1",
        "kind": "HyperConverged",
        "metadata": {
            "name": HYPERCONVERGED_NAME,
            "namespace": OPENSHIFT_CNV_NAMESPACE,
            "labels": { MANAGED_BY_LABEL: MANAGED_BY },
        },
        "spec": {},
    })
}

/// Labels every shipped instance type and preference carries.
fn common_labels() -> Map<String, Value> {
    let mut labels = Map::new();
    labels.insert(VENDOR_LABEL.into(), "kubevirt.io".into());
    labels.insert(
        COMMON_INSTANCETYPES_VERSION_LABEL.into(),
        COMMON_INSTANCETYPES_VERSION.into(),
    );
    labels.insert(APP_NAME_LABEL.into(), COMMON_INSTANCETYPES_APP.into());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels
}

/// Merges `patch` into `base` the way a kustomize strategic merge of these documents does:
/// objects merge key by key, anything else (including arrays) is replaced.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custom_resource_definitions;

    /// The storage version's schema of `kind`.
    fn schema(kind: &str) -> Value {
        let crd = custom_resource_definitions()
            .into_iter()
            .find(|c| c["spec"]["names"]["kind"] == kind)
            .unwrap_or_else(|| panic!("no CRD for {kind}"));
        crd["spec"]["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["storage"] == true))
            .map(|v| v["schema"]["openAPIV3Schema"].clone())
            .unwrap_or_else(|| panic!("{kind} has no storage version"))
    }

    /// Unknown fields and errors of `obj` processed as the API server does on create.
    pub(super) fn problems(obj: &Value) -> Vec<String> {
        let kind = obj["kind"].as_str().expect("kind");
        let mut obj = obj.clone();
        let outcome = oxivirt_schema::process(
            &schema(kind),
            &oxivirt_schema::Definitions::new(),
            &mut obj,
            oxivirt_schema::ProcessOptions {
                prune: true,
                apply_defaults: false,
                validate: true,
            },
        );
        let mut out: Vec<String> = outcome
            .unknown_fields
            .iter()
            .map(|f| format!("unknown field {f}"))
            .collect();
        out.extend(outcome.errors.iter().map(|e| e.to_string()));
        out
    }

    #[test]
    fn well_known_namespaces_are_the_operator_and_golden_image_namespaces() {
        assert_eq!(
            well_known_namespaces(),
            ["openshift-cnv", "openshift-virtualization-os-images"]
        );
    }

    #[test]
    fn default_hyperconverged_is_the_named_singleton_with_an_empty_spec() {
        let hco = default_hyperconverged();
        assert_eq!(hco["apiVersion"], "hco.kubevirt.io/v1beta1");
        assert_eq!(hco["metadata"]["name"], "kubevirt-hyperconverged");
        assert_eq!(hco["metadata"]["namespace"], "openshift-cnv");
        assert_eq!(hco["spec"], json!({}));
        assert_eq!(problems(&hco), Vec::<String>::new());
    }

    #[test]
    fn every_shipped_instancetype_is_valid_against_its_crd() {
        for it in common_cluster_instancetypes() {
            let name = it["metadata"]["name"].clone();
            assert_eq!(problems(&it), Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn every_shipped_preference_is_valid_against_its_crd() {
        for pref in common_cluster_preferences() {
            let name = pref["metadata"]["name"].clone();
            assert_eq!(problems(&pref), Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn the_schema_check_reports_unknown_fields_and_bad_types() {
        let mut pref = common_cluster_preferences().remove(0);
        pref["spec"]["devices"]["preferredDiskBuss"] = json!("virtio");
        pref["spec"]["requirements"]["cpu"]["guest"] = json!("one");
        let found = problems(&pref);
        assert!(
            found.iter().any(|p| p.contains("preferredDiskBuss")),
            "{found:?}"
        );
        assert!(found.iter().any(|p| p.contains("guest")), "{found:?}");
    }

    #[test]
    fn shipped_objects_carry_the_vendor_version_and_managed_by_labels() {
        let all = common_cluster_instancetypes()
            .into_iter()
            .chain(common_cluster_preferences());
        for obj in all {
            let labels = &obj["metadata"]["labels"];
            assert_eq!(labels[VENDOR_LABEL], "kubevirt.io");
            assert_eq!(labels[COMMON_INSTANCETYPES_VERSION_LABEL], "v1.3.0");
            assert_eq!(labels[APP_NAME_LABEL], "common-instancetypes");
            assert_eq!(labels[MANAGED_BY_LABEL], "oxivirt");
            assert_eq!(obj["apiVersion"], INSTANCETYPE_API_VERSION);
        }
    }

    #[test]
    fn shipped_names_are_unique() {
        let mut names: Vec<String> = common_cluster_instancetypes()
            .into_iter()
            .chain(common_cluster_preferences())
            .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
            .collect();
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), total);
    }

    #[test]
    fn merge_combines_objects_and_replaces_everything_else() {
        let mut base = json!({"a": {"x": 1, "y": [1]}, "b": 1});
        merge(&mut base, &json!({"a": {"y": [2], "z": 3}, "c": true}));
        assert_eq!(
            base,
            json!({"a": {"x": 1, "y": [2], "z": 3}, "b": 1, "c": true})
        );
    }
}
