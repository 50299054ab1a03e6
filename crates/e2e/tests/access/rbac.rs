//! RBAC enforced on every request (issue 7 item 7): ServiceAccount tokens from
//! `kubectl create token`, upstream's `kubevirt.io:*` roles, exact Forbidden answers,
//! subresources checked as `resource/subresource`, `kubectl auth can-i` agreeing with what
//! requests get, and ClusterRole aggregation.

use oxivirt_e2e::{wait_until, Server};
use serde_json::Value;

use crate::common::{kubectl_as, service_account_with_role, virtctl};

const VM: &str = r#"{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
  "metadata": {"name": "vm1"},
  "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}}}"#;

fn forbidden(
    user: &str,
    verb: &str,
    qualified: &str,
    name: &str,
    resource: &str,
    group: &str,
    ns: &str,
) -> String {
    let subject = if name.is_empty() {
        format!("{qualified} is forbidden")
    } else {
        format!("{qualified} \"{name}\" is forbidden")
    };
    format!(
        "{subject}: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" in the namespace \"{ns}\""
    )
}

/// What a SelfSubjectAccessReview (the request behind `kubectl auth can-i`) answers for a
/// subresource of `subresources.kubevirt.io`, which kubectl's resource mapper cannot name
/// because virt-api's discovery lists no resources of that group.
fn can_i_subresource(k: &oxivirt_e2e::Kubectl, verb: &str, resource: &str, sub: &str) -> bool {
    let review = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "team", "verb": verb,
            "group": "subresources.kubevirt.io", "resource": resource, "subresource": sub}},
    });
    let out = k
        .run_stdin(
            &["create", "-f", "-", "-o", "jsonpath={.status.allowed}"],
            &review.to_string(),
        )
        .ok();
    out.trim() == "true"
}

