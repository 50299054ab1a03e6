//! `kubectl get` output formats, label and field selectors, and `kubectl describe`.

use oxivirt_e2e::{Kubectl, Server};

/// Names printed by `kubectl get configmaps -o name` in `namespace`, without the
/// `kube-root-ca.crt` map that real clusters publish in every namespace.
fn configmap_names(k: &Kubectl, namespace: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["get", "configmaps", "-n", namespace, "-o", "name"];
    args.extend(extra);
    let mut names: Vec<String> = k
        .ok(&args)
        .lines()
        .map(|l| l.trim_start_matches("configmap/").to_owned())
        .filter(|n| !n.is_empty() && n != "kube-root-ca.crt")
        .collect();
    names.sort();
    names
}

#[test]
fn get_prints_yaml_json_jsonpath_and_wide_output() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("c1", &[("greeting", "hello")]);

    let yaml = k.ok(&["get", "configmap", "c1", "-o", "yaml"]);
    assert!(
        yaml.contains("greeting: hello") && yaml.contains("name: c1"),
        "{yaml}"
    );
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("apiVersion: v1"),
        "{yaml}"
    );

    let json = k.json(&["get", "configmap", "c1"]);
    assert_eq!(json["data"]["greeting"], "hello");
    assert_eq!(json["metadata"]["namespace"], "default");
    for field in ["uid", "resourceVersion", "creationTimestamp"] {
        assert!(
            json["metadata"][field]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{field}: {json}"
        );
    }

    assert_eq!(
        k.jsonpath(&["configmap", "c1"], "{.data.greeting}"),
        "hello"
    );
    assert_eq!(
        k.jsonpath(&["configmaps"], "{.items[*].metadata.name}")
            .split(' ')
            .filter(|n| *n == "c1")
            .count(),
        1
    );

    let wide = k.ok(&["get", "configmaps", "-o", "wide"]);
    let mut lines = wide.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "DATA", "AGE"], "{wide}");
    let row: Vec<&str> = lines
        .find(|l| l.starts_with("c1 "))
        .unwrap_or_else(|| panic!("no c1 row: {wide}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "1", "{wide}");

    let list = k.json(&["get", "configmaps"]);
    assert_eq!(list["kind"], "List", "{list}");
}

#[test]
fn get_filters_by_label_selector_and_shows_labels() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_namespace("sel");
    for (name, labels) in [
        ("web", "app=web,tier=front"),
        ("db", "app=db,tier=back"),
        ("bare", ""),
    ] {
        k.create_configmap_in("sel", name, &[]);
        if !labels.is_empty() {
            let mut args = vec!["label", "configmap", name, "-n", "sel"];
            args.extend(labels.split(','));
            k.ok(&args);
        }
    }
    let cases: [(&str, &[&str]); 7] = [
        ("app=web", &["web"]),
        ("app==db", &["db"]),
        ("app!=web", &["bare", "db"]),
        ("app in (web,db)", &["db", "web"]),
        ("app notin (web)", &["bare", "db"]),
        ("app", &["db", "web"]),
        ("!app", &["bare"]),
    ];
    for (selector, expected) in cases {
        assert_eq!(
            configmap_names(&k, "sel", &["-l", selector]),
            expected,
            "selector {selector}"
        );
    }
    assert_eq!(
        configmap_names(&k, "sel", &["-l", "app=web,tier=front"]),
        ["web"]
    );

    let shown = k.ok(&["get", "configmaps", "-n", "sel", "--show-labels"]);
    let header = shown.lines().next().unwrap_or_default();
    assert!(header.contains("LABELS"), "{shown}");
    let web = shown
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_default();
    assert!(web.ends_with("app=web,tier=front"), "{shown}");
    let bare = shown
        .lines()
        .find(|l| l.starts_with("bare "))
        .unwrap_or_default();
    assert!(bare.ends_with("<none>"), "{shown}");
}

#[test]
fn get_filters_by_field_selector() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_namespace("fields");
    for name in ["one", "two"] {
        k.create_configmap_in("fields", name, &[]);
    }
    let by_name = configmap_names(&k, "fields", &["--field-selector", "metadata.name=one"]);
    assert_eq!(by_name, ["one"]);
    let not_name = configmap_names(&k, "fields", &["--field-selector", "metadata.name!=one"]);
    assert_eq!(not_name, ["two"]);

    let across = k.ok(&[
        "get",
        "configmaps",
        "-A",
        "-o",
        "name",
        "--field-selector",
        "metadata.namespace=fields,metadata.name=two",
    ]);
    assert_eq!(across.trim(), "configmap/two");

    let active = k.ok(&[
        "get",
        "namespaces",
        "-o",
        "name",
        "--field-selector",
        "status.phase=Active",
    ]);
    assert!(active.lines().any(|l| l == "namespace/default"), "{active}");

    let err = k.fails(&["get", "configmaps", "--field-selector", "data.nope=x"]);
    assert!(
        err.contains("field label") || err.contains("field selector"),
        "{err}"
    );
}

#[test]
fn get_pages_through_long_lists_with_chunk_size() {
    let server = Server::start();
    let k = server.kubectl();
    let manifest: String = (0..25)
        .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: page-{i:02}\n  namespace: default\n---\n"))
        .collect();
    k.create(&manifest);
    let names = configmap_names(&k, "default", &["--chunk-size=7"]);
    let expected: Vec<String> = (0..25).map(|i| format!("page-{i:02}")).collect();
    assert_eq!(names, expected);

    let page = k.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?limit=10",
    ]);
    let page: serde_json::Value = serde_json::from_str(&page).expect("list JSON");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(10), "{page}");
    assert!(
        page["metadata"]["continue"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{page}"
    );
}

#[test]
fn describe_shows_a_configmap_and_a_virtual_machine() {
    let server = Server::start();
    let k = server.kubectl();
    k.create_configmap("described", &[("colour", "blue")]);
    let out = k.ok(&["describe", "configmap", "described"]);
    for needle in [
        "Name:",
        "described",
        "Namespace:",
        "default",
        "Data",
        "colour",
        "blue",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }

    k.apply(
        "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: small\nspec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        devices: {}\n        memory:\n          guest: 64Mi\n",
    );
    let out = k.ok(&["describe", "vm", "small"]);
    for needle in [
        "Name:",
        "small",
        "Kind:",
        "VirtualMachine",
        "API Version:",
        "kubevirt.io/v1",
        "Halted",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}
