//! Who-am-I and may-I: `authorization.k8s.io/v1` SelfSubjectAccessReview and
//! SelfSubjectRulesReview (`kubectl auth can-i`), and `authentication.k8s.io/v1`
//! SelfSubjectReview (`kubectl auth whoami`) and TokenRequest (`kubectl create token`).

use super::meta::{FIELD_SELECTOR_REQUIREMENT, LABEL_SELECTOR_REQUIREMENT, OBJECT_META};
use super::{message, messages, BOOL, INT64, STRING, STRINGS, STRING_LIST_MAP, TIME};
use crate::decode::{Field, Message};

/// `authorizationv1.SelfSubjectAccessReview`.
pub(super) static SELF_SUBJECT_ACCESS_REVIEW: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "spec", message(&SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
        Field::keep(3, "status", message(&SUBJECT_ACCESS_REVIEW_STATUS)),
    ],
};

/// `authorizationv1.SelfSubjectAccessReviewSpec`.
static SELF_SUBJECT_ACCESS_REVIEW_SPEC: Message = Message {
    fields: &[
        Field::keep(1, "resourceAttributes", message(&RESOURCE_ATTRIBUTES)),
        Field::keep(
            2,
            "nonResourceAttributes",
            message(&NON_RESOURCE_ATTRIBUTES),
        ),
    ],
};

/// `authorizationv1.ResourceAttributes`.
static RESOURCE_ATTRIBUTES: Message = Message {
    fields: &[
        Field::omit_empty(1, "namespace", STRING),
        Field::omit_empty(2, "verb", STRING),
        Field::omit_empty(3, "group", STRING),
        Field::omit_empty(4, "version", STRING),
        Field::omit_empty(5, "resource", STRING),
        Field::omit_empty(6, "subresource", STRING),
        Field::omit_empty(7, "name", STRING),
        Field::keep(8, "fieldSelector", message(&FIELD_SELECTOR_ATTRIBUTES)),
        Field::keep(9, "labelSelector", message(&LABEL_SELECTOR_ATTRIBUTES)),
    ],
};

/// `authorizationv1.FieldSelectorAttributes`.
static FIELD_SELECTOR_ATTRIBUTES: Message = Message {
    fields: &[
        Field::omit_empty(1, "rawSelector", STRING),
        Field::keep(2, "requirements", messages(&FIELD_SELECTOR_REQUIREMENT)),
    ],
};

/// `authorizationv1.LabelSelectorAttributes`.
static LABEL_SELECTOR_ATTRIBUTES: Message = Message {
    fields: &[
        Field::omit_empty(1, "rawSelector", STRING),
        Field::keep(2, "requirements", messages(&LABEL_SELECTOR_REQUIREMENT)),
    ],
};

/// `authorizationv1.NonResourceAttributes`.
static NON_RESOURCE_ATTRIBUTES: Message = Message {
    fields: &[
        Field::omit_empty(1, "path", STRING),
        Field::omit_empty(2, "verb", STRING),
    ],
};

/// `authorizationv1.SubjectAccessReviewStatus`.
static SUBJECT_ACCESS_REVIEW_STATUS: Message = Message {
    fields: &[
        Field::keep(1, "allowed", BOOL),
        Field::omit_empty(4, "denied", BOOL),
        Field::omit_empty(2, "reason", STRING),
        Field::omit_empty(3, "evaluationError", STRING),
    ],
};

/// `authorizationv1.SelfSubjectRulesReview`.
pub(super) static SELF_SUBJECT_RULES_REVIEW: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "spec", message(&SELF_SUBJECT_RULES_REVIEW_SPEC)),
        Field::keep(3, "status", message(&SUBJECT_RULES_REVIEW_STATUS)),
    ],
};

/// `authorizationv1.SelfSubjectRulesReviewSpec`.
static SELF_SUBJECT_RULES_REVIEW_SPEC: Message = Message {
    fields: &[Field::omit_empty(1, "namespace", STRING)],
};

/// `authorizationv1.SubjectRulesReviewStatus`.
static SUBJECT_RULES_REVIEW_STATUS: Message = Message {
    fields: &[
        Field::keep(1, "resourceRules", messages(&RESOURCE_RULE)),
        Field::keep(2, "nonResourceRules", messages(&NON_RESOURCE_RULE)),
        Field::keep(3, "incomplete", BOOL),
        Field::omit_empty(4, "evaluationError", STRING),
    ],
};

/// `authorizationv1.ResourceRule`.
static RESOURCE_RULE: Message = Message {
    fields: &[
        Field::keep(1, "verbs", STRINGS),
        Field::keep(2, "apiGroups", STRINGS),
        Field::keep(3, "resources", STRINGS),
        Field::keep(4, "resourceNames", STRINGS),
    ],
};

/// `authorizationv1.NonResourceRule`.
static NON_RESOURCE_RULE: Message = Message {
    fields: &[
        Field::keep(1, "verbs", STRINGS),
        Field::keep(2, "nonResourceURLs", STRINGS),
    ],
};

/// `authenticationv1.SelfSubjectReview`: the request carries only metadata.
pub(super) static SELF_SUBJECT_REVIEW: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "status", message(&SELF_SUBJECT_REVIEW_STATUS)),
    ],
};

/// `authenticationv1.SelfSubjectReviewStatus`.
static SELF_SUBJECT_REVIEW_STATUS: Message = Message {
    fields: &[Field::keep(1, "userInfo", message(&USER_INFO))],
};

/// `authenticationv1.UserInfo`.
static USER_INFO: Message = Message {
    fields: &[
        Field::omit_empty(1, "username", STRING),
        Field::omit_empty(2, "uid", STRING),
        Field::keep(3, "groups", STRINGS),
        Field::keep(4, "extra", STRING_LIST_MAP),
    ],
};

/// `authenticationv1.TokenRequest`, posted to `serviceaccounts/<name>/token`.
pub(super) static TOKEN_REQUEST: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "spec", message(&TOKEN_REQUEST_SPEC)),
        Field::keep(3, "status", message(&TOKEN_REQUEST_STATUS)),
    ],
};

/// `authenticationv1.TokenRequestSpec`.
static TOKEN_REQUEST_SPEC: Message = Message {
    fields: &[
        Field::keep(1, "audiences", STRINGS),
        Field::keep(4, "expirationSeconds", INT64),
        Field::keep(3, "boundObjectRef", message(&BOUND_OBJECT_REFERENCE)),
    ],
};

/// `authenticationv1.BoundObjectReference`.
static BOUND_OBJECT_REFERENCE: Message = Message {
    fields: &[
        Field::omit_empty(1, "kind", STRING),
        Field::omit_empty(2, "apiVersion", STRING),
        Field::omit_empty(3, "name", STRING),
        Field::omit_empty(4, "uid", STRING),
    ],
};

/// `authenticationv1.TokenRequestStatus`.
static TOKEN_REQUEST_STATUS: Message = Message {
    fields: &[
        Field::keep(1, "token", STRING),
        Field::keep(2, "expirationTimestamp", TIME),
    ],
};
