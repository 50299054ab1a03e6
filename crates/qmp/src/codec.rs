//! Framing and message classification, kept sync and pure so it is unit-testable.
//!
//! QMP and the guest agent both send one JSON object per line (QEMU ends lines with
//! `\r\n`, qemu-ga with `\n`); JSON never contains a raw newline, so splitting on `\n` is
//! exact. The guest agent adds one twist: a `0xFF` byte (never valid in UTF-8 JSON) tells
//! the reader to throw away whatever partial data it holds; see [`AgentDecoder`].

use std::collections::VecDeque;

use serde_json::{Map, Value};

use crate::client::Greeting;
use crate::events::Event;

/// The byte the guest agent puts before its `guest-sync-delimited` reply, and the byte a
/// client sends to make the agent discard a partially read request.
pub(crate) const SENTINEL: u8 = 0xFF;

/// One message from QEMU or the guest agent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    /// The QMP greeting sent once on connect.
    Greeting(Greeting),
    /// A successful reply.
    Return { id: Option<Value>, value: Value },
    /// An error reply. QEMU omits `id` when it could not parse the request at all.
    Error {
        id: Option<Value>,
        class: String,
        desc: String,
    },
    /// An asynchronous event.
    Event(Event),
}

/// Serialises a request line: `{"execute": .., "arguments": .., "id": ..}\n`.
///
/// `arguments` is left out when absent or `null`, since QEMU rejects `"arguments": null`.
pub(crate) fn encode_command(
    command: &str,
    arguments: Option<&Value>,
    id: Option<&Value>,
) -> Vec<u8> {
    let mut object = Map::new();
    object.insert("execute".to_owned(), Value::from(command));
    if let Some(arguments) = arguments.filter(|a| !a.is_null()) {
        object.insert("arguments".to_owned(), arguments.clone());
    }
    if let Some(id) = id {
        object.insert("id".to_owned(), id.clone());
    }
    let mut line = Value::Object(object).to_string().into_bytes();
    line.push(b'\n');
    line
}

/// Serialises any JSON value as one line (used by the fakes to answer).
#[cfg_attr(
    not(feature = "fake"),
    allow(dead_code, reason = "only the fakes write replies")
)]
pub(crate) fn encode_line(value: &Value) -> Vec<u8> {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// Classifies one line. Blank lines yield `Ok(None)`; anything that is not a QMP message
/// yields a description of the problem.
pub(crate) fn parse_message(line: &[u8]) -> Result<Option<Message>, String> {
    let text = line.trim_ascii();
    if text.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| format!("invalid JSON ({e}) in {:?}", excerpt(text)))?;
    let Value::Object(mut object) = value else {
        return Err(format!("expected a JSON object, got {:?}", excerpt(text)));
    };
    let id = object.remove("id");
    if let Some(value) = object.remove("return") {
        return Ok(Some(Message::Return { id, value }));
    }
    if let Some(error) = object.remove("error") {
        let field = |name: &str| {
            error
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        return Ok(Some(Message::Error {
            id,
            class: field("class"),
            desc: field("desc"),
        }));
    }
    if object.contains_key("event") {
        let event: Event = serde_json::from_value(Value::Object(object))
            .map_err(|e| format!("malformed event ({e}) in {:?}", excerpt(text)))?;
        return Ok(Some(Message::Event(event)));
    }
    if let Some(greeting) = object.remove("QMP") {
        let greeting: Greeting = serde_json::from_value(greeting)
            .map_err(|e| format!("malformed greeting ({e}) in {:?}", excerpt(text)))?;
        return Ok(Some(Message::Greeting(greeting)));
    }
    Err(format!("neither reply nor event: {:?}", excerpt(text)))
}

/// Splits the guest agent's byte stream into lines, honouring the `0xFF` sentinel.
///
/// Every `0xFF` discards the partial line before it. After [`AgentDecoder::expect_sentinel`]
/// everything up to the next `0xFF` is dropped, which is how a client skips stale replies
/// after a timeout (the agent answers `guest-sync-delimited` with `0xFF` + reply).
#[derive(Debug, Default)]
pub(crate) struct AgentDecoder {
    partial: Vec<u8>,
    lines: VecDeque<Vec<u8>>,
    awaiting_sentinel: bool,
}

impl AgentDecoder {
    /// Drops buffered data and ignores input until the next `0xFF`.
    pub(crate) fn expect_sentinel(&mut self) {
        self.partial.clear();
        self.lines.clear();
        self.awaiting_sentinel = true;
    }

    /// Feeds bytes read from the socket.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == SENTINEL {
                self.partial.clear();
                self.awaiting_sentinel = false;
            } else if self.awaiting_sentinel {
                // Stale data from before a resync: dropped unread.
                continue;
            } else if byte == b'\n' {
                let line = std::mem::take(&mut self.partial);
                if !line.trim_ascii().is_empty() {
                    self.lines.push_back(line);
                }
            } else {
                self.partial.push(byte);
            }
        }
    }

    /// The next complete line, if any.
    pub(crate) fn next_line(&mut self) -> Option<Vec<u8>> {
        self.lines.pop_front()
    }
}

/// The first 120 characters of a line, for error messages.
fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(120).collect()
}

