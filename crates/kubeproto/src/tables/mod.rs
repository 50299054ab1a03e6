//! Message tables for every kind this crate decodes, and the registry that maps an envelope's
//! `apiVersion`/`kind` to its table.
//!
//! Field numbers come from the Kubernetes `generated.proto` files (as mirrored by the prost
//! output of the `k8s-pb` crate); JSON names and `omitempty`/pointer choices come from the Go
//! types in `k8s.io/api`. Each table lists fields in Go struct order.

mod auth;
mod core;
mod meta;
mod policy;

use crate::decode::{FieldKind, Kind, Message};

/// A single `string`.
const STRING: FieldKind = FieldKind::One(Kind::String);
/// A single `int32`.
const INT32: FieldKind = FieldKind::One(Kind::Int32);
/// A single `int64`.
const INT64: FieldKind = FieldKind::One(Kind::Int64);
/// A single `bool`.
const BOOL: FieldKind = FieldKind::One(Kind::Bool);
/// A single `metav1.Time`.
const TIME: FieldKind = FieldKind::One(Kind::Time);
/// A single `intstr.IntOrString`.
const INT_OR_STRING: FieldKind = FieldKind::One(Kind::IntOrString);
/// A single `metav1.FieldsV1`.
const FIELDS_V1: FieldKind = FieldKind::One(Kind::FieldsV1);
/// `repeated string`.
const STRINGS: FieldKind = FieldKind::Repeated(Kind::String);
/// `map<string, string>`.
const STRING_MAP: FieldKind = FieldKind::Map(Kind::String);
/// `map<string, bytes>`.
const BYTES_MAP: FieldKind = FieldKind::Map(Kind::Bytes);
/// `map<string, resource.Quantity>`.
const QUANTITY_MAP: FieldKind = FieldKind::Map(Kind::Quantity);
/// `map<string, metav1.Time>`.
const TIME_MAP: FieldKind = FieldKind::Map(Kind::Time);
/// `map<string, ExtraValue>` (a list of strings per key).
const STRING_LIST_MAP: FieldKind = FieldKind::Map(Kind::StringList);

/// A single nested message.
const fn message(table: &'static Message) -> FieldKind {
    FieldKind::One(Kind::Message(table))
}

/// A repeated nested message.
const fn messages(table: &'static Message) -> FieldKind {
    FieldKind::Repeated(Kind::Message(table))
}

/// Every top-level kind with a table, by `(apiVersion, kind)`.
static KINDS: &[(&str, &str, &Message)] = &[
    ("v1", "ConfigMap", &core::CONFIG_MAP),
    ("v1", "Secret", &core::SECRET),
    ("v1", "Namespace", &core::NAMESPACE),
    ("v1", "ServiceAccount", &core::SERVICE_ACCOUNT),
    ("v1", "Service", &core::SERVICE),
    ("v1", "ResourceQuota", &core::RESOURCE_QUOTA),
    ("rbac.authorization.k8s.io/v1", "Role", &policy::ROLE),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        &policy::CLUSTER_ROLE,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        &policy::ROLE_BINDING,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        &policy::ROLE_BINDING,
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &auth::SELF_SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectRulesReview",
        &auth::SELF_SUBJECT_RULES_REVIEW,
    ),
    (
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        &auth::SELF_SUBJECT_REVIEW,
    ),
    (
        "authentication.k8s.io/v1",
        "TokenRequest",
        &auth::TOKEN_REQUEST,
    ),
    ("policy/v1", "Eviction", &policy::EVICTION),
    (
        "policy/v1",
        "PodDisruptionBudget",
        &policy::POD_DISRUPTION_BUDGET,
    ),
    (
        "scheduling.k8s.io/v1",
        "PriorityClass",
        &policy::PRIORITY_CLASS,
    ),
];

/// `DeleteOptions` is registered in every group version (client-go's typed `Delete` sends it
/// with the resource's own `apiVersion`, e.g. `v1` for pods), so it matches any `apiVersion`.
const DELETE_OPTIONS_KIND: &str = "DeleteOptions";

/// The table for a top-level kind, if there is one.
pub(crate) fn lookup(api_version: &str, kind: &str) -> Option<&'static Message> {
    if kind == DELETE_OPTIONS_KIND {
        return Some(&meta::DELETE_OPTIONS);
    }
    KINDS
        .iter()
        .find(|(known_version, known_kind, _)| *known_version == api_version && *known_kind == kind)
        .map(|(_, _, table)| *table)
}

/// `(apiVersion, kind)` of every supported kind; `DeleteOptions` is listed once, as `v1`.
pub(crate) fn kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    KINDS
        .iter()
        .map(|(api_version, kind, _)| (*api_version, *kind))
        .chain(std::iter::once(("v1", DELETE_OPTIONS_KIND)))
}
