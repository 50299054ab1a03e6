//! The one error type of this crate.

/// Why a protobuf body could not be turned into Kubernetes JSON.
///
/// `path` fields name the JSON field being decoded when the problem was found (for example
/// `spec.ports[0].targetPort`), so the API server can put them in a `400 Bad Request` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The body does not start with the 4-byte Kubernetes protobuf magic `k8s\0`.
    #[error("body is not a kubernetes protobuf message: missing the k8s\\0 prefix")]
    MissingMagic,

    /// The `runtime.Unknown` envelope declares a content encoding (such as gzip); kubectl never
    /// sets one and we do not implement any.
    #[error("unsupported protobuf content encoding {encoding:?}")]
    UnsupportedEncoding {
        /// The declared `contentEncoding`.
        encoding: String,
    },

    /// The envelope names a group/version/kind that has no decoding table here. The API server
    /// answers this with `415 Unsupported Media Type` so the client can retry as JSON.
    #[error("protobuf is not supported for kind {kind:?} in {api_version:?}; send JSON instead")]
    UnsupportedKind {
        /// The envelope's `typeMeta.apiVersion`.
        api_version: String,
        /// The envelope's `typeMeta.kind`.
        kind: String,
    },

    /// The input ends in the middle of a tag, varint, fixed-width value or length-delimited
    /// field.
    #[error("protobuf body is truncated at {path}")]
    Truncated {
        /// Where decoding stopped.
        path: String,
    },

    /// A varint is longer than ten bytes, or a field number is zero or too large.
    #[error("malformed protobuf varint or tag at {path}")]
    MalformedVarint {
        /// Where decoding stopped.
        path: String,
    },

    /// A field uses wire type 3, 4 (proto2 groups) or 6, 7 (undefined); Kubernetes never does.
    #[error("unsupported protobuf wire type {wire_type} at {path}")]
    UnsupportedWireType {
        /// Where decoding stopped.
        path: String,
        /// The wire type found in the tag.
        wire_type: u8,
    },

    /// A known field arrived with a wire type that does not fit its declared type (for example a
    /// varint where a string was expected).
    #[error("protobuf field {path} has wire type {found}, expected {expected}")]
    WireTypeMismatch {
        /// The field.
        path: String,
        /// The wire type the table expects.
        expected: u8,
        /// The wire type found in the tag.
        found: u8,
    },

    /// A `Time` or `MicroTime` lies outside the years 0 to 9999, which RFC 3339 (and Kubernetes
    /// JSON) cannot represent.
    #[error("timestamp at {path} is out of range: {seconds} seconds since the epoch")]
    TimeOutOfRange {
        /// The field.
        path: String,
        /// The decoded `seconds`.
        seconds: i64,
    },

    /// An `IntOrString` has a `type` other than 0 (int) or 1 (string).
    #[error("intOrString at {path} has unknown type {type_code}")]
    InvalidIntOrString {
        /// The field.
        path: String,
        /// The decoded `type`.
        type_code: i64,
    },

    /// A `FieldsV1` (in `metadata.managedFields`) does not hold valid JSON.
    #[error("fieldsV1 at {path} is not valid JSON")]
    InvalidFieldsV1 {
        /// The field.
        path: String,
    },
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
