//! Discovery and schema: `api-resources`, `api-versions`, `explain`, `version`.

use oxivirt_e2e::Server;

/// The whitespace-separated columns of the `kubectl api-resources` row for `resource`.
fn api_resource_row(table: &str, resource: &str) -> Vec<String> {
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(resource))
        .unwrap_or_else(|| panic!("no {resource} row in:\n{table}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn upload_token_requests_are_discovered_as_create_only_as_cdi_serves_them() {
    let server = Server::start();
    let kubectl = server.kubectl();
    let creatable = kubectl.ok(&["api-resources", "--verbs=create", "-o", "name"]);
    assert!(
        creatable
            .lines()
            .any(|l| l == "uploadtokenrequests.upload.cdi.kubevirt.io"),
        "{creatable}"
    );
    let readable = kubectl.ok(&["api-resources", "--verbs=get", "-o", "name"]);
    assert!(!readable.contains("uploadtokenrequests"), "{readable}");
    // Asked anyway, the server says why.
    let refused = kubectl.fails(&["get", "uploadtokenrequests"]);
    assert!(refused.contains("can only be created"), "{refused}");
}

#[test]
fn api_resources_lists_virtualmachines_with_short_name_vm_and_the_core_kinds() {
    let server = Server::start();
    let table = server.kubectl().ok(&["api-resources"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        "{table}"
    );

    let vm = api_resource_row(&table, "virtualmachines");
    assert!(vm[1].split(',').any(|s| s == "vm"), "short names: {vm:?}");
    assert_eq!(vm[2..], ["kubevirt.io/v1", "true", "VirtualMachine"]);
    let vmi = api_resource_row(&table, "virtualmachineinstances");
    assert!(
        vmi[1].split(',').any(|s| s == "vmi"),
        "short names: {vmi:?}"
    );

    let expected: [(&str, &[&str]); 8] = [
        ("configmaps", &["cm", "v1", "true", "ConfigMap"]),
        ("namespaces", &["ns", "v1", "false", "Namespace"]),
        ("nodes", &["no", "v1", "false", "Node"]),
        ("secrets", &["v1", "true", "Secret"]),
        (
            "customresourcedefinitions",
            &[
                "crd,crds",
                "apiextensions.k8s.io/v1",
                "false",
                "CustomResourceDefinition",
            ],
        ),
        ("leases", &["coordination.k8s.io/v1", "true", "Lease"]),
        (
            "clusterroles",
            &["rbac.authorization.k8s.io/v1", "false", "ClusterRole"],
        ),
        (
            "storageclasses",
            &["sc", "storage.k8s.io/v1", "false", "StorageClass"],
        ),
    ];
    for (resource, rest) in expected {
        assert_eq!(api_resource_row(&table, resource)[1..], *rest, "{resource}");
    }

    let cluster_scoped =
        server
            .kubectl()
            .ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    assert!(
        cluster_scoped.lines().any(|l| l == "namespaces"),
        "{cluster_scoped}"
    );
    assert!(
        !cluster_scoped.lines().any(|l| l == "configmaps"),
        "{cluster_scoped}"
    );
}

#[test]
fn api_versions_lists_every_served_group_version() {
    let server = Server::start();
    let out = server.kubectl().ok(&["api-versions"]);
    let versions: Vec<&str> = out.lines().collect();
    for gv in [
        "v1",
        "apps/v1",
        "apiextensions.k8s.io/v1",
        "coordination.k8s.io/v1",
        "discovery.k8s.io/v1",
        "events.k8s.io/v1",
        "kubevirt.io/v1",
        "rbac.authorization.k8s.io/v1",
        "storage.k8s.io/v1",
    ] {
        assert!(versions.contains(&gv), "{gv} missing from:\n{out}");
    }
}

#[test]
fn explain_describes_vm_spec_running_and_pod_containers() {
    let server = Server::start();
    let k = server.kubectl();
    let out = k.ok(&["explain", "vm.spec.running"]);
    assert!(
        out.contains("KIND:") && out.contains("VirtualMachine"),
        "{out}"
    );
    assert!(
        out.contains("GROUP:") && out.contains("kubevirt.io"),
        "{out}"
    );
    assert!(
        out.contains("FIELD:") && out.contains("running") && out.contains("<boolean>"),
        "{out}"
    );

    let out = k.ok(&["explain", "pods.spec.containers"]);
    assert!(out.contains("KIND:") && out.contains("Pod"), "{out}");
    assert!(
        out.contains("containers") && out.contains("<[]Container>"),
        "{out}"
    );
    assert!(out.contains("image") && out.contains("FIELDS:"), "{out}");

    let out = k.ok(&["explain", "configmaps", "--recursive"]);
    assert!(out.contains("data") && out.contains("metadata"), "{out}");
}

#[test]
fn version_reports_a_kubernetes_compatible_server_version() {
    let server = Server::start();
    let version = server.kubectl().json(&["version"]);
    let server_version = &version["serverVersion"];
    assert_eq!(server_version["major"], "1", "{version}");
    assert!(
        server_version["gitVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.")),
        "{version}"
    );
}

#[test]
fn openapi_documents_are_served() {
    let server = Server::start();
    let k = server.kubectl();
    let v2: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "--raw", "/openapi/v2"])).expect("openapi v2 JSON");
    assert_eq!(v2["swagger"], "2.0");
    assert!(
        v2["definitions"]["io.k8s.api.core.v1.ConfigMap"].is_object(),
        "ConfigMap missing"
    );

    let v3: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "--raw", "/openapi/v3"])).expect("openapi v3 index");
    let paths = v3["paths"].as_object().expect("openapi v3 paths");
    assert!(paths.contains_key("api/v1"), "{v3}");
    assert!(paths.contains_key("apis/kubevirt.io/v1"), "{v3}");
}
