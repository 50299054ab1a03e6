//! The protobuf wire format: tags, varints, fixed-width values and length-delimited fields.
//!
//! Only what Kubernetes' gogo-generated messages use is read: wire types 0 (varint), 1 (64-bit),
//! 2 (length-delimited) and 5 (32-bit). Groups (3, 4) are rejected rather than skipped because no
//! Kubernetes type has them, so meeting one means the body is not what it claims to be.

use std::fmt;

use crate::error::{Error, Result};

/// Wire type of varint-encoded fields (`int32`, `int64`, `bool`, enums).
pub(crate) const VARINT: u8 = 0;
/// Wire type of 64-bit fixed-width fields (`fixed64`, `double`).
pub(crate) const FIXED64: u8 = 1;
/// Wire type of length-delimited fields (strings, bytes, messages, map entries).
pub(crate) const LEN: u8 = 2;
/// Wire type of 32-bit fixed-width fields (`fixed32`, `float`).
pub(crate) const FIXED32: u8 = 5;

/// Largest field number protobuf allows (2^29 - 1).
const MAX_TAG: u64 = (1 << 29) - 1;

/// One field value as it appears on the wire, before the table gives it a meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: the payload, without its length prefix.
    Len(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl WireValue<'_> {
    /// The wire type number this value was read with.
    pub(crate) fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => VARINT,
            WireValue::Fixed64(_) => FIXED64,
            WireValue::Len(_) => LEN,
            WireValue::Fixed32(_) => FIXED32,
        }
    }
}

/// Where in the decoded object we are, rendered only when an error needs it.
///
/// A linked list on the stack, so decoding allocates no path strings on the happy path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path<'a> {
    /// The message being decoded at the top (the envelope or the object itself).
    Root(&'static str),
    /// A named field of the parent.
    Field(&'a Path<'a>, &'static str),
    /// An element of a repeated field.
    Index(&'a Path<'a>, usize),
    /// The value under a key of a map field.
    Key(&'a Path<'a>, &'a str),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(name) => f.write_str(name),
            Path::Field(Path::Root(_), name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
            Path::Key(parent, key) => write!(f, "{parent}[{key}]"),
        }
    }
}

/// Reads the fields of one message, in wire order.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over the encoded fields of one message.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The next `(field number, value)`, or `None` at the end of the message.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`], [`Error::MalformedVarint`] or [`Error::UnsupportedWireType`], each
    /// naming `path` (the message being read).
    pub(crate) fn next_field(&mut self, path: &Path<'_>) -> Result<Option<(u32, WireValue<'a>)>> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint(path)?;
        let tag = key >> 3;
        if tag == 0 || tag > MAX_TAG {
            return Err(Error::MalformedVarint {
                path: path.to_string(),
            });
        }
        // Both conversions are lossless: tag <= 2^29 - 1 and the wire type is three bits.
        let tag = tag as u32;
        let wire_type = (key & 7) as u8;
        let value = match wire_type {
            VARINT => WireValue::Varint(self.varint(path)?),
            FIXED64 => {
                let bytes = self.take(8, path)?;
                let mut word = [0u8; 8];
                word.copy_from_slice(bytes);
                WireValue::Fixed64(u64::from_le_bytes(word))
            }
            LEN => {
                let len = self.varint(path)?;
                let len = usize::try_from(len).map_err(|_| truncated(path))?;
                WireValue::Len(self.take(len, path)?)
            }
            FIXED32 => {
                let bytes = self.take(4, path)?;
                let mut word = [0u8; 4];
                word.copy_from_slice(bytes);
                WireValue::Fixed32(u32::from_le_bytes(word))
            }
            other => {
                return Err(Error::UnsupportedWireType {
                    path: path.to_string(),
                    wire_type: other,
                })
            }
        };
        Ok(Some((tag, value)))
    }

    fn varint(&mut self, path: &Path<'_>) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(truncated(path));
            };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                // The tenth byte may only carry the top bit of a 64-bit value.
                break;
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::MalformedVarint {
            path: path.to_string(),
        })
    }

    fn take(&mut self, len: usize, path: &Path<'_>) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(len).ok_or_else(|| truncated(path))?;
        let bytes = self.buf.get(self.pos..end).ok_or_else(|| truncated(path))?;
        self.pos = end;
        Ok(bytes)
    }
}

fn truncated(path: &Path<'_>) -> Error {
    Error::Truncated {
        path: path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>> {
        let mut reader = Reader::new(buf);
        let mut out = Vec::new();
        while let Some(field) = reader.next_field(&Path::Root("test"))? {
            out.push(field);
        }
        Ok(out)
    }

    #[test]
    fn every_supported_wire_type_is_read() {
        let buf = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1a, 0x02, b'h', b'i', // 3: "hi"
            0x25, 2, 0, 0, 0, // 4: fixed32 2
        ];
        assert_eq!(
            fields(&buf),
            Ok(vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::Fixed64(1)),
                (3, WireValue::Len(b"hi")),
                (4, WireValue::Fixed32(2)),
            ])
        );
    }

    #[test]
    fn a_ten_byte_varint_holds_negative_numbers() {
        let buf = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(fields(&buf), Ok(vec![(1, WireValue::Varint(u64::MAX))]));
    }

    #[test]
    fn an_eleven_byte_varint_is_malformed() {
        let buf = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(matches!(fields(&buf), Err(Error::MalformedVarint { .. })));
    }

    #[test]
    fn a_length_past_the_end_is_truncation() {
        let buf = [0x0a, 0x05, b'a'];
        assert_eq!(
            fields(&buf),
            Err(Error::Truncated {
                path: "test".to_string()
            })
        );
    }

    #[test]
    fn groups_are_rejected() {
        assert!(matches!(
            fields(&[0x0b]),
            Err(Error::UnsupportedWireType { wire_type: 3, .. })
        ));
    }

    #[test]
    fn field_number_zero_is_malformed() {
        assert!(matches!(
            fields(&[0x00, 0x01]),
            Err(Error::MalformedVarint { .. })
        ));
    }

    #[test]
    fn paths_render_like_kubernetes_field_paths() {
        let root = Path::Root("object");
        let spec = Path::Field(&root, "spec");
        let ports = Path::Field(&spec, "ports");
        let first = Path::Index(&ports, 0);
        let target = Path::Field(&first, "targetPort");
        assert_eq!(target.to_string(), "spec.ports[0].targetPort");
        let labels = Path::Field(&root, "labels");
        assert_eq!(Path::Key(&labels, "app").to_string(), "labels[app]");
    }
}
