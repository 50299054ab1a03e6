//! `meta/v1` types shared by every kind: object metadata, label selectors, delete options and
//! conditions.

use super::{message, messages, BOOL, FIELDS_V1, INT64, STRING, STRINGS, STRING_MAP, TIME};
use crate::decode::{Field, Message};

/// `metav1.ObjectMeta`.
pub(super) static OBJECT_META: Message = Message {
    fields: &[
        Field::omit_empty(1, "name", STRING),
        Field::omit_empty(2, "generateName", STRING),
        Field::omit_empty(3, "namespace", STRING),
        Field::omit_empty(4, "selfLink", STRING),
        Field::omit_empty(5, "uid", STRING),
        Field::omit_empty(6, "resourceVersion", STRING),
        Field::omit_empty(7, "generation", INT64),
        Field::keep(8, "creationTimestamp", TIME),
        Field::keep(9, "deletionTimestamp", TIME),
        Field::keep(10, "deletionGracePeriodSeconds", INT64),
        Field::keep(11, "labels", STRING_MAP),
        Field::keep(12, "annotations", STRING_MAP),
        Field::keep(13, "ownerReferences", messages(&OWNER_REFERENCE)),
        Field::keep(14, "finalizers", STRINGS),
        Field::keep(17, "managedFields", messages(&MANAGED_FIELDS_ENTRY)),
    ],
};

/// `metav1.OwnerReference`.
static OWNER_REFERENCE: Message = Message {
    fields: &[
        Field::keep(5, "apiVersion", STRING),
        Field::keep(1, "kind", STRING),
        Field::keep(3, "name", STRING),
        Field::keep(4, "uid", STRING),
        Field::keep(6, "controller", BOOL),
        Field::keep(7, "blockOwnerDeletion", BOOL),
    ],
};

/// `metav1.ManagedFieldsEntry`.
static MANAGED_FIELDS_ENTRY: Message = Message {
    fields: &[
        Field::omit_empty(1, "manager", STRING),
        Field::omit_empty(2, "operation", STRING),
        Field::omit_empty(3, "apiVersion", STRING),
        Field::keep(4, "time", TIME),
        Field::omit_empty(6, "fieldsType", STRING),
        Field::keep(7, "fieldsV1", FIELDS_V1),
        Field::omit_empty(8, "subresource", STRING),
    ],
};

/// `metav1.LabelSelector`.
pub(super) static LABEL_SELECTOR: Message = Message {
    fields: &[
        Field::keep(1, "matchLabels", STRING_MAP),
        Field::keep(2, "matchExpressions", messages(&LABEL_SELECTOR_REQUIREMENT)),
    ],
};

/// `metav1.LabelSelectorRequirement`.
pub(super) static LABEL_SELECTOR_REQUIREMENT: Message = Message {
    fields: &[
        Field::keep(1, "key", STRING),
        Field::keep(2, "operator", STRING),
        Field::keep(3, "values", STRINGS),
    ],
};

/// `metav1.FieldSelectorRequirement`.
pub(super) static FIELD_SELECTOR_REQUIREMENT: Message = Message {
    fields: &[
        Field::keep(1, "key", STRING),
        Field::keep(2, "operator", STRING),
        Field::keep(3, "values", STRINGS),
    ],
};

/// `metav1.DeleteOptions`: the body of DELETE requests, and embedded in `Eviction`.
pub(super) static DELETE_OPTIONS: Message = Message {
    fields: &[
        Field::keep(1, "gracePeriodSeconds", INT64),
        Field::keep(2, "preconditions", message(&PRECONDITIONS)),
        Field::keep(3, "orphanDependents", BOOL),
        Field::keep(4, "propagationPolicy", STRING),
        Field::keep(5, "dryRun", STRINGS),
        Field::keep(6, "ignoreStoreReadErrorWithClusterBreakingPotential", BOOL),
    ],
};

/// `metav1.Preconditions`.
static PRECONDITIONS: Message = Message {
    fields: &[
        Field::keep(1, "uid", STRING),
        Field::keep(2, "resourceVersion", STRING),
    ],
};

/// `metav1.Condition`.
pub(super) static CONDITION: Message = Message {
    fields: &[
        Field::keep(1, "type", STRING),
        Field::keep(2, "status", STRING),
        Field::omit_empty(3, "observedGeneration", INT64),
        Field::keep(4, "lastTransitionTime", TIME),
        Field::keep(5, "reason", STRING),
        Field::keep(6, "message", STRING),
    ],
};
