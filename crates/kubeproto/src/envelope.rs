//! The frame around every Kubernetes protobuf body: the `k8s\0` magic and a `runtime.Unknown`
//! message that names the object's type and carries its encoded bytes.

use crate::error::{Error, Result};
use crate::wire::{Path, Reader, WireValue, LEN};

/// The four bytes that start every Kubernetes protobuf body.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// A parsed `runtime.Unknown`: what the object is, and its still-encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// `typeMeta.apiVersion` (field 1.1), e.g. `v1` or `rbac.authorization.k8s.io/v1`.
    pub api_version: String,
    /// `typeMeta.kind` (field 1.2), e.g. `ConfigMap`.
    pub kind: String,
    /// `raw` (field 2): the object's own protobuf encoding, without type information.
    pub raw: &'a [u8],
    /// `contentEncoding` (field 3); empty for every body kubectl sends.
    pub content_encoding: String,
    /// `contentType` (field 4); usually empty, meaning protobuf.
    pub content_type: String,
}

impl<'a> Envelope<'a> {
    /// Checks the magic and reads the envelope, without decoding `raw`.
    ///
    /// # Errors
    ///
    /// [`Error::MissingMagic`] when `body` does not start with [`MAGIC`]; a wire-format error
    /// when the envelope itself is malformed.
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let message = body.strip_prefix(&MAGIC).ok_or(Error::MissingMagic)?;
        let root = Path::Root("envelope");
        let mut envelope = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
            content_encoding: String::new(),
            content_type: String::new(),
        };
        let mut reader = Reader::new(message);
        while let Some((tag, value)) = reader.next_field(&root)? {
            match tag {
                1 => {
                    let path = Path::Field(&root, "typeMeta");
                    let mut type_meta = Reader::new(bytes(value, &path)?);
                    while let Some((tag, value)) = type_meta.next_field(&path)? {
                        match tag {
                            1 => envelope.api_version = text(value, &path, "apiVersion")?,
                            2 => envelope.kind = text(value, &path, "kind")?,
                            _ => {}
                        }
                    }
                }
                2 => envelope.raw = bytes(value, &Path::Field(&root, "raw"))?,
                3 => envelope.content_encoding = text(value, &root, "contentEncoding")?,
                4 => envelope.content_type = text(value, &root, "contentType")?,
                _ => {}
            }
        }
        Ok(envelope)
    }
}

fn bytes<'a>(value: WireValue<'a>, path: &Path<'_>) -> Result<&'a [u8]> {
    match value {
        WireValue::Len(bytes) => Ok(bytes),
        other => Err(Error::WireTypeMismatch {
            path: path.to_string(),
            expected: LEN,
            found: other.wire_type(),
        }),
    }
}

fn text(value: WireValue<'_>, parent: &Path<'_>, name: &'static str) -> Result<String> {
    let bytes = bytes(value, &Path::Field(parent, name))?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}
