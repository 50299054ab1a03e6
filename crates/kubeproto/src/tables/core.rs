//! `core/v1` kinds that kubectl creates with typed clients: ConfigMap, Secret, Namespace,
//! ServiceAccount, Service and ResourceQuota.

use super::meta::{CONDITION, OBJECT_META};
use super::{
    message, messages, BOOL, BYTES_MAP, INT32, INT_OR_STRING, QUANTITY_MAP, STRING, STRINGS,
    STRING_MAP, TIME,
};
use crate::decode::{Field, Message};

/// `v1.ConfigMap`.
pub(super) static CONFIG_MAP: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(4, "immutable", BOOL),
        Field::keep(2, "data", STRING_MAP),
        Field::keep(3, "binaryData", BYTES_MAP),
    ],
};

/// `v1.Secret`.
pub(super) static SECRET: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(5, "immutable", BOOL),
        Field::keep(2, "data", BYTES_MAP),
        Field::keep(4, "stringData", STRING_MAP),
        Field::omit_empty(3, "type", STRING),
    ],
};

/// `v1.Namespace`.
pub(super) static NAMESPACE: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "spec", message(&NAMESPACE_SPEC)),
        Field::keep(3, "status", message(&NAMESPACE_STATUS)),
    ],
};

/// `v1.NamespaceSpec`.
static NAMESPACE_SPEC: Message = Message {
    fields: &[Field::keep(1, "finalizers", STRINGS)],
};

/// `v1.NamespaceStatus`.
static NAMESPACE_STATUS: Message = Message {
    fields: &[
        Field::omit_empty(1, "phase", STRING),
        Field::keep(2, "conditions", messages(&NAMESPACE_CONDITION)),
    ],
};

/// `v1.NamespaceCondition`.
static NAMESPACE_CONDITION: Message = Message {
    fields: &[
        Field::keep(1, "type", STRING),
        Field::keep(2, "status", STRING),
        Field::keep(4, "lastTransitionTime", TIME),
        Field::omit_empty(5, "reason", STRING),
        Field::omit_empty(6, "message", STRING),
    ],
};

/// `v1.ServiceAccount`.
pub(super) static SERVICE_ACCOUNT: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "secrets", messages(&OBJECT_REFERENCE)),
        Field::keep(3, "imagePullSecrets", messages(&LOCAL_OBJECT_REFERENCE)),
        Field::keep(4, "automountServiceAccountToken", BOOL),
    ],
};

/// `v1.ObjectReference`.
static OBJECT_REFERENCE: Message = Message {
    fields: &[
        Field::omit_empty(1, "kind", STRING),
        Field::omit_empty(2, "namespace", STRING),
        Field::omit_empty(3, "name", STRING),
        Field::omit_empty(4, "uid", STRING),
        Field::omit_empty(5, "apiVersion", STRING),
        Field::omit_empty(6, "resourceVersion", STRING),
        Field::omit_empty(7, "fieldPath", STRING),
    ],
};

/// `v1.LocalObjectReference`.
static LOCAL_OBJECT_REFERENCE: Message = Message {
    fields: &[Field::omit_empty(1, "name", STRING)],
};

/// `v1.Service`.
pub(super) static SERVICE: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "spec", message(&SERVICE_SPEC)),
        Field::keep(3, "status", message(&SERVICE_STATUS)),
    ],
};

/// `v1.ServiceSpec`.
static SERVICE_SPEC: Message = Message {
    fields: &[
        Field::keep(1, "ports", messages(&SERVICE_PORT)),
        Field::keep(2, "selector", STRING_MAP),
        Field::omit_empty(3, "clusterIP", STRING),
        Field::keep(18, "clusterIPs", STRINGS),
        Field::omit_empty(4, "type", STRING),
        Field::keep(5, "externalIPs", STRINGS),
        Field::omit_empty(7, "sessionAffinity", STRING),
        Field::omit_empty(8, "loadBalancerIP", STRING),
        Field::keep(9, "loadBalancerSourceRanges", STRINGS),
        Field::omit_empty(10, "externalName", STRING),
        Field::omit_empty(11, "externalTrafficPolicy", STRING),
        Field::omit_empty(12, "healthCheckNodePort", INT32),
        Field::omit_empty(13, "publishNotReadyAddresses", BOOL),
        Field::keep(
            14,
            "sessionAffinityConfig",
            message(&SESSION_AFFINITY_CONFIG),
        ),
        Field::keep(19, "ipFamilies", STRINGS),
        Field::keep(17, "ipFamilyPolicy", STRING),
        Field::keep(20, "allocateLoadBalancerNodePorts", BOOL),
        Field::keep(21, "loadBalancerClass", STRING),
        Field::keep(22, "internalTrafficPolicy", STRING),
        Field::keep(23, "trafficDistribution", STRING),
    ],
};