/// Standard base64 (RFC 4648, padded), which QMP and the guest agent use for binary data
/// (`ringbuf-read`, `guest-exec` output, passwords). Small enough not to need a crate.
pub(crate) mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// Encodes bytes with padding.
    pub(crate) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Decodes padded or unpadded base64, ignoring ASCII whitespace.
    pub(crate) fn decode(text: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        let mut acc: u32 = 0;
        let mut bits = 0u32;
        let mut padding = false;
        for (position, c) in text.bytes().enumerate() {
            if c.is_ascii_whitespace() {
                continue;
            }
            if c == b'=' {
                padding = true;
                continue;
            }
            if padding {
                return Err(format!("data after padding at byte {position}"));
            }
            let value = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => {
                    return Err(format!(
                        "invalid character {:?} at byte {position}",
                        char::from(c)
                    ))
                }
            };
            acc = (acc << 6) | u32::from(value);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push(((acc >> bits) & 0xFF) as u8);
            }
        }
        if bits >= 6 {
            return Err("truncated input".to_owned());
        }
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trips_every_tail_length() {
            for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
                let encoded = encode(text.as_bytes());
                assert_eq!(decode(&encoded).expect("decodes"), text.as_bytes());
            }
            assert_eq!(encode(b"foobar"), "Zm9vYmFy");
            assert_eq!(encode(b"fo"), "Zm8=");
        }

        #[test]
        fn decodes_qemu_output_and_binary() {
            assert_eq!(decode("aGkK").expect("decodes"), b"hi\n");
            let binary: Vec<u8> = (0..=255).collect();
            assert_eq!(decode(&encode(&binary)).expect("decodes"), binary);
        }

        #[test]
        fn rejects_invalid_characters_and_truncation() {
            assert!(decode("a*b=").is_err());
            assert!(decode("Zm9vY").is_err());
            assert!(decode("Zm8=Zm8=").is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn command_without_arguments_has_no_arguments_key() {
        let line = encode_command("query-status", None, Some(&json!(7)));
        assert_eq!(line, b"{\"execute\":\"query-status\",\"id\":7}\n");
        let null_args = encode_command("cont", Some(&Value::Null), None);
        assert_eq!(null_args, b"{\"execute\":\"cont\"}\n");
    }

    #[test]
    fn command_with_arguments_is_one_line() {
        let line = encode_command("device_del", Some(&json!({"id": "a\nb"})), Some(&json!(1)));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let parsed: Value = serde_json::from_slice(&line).expect("valid json");
        assert_eq!(parsed["arguments"]["id"], "a\nb");
    }

    #[test]
    fn qemu_greeting_is_recognised() {
        let line = br#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}}"#;
        let Some(Message::Greeting(greeting)) = parse_message(line).expect("parses") else {
            panic!("not a greeting");
        };
        assert_eq!(greeting.version.qemu.major, 7);
        assert_eq!(greeting.capabilities, vec!["oob".to_owned()]);
    }

    #[test]
    fn replies_keep_their_id_and_errors_their_class() {
        let ok = parse_message(b"{\"return\": {}, \"id\": 3}\r\n").expect("parses");
        assert_eq!(
            ok,
            Some(Message::Return {
                id: Some(json!(3)),
                value: json!({})
            })
        );
        let err = parse_message(
            br#"{"id": 4, "error": {"class": "DeviceNotFound", "desc": "Device 'x' not found"}}"#,
        )
        .expect("parses");
        assert_eq!(
            err,
            Some(Message::Error {
                id: Some(json!(4)),
                class: "DeviceNotFound".into(),
                desc: "Device 'x' not found".into()
            })
        );
    }

    #[test]
    fn events_parse_with_timestamp_and_optional_data() {
        let line =
            br#"{"timestamp": {"seconds": 1795777352, "microseconds": 863452}, "event": "RESUME"}"#;
        let Some(Message::Event(event)) = parse_message(line).expect("parses") else {
            panic!("not an event");
        };
        assert_eq!(event.name, "RESUME");
        assert_eq!(event.timestamp.seconds, 1795777352);
        assert_eq!(event.data, Value::Null);
    }

    #[test]
    fn garbage_and_blank_lines_are_told_apart() {
        assert_eq!(parse_message(b"\r\n"), Ok(None));
        assert!(parse_message(b"not json").is_err());
        assert!(parse_message(b"[1,2]").is_err());
        assert!(parse_message(b"{\"what\": 1}").is_err());
    }

    #[test]
    fn agent_decoder_splits_lines_across_reads() {
        let mut decoder = AgentDecoder::default();
        decoder.push(b"{\"return\": {}}\n{\"ret");
        assert_eq!(decoder.next_line(), Some(b"{\"return\": {}}".to_vec()));
        assert_eq!(decoder.next_line(), None);
        decoder.push(b"urn\": 1}\n");
        assert_eq!(decoder.next_line(), Some(b"{\"return\": 1}".to_vec()));
    }

    #[test]
    fn agent_sentinel_discards_stale_partial_data() {
        let mut decoder = AgentDecoder::default();
        decoder.push(b"{\"return\": {\"half");
        decoder.push(&[SENTINEL]);
        decoder.push(b"{\"return\": 42}\n");
        assert_eq!(decoder.next_line(), Some(b"{\"return\": 42}".to_vec()));
    }

    #[test]
    fn awaiting_the_sentinel_skips_whole_stale_replies() {
        let mut decoder = AgentDecoder::default();
        decoder.expect_sentinel();
        decoder.push(b"{\"return\": \"stale\"}\n{\"error\": {\"class\": \"GenericError\"}}\n");
        assert_eq!(decoder.next_line(), None);
        decoder.push(b"\xff{\"return\": 9}\n");
        assert_eq!(decoder.next_line(), Some(b"{\"return\": 9}".to_vec()));
    }
}
