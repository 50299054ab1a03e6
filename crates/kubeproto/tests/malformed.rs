//! Bodies that must be refused, and the errors (with field paths) they produce.

use oxivirt_kubeproto::{decode, Error};

use crate::encoder::{envelope, envelope_with_encoding, time, Msg};

#[test]
fn a_json_body_is_missing_the_magic() {
    assert_eq!(decode(br#"{"kind":"ConfigMap"}"#), Err(Error::MissingMagic));
    assert_eq!(decode(b"k8s"), Err(Error::MissingMagic));
}

#[test]
fn a_compressed_envelope_is_refused() {
    let body = envelope_with_encoding("v1", "ConfigMap", &Msg::new(), "gzip");
    assert_eq!(
        decode(&body),
        Err(Error::UnsupportedEncoding {
            encoding: "gzip".to_string()
        })
    );
}

#[test]
fn an_unknown_kind_names_its_group_version_and_kind() {
    let body = envelope("apps/v1", "Deployment", &Msg::new());
    let error = decode(&body).unwrap_err();
    assert_eq!(
        error,
        Error::UnsupportedKind {
            api_version: "apps/v1".to_string(),
            kind: "Deployment".to_string()
        }
    );
    assert_eq!(
        error.to_string(),
        "protobuf is not supported for kind \"Deployment\" in \"apps/v1\"; send JSON instead"
    );
}

#[test]
fn a_truncated_object_names_the_field_being_read() {
    // A label entry whose key claims five bytes but carries one.
    let meta = Msg::new().bytes(11, &[0x0a, 0x05, b'a']);
    let body = envelope("v1", "ConfigMap", &Msg::new().msg(1, meta));
    assert_eq!(
        decode(&body),
        Err(Error::Truncated {
            path: "metadata.labels".to_string()
        })
    );
}

#[test]
fn a_truncated_envelope_is_reported_as_such() {
    let mut body = envelope("v1", "ConfigMap", &Msg::new().string(99, "x"));
    body.pop();
    assert!(matches!(decode(&body), Err(Error::Truncated { path }) if path == "envelope"));
}

#[test]
fn a_string_sent_as_a_varint_is_a_wire_type_mismatch() {
    let body = envelope(
        "v1",
        "ConfigMap",
        &Msg::new().msg(1, Msg::new().varint(1, 5)),
    );
    assert_eq!(
        decode(&body),
        Err(Error::WireTypeMismatch {
            path: "metadata.name".to_string(),
            expected: 2,
            found: 0
        })
    );
}

#[test]
fn a_list_element_error_names_its_index() {
    let spec = Msg::new()
        .msg(1, Msg::new().int(3, 80))
        .msg(1, Msg::new().msg(4, Msg::new().int(1, 7)));
    let body = envelope("v1", "Service", &Msg::new().msg(2, spec));
    assert_eq!(
        decode(&body),
        Err(Error::InvalidIntOrString {
            path: "spec.ports[1].targetPort".to_string(),
            type_code: 7
        })
    );
}

#[test]
fn a_time_past_year_9999_is_out_of_range() {
    let meta = Msg::new().msg(8, time(300_000_000_000));
    let body = envelope("v1", "ConfigMap", &Msg::new().msg(1, meta));
    assert_eq!(
        decode(&body),
        Err(Error::TimeOutOfRange {
            path: "metadata.creationTimestamp".to_string(),
            seconds: 300_000_000_000
        })
    );
}

#[test]
fn managed_fields_that_are_not_json_are_refused() {
    let entry = Msg::new().msg(7, Msg::new().bytes(1, b"{not json"));
    let body = envelope(
        "v1",
        "ConfigMap",
        &Msg::new().msg(1, Msg::new().msg(17, entry)),
    );
    assert_eq!(
        decode(&body),
        Err(Error::InvalidFieldsV1 {
            path: "metadata.managedFields[0].fieldsV1".to_string()
        })
    );
}
