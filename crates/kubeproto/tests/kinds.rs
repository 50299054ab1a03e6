//! Hand-encoded bodies for each supported kind, written the way Go's gogo marshalling writes
//! them, and the Kubernetes JSON they must decode to.

use oxivirt_kubeproto::{decode, supported_kinds, supports, Envelope};
use serde_json::json;

use crate::encoder::{envelope, fresh_meta, int_val, quantity, str_val, time, Msg};

#[test]
fn secret_data_becomes_base64_and_a_false_immutable_is_kept() {
    let secret = Msg::new()
        .msg(1, fresh_meta("s1", "ns"))
        .msg(2, Msg::new().string(1, "bin").bytes(2, &[0, 255, 16]))
        .entry(4, "plain", "text")
        .string(3, "Opaque")
        .bool(5, false);
    let decoded = decode(&envelope("v1", "Secret", &secret));
    assert_eq!(
        decoded,
        Ok(json!({
            "kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "s1", "namespace": "ns", "creationTimestamp": null},
            "immutable": false,
            "data": {"bin": "AP8Q"},
            "stringData": {"plain": "text"},
            "type": "Opaque"
        }))
    );
}

#[test]
fn config_map_binary_data_is_base64_and_data_stays_text() {
    let config_map = Msg::new()
        .msg(1, fresh_meta("c1", ""))
        .entry(2, "k", "v")
        .msg(3, Msg::new().string(1, "blob").bytes(2, b"hi"))
        .bool(4, true);
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", &config_map)),
        Ok(json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "c1", "creationTimestamp": null},
            "immutable": true,
            "data": {"k": "v"},
            "binaryData": {"blob": "aGk="}
        }))
    );
}

#[test]
fn object_meta_decodes_every_field() {
    let owner = Msg::new()
        .string(1, "ReplicaSet")
        .string(3, "rs1")
        .string(4, "uid-rs")
        .string(5, "apps/v1")
        .bool(6, true)
        .bool(7, false);
    let managed = Msg::new()
        .string(1, "kubectl")
        .string(2, "Update")
        .string(3, "v1")
        .msg(4, time(1_704_164_645))
        .string(6, "FieldsV1")
        .msg(7, Msg::new().bytes(1, br#"{"f:data":{".":{}}}"#))
        .string(8, "");
    let meta = Msg::new()
        .string(1, "c1")
        .string(2, "c-")
        .string(3, "ns")
        .string(4, "/api/v1/x")
        .string(5, "uid-1")
        .string(6, "42")
        .int(7, 3)
        .msg(8, time(1_704_164_645))
        .msg(9, time(1_704_164_700))
        .int(10, 30)
        .entry(11, "app", "web")
        .entry(12, "note", "hello")
        .msg(13, owner)
        .string(14, "example.com/cleanup")
        .msg(17, managed);
    let decoded = decode(&envelope("v1", "ConfigMap", &Msg::new().msg(1, meta)));
    assert_eq!(
        decoded,
        Ok(json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {
                "name": "c1", "generateName": "c-", "namespace": "ns", "selfLink": "/api/v1/x",
                "uid": "uid-1", "resourceVersion": "42", "generation": 3,
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "deletionTimestamp": "2024-01-02T03:05:00Z",
                "deletionGracePeriodSeconds": 30,
                "labels": {"app": "web"},
                "annotations": {"note": "hello"},
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs1", "uid": "uid-rs",
                    "controller": true, "blockOwnerDeletion": false
                }],
                "finalizers": ["example.com/cleanup"],
                "managedFields": [{
                    "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                    "time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {".": {}}}
                }]
            }
        }))
    );
}

#[test]
fn service_account_keeps_a_false_automount_and_its_references() {
    let account = Msg::new()
        .msg(1, fresh_meta("sa1", "default"))
        .msg(
            2,
            Msg::new()
                .string(1, "Secret")
                .string(3, "tok")
                .string(2, ""),
        )
        .msg(3, Msg::new().string(1, "regcred"))
        .bool(4, false);
    assert_eq!(
        decode(&envelope("v1", "ServiceAccount", &account)),
        Ok(json!({
            "kind": "ServiceAccount", "apiVersion": "v1",
            "metadata": {"name": "sa1", "namespace": "default", "creationTimestamp": null},
            "secrets": [{"kind": "Secret", "name": "tok"}],
            "imagePullSecrets": [{"name": "regcred"}],
            "automountServiceAccountToken": false
        }))
    );
}

