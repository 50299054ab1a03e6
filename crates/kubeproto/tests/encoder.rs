//! A small protobuf encoder, only for building test bodies.

/// An encoded message under construction; every method appends one field.
#[derive(Debug, Clone, Default)]
pub struct Msg(Vec<u8>);

impl Msg {
    pub fn new() -> Self {
        Msg::default()
    }

    fn key(&mut self, tag: u32, wire_type: u8) {
        put_varint(&mut self.0, (u64::from(tag) << 3) | u64::from(wire_type));
    }

    /// A raw varint (wire type 0).
    pub fn varint(mut self, tag: u32, value: u64) -> Self {
        self.key(tag, 0);
        put_varint(&mut self.0, value);
        self
    }

    /// A signed integer, sign-extended to 64 bits as protobuf encodes int32 and int64.
    pub fn int(self, tag: u32, value: i64) -> Self {
        self.varint(tag, value as u64)
    }

    pub fn bool(self, tag: u32, value: bool) -> Self {
        self.varint(tag, u64::from(value))
    }

    pub fn fixed64(mut self, tag: u32, value: u64) -> Self {
        self.key(tag, 1);
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn fixed32(mut self, tag: u32, value: u32) -> Self {
        self.key(tag, 5);
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A length-delimited field (wire type 2).
    pub fn bytes(mut self, tag: u32, value: &[u8]) -> Self {
        self.key(tag, 2);
        put_varint(&mut self.0, value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }

    pub fn string(self, tag: u32, value: &str) -> Self {
        self.bytes(tag, value.as_bytes())
    }

    pub fn msg(self, tag: u32, value: Msg) -> Self {
        self.bytes(tag, &value.0)
    }

    /// A `map<string, string>` entry.
    pub fn entry(self, tag: u32, key: &str, value: &str) -> Self {
        self.msg(tag, Msg::new().string(1, key).string(2, value))
    }

    /// A `map<string, Message>` entry.
    pub fn entry_msg(self, tag: u32, key: &str, value: Msg) -> Self {
        self.msg(tag, Msg::new().string(1, key).msg(2, value))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The Kubernetes frame: magic, then `runtime.Unknown{typeMeta, raw, contentEncoding, contentType}`
/// as the Go client writes it (empty encoding and content type included).
pub fn envelope(api_version: &str, kind: &str, raw: &Msg) -> Vec<u8> {
    envelope_with_encoding(api_version, kind, raw, "")
}

pub fn envelope_with_encoding(api_version: &str, kind: &str, raw: &Msg, encoding: &str) -> Vec<u8> {
    let unknown = Msg::new()
        .msg(1, Msg::new().string(1, api_version).string(2, kind))
        .bytes(2, raw.as_bytes())
        .string(3, encoding)
        .string(4, "");
    let mut body = b"k8s\0".to_vec();
    body.extend_from_slice(unknown.as_bytes());
    body
}

/// `ObjectMeta` as Go marshals it for a fresh object: every non-pointer field written, the
/// empty ones included, and a zero `creationTimestamp` as an empty message.
pub fn fresh_meta(name: &str, namespace: &str) -> Msg {
    Msg::new()
        .string(1, name)
        .string(2, "")
        .string(3, namespace)
        .string(4, "")
        .string(5, "")
        .string(6, "")
        .int(7, 0)
        .msg(8, Msg::new())
}

/// A `metav1.Time`.
pub fn time(seconds: i64) -> Msg {
    Msg::new().int(1, seconds).int(2, 0)
}

/// An `IntOrString` holding an integer.
pub fn int_val(value: i32) -> Msg {
    Msg::new().int(1, 0).int(2, i64::from(value)).string(3, "")
}

/// An `IntOrString` holding a string.
pub fn str_val(value: &str) -> Msg {
    Msg::new().int(1, 1).int(2, 0).string(3, value)
}

/// A `resource.Quantity`.
pub fn quantity(value: &str) -> Msg {
    Msg::new().string(1, value)
}
