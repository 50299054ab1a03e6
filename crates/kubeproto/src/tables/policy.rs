//! Policy kinds: RBAC (`rbac.authorization.k8s.io/v1` Role, ClusterRole, RoleBinding,
//! ClusterRoleBinding), disruption (`policy/v1` Eviction and PodDisruptionBudget) and priority
//! (`scheduling.k8s.io/v1` PriorityClass).

use super::meta::{CONDITION, DELETE_OPTIONS, LABEL_SELECTOR, OBJECT_META};
use super::{message, messages, BOOL, INT32, INT64, INT_OR_STRING, STRING, STRINGS, TIME_MAP};
use crate::decode::{Field, Message};

/// `rbacv1.Role`.
pub(super) static ROLE: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "rules", messages(&POLICY_RULE)),
    ],
};

/// `rbacv1.ClusterRole`.
pub(super) static CLUSTER_ROLE: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "rules", messages(&POLICY_RULE)),
        Field::keep(3, "aggregationRule", message(&AGGREGATION_RULE)),
    ],
};

/// `rbacv1.PolicyRule`.
static POLICY_RULE: Message = Message {
    fields: &[
        Field::keep(1, "verbs", STRINGS),
        Field::keep(2, "apiGroups", STRINGS),
        Field::keep(3, "resources", STRINGS),
        Field::keep(4, "resourceNames", STRINGS),
        Field::keep(5, "nonResourceURLs", STRINGS),
    ],
};

/// `rbacv1.AggregationRule`.
static AGGREGATION_RULE: Message = Message {
    fields: &[Field::keep(
        1,
        "clusterRoleSelectors",
        messages(&LABEL_SELECTOR),
    )],
};

/// `rbacv1.RoleBinding`; `ClusterRoleBinding` has the same fields and numbers.
pub(super) static ROLE_BINDING: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "subjects", messages(&SUBJECT)),
        Field::keep(3, "roleRef", message(&ROLE_REF)),
    ],
};

/// `rbacv1.Subject`.
static SUBJECT: Message = Message {
    fields: &[
        Field::keep(1, "kind", STRING),
        Field::omit_empty(2, "apiGroup", STRING),
        Field::keep(3, "name", STRING),
        Field::omit_empty(4, "namespace", STRING),
    ],
};

/// `rbacv1.RoleRef`.
static ROLE_REF: Message = Message {
    fields: &[
        Field::keep(1, "apiGroup", STRING),
        Field::keep(2, "kind", STRING),
        Field::keep(3, "name", STRING),
    ],
};

/// `policyv1.Eviction`, which `kubectl drain` posts to `pods/<name>/eviction`.
pub(super) static EVICTION: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "deleteOptions", message(&DELETE_OPTIONS)),
    ],
};

/// `policyv1.PodDisruptionBudget`.
pub(super) static POD_DISRUPTION_BUDGET: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "spec", message(&POD_DISRUPTION_BUDGET_SPEC)),
        Field::keep(3, "status", message(&POD_DISRUPTION_BUDGET_STATUS)),
    ],
};

/// `policyv1.PodDisruptionBudgetSpec`.
static POD_DISRUPTION_BUDGET_SPEC: Message = Message {
    fields: &[
        Field::keep(1, "minAvailable", INT_OR_STRING),
        Field::keep(2, "selector", message(&LABEL_SELECTOR)),
        Field::keep(3, "maxUnavailable", INT_OR_STRING),
        Field::keep(4, "unhealthyPodEvictionPolicy", STRING),
    ],
};

/// `policyv1.PodDisruptionBudgetStatus`.
static POD_DISRUPTION_BUDGET_STATUS: Message = Message {
    fields: &[
        Field::omit_empty(1, "observedGeneration", INT64),
        Field::keep(2, "disruptedPods", TIME_MAP),
        Field::keep(3, "disruptionsAllowed", INT32),
        Field::keep(4, "currentHealthy", INT32),
        Field::keep(5, "desiredHealthy", INT32),
        Field::keep(6, "expectedPods", INT32),
        Field::keep(7, "conditions", messages(&CONDITION)),
    ],
};

/// `schedulingv1.PriorityClass`: its fields sit at the top level, beside `metadata`.
pub(super) static PRIORITY_CLASS: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "value", INT32),
        Field::omit_empty(3, "globalDefault", BOOL),
        Field::omit_empty(4, "description", STRING),
        Field::keep(5, "preemptionPolicy", STRING),
    ],
};
