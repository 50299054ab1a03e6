//! Bodies that kubectl v1.32.4 actually sent (captured with a throwaway HTTP listener; see
//! `fixtures/README.md`), checked against the JSON the same kubectl writes for the same command
//! (`--dry-run=client -o json`), or, for kinds kubectl cannot print, against the JSON Go's
//! `encoding/json` writes for the same value.

use std::path::PathBuf;

use oxivirt_kubeproto::decode;
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(
        &*std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("tests/fixtures")
    .join(name)
}

fn decoded(name: &str) -> Value {
    let path = fixture(&format!("{name}.pb"));
    let body = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    decode(&body).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn kubectl_json(name: &str) -> Value {
    let path = fixture(&format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn assert_same(name: &str, actual: &Value, expected: &Value) {
    assert_eq!(
        actual,
        expected,
        "{name}:\n decoded  {}\n expected {}",
        serde_json::to_string_pretty(actual).unwrap_or_default(),
        serde_json::to_string_pretty(expected).unwrap_or_default()
    );
}

/// One test per captured `kubectl create` body that has a `--dry-run=client -o json` twin.
macro_rules! matches_kubectl_json {
    ($($test:ident => $fixture:literal,)*) => {$(
        #[test]
        fn $test() {
            assert_same($fixture, &decoded($fixture), &kubectl_json($fixture));
        }
    )*};
}

matches_kubectl_json! {
    create_configmap_matches_kubectl_json => "configmap",
    create_secret_generic_matches_kubectl_json => "secret_generic",
    create_secret_docker_registry_matches_kubectl_json => "secret_tls_docker",
    create_namespace_matches_kubectl_json => "namespace",
    create_serviceaccount_matches_kubectl_json => "serviceaccount",
    create_service_clusterip_matches_kubectl_json => "service_clusterip",
    create_service_nodeport_matches_kubectl_json => "service_nodeport",
    create_role_matches_kubectl_json => "role",
    create_rolebinding_matches_kubectl_json => "rolebinding",
    create_clusterrole_matches_kubectl_json => "clusterrole",
    create_clusterrolebinding_matches_kubectl_json => "clusterrolebinding",
    create_quota_matches_kubectl_json => "quota",
    create_priorityclass_matches_kubectl_json => "priorityclass",
    create_poddisruptionbudget_matches_kubectl_json => "poddisruptionbudget",
}

#[test]
fn auth_can_i_create_pods_is_a_resource_access_review() {
    let expected = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
        "status": {"allowed": false}
    });
    assert_same("ssar_create_pods", &decoded("ssar_create_pods"), &expected);
}

#[test]
fn auth_can_i_with_a_subresource_keeps_the_subresource() {
    let expected = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {"resourceAttributes": {
            "namespace": "kube-system", "verb": "get", "resource": "pods", "subresource": "log"
        }},
        "status": {"allowed": false}
    });
    assert_same("ssar_subresource", &decoded("ssar_subresource"), &expected);
}

#[test]
fn auth_can_i_on_a_url_is_a_non_resource_access_review() {
    let expected = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}},
        "status": {"allowed": false}
    });
    assert_same("ssar_get_healthz", &decoded("ssar_get_healthz"), &expected);
}

#[test]
fn auth_can_i_list_is_a_rules_review_for_the_namespace() {
    let expected = json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {"namespace": "ns1"},
        "status": {"incomplete": false}
    });
    assert_same("ssrr_list", &decoded("ssrr_list"), &expected);
}

#[test]
fn auth_whoami_is_an_empty_self_subject_review() {
    let expected = json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {}}
    });
    assert_same("ssr_whoami", &decoded("ssr_whoami"), &expected);
}

#[test]
fn create_token_carries_audiences_and_expiration() {
    let expected = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {"audiences": ["api", "vault"], "expirationSeconds": 600},
        "status": {"token": "", "expirationTimestamp": null}
    });
    assert_same("token_request", &decoded("token_request"), &expected);
}

#[test]
fn create_token_bound_to_a_secret_carries_the_bound_object() {
    let expected = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s1", "uid": "1234"}},
        "status": {"token": "", "expirationTimestamp": null}
    });
    assert_same("token_bound", &decoded("token_bound"), &expected);
}

#[test]
fn drain_without_eviction_sends_delete_options() {
    let expected = json!({
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "gracePeriodSeconds": 10,
        "dryRun": ["All"]
    });
    assert_same("delete_options", &decoded("delete_options"), &expected);
}

#[test]
fn decoded_objects_start_with_kind_and_api_version() {
    let Value::Object(object) = decoded("configmap") else {
        panic!("not an object");
    };
    let keys: Vec<&str> = object.keys().map(String::as_str).take(2).collect();
    assert_eq!(keys, ["kind", "apiVersion"]);
}