/// `v1.ServicePort`.
static SERVICE_PORT: Message = Message {
    fields: &[
        Field::omit_empty(1, "name", STRING),
        Field::omit_empty(2, "protocol", STRING),
        Field::keep(6, "appProtocol", STRING),
        Field::keep(3, "port", INT32),
        Field::keep(4, "targetPort", INT_OR_STRING),
        Field::omit_empty(5, "nodePort", INT32),
    ],
};

/// `v1.SessionAffinityConfig`.
static SESSION_AFFINITY_CONFIG: Message = Message {
    fields: &[Field::keep(1, "clientIP", message(&CLIENT_IP_CONFIG))],
};

/// `v1.ClientIPConfig`.
static CLIENT_IP_CONFIG: Message = Message {
    fields: &[Field::keep(1, "timeoutSeconds", INT32)],
};

/// `v1.ServiceStatus`.
static SERVICE_STATUS: Message = Message {
    fields: &[
        Field::keep(1, "loadBalancer", message(&LOAD_BALANCER_STATUS)),
        Field::keep(2, "conditions", messages(&CONDITION)),
    ],
};

/// `v1.LoadBalancerStatus`.
static LOAD_BALANCER_STATUS: Message = Message {
    fields: &[Field::keep(1, "ingress", messages(&LOAD_BALANCER_INGRESS))],
};

/// `v1.LoadBalancerIngress`.
static LOAD_BALANCER_INGRESS: Message = Message {
    fields: &[
        Field::omit_empty(1, "ip", STRING),
        Field::omit_empty(2, "hostname", STRING),
        Field::keep(3, "ipMode", STRING),
        Field::keep(4, "ports", messages(&PORT_STATUS)),
    ],
};

/// `v1.PortStatus`.
static PORT_STATUS: Message = Message {
    fields: &[
        Field::keep(1, "port", INT32),
        Field::keep(2, "protocol", STRING),
        Field::keep(3, "error", STRING),
    ],
};

/// `v1.ResourceQuota`.
pub(super) static RESOURCE_QUOTA: Message = Message {
    fields: &[
        Field::keep(1, "metadata", message(&OBJECT_META)),
        Field::keep(2, "spec", message(&RESOURCE_QUOTA_SPEC)),
        Field::keep(3, "status", message(&RESOURCE_QUOTA_STATUS)),
    ],
};

/// `v1.ResourceQuotaSpec`.
static RESOURCE_QUOTA_SPEC: Message = Message {
    fields: &[
        Field::keep(1, "hard", QUANTITY_MAP),
        Field::keep(2, "scopes", STRINGS),
        Field::keep(3, "scopeSelector", message(&SCOPE_SELECTOR)),
    ],
};

/// `v1.ScopeSelector`.
static SCOPE_SELECTOR: Message = Message {
    fields: &[Field::keep(
        1,
        "matchExpressions",
        messages(&SCOPED_RESOURCE_SELECTOR_REQUIREMENT),
    )],
};

/// `v1.ScopedResourceSelectorRequirement`.
static SCOPED_RESOURCE_SELECTOR_REQUIREMENT: Message = Message {
    fields: &[
        Field::keep(1, "scopeName", STRING),
        Field::keep(2, "operator", STRING),
        Field::keep(3, "values", STRINGS),
    ],
};

/// `v1.ResourceQuotaStatus`.
static RESOURCE_QUOTA_STATUS: Message = Message {
    fields: &[
        Field::keep(1, "hard", QUANTITY_MAP),
        Field::keep(2, "used", QUANTITY_MAP),
    ],
};
