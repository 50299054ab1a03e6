//! A CustomResourceDefinition created by a user: established, then its resources served
//! with schema validation, defaulting, pruning, printer columns and a status subresource.

use std::time::Duration;

use oxivirt_e2e::{Kubectl, Server};

const WIDGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Colour
      type: string
      jsonPath: .spec.colour
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
                minimum: 1
                default: 3
              colour:
                type: string
          status:
            type: object
            properties:
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"#;

/// Creates the Widget CRD and waits for `Established`.
pub(crate) fn install_widget_crd(k: &Kubectl) {
    let out = k.apply(WIDGET_CRD);
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"),
        "{out}"
    );
    let out = k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=30s",
    ]);
    assert!(out.contains("condition met"), "{out}");
}

fn widget(name: &str, spec: &str) -> String {
    format!("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

#[test]
fn custom_resources_of_a_new_crd_are_served_with_defaults_and_printer_columns() {
    let server = Server::start();
    let k = server.kubectl();
    install_widget_crd(&k);

    let out = k.apply(&widget("w1", "  colour: red\n"));
    assert_eq!(out.trim(), "widget.example.com/w1 created");
    assert_eq!(
        k.jsonpath(&["widget", "w1"], "{.spec.size}"),
        "3",
        "default applied"
    );

    let table = k.ok(&["get", "wd"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // As in Kubernetes, NAME is implicit and AGE is only added when a CRD declares no columns.
    assert_eq!(header, ["NAME", "SIZE", "COLOUR"], "{table}");
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["w1", "3", "red"], "{table}");

    let resources = k.ok(&["api-resources", "--api-group=example.com"]);
    let line = resources
        .lines()
        .find(|l| l.starts_with("widgets "))
        .unwrap_or_default();
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns,
        ["widgets", "wd", "example.com/v1", "true", "Widget"],
        "{resources}"
    );

    assert_eq!(
        k.ok(&["delete", "widget", "w1"]).trim(),
        r#"widget.example.com "w1" deleted"#
    );
}

#[test]
fn custom_resources_are_validated_against_the_schema_and_unknown_fields_pruned() {
    let server = Server::start();
    let k = server.kubectl();
    install_widget_crd(&k);

    let err = k
        .run_stdin(&["apply", "-f", "-"], &widget("tiny", "  size: 0\n"))
        .fails();
    assert!(
        err.contains("Invalid") && err.contains("spec.size"),
        "{err}"
    );

    let err = k
        .run_stdin(&["apply", "-f", "-"], &widget("typo", "  shape: round\n"))
        .fails();
    assert!(
        err.contains("unknown field") && err.contains("shape"),
        "{err}"
    );

    k.run_stdin(
        &["apply", "--validate=false", "-f", "-"],
        &widget("pruned", "  shape: round\n"),
    )
    .ok();
    let spec = k.json(&["get", "widget", "pruned"])["spec"].clone();
    assert_eq!(
        spec,
        serde_json::json!({"size": 3}),
        "unknown field pruned, default applied"
    );
}

#[test]
fn the_status_subresource_is_written_separately_and_wait_sees_its_condition() {
    let server = Server::start();
    let k = server.kubectl();
    install_widget_crd(&k);
    k.apply(&widget("w", "  size: 2\n"));

    // Status sent to the main resource is ignored.
    k.ok(&[
        "patch",
        "widget",
        "w",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    assert_eq!(k.jsonpath(&["widget", "w"], "{.status.conditions}"), "");

    let mut waiter = k.spawn(&["wait", "--for=condition=Ready", "widget/w", "--timeout=30s"]);
    std::thread::sleep(Duration::from_millis(300));
    // Spec sent to the status subresource is ignored.
    k.ok(&[
        "patch",
        "widget",
        "w",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":9},"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    let line = waiter.expect_line(
        &["widget.example.com/w condition met"],
        Duration::from_secs(30),
    );
    assert!(!line.is_empty());
    assert_eq!(k.jsonpath(&["widget", "w"], "{.spec.size}"), "2");
    assert_eq!(k.jsonpath(&["widget", "w"], "{.metadata.generation}"), "1");
}