#[test]
fn namespace_keeps_finalizers_and_phase() {
    let namespace = Msg::new()
        .msg(1, fresh_meta("ns1", ""))
        .msg(2, Msg::new().string(1, "kubernetes"))
        .msg(3, Msg::new().string(1, "Active"));
    assert_eq!(
        decode(&envelope("v1", "Namespace", &namespace)),
        Ok(json!({
            "kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": "ns1", "creationTimestamp": null},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}
        }))
    );
}

#[test]
fn service_spec_decodes_ports_policies_and_families() {
    let port = |name: &str, port: i64, target: Msg| {
        Msg::new()
            .string(1, name)
            .string(2, "TCP")
            .int(3, port)
            .msg(4, target)
            .int(5, 0)
    };
    let spec = Msg::new()
        .msg(
            1,
            port("http", 80, str_val("web")).string(6, "kubernetes.io/h2c"),
        )
        .msg(1, port("metrics", 9090, int_val(9091)))
        .entry(2, "app", "web")
        .string(3, "10.0.0.10")
        .string(4, "LoadBalancer")
        .string(5, "192.0.2.1")
        .string(7, "ClientIP")
        .string(8, "")
        .string(10, "")
        .string(11, "Local")
        .int(12, 31000)
        .bool(13, true)
        .msg(14, Msg::new().msg(1, Msg::new().int(1, 10800)))
        .string(17, "SingleStack")
        .string(18, "10.0.0.10")
        .string(19, "IPv4")
        .bool(20, false)
        .string(22, "Cluster");
    let service = Msg::new()
        .msg(1, fresh_meta("web", "default"))
        .msg(2, spec)
        .msg(3, Msg::new().msg(1, Msg::new()));
    assert_eq!(
        decode(&envelope("v1", "Service", &service)),
        Ok(json!({
            "kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null},
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "appProtocol": "kubernetes.io/h2c",
                     "port": 80, "targetPort": "web"},
                    {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 9091}
                ],
                "selector": {"app": "web"},
                "clusterIP": "10.0.0.10",
                "clusterIPs": ["10.0.0.10"],
                "type": "LoadBalancer",
                "externalIPs": ["192.0.2.1"],
                "sessionAffinity": "ClientIP",
                "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 31000,
                "publishNotReadyAddresses": true,
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "allocateLoadBalancerNodePorts": false,
                "internalTrafficPolicy": "Cluster"
            },
            "status": {"loadBalancer": {}}
        }))
    );
}

#[test]
fn external_name_service_keeps_its_external_name() {
    let spec = Msg::new()
        .string(4, "ExternalName")
        .string(10, "db.example.com");
    let service = Msg::new().msg(1, fresh_meta("db", "")).msg(2, spec);
    let decoded = decode(&envelope("v1", "Service", &service)).map(|v| v["spec"].clone());
    assert_eq!(
        decoded,
        Ok(json!({"type": "ExternalName", "externalName": "db.example.com"}))
    );
}

#[test]
fn resource_quota_renders_quantities_and_scope_selectors() {
    let requirement = Msg::new()
        .string(1, "PriorityClass")
        .string(2, "In")
        .string(3, "high");
    let spec = Msg::new()
        .entry_msg(1, "limits.memory", quantity("2Gi"))
        .entry_msg(1, "requests.cpu", quantity("500m"))
        .msg(3, Msg::new().msg(1, requirement));
    let status = Msg::new()
        .entry_msg(1, "requests.cpu", quantity("500m"))
        .entry_msg(2, "requests.cpu", Msg::new());
    let quota = Msg::new()
        .msg(1, fresh_meta("q", "ns"))
        .msg(2, spec)
        .msg(3, status);
    let decoded = decode(&envelope("v1", "ResourceQuota", &quota));
    assert_eq!(
        decoded,
        Ok(json!({
            "kind": "ResourceQuota", "apiVersion": "v1",
            "metadata": {"name": "q", "namespace": "ns", "creationTimestamp": null},
            "spec": {
                "hard": {"limits.memory": "2Gi", "requests.cpu": "500m"},
                "scopeSelector": {"matchExpressions": [
                    {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}
                ]}
            },
            "status": {"hard": {"requests.cpu": "500m"}, "used": {"requests.cpu": "0"}}
        }))
    );
}

#[test]
fn cluster_role_keeps_its_aggregation_rule() {
    let selector = Msg::new()
        .entry(1, "rbac.example.com/aggregate-to-view", "true")
        .msg(
            2,
            Msg::new()
                .string(1, "tier")
                .string(2, "NotIn")
                .string(3, "a")
                .string(3, "b"),
        );
    let rule = Msg::new()
        .string(1, "get")
        .string(2, "")
        .string(3, "pods")
        .string(4, "p1")
        .string(5, "/metrics");
    let role = Msg::new()
        .msg(1, fresh_meta("view", ""))
        .msg(2, rule)
        .msg(3, Msg::new().msg(1, selector));
    assert_eq!(
        decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            &role
        )),
        Ok(json!({
            "kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "view", "creationTimestamp": null},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                       "resourceNames": ["p1"], "nonResourceURLs": ["/metrics"]}],
            "aggregationRule": {"clusterRoleSelectors": [{
                "matchLabels": {"rbac.example.com/aggregate-to-view": "true"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a", "b"]}]
            }]}
        }))
    );
}

