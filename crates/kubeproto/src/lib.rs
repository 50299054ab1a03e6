//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) turned into the
//! Kubernetes JSON form that the rest of oxivirt works with.
//!
//! Stock kubectl sends protobuf for the kinds it builds with typed clients (`kubectl create
//! configmap|secret|namespace|serviceaccount|service|role|clusterrole|rolebinding|
//! clusterrolebinding|quota|priorityclass|poddisruptionbudget|token`, `kubectl auth can-i`,
//! `kubectl auth whoami`, and the `DeleteOptions` of `kubectl drain --disable-eviction`). The API
//! server calls [`decode`] on such a body and carries on exactly as if the client had sent JSON.
//! Responses stay JSON, which every client accepts.
//!
//! This crate is pure and synchronous: no I/O, no knowledge of HTTP or storage. It is a
//! hand-written wire reader plus one static table per message type ([`supported_kinds`] lists
//! the top-level kinds); it has no code generation and no protobuf library.
//!
//! # Guarantees
//!
//! For every supported kind, [`decode`] returns the object that Go's `encoding/json` would
//! write for the same Go value, so kubectl's protobuf and JSON bodies decode alike (down to
//! `"creationTimestamp": null`). Unknown fields are skipped.
//!
//! # Caveats
//!
//! Kinds without a table yield [`Error::UnsupportedKind`]; the API server should answer
//! `415 Unsupported Media Type` so the client falls back to JSON. Quantities are passed through
//! as the client wrote them (kubectl already sends canonical forms).

mod decode;
mod envelope;
mod error;
mod format;
mod tables;
mod wire;

use serde_json::{Map, Value};

pub use envelope::{Envelope, MAGIC};
pub use error::{Error, Result};

/// The media type of Kubernetes protobuf bodies, as sent in `Content-Type`.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Decodes a Kubernetes protobuf body into the object's Kubernetes JSON form, with `apiVersion`
/// and `kind` taken from the envelope.
///
/// # Errors
///
/// [`Error::MissingMagic`] for a body that is not Kubernetes protobuf,
/// [`Error::UnsupportedEncoding`] for a compressed envelope, [`Error::UnsupportedKind`] for a
/// kind without a table, and a wire-format or value error (naming the field path) for a
/// malformed body.
pub fn decode(body: &[u8]) -> Result<Value> {
    let envelope = Envelope::parse(body)?;
    if !envelope.content_encoding.is_empty() {
        return Err(Error::UnsupportedEncoding {
            encoding: envelope.content_encoding,
        });
    }
    let Some(table) = tables::lookup(&envelope.api_version, &envelope.kind) else {
        return Err(Error::UnsupportedKind {
            api_version: envelope.api_version,
            kind: envelope.kind,
        });
    };
    let fields = decode::decode_message(envelope.raw, table, &wire::Path::Root("object"))?;
    let mut object = Map::new();
    object.insert("kind".to_string(), Value::String(envelope.kind));
    object.insert(
        "apiVersion".to_string(),
        Value::String(envelope.api_version),
    );
    object.extend(fields);
    Ok(Value::Object(object))
}

/// Whether [`decode`] has a table for this `apiVersion` and `kind`.
pub fn supports(api_version: &str, kind: &str) -> bool {
    tables::lookup(api_version, kind).is_some()
}

/// `(apiVersion, kind)` of every top-level kind [`decode`] understands. `DeleteOptions` is
/// accepted under any `apiVersion` but listed once, as `v1`.
pub fn supported_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    tables::kinds()
}
