//! Errors as kubectl shows them: malformed input, oversized bodies, invalid names, and
//! field validation (`--validate=strict|warn|ignore`).

use oxivirt_e2e::Server;

const CM_WITH_UNKNOWN_FIELD: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\nfoo: bar\ndata:\n  a: b\n";

#[test]
fn malformed_yaml_is_rejected_with_a_parse_error() {
    let server = Server::start();
    let k = server.kubectl();
    let err = k
        .run_stdin(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata: [name: x\n",
        )
        .fails();
    assert!(err.contains("yaml") || err.contains("YAML"), "{err}");
}

#[test]
fn malformed_json_sent_to_the_server_is_a_bad_request() {
    let server = Server::start();
    let k = server.kubectl();
    let body = server.write_file(
        "bad.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"#,
    );
    let err = k.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        body.to_str().expect("utf-8 path"),
    ]);
    assert!(err.contains("BadRequest"), "{err}");
}

#[test]
fn a_body_over_three_mebibytes_is_rejected_as_too_large() {
    let server = Server::start();
    let k = server.kubectl();
    let big = "x".repeat(4 * 1024 * 1024);
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"a":"{big}"}}}}"#
    );
    let path = server.write_file("big.json", &body);
    let err = k.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        path.to_str().expect("utf-8 path"),
    ]);
    assert!(
        err.contains("RequestEntityTooLarge") || err.contains("413"),
        "{err}"
    );
    assert!(!k.exists(&["configmap", "big"]));
}

#[test]
fn an_invalid_name_is_rejected_as_invalid_with_the_field_path() {
    let server = Server::start();
    let k = server.kubectl();
    let err = k
        .run_stdin(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_DNS_Name\n",
        )
        .fails();
    assert!(
        err.contains("Invalid") && err.contains("metadata.name"),
        "{err}"
    );
}

#[test]
fn an_unknown_field_fails_apply_under_the_default_strict_validation() {
    let server = Server::start();
    let k = server.kubectl();
    // kubectl 1.32 defaults to --validate=strict.
    let err = k
        .run_stdin(&["apply", "-f", "-"], CM_WITH_UNKNOWN_FIELD)
        .fails();
    assert!(
        err.contains("unknown field") && err.contains("foo"),
        "{err}"
    );
    let err = k
        .run_stdin(
            &["apply", "--validate=strict", "-f", "-"],
            CM_WITH_UNKNOWN_FIELD,
        )
        .fails();
    assert!(
        err.contains("unknown field") && err.contains("foo"),
        "{err}"
    );
    assert!(!k.exists(&["configmap", "typo"]));
}

#[test]
fn an_unknown_field_is_a_warning_with_validate_warn_and_silent_with_validate_false() {
    let server = Server::start();
    let k = server.kubectl();
    let run = k.run_stdin(
        &["apply", "--validate=warn", "-f", "-"],
        CM_WITH_UNKNOWN_FIELD,
    );
    let stderr = run.stderr.clone();
    let stdout = run.ok();
    assert!(stdout.contains("configmap/typo created"), "{stdout}");
    assert!(
        stderr.contains("Warning") && stderr.contains("unknown field") && stderr.contains("foo"),
        "{stderr}"
    );
    assert_eq!(k.jsonpath(&["configmap", "typo"], "{.data.a}"), "b");

    let manifest = CM_WITH_UNKNOWN_FIELD.replace("name: typo", "name: quiet");
    let run = k.run_stdin(&["apply", "--validate=false", "-f", "-"], &manifest);
    let stderr = run.stderr.clone();
    run.ok();
    assert!(!stderr.contains("unknown field"), "{stderr}");
}