#[test]
fn cluster_role_binding_keeps_empty_required_strings() {
    let binding = Msg::new()
        .msg(1, fresh_meta("b", ""))
        .msg(
            2,
            Msg::new()
                .string(1, "ServiceAccount")
                .string(2, "")
                .string(3, "sa")
                .string(4, "ns"),
        )
        .msg(
            3,
            Msg::new()
                .string(1, "")
                .string(2, "ClusterRole")
                .string(3, "view"),
        );
    let decoded = decode(&envelope(
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        &binding,
    ));
    assert_eq!(
        decoded,
        Ok(json!({
            "kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "b", "creationTimestamp": null},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}],
            "roleRef": {"apiGroup": "", "kind": "ClusterRole", "name": "view"}
        }))
    );
}

#[test]
fn eviction_carries_its_delete_options() {
    let options = Msg::new()
        .int(1, 0)
        .msg(2, Msg::new().string(1, "uid-1").string(2, "7"))
        .bool(3, false)
        .string(4, "Foreground")
        .string(5, "All");
    let eviction = Msg::new()
        .msg(1, fresh_meta("p1", "default"))
        .msg(2, options);
    assert_eq!(
        decode(&envelope("policy/v1", "Eviction", &eviction)),
        Ok(json!({
            "kind": "Eviction", "apiVersion": "policy/v1",
            "metadata": {"name": "p1", "namespace": "default", "creationTimestamp": null},
            "deleteOptions": {
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "uid-1", "resourceVersion": "7"},
                "orphanDependents": false,
                "propagationPolicy": "Foreground",
                "dryRun": ["All"]
            }
        }))
    );
}

#[test]
fn pod_disruption_budget_decodes_int_budgets_and_selectors() {
    let selector = Msg::new().msg(2, Msg::new().string(1, "app").string(2, "Exists"));
    let spec = Msg::new()
        .msg(2, selector)
        .msg(3, int_val(1))
        .string(4, "AlwaysAllow");
    let status = Msg::new()
        .int(1, 2)
        .entry_msg(2, "p1", time(1_704_164_645))
        .int(3, 1)
        .int(4, 3)
        .int(5, 2)
        .int(6, 3)
        .msg(
            7,
            Msg::new()
                .string(1, "DisruptionAllowed")
                .string(2, "True")
                .int(3, 2)
                .msg(4, time(0))
                .string(5, "SufficientPods")
                .string(6, ""),
        );
    let budget = Msg::new()
        .msg(1, fresh_meta("pdb", "default"))
        .msg(2, spec)
        .msg(3, status);
    assert_eq!(
        decode(&envelope("policy/v1", "PodDisruptionBudget", &budget)),
        Ok(json!({
            "kind": "PodDisruptionBudget", "apiVersion": "policy/v1",
            "metadata": {"name": "pdb", "namespace": "default", "creationTimestamp": null},
            "spec": {
                "selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
                "maxUnavailable": 1,
                "unhealthyPodEvictionPolicy": "AlwaysAllow"
            },
            "status": {
                "observedGeneration": 2,
                "disruptedPods": {"p1": "2024-01-02T03:04:05Z"},
                "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3,
                "conditions": [{
                    "type": "DisruptionAllowed", "status": "True", "observedGeneration": 2,
                    "lastTransitionTime": "1970-01-01T00:00:00Z",
                    "reason": "SufficientPods", "message": ""
                }]
            }
        }))
    );
}

#[test]
fn priority_class_fields_sit_at_the_top_level() {
    let class = Msg::new()
        .msg(1, fresh_meta("system-high", ""))
        .int(2, -5)
        .bool(3, true)
        .string(4, "")
        .string(5, "PreemptLowerPriority");
    assert_eq!(
        decode(&envelope("scheduling.k8s.io/v1", "PriorityClass", &class)),
        Ok(json!({
            "kind": "PriorityClass", "apiVersion": "scheduling.k8s.io/v1",
            "metadata": {"name": "system-high", "creationTimestamp": null},
            "value": -5,
            "globalDefault": true,
            "preemptionPolicy": "PreemptLowerPriority"
        }))
    );
}

