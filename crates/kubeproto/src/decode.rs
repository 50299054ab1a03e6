//! The table-driven decoder: a [`Message`] table says what each field number means, and
//! [`decode_message`] turns encoded bytes into the JSON object Kubernetes would write.
//!
//! # Guarantees
//!
//! - Output follows Go's `encoding/json` rules for the Kubernetes types: `omitempty` scalars
//!   that are zero are left out ([`Field::omit_empty`]); pointers and fields without
//!   `omitempty` are kept whenever the wire carries them, even when zero ([`Field::keep`]).
//!   Kubernetes' gogo marshalling always writes non-pointer fields, so this reproduces
//!   `"creationTimestamp": null`, `"spec": {}` and `"automountServiceAccountToken": false`
//!   exactly as kubectl's JSON would.
//! - Unknown field numbers are skipped, so newer clients with extra fields still decode.
//! - A non-repeated field that appears twice follows protobuf: scalars take the last value,
//!   messages merge.
//!
//! # Caveats
//!
//! - Strings that are not UTF-8 are decoded lossily (U+FFFD), as Go's JSON encoder does.
//! - A field that is absent from the wire is absent from the JSON. Go would write `null` for an
//!   empty list without `omitempty` (e.g. `TokenRequest.spec.audiences`) and `""`/`0` for a
//!   non-pointer field a non-Go encoder left out; Go encoders always write the latter, and the
//!   former means the same to every reader.

use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::format;
use crate::wire::{Path, Reader, WireValue, LEN, VARINT};

/// One protobuf message type: its fields, in Go struct order.
#[derive(Debug)]
pub(crate) struct Message {
    /// The fields that are decoded; any other field number is skipped.
    pub(crate) fields: &'static [Field],
}

/// One row of a message table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// The protobuf field number.
    pub(crate) tag: u32,
    /// The Kubernetes JSON name (`clusterIP`, `nonResourceURLs`, ...).
    pub(crate) json: &'static str,
    /// How the value is encoded and rendered.
    pub(crate) kind: FieldKind,
    /// Leave a zero scalar out of the JSON (Go `omitempty` on a non-pointer field).
    pub(crate) omit_empty: bool,
}

impl Field {
    /// A field that Go declares as a non-pointer value with `omitempty`: present in JSON only
    /// when it is not `""`, `0` or `false`.
    pub(crate) const fn omit_empty(tag: u32, json: &'static str, kind: FieldKind) -> Field {
        Field {
            tag,
            json,
            kind,
            omit_empty: true,
        }
    }

    /// A field that Go declares as a pointer, or without `omitempty`: present in JSON whenever
    /// it is on the wire, zero or not.
    pub(crate) const fn keep(tag: u32, json: &'static str, kind: FieldKind) -> Field {
        Field {
            tag,
            json,
            kind,
            omit_empty: false,
        }
    }
}

/// How often a field occurs and, with [`Kind`], what each occurrence holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldKind {
    /// A single value.
    One(Kind),
    /// A repeated field: a JSON array, left out when empty.
    Repeated(Kind),
    /// A `map<string, _>`, encoded as repeated entry messages with key = 1 and value = 2: a
    /// JSON object, left out when empty.
    Map(Kind),
}

/// What one value on the wire holds, and the JSON it becomes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// `string` → JSON string.
    String,
    /// `bytes` → standard base64 JSON string.
    Bytes,
    /// `int32` varint → JSON number.
    Int32,
    /// `int64` varint → JSON number.
    Int64,
    /// `bool` varint → JSON boolean.
    Bool,
    /// A nested message → JSON object.
    Message(&'static Message),
    /// `metav1.Time` {seconds = 1, nanos = 2} → `"2024-01-02T03:04:05Z"`, or `null` when the
    /// message is empty (Go's zero time).
    Time,
    /// `metav1.MicroTime` → `"2024-01-02T03:04:05.000000Z"`, or `null` when empty.
    #[allow(
        dead_code,
        reason = "no supported kind uses MicroTime yet; Events and Leases would"
    )]
    MicroTime,
    /// `intstr.IntOrString` {type = 1, intVal = 2, strVal = 3} → JSON number or string.
    IntOrString,
    /// `resource.Quantity` {string = 1} → JSON string.
    Quantity,
    /// `metav1.Duration` {duration = 1, nanoseconds} → Go duration string (`"1h0m0s"`).
    #[allow(
        dead_code,
        reason = "no supported kind uses Duration yet; admission and flow-control kinds would"
    )]
    Duration,
    /// `metav1.FieldsV1` {Raw = 1} → the JSON object its bytes hold.
    FieldsV1,
    /// A message wrapping `repeated string items = 1` (`authentication/v1.ExtraValue`) → JSON
    /// array of strings.
    StringList,
}

