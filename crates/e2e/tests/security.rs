//! Authentication and authorization: credentials required, `auth can-i`, Pods forbidden.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use oxivirt_e2e::Server;
use serde_yaml::Value;

/// Writes a copy of the admin kubeconfig whose user is replaced by `user` and returns it.
fn kubeconfig_with_user(server: &Server, name: &str, user: Value) -> std::path::PathBuf {
    let text = std::fs::read_to_string(server.kubeconfig()).expect("read admin kubeconfig");
    let mut config: Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    let users = config["users"]
        .as_sequence_mut()
        .expect("kubeconfig has users");
    for entry in users {
        entry["user"] = user.clone();
    }
    let text = serde_yaml::to_string(&config).expect("serialize kubeconfig");
    server.write_file(name, &text)
}

/// kubectl asks for a user name when the kubeconfig user is empty, so the request without
/// any credentials is sent by kube-rs with the CA of the admin kubeconfig and no auth.
#[tokio::test]
async fn requests_without_credentials_are_unauthorized() {
    let server = Server::start();
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig()).expect("read the admin kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube-rs accepts the admin kubeconfig");
    config.auth_info = AuthInfo::default();
    let client = Client::try_from(config).expect("build a kube-rs client");
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 401, "{status:?}");
            assert_eq!(status.reason, "Unauthorized", "{status:?}");
        }
        other => panic!("expected 401 Unauthorized, got {other:?}"),
    }
}

#[test]
fn requests_with_a_wrong_bearer_token_are_unauthorized() {
    let server = Server::start();
    let mut user = serde_yaml::Mapping::new();
    user.insert("token".into(), "not-a-real-token".into());
    let forged = kubeconfig_with_user(&server, "forged.kubeconfig", Value::Mapping(user));
    let k = server.kubectl_with(&forged);
    for args in [
        &["get", "configmaps"][..],
        &["get", "--raw", "/api/v1/namespaces"],
    ] {
        let err = k.fails(args);
        // kubectl says "(Unauthorized)" or, when discovery is what got the 401, "(the server
        // has asked for the client to provide credentials)".
        assert!(
            err.contains("You must be logged in to the server") || err.contains("Unauthorized"),
            "{err}"
        );
    }
}

#[test]
fn the_server_certificate_is_verified_against_the_kubeconfig_ca() {
    let server = Server::start();
    // kubectl verifies TLS with the CA from the kubeconfig: the admin config must just work,
    // and dropping the CA must make verification fail.
    let text = std::fs::read_to_string(server.kubeconfig()).expect("read admin kubeconfig");
    let mut config: Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    for entry in config["clusters"]
        .as_sequence_mut()
        .expect("kubeconfig has clusters")
    {
        let cluster = entry["cluster"].as_mapping_mut().expect("cluster mapping");
        assert!(
            cluster.contains_key("certificate-authority-data"),
            "no CA data in kubeconfig"
        );
        cluster.remove("certificate-authority-data");
    }
    let path = server.write_file(
        "no-ca.kubeconfig",
        &serde_yaml::to_string(&config).expect("yaml"),
    );
    let err = server.kubectl_with(&path).fails(&["get", "configmaps"]);
    assert!(err.contains("certificate"), "{err}");
    server.kubectl().ok(&["get", "configmaps"]);
}

#[test]
fn auth_can_i_answers_yes_for_the_admin() {
    let server = Server::start();
    let k = server.kubectl();
    assert_eq!(k.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
    assert_eq!(
        k.ok(&[
            "auth",
            "can-i",
            "delete",
            "virtualmachines.kubevirt.io",
            "-n",
            "default"
        ])
        .trim(),
        "yes"
    );
    assert_eq!(k.ok(&["auth", "can-i", "*", "*"]).trim(), "yes");
}

#[test]
fn a_user_pod_is_forbidden_because_there_is_no_container_runtime() {
    let server = Server::start();
    let k = server.kubectl();
    let err = k.fails(&["run", "shell", "--image=busybox", "--restart=Never"]);
    assert!(err.contains("Forbidden"), "{err}");
    assert!(!k.exists(&["pod", "shell"]));
}
