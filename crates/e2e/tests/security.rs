//! Authentication and authorization: credentials required, `auth can-i`, Pods forbidden.

use oxivirt_e2e::Server;
use serde_yaml::Value;

/// Writes a copy of the admin kubeconfig whose user is replaced by `user` and returns it.
fn kubeconfig_with_user(server: &Server, name: &str, user: Value) -> std::path::PathBuf {
    let text = std::fs::read_to_string(server.kubeconfig()).expect("read admin kubeconfig");
    let mut config: Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    let users = config["users"].as_sequence_mut().expect("kubeconfig has users");
    for entry in users {
        entry["user"] = user.clone();
    }
    let text = serde_yaml::to_string(&config).expect("serialize kubeconfig");
    server.write_file(name, &text)
}

#[test]
fn requests_without_credentials_are_unauthorized() {
    let server = Server::start();
    let anonymous = kubeconfig_with_user(&server, "anonymous.kubeconfig", Value::Mapping(Default::default()));
    let k = server.kubectl_with(&anonymous);
    let err = k.fails(&["get", "configmaps"]);
    assert!(err.contains("Unauthorized"), "{err}");
    let err = k.fails(&["get", "--raw", "/api/v1/namespaces"]);
    assert!(err.contains("Unauthorized"), "{err}");
}

#[test]
fn requests_with_a_wrong_bearer_token_are_unauthorized() {
    let server = Server::start();
    let mut user = serde_yaml::Mapping::new();
    user.insert("token".into(), "not-a-real-token".into());
    let forged = kubeconfig_with_user(&server, "forged.kubeconfig", Value::Mapping(user));
    let err = server.kubectl_with(&forged).fails(&["get", "configmaps"]);
    assert!(err.contains("Unauthorized"), "{err}");
}

#[test]
fn the_server_certificate_is_verified_against_the_kubeconfig_ca() {
    let server = Server::start();
    // kubectl verifies TLS with the CA from the kubeconfig: the admin config must just work,
    // and dropping the CA must make verification fail.
    let text = std::fs::read_to_string(server.kubeconfig()).expect("read admin kubeconfig");
    let mut config: Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    for entry in config["clusters"].as_sequence_mut().expect("kubeconfig has clusters") {
        let cluster = entry["cluster"].as_mapping_mut().expect("cluster mapping");
        assert!(cluster.contains_key("certificate-authority-data"), "no CA data in kubeconfig");
        cluster.remove("certificate-authority-data");
    }
    let path = server.write_file("no-ca.kubeconfig", &serde_yaml::to_string(&config).expect("yaml"));
    let err = server.kubectl_with(&path).fails(&["get", "configmaps"]);
    assert!(err.contains("certificate"), "{err}");
    server.kubectl().ok(&["get", "configmaps"]);
}

#[test]
fn auth_can_i_answers_yes_for_the_admin() {
    let server = Server::start();
    let k = server.kubectl();
    assert_eq!(k.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
    assert_eq!(k.ok(&["auth", "can-i", "delete", "virtualmachines.kubevirt.io", "-n", "default"]).trim(), "yes");
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
