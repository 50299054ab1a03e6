//! Kubernetes' list merge strategies for the built-in kinds the API server serves.
//!
//! The tables restate the `patchStrategy`/`patchMergeKey` struct tags of the Kubernetes
//! `core/v1`, `apps/v1` and `batch/v1` types that kubectl relies on when it sends strategic
//! merge patches. Lists not listed here are atomic.

use crate::meta::{ListStrategy, PatchMeta};

/// The merge rule for one list field.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Objects merged by this key.
    Key(&'static str),
    /// Objects merged by this key, with `retainKeys` on the elements.
    KeyRetain(&'static str),
    /// Primitives merged as a set.
    Set,
}

type Table = &'static [(&'static [&'static str], Rule)];

/// `ObjectMeta`, wherever it appears (object root and pod templates).
const OBJECT_META: Table = &[
    (&["finalizers"], Rule::Set),
    (&["ownerReferences"], Rule::Key("uid")),
];

/// `PodSpec`, relative to the pod spec.
const POD_SPEC: Table = &[
    (&["containers"], Rule::Key("name")),
    (&["initContainers"], Rule::Key("name")),
    (&["ephemeralContainers"], Rule::Key("name")),
    (&["volumes"], Rule::KeyRetain("name")),
    (&["imagePullSecrets"], Rule::Key("name")),
    (&["hostAliases"], Rule::Key("ip")),
    (&["topologySpreadConstraints"], Rule::Key("topologyKey")),
    (&["schedulingGates"], Rule::Key("name")),
    (&["resourceClaims"], Rule::KeyRetain("name")),
];

/// `Container` and `EphemeralContainer`, relative to one container.
const CONTAINER: Table = &[
    (&["ports"], Rule::Key("containerPort")),
    (&["env"], Rule::Key("name")),
    (&["volumeMounts"], Rule::Key("mountPath")),
    (&["volumeDevices"], Rule::Key("devicePath")),
];

/// Pod spec fields that hold containers.
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// `PodStatus`, relative to the status.
const POD_STATUS: Table = &[
    (&["conditions"], Rule::Key("type")),
    (&["podIPs"], Rule::Key("ip")),
    (&["hostIPs"], Rule::Key("ip")),
    (&["resourceClaimStatuses"], Rule::KeyRetain("name")),
];

/// Kinds whose `spec.template` is a `PodTemplateSpec`.
const WORKLOADS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "ReplicationController",
    "Job",
];

/// Kinds (besides Pod) whose `status.conditions` merge by `type`.
const CONDITIONED: &[&str] = &[
    "Node",
    "Namespace",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "ReplicationController",
    "Job",
];

/// List strategies of the Kubernetes built-in kinds, selected by kind name.
///
/// `metadata.finalizers` (a set) and `metadata.ownerReferences` (by `uid`) merge for every
/// kind, including kinds this table does not know; all other lists of unknown kinds (custom
/// resources, `ControllerRevision`'s opaque data) are atomic, as with JSON merge patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreKindsMeta {
    kind: String,
}

impl CoreKindsMeta {
    /// The table for objects of `kind` (for example `"Pod"` or `"Deployment"`).
    pub fn for_kind(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
        }
    }

    /// The kind this table describes.
    pub fn kind(&self) -> &str {
        &self.kind
    }
}

impl PatchMeta for CoreKindsMeta {
    fn list_strategy(&self, path: &[&str]) -> Option<ListStrategy> {
        if let ["metadata", rest @ ..] = path {
            return lookup(OBJECT_META, rest);
        }
        let kind = self.kind.as_str();
        match path {
            ["spec", rest @ ..] if kind == "Pod" => pod_spec(rest),
            ["status", rest @ ..] if kind == "Pod" => lookup(POD_STATUS, rest),
            ["template", rest @ ..] if kind == "PodTemplate" => pod_template(rest),
            ["spec", "template", rest @ ..] if WORKLOADS.contains(&kind) => pod_template(rest),
            ["spec", "jobTemplate", "metadata", rest @ ..] if kind == "CronJob" => {
                lookup(OBJECT_META, rest)
            }
            ["spec", "jobTemplate", "spec", "template", rest @ ..] if kind == "CronJob" => {
                pod_template(rest)
            }
            ["status", "conditions"] if CONDITIONED.contains(&kind) => {
                Some(ListStrategy::by_key("type"))
            }
            ["spec", "podCIDRs"] if kind == "Node" => Some(ListStrategy::set()),
            ["status", "addresses"] if kind == "Node" => Some(ListStrategy::by_key("type")),
            ["spec", "ports"] if kind == "Service" => Some(ListStrategy::by_key("port")),
            ["secrets"] if kind == "ServiceAccount" => Some(ListStrategy::by_key("name")),
            _ => None,
        }
    }
}