#[test]
fn access_review_keeps_field_and_label_selector_attributes() {
    let attributes = Msg::new()
        .string(1, "ns")
        .string(2, "list")
        .string(3, "apps")
        .string(4, "v1")
        .string(5, "deployments")
        .string(6, "")
        .string(7, "")
        .msg(8, Msg::new().string(1, "metadata.name=x"))
        .msg(
            9,
            Msg::new().msg(
                2,
                Msg::new().string(1, "app").string(2, "In").string(3, "web"),
            ),
        );
    let review = Msg::new()
        .msg(1, fresh_meta("", ""))
        .msg(2, Msg::new().msg(1, attributes))
        .msg(3, Msg::new().bool(1, false).string(2, "").string(3, ""));
    assert_eq!(
        decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &review
        )),
        Ok(json!({
            "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"resourceAttributes": {
                "namespace": "ns", "verb": "list", "group": "apps", "version": "v1",
                "resource": "deployments",
                "fieldSelector": {"rawSelector": "metadata.name=x"},
                "labelSelector": {"requirements": [{"key": "app", "operator": "In", "values": ["web"]}]}
            }},
            "status": {"allowed": false}
        }))
    );
}

#[test]
fn self_subject_review_status_decodes_user_info_with_extra() {
    let user = Msg::new()
        .string(1, "alice")
        .string(2, "u-1")
        .string(3, "devs")
        .entry_msg(4, "scopes", Msg::new().string(1, "a").string(1, "b"));
    let review = Msg::new()
        .msg(1, fresh_meta("", ""))
        .msg(2, Msg::new().msg(1, user));
    let decoded = decode(&envelope(
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        &review,
    ));
    assert_eq!(
        decoded.map(|v| v["status"].clone()),
        Ok(json!({"userInfo": {
            "username": "alice", "uid": "u-1", "groups": ["devs"], "extra": {"scopes": ["a", "b"]}
        }}))
    );
}

#[test]
fn delete_options_decode_under_any_api_version() {
    let options = Msg::new().int(1, 5).string(4, "Background");
    for api_version in ["v1", "apps/v1", "kubevirt.io/v1"] {
        assert_eq!(
            decode(&envelope(api_version, "DeleteOptions", &options)),
            Ok(json!({
                "kind": "DeleteOptions", "apiVersion": api_version,
                "gracePeriodSeconds": 5, "propagationPolicy": "Background"
            }))
        );
    }
}

#[test]
fn unknown_fields_of_every_wire_type_are_skipped() {
    let meta = fresh_meta("c1", "")
        .varint(99, 7)
        .fixed64(100, 1)
        .fixed32(101, 2)
        .string(102, "future");
    let config_map = Msg::new().msg(1, meta).entry(2, "a", "b").varint(50, 1);
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", &config_map)),
        Ok(json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "c1", "creationTimestamp": null},
            "data": {"a": "b"}
        }))
    );
}

#[test]
fn a_message_sent_twice_is_merged_and_the_last_scalar_wins() {
    let config_map = Msg::new()
        .msg(1, Msg::new().string(1, "first").entry(11, "a", "1"))
        .msg(1, Msg::new().string(1, "second").entry(11, "b", "2"));
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", &config_map)).map(|v| v["metadata"].clone()),
        Ok(json!({"name": "second", "labels": {"a": "1", "b": "2"}}))
    );
}

#[test]
fn a_map_entry_without_a_value_gets_the_zero_value() {
    let config_map = Msg::new()
        .msg(2, Msg::new().string(1, "empty"))
        .msg(3, Msg::new().string(1, "blob"));
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", &config_map)),
        Ok(json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "data": {"empty": ""}, "binaryData": {"blob": ""}
        }))
    );
}

#[test]
fn envelope_exposes_type_and_raw_bytes_without_decoding() {
    let raw = Msg::new().string(1, "anything");
    let body = envelope("kubevirt.io/v1", "VirtualMachine", &raw);
    assert_eq!(
        Envelope::parse(&body),
        Ok(Envelope {
            api_version: "kubevirt.io/v1".to_string(),
            kind: "VirtualMachine".to_string(),
            raw: raw.as_bytes(),
            content_encoding: String::new(),
            content_type: String::new(),
        })
    );
}

#[test]
fn every_listed_kind_is_supported_and_others_are_not() {
    let kinds: Vec<_> = supported_kinds().collect();
    assert_eq!(kinds.len(), 18);
    for (api_version, kind) in kinds {
        assert!(supports(api_version, kind), "{api_version} {kind}");
    }
    assert!(supports(
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding"
    ));
    assert!(!supports("v1", "Pod"));
    assert!(!supports("v1beta1", "ConfigMap"));
}