/// Decodes one encoded message with `table` into a JSON object.
///
/// # Errors
///
/// Any wire-format or value error, naming the field `path` where it happened.
pub(crate) fn decode_message(
    bytes: &[u8],
    table: &Message,
    path: &Path<'_>,
) -> Result<Map<String, Value>> {
    let mut object = Map::new();
    decode_into(&mut object, bytes, table, path)?;
    Ok(object)
}

fn decode_into(
    object: &mut Map<String, Value>,
    bytes: &[u8],
    table: &Message,
    path: &Path<'_>,
) -> Result<()> {
    let mut reader = Reader::new(bytes);
    while let Some((tag, wire)) = reader.next_field(path)? {
        let Some(field) = table.fields.iter().find(|field| field.tag == tag) else {
            continue;
        };
        let path = Path::Field(path, field.json);
        match field.kind {
            FieldKind::One(Kind::Message(nested)) => {
                let bytes = expect_len(wire, &path)?;
                match object.get_mut(field.json) {
                    Some(Value::Object(existing)) => decode_into(existing, bytes, nested, &path)?,
                    _ => {
                        let decoded = decode_message(bytes, nested, &path)?;
                        object.insert(field.json.to_string(), Value::Object(decoded));
                    }
                }
            }
            FieldKind::One(kind) => {
                let value = decode_value(kind, wire, &path)?;
                if field.omit_empty && is_zero_scalar(&value) {
                    object.shift_remove(field.json);
                } else {
                    object.insert(field.json.to_string(), value);
                }
            }
            FieldKind::Repeated(kind) => {
                let index = match object.get(field.json) {
                    Some(Value::Array(items)) => items.len(),
                    _ => 0,
                };
                let value = decode_value(kind, wire, &Path::Index(&path, index))?;
                match object.get_mut(field.json) {
                    Some(Value::Array(items)) => items.push(value),
                    _ => {
                        object.insert(field.json.to_string(), Value::Array(vec![value]));
                    }
                }
            }
            FieldKind::Map(kind) => {
                let (key, value) = decode_map_entry(expect_len(wire, &path)?, kind, &path)?;
                match object.get_mut(field.json) {
                    Some(Value::Object(entries)) => {
                        entries.insert(key, value);
                    }
                    _ => {
                        let entries = Map::from_iter([(key, value)]);
                        object.insert(field.json.to_string(), Value::Object(entries));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Decodes a map entry message: key = 1 (string), value = 2. Absent parts take Go's zero value.
fn decode_map_entry(bytes: &[u8], kind: Kind, path: &Path<'_>) -> Result<(String, Value)> {
    let mut reader = Reader::new(bytes);
    let mut key = String::new();
    let mut value = None;
    while let Some((tag, wire)) = reader.next_field(path)? {
        match tag {
            1 => key = string(expect_len(wire, path)?),
            2 => {
                let at = Path::Key(path, &key);
                value = Some(decode_value(kind, wire, &at)?);
            }
            _ => {}
        }
    }
    let value = match value {
        Some(value) => value,
        None => zero_value(kind),
    };
    Ok((key, value))
}

/// Decodes one value of `kind`.
fn decode_value(kind: Kind, wire: WireValue<'_>, path: &Path<'_>) -> Result<Value> {
    Ok(match kind {
        Kind::String => Value::String(string(expect_len(wire, path)?)),
        Kind::Bytes => Value::String(format::base64(expect_len(wire, path)?)),
        // Truncating casts are protobuf's own rule: int32 travels sign-extended to 64 bits.
        Kind::Int32 => Value::from(expect_varint(wire, path)? as i32),
        Kind::Int64 => Value::from(expect_varint(wire, path)? as i64),
        Kind::Bool => Value::Bool(expect_varint(wire, path)? != 0),
        Kind::Message(table) => {
            Value::Object(decode_message(expect_len(wire, path)?, table, path)?)
        }
        Kind::Time | Kind::MicroTime => time(
            expect_len(wire, path)?,
            matches!(kind, Kind::MicroTime),
            path,
        )?,
        Kind::IntOrString => int_or_string(expect_len(wire, path)?, path)?,
        Kind::Quantity => {
            let fields = decode_message(expect_len(wire, path)?, &QUANTITY, path)?;
            fields
                .get("string")
                .cloned()
                .unwrap_or_else(|| zero_value(Kind::Quantity))
        }
        Kind::Duration => {
            let fields = decode_message(expect_len(wire, path)?, &DURATION, path)?;
            let nanos = fields.get("duration").and_then(Value::as_i64).unwrap_or(0);
            Value::String(format::go_duration(nanos))
        }
        Kind::FieldsV1 => fields_v1(expect_len(wire, path)?, path)?,
        Kind::StringList => {
            let mut fields = decode_message(expect_len(wire, path)?, &STRING_LIST, path)?;
            fields
                .remove("items")
                .unwrap_or_else(|| Value::Array(Vec::new()))
        }
    })
}

/// Wire layout of `resource.Quantity`.
static QUANTITY: Message = Message {
    fields: &[Field::keep(1, "string", FieldKind::One(Kind::String))],
};
/// Wire layout of `metav1.Duration`.
static DURATION: Message = Message {
    fields: &[Field::keep(1, "duration", FieldKind::One(Kind::Int64))],
};
/// Wire layout of `ExtraValue`-style wrappers.
static STRING_LIST: Message = Message {
    fields: &[Field::keep(1, "items", FieldKind::Repeated(Kind::String))],
};
/// Wire layout shared by `metav1.Time` and `metav1.MicroTime`.
static TIMESTAMP: Message = Message {
    fields: &[
        Field::keep(1, "seconds", FieldKind::One(Kind::Int64)),
        Field::keep(2, "nanos", FieldKind::One(Kind::Int32)),
    ],
};
/// Wire layout of `intstr.IntOrString`.
static INT_OR_STRING: Message = Message {
    fields: &[
        Field::keep(1, "type", FieldKind::One(Kind::Int64)),
        Field::keep(2, "intVal", FieldKind::One(Kind::Int32)),
        Field::keep(3, "strVal", FieldKind::One(Kind::String)),
    ],
};

/// `metav1.Time` / `MicroTime`: an empty message is Go's zero time, which JSON writes as
/// `null`. `Time` drops the nanoseconds (Kubernetes does so when it unmarshals); `MicroTime`
/// keeps microseconds.
fn time(bytes: &[u8], micro: bool, path: &Path<'_>) -> Result<Value> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let fields = decode_message(bytes, &TIMESTAMP, path)?;
    let seconds = fields.get("seconds").and_then(Value::as_i64).unwrap_or(0);
    let nanos = fields.get("nanos").and_then(Value::as_i64).unwrap_or(0);
    // Go's time.Unix normalises nanos outside [0, 1e9) into the seconds.
    let whole = seconds.checked_add(nanos.div_euclid(1_000_000_000));
    let micros = micro.then_some((nanos.rem_euclid(1_000_000_000) / 1_000) as u32);
    whole
        .and_then(|whole| format::rfc3339(whole, micros))
        .map(Value::String)
        .ok_or_else(|| Error::TimeOutOfRange {
            path: path.to_string(),
            seconds,
        })
}

fn int_or_string(bytes: &[u8], path: &Path<'_>) -> Result<Value> {
    let mut fields = decode_message(bytes, &INT_OR_STRING, path)?;
    match fields.get("type").and_then(Value::as_i64).unwrap_or(0) {
        0 => Ok(fields.remove("intVal").unwrap_or_else(|| Value::from(0))),
        1 => Ok(fields
            .remove("strVal")
            .unwrap_or_else(|| Value::String(String::new()))),
        type_code => Err(Error::InvalidIntOrString {
            path: path.to_string(),
            type_code,
        }),
    }
}

fn fields_v1(bytes: &[u8], path: &Path<'_>) -> Result<Value> {
    let mut raw = None;
    let mut reader = Reader::new(bytes);
    while let Some((tag, wire)) = reader.next_field(path)? {
        if tag == 1 {
            raw = Some(expect_len(wire, path)?);
        }
    }
    match raw {
        Some(raw) if !raw.is_empty() => {
            serde_json::from_slice(raw).map_err(|_| Error::InvalidFieldsV1 {
                path: path.to_string(),
            })
        }
        _ => Ok(Value::Null),
    }
}

/// Go's zero value of `kind` as JSON, for map entries that omit their value.
fn zero_value(kind: Kind) -> Value {
    match kind {
        Kind::String | Kind::Bytes => Value::String(String::new()),
        Kind::Int32 | Kind::Int64 | Kind::IntOrString => Value::Number(Number::from(0)),
        Kind::Bool => Value::Bool(false),
        Kind::Message(_) => Value::Object(Map::new()),
        Kind::Time | Kind::MicroTime | Kind::FieldsV1 => Value::Null,
        Kind::Quantity => Value::String("0".to_string()),
        Kind::Duration => Value::String("0s".to_string()),
        Kind::StringList => Value::Array(Vec::new()),
    }
}

/// Whether Go's `omitempty` would leave this scalar out.
fn is_zero_scalar(value: &Value) -> bool {
    match value {
        Value::String(text) => text.is_empty(),
        Value::Number(number) => number.as_i64() == Some(0),
        Value::Bool(flag) => !flag,
        _ => false,
    }
}

fn string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn expect_len<'a>(wire: WireValue<'a>, path: &Path<'_>) -> Result<&'a [u8]> {
    match wire {
        WireValue::Len(bytes) => Ok(bytes),
        other => Err(mismatch(LEN, other, path)),
    }
}

fn expect_varint(wire: WireValue<'_>, path: &Path<'_>) -> Result<u64> {
    match wire {
        WireValue::Varint(value) => Ok(value),
        other => Err(mismatch(VARINT, other, path)),
    }
}

fn mismatch(expected: u8, found: WireValue<'_>, path: &Path<'_>) -> Error {
    Error::WireTypeMismatch {
        path: path.to_string(),
        expected,
        found: found.wire_type(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table exercising the kinds no supported Kubernetes type uses yet.
    static SAMPLE: Message = Message {
        fields: &[
            Field::keep(1, "eventTime", FieldKind::One(Kind::MicroTime)),
            Field::keep(2, "timeout", FieldKind::One(Kind::Duration)),
            Field::omit_empty(3, "count", FieldKind::One(Kind::Int32)),
        ],
    };

    fn decode(bytes: &[u8]) -> Result<Value> {
        decode_message(bytes, &SAMPLE, &Path::Root("sample")).map(Value::Object)
    }

    #[test]
    fn micro_time_keeps_microseconds() {
        // eventTime {seconds: 1704164645, nanos: 123456789}
        let bytes = [
            0x0a, 0x0b, 0x08, 0xa5, 0xfa, 0xcd, 0xac, 0x06, 0x10, 0x95, 0x9a, 0xef, 0x3a,
        ];
        assert_eq!(
            decode(&bytes),
            Ok(serde_json::json!({"eventTime": "2024-01-02T03:04:05.123456Z"}))
        );
    }

    #[test]
    fn an_empty_micro_time_is_null() {
        assert_eq!(
            decode(&[0x0a, 0x00]),
            Ok(serde_json::json!({"eventTime": null}))
        );
    }

    #[test]
    fn durations_become_go_duration_strings() {
        // timeout {duration: 3600 s in nanoseconds}
        let bytes = [0x12, 0x07, 0x08, 0x80, 0xc0, 0xe2, 0x85, 0xe3, 0x68];
        assert_eq!(decode(&bytes), Ok(serde_json::json!({"timeout": "1h0m0s"})));
    }

    #[test]
    fn negative_int32_arrives_sign_extended() {
        let mut bytes = vec![0x18];
        bytes.extend([0xff; 9]);
        bytes.push(0x01);
        assert_eq!(decode(&bytes), Ok(serde_json::json!({"count": -1})));
    }

    #[test]
    fn a_zero_omit_empty_scalar_is_left_out() {
        assert_eq!(decode(&[0x18, 0x00]), Ok(serde_json::json!({})));
    }
}