/// A `PodTemplateSpec`, relative to the template.
fn pod_template(rel: &[&str]) -> Option<ListStrategy> {
    match rel {
        ["metadata", rest @ ..] => lookup(OBJECT_META, rest),
        ["spec", rest @ ..] => pod_spec(rest),
        _ => None,
    }
}

fn pod_spec(rel: &[&str]) -> Option<ListStrategy> {
    match rel {
        [list, rest @ ..] if CONTAINER_LISTS.contains(list) && !rest.is_empty() => {
            lookup(CONTAINER, rest)
        }
        _ => lookup(POD_SPEC, rel),
    }
}

fn lookup(table: Table, rel: &[&str]) -> Option<ListStrategy> {
    let (_, rule) = table.iter().find(|(path, _)| *path == rel)?;
    Some(match rule {
        Rule::Key(key) => ListStrategy::by_key(key),
        Rule::KeyRetain(key) => ListStrategy::by_key_retaining(key),
        Rule::Set => ListStrategy::set(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(kind: &str, path: &[&str]) -> Option<Option<String>> {
        CoreKindsMeta::for_kind(kind)
            .list_strategy(path)
            .map(|s| s.merge_key)
    }

    #[test]
    fn pod_lists_merge_by_their_kubernetes_keys() {
        let key = |path: &[&str]| key_of("Pod", path).flatten();
        assert_eq!(key(&["spec", "containers"]).as_deref(), Some("name"));
        assert_eq!(
            key(&["spec", "initContainers", "env"]).as_deref(),
            Some("name")
        );
        assert_eq!(
            key(&["spec", "containers", "ports"]).as_deref(),
            Some("containerPort")
        );
        assert_eq!(
            key(&["spec", "containers", "volumeMounts"]).as_deref(),
            Some("mountPath")
        );
        assert_eq!(key(&["spec", "volumes"]).as_deref(), Some("name"));
        assert_eq!(key(&["spec", "imagePullSecrets"]).as_deref(), Some("name"));
        assert_eq!(key(&["spec", "hostAliases"]).as_deref(), Some("ip"));
        assert_eq!(key(&["status", "conditions"]).as_deref(), Some("type"));
        assert_eq!(
            key(&["metadata", "ownerReferences"]).as_deref(),
            Some("uid")
        );
    }

    #[test]
    fn pod_volumes_carry_retain_keys() {
        let s = CoreKindsMeta::for_kind("Pod")
            .list_strategy(&["spec", "volumes"])
            .unwrap();
        assert!(s.retain_keys);
    }

    #[test]
    fn tolerations_taints_and_args_are_atomic() {
        assert_eq!(key_of("Pod", &["spec", "tolerations"]), None);
        assert_eq!(key_of("Pod", &["spec", "containers", "args"]), None);
        assert_eq!(key_of("Node", &["spec", "taints"]), None);
        assert_eq!(key_of("Endpoints", &["subsets"]), None);
    }

    #[test]
    fn finalizers_are_a_primitive_set_for_every_kind() {
        for kind in ["Pod", "ConfigMap", "VirtualMachine"] {
            assert_eq!(
                key_of(kind, &["metadata", "finalizers"]),
                Some(None),
                "{kind}"
            );
        }
    }

    #[test]
    fn workload_templates_use_pod_spec_rules() {
        for kind in [
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
        ] {
            let key = key_of(kind, &["spec", "template", "spec", "containers", "env"]).flatten();
            assert_eq!(key.as_deref(), Some("name"), "{kind}");
            let fin = key_of(kind, &["spec", "template", "metadata", "finalizers"]);
            assert_eq!(fin, Some(None), "{kind}");
        }
        let cron = key_of(
            "CronJob",
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "containers",
            ],
        );
        assert_eq!(cron.flatten().as_deref(), Some("name"));
        let tmpl = key_of("PodTemplate", &["template", "spec", "volumes"]);
        assert_eq!(tmpl.flatten().as_deref(), Some("name"));
    }

    #[test]
    fn other_core_kinds_have_their_keys() {
        assert_eq!(
            key_of("Service", &["spec", "ports"]).flatten().as_deref(),
            Some("port")
        );
        assert_eq!(
            key_of("Node", &["status", "addresses"])
                .flatten()
                .as_deref(),
            Some("type")
        );
        assert_eq!(key_of("Node", &["spec", "podCIDRs"]), Some(None));
        assert_eq!(
            key_of("Namespace", &["status", "conditions"])
                .flatten()
                .as_deref(),
            Some("type")
        );
        assert_eq!(
            key_of("ServiceAccount", &["secrets"]).flatten().as_deref(),
            Some("name")
        );
    }

    #[test]
    fn unknown_kinds_keep_lists_atomic_outside_metadata() {
        assert_eq!(
            key_of(
                "VirtualMachine",
                &["spec", "template", "spec", "domain", "devices", "disks"]
            ),
            None
        );
        assert_eq!(
            key_of(
                "ControllerRevision",
                &["data", "spec", "template", "spec", "containers"]
            ),
            None
        );
    }
}