#[test]
fn a_kubevirt_view_user_sees_vms_but_gets_403_for_console_vnc_and_delete() {
    let server = Server::start();
    let admin = server.kubectl();
    admin.create_namespace("team");
    admin
        .run_stdin(&["create", "-n", "team", "-f", "-"], VM)
        .ok();
    let config = service_account_with_role(&server, "team", "viewer", "kubevirt.io:view");
    let user = "system:serviceaccount:team:viewer";
    let k = kubectl_as(&server, &config);

    let listed = k.ok(&["get", "vm", "-o", "name"]);
    assert_eq!(listed.trim(), "virtualmachine.kubevirt.io/vm1");
    let err = k.fails(&["delete", "vm", "vm1"]);
    assert!(
        err.contains(&forbidden(
            user,
            "delete",
            "virtualmachines.kubevirt.io",
            "vm1",
            "virtualmachines",
            "kubevirt.io",
            "team"
        )),
        "{err}"
    );
    assert!(admin.exists(&["vm", "vm1", "-n", "team"]));

    // Authorisation comes before the VMI is even looked up: 403, not 404.
    for (sub, args) in [
        ("console", vec!["console", "vm1", "--timeout", "0"]),
        ("vnc", vec!["vnc", "vm1", "--proxy-only"]),
    ] {
        let run = virtctl(&config, &args);
        let err = run.fails();
        let want = forbidden(
            user,
            "get",
            "virtualmachineinstances.subresources.kubevirt.io",
            "vm1",
            &format!("virtualmachineinstances/{sub}"),
            "subresources.kubevirt.io",
            "team",
        );
        assert!(err.contains(&want), "virtctl {sub}: {err}\nwanted: {want}");
    }
    let err = virtctl(
        &config,
        &["port-forward", "--stdio=true", "vm/vm1.team", "22"],
    )
    .fails();
    assert!(
        err.contains("cannot get resource \"virtualmachines/portforward\""),
        "{err}"
    );
    // Nothing outside the binding's namespace, nothing outside the role.
    let err = k.fails(&["get", "vm", "-n", "default"]);
    assert!(err.contains("cannot list resource \"virtualmachines\" in API group \"kubevirt.io\" in the namespace \"default\""), "{err}");
    let err = k.fails(&["get", "secrets"]);
    assert!(err.contains("(Forbidden)"), "{err}");

    // kubectl auth can-i says what the requests got.
    let can = |args: &[&str]| {
        k.run(&[&["auth", "can-i"], args].concat())
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(can(&["list", "virtualmachines.kubevirt.io"]), "yes");
    assert_eq!(can(&["delete", "virtualmachines.kubevirt.io"]), "no");
    assert!(!can_i_subresource(
        &k,
        "get",
        "virtualmachineinstances",
        "console"
    ));
    assert!(!can_i_subresource(
        &k,
        "get",
        "virtualmachineinstances",
        "vnc"
    ));
    assert!(can_i_subresource(
        &k,
        "get",
        "virtualmachineinstances",
        "guestosinfo"
    ));
}

#[test]
fn a_kubevirt_edit_user_may_open_streams_and_delete_but_not_touch_rbac() {
    let server = Server::start();
    let admin = server.kubectl();
    admin.create_namespace("team");
    admin
        .run_stdin(&["create", "-n", "team", "-f", "-"], VM)
        .ok();
    let config = service_account_with_role(&server, "team", "editor", "kubevirt.io:edit");
    let k = kubectl_as(&server, &config);
    // Allowed through RBAC, so the stream request reaches the VMI lookup: no VMI runs.
    let err = virtctl(&config, &["console", "vm1", "--timeout", "0"]).fails();
    assert!(!err.contains("forbidden"), "{err}");
    assert!(err.contains("vm1"), "{err}");
    let can = |args: &[&str]| {
        k.run(&[&["auth", "can-i"], args].concat())
            .stdout
            .trim()
            .to_string()
    };
    assert!(can_i_subresource(
        &k,
        "get",
        "virtualmachineinstances",
        "console"
    ));
    assert!(can_i_subresource(
        &k,
        "get",
        "virtualmachineinstances",
        "vnc"
    ));
    assert!(can_i_subresource(
        &k,
        "get",
        "virtualmachines",
        "portforward"
    ));
    assert!(can_i_subresource(&k, "update", "virtualmachines", "start"));
    assert_eq!(
        can(&["create", "rolebindings.rbac.authorization.k8s.io"]),
        "no"
    );
    // start is an update of virtualmachines/start, which edit grants.
    let out = virtctl(&config, &["start", "vm1"]).ok();
    assert!(out.contains("VM vm1 was scheduled to start"), "{out}");
    k.ok(&["delete", "vm", "vm1", "--wait=false"]);
    let err = k.fails(&[
        "create",
        "rolebinding",
        "x",
        "--clusterrole=admin",
        "--user=me",
    ]);
    assert!(
        err.contains(
            "cannot create resource \"rolebindings\" in API group \"rbac.authorization.k8s.io\""
        ),
        "{err}"
    );
}

#[test]
fn a_service_account_without_bindings_may_only_discover_and_review_itself() {
    let server = Server::start();
    server.kubectl().create_namespace("team");
    let config = service_account_with_role(&server, "team", "nobody", "");
    let k = kubectl_as(&server, &config);
    k.ok(&["api-resources", "--api-group=kubevirt.io"]);
    k.ok(&["version"]);
    let whoami = k.ok(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(whoami, "system:serviceaccount:team:nobody");
    let err = k.fails(&["get", "configmaps"]);
    assert!(
        err.contains("configmaps is forbidden: User \"system:serviceaccount:team:nobody\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"team\""),
        "{err}"
    );
    let err = k.fails(&["get", "nodes"]);
    assert!(err.contains("at the cluster scope"), "{err}");
    let err = k.fails(&["get", "--raw", "/metrics"]);
    assert!(err.contains("Forbidden"), "{err}");
    // The exact Status object a client gets.
    let run = k.run(&["get", "--raw", "/api/v1/namespaces/team/pods/p1/log"]);
    assert!(!run.status.success());
    let err = run.stderr;
    assert!(
        err.contains("pods \"p1\" is forbidden: User \"system:serviceaccount:team:nobody\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"team\""),
        "{err}"
    );
}

#[test]
fn subresources_need_their_own_rule() {
    let server = Server::start();
    let admin = server.kubectl();
    admin.create_namespace("team");
    let role = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
      "metadata": {"name": "pod-reader", "namespace": "team"},
      "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}"#;
    admin.run_stdin(&["create", "-f", "-"], role).ok();
    let config = service_account_with_role(&server, "team", "reader", "");
    admin.ok(&[
        "create",
        "rolebinding",
        "reader",
        "-n",
        "team",
        "--role=pod-reader",
        "--serviceaccount=team:reader",
    ]);
    let k = kubectl_as(&server, &config);
    k.ok(&["get", "pods"]);
    // The Pod need not exist: authorisation is decided before anything is looked up.
    let err = k.fails(&["get", "--raw", "/api/v1/namespaces/team/pods/p1/log"]);
    assert!(err.contains("pods \"p1\" is forbidden: User \"system:serviceaccount:team:reader\" cannot get resource \"pods/log\""), "{err}");
    let eviction = r#"{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p1", "namespace": "team"}}"#;
    let err = k
        .run_stdin(
            &[
                "create",
                "--raw",
                "/api/v1/namespaces/team/pods/p1/eviction",
                "-f",
                "-",
            ],
            eviction,
        )
        .fails();
    assert!(
        err.contains("cannot create resource \"pods/eviction\""),
        "{err}"
    );
    let can = |args: &[&str]| {
        k.run(&[&["auth", "can-i"], args].concat())
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(can(&["get", "pods"]), "yes");
    assert_eq!(can(&["get", "pods", "--subresource=log"]), "no");
}

#[test]
fn upstream_roles_are_shipped_and_aggregated_into_admin_edit_and_view() {
    let server = Server::start();
    let k = server.kubectl();
    for role in [
        "kubevirt.io:admin",
        "kubevirt.io:edit",
        "kubevirt.io:view",
        "cdi.kubevirt.io:admin",
        "cdi.kubevirt.io:edit",
        "cdi.kubevirt.io:view",
        "cdi.kubevirt.io:config-reader",
        "token.kubevirt.io:generate",
        "cluster-admin",
        "admin",
        "edit",
        "view",
    ] {
        assert!(k.exists(&["clusterrole", role]), "{role} is missing");
    }
    let view = k.json(&["get", "clusterrole", "view"]);
    let rules = view["rules"].to_string();
    assert!(
        rules.contains("virtualmachineinstances"),
        "view lacks kubevirt.io:view: {rules}"
    );
    assert!(
        rules.contains("datavolumes"),
        "view lacks cdi.kubevirt.io:view: {rules}"
    );
    let edit = k.json(&["get", "clusterrole", "edit"])["rules"].to_string();
    assert!(edit.contains("virtualmachineinstances/console"), "{edit}");
    let admin = k.json(&["get", "clusterrole", "admin"])["rules"].to_string();
    assert!(
        admin.contains("rolebindings") && admin.contains("virtualmachineinstances/console"),
        "{admin}"
    );

    // A new role labelled for aggregation extends view, and leaves it when deleted.
    let extra = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
      "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
      "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]}"#;
    k.run_stdin(&["create", "-f", "-"], extra).ok();
    let has_widgets = |role: &str| -> bool {
        let rules: Value = k.json(&["get", "clusterrole", role]);
        rules["rules"].to_string().contains("widgets")
    };
    wait_until(
        "view to include widgets",
        std::time::Duration::from_secs(10),
        || has_widgets("view").then_some(()),
    );
    // view aggregates into edit, edit into admin.
    wait_until(
        "admin to include widgets",
        std::time::Duration::from_secs(10),
        || has_widgets("admin").then_some(()),
    );
    k.ok(&["delete", "clusterrole", "widgets-view"]);
    wait_until(
        "view to drop widgets",
        std::time::Duration::from_secs(10),
        || (!has_widgets("view")).then_some(()),
    );
}

#[test]
fn the_admin_kubeconfig_is_cluster_admin_and_components_are_bound_by_group() {
    let server = Server::start();
    let k = server.kubectl();
    assert_eq!(k.ok(&["auth", "can-i", "*", "*"]).trim(), "yes");
    let binding = k.json(&["get", "clusterrolebinding", "system:oxivirt:components"]);
    assert_eq!(binding["subjects"][0]["name"], "system:oxivirt-components");
    let component = |args: &[&str]| {
        k.run(
            &[
                &[
                    "auth",
                    "can-i",
                    "--as=system:oxivirt:x",
                    "--as-group=system:oxivirt-components",
                ],
                args,
            ]
            .concat(),
        )
        .stdout
        .trim()
        .to_string()
    };
    assert_eq!(component(&["create", "pods", "-n", "default"]), "yes");
    let outsider = k
        .run(&["auth", "can-i", "--as=someone", "list", "pods"])
        .stdout;
    assert_eq!(outsider.trim(), "no");
}

#[test]
fn a_namespace_admin_may_bind_roles_they_hold_but_not_escalate() {
    let server = Server::start();
    server.kubectl().create_namespace("team");
    let config = service_account_with_role(&server, "team", "owner", "admin");
    let k = kubectl_as(&server, &config);
    k.ok(&[
        "create",
        "rolebinding",
        "viewers",
        "--clusterrole=kubevirt.io:view",
        "--serviceaccount=team:someone",
    ]);
    let err = k.fails(&[
        "create",
        "rolebinding",
        "root",
        "--clusterrole=cluster-admin",
        "--serviceaccount=team:owner",
    ]);
    assert!(
        err.contains("rolebindings.rbac.authorization.k8s.io \"root\" is forbidden: user \"system:serviceaccount:team:owner\"")
            && err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    let role = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
      "metadata": {"name": "nodes", "namespace": "team"},
      "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete"]}]}"#;
    let err = k.run_stdin(&["create", "-f", "-"], role).fails();
    assert!(err.contains("Resources:[\"nodes\"]"), "{err}");
    // A Role with rules the admin holds is fine, and binding it too.
    let role = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
      "metadata": {"name": "vm-starter", "namespace": "team"},
      "rules": [{"apiGroups": ["subresources.kubevirt.io"], "resources": ["virtualmachines/start"], "verbs": ["update"]}]}"#;
    k.run_stdin(&["create", "-f", "-"], role).ok();
    k.ok(&[
        "create",
        "rolebinding",
        "starters",
        "--role=vm-starter",
        "--serviceaccount=team:someone",
    ]);
}

/// The 403 a client library sees: code, reason, message and details, field by field.
#[tokio::test]
async fn a_forbidden_answer_is_kubernetes_status_to_the_field() {
    let server = Server::start();
    server.kubectl().create_namespace("team");
    let config = service_account_with_role(&server, "team", "viewer", "kubevirt.io:view");
    let kubeconfig = kube::config::Kubeconfig::read_from(&config).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kube-rs accepts the kubeconfig");
    let client = kube::Client::try_from(config).expect("client");
    let gvk = kube::api::GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "virtualmachines");
    let vms: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client, "team", &resource);
    match vms.delete("vm1", &Default::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert_eq!(status.reason, "Forbidden");
            assert_eq!(
                status.message,
                "virtualmachines.kubevirt.io \"vm1\" is forbidden: User \"system:serviceaccount:team:viewer\" cannot delete resource \"virtualmachines\" in API group \"kubevirt.io\" in the namespace \"team\""
            );
            let details = status.details.expect("details");
            assert_eq!(
                (
                    details.name.as_str(),
                    details.group.as_str(),
                    details.kind.as_str()
                ),
                ("vm1", "kubevirt.io", "virtualmachines")
            );
        }
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}
