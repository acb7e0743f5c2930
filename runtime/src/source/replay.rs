//! The replay source's format: events from a JSON Lines file, one envelope
//! a line, for the same pipeline as `ferry run` (source `replay`,
//! partition 0; the loop that feeds them is `run::replay`).
//!
//! Envelope: `type` (string, required), `payload` (any JSON value, required;
//! handed to the plugin as its exact UTF-8 JSON text), `key` (string),
//! `headers` (object of strings), `offset` (integer ≥ 0; default: the line
//! number, counting from 1), `timestamp_ms` (integer, milliseconds since
//! the Unix epoch: the event's time, which a plugin's clock reads). Unknown
//! fields are ignored. Blank lines are
//! not events. A line that is not valid UTF-8 or not a valid envelope is
//! recorded as a dead letter (class `malformed-envelope`) with its raw bytes
//! and its line number in the message, and the replay goes on.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::Event;
use crate::failure::{Failure, FailureKind};

/// Source name of replayed events.
pub const SOURCE: &str = "replay";

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    timestamp_ms: Option<i64>,
}

/// One line of the file: an event, or why it is not one.
#[derive(Debug)]
pub enum Line {
    /// A valid envelope.
    Event(Event),
    /// Not an event; the event carries the raw bytes at the line's offset.
    Malformed(Event, Failure),
}

/// Parses line `number` (1-based) of a replay file.
pub fn parse_line(source: &Arc<str>, number: u64, bytes: &[u8]) -> Line {
    let line_offset = i64::try_from(number).unwrap_or(i64::MAX);
    let raw = |event_type: Option<String>| Event {
        source: Arc::clone(source),
        partition: 0,
        offset: line_offset,
        key: None,
        event_type,
        payload: bytes.to_vec(),
        headers: Vec::new(),
        timestamp_ms: None,
        rejected: None,
    };
    let malformed = |msg: String| {
        Line::Malformed(
            raw(None),
            Failure::new(
                FailureKind::MalformedEnvelope,
                format!("line {number}: {msg}"),
            ),
        )
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return malformed(format!(
                "not valid UTF-8 (invalid byte at column {})",
                e.valid_up_to() + 1
            ));
        }
    };
    let env: Envelope<'_> = match serde_json::from_str(text) {
        Ok(env) => env,
        Err(e) => return malformed(format!("not a valid envelope: {e}")),
    };
    if env.event_type.trim().is_empty() {
        return malformed("`type` is empty".into());
    }
    let offset = match env.offset {
        Some(o) if o < 0 => return malformed(format!("`offset` must not be negative, got {o}")),
        Some(o) => o,
        None => line_offset,
    };
    Line::Event(Event {
        source: Arc::clone(source),
        partition: 0,
        offset,
        key: env.key.map(String::into_bytes),
        event_type: Some(env.event_type),
        payload: env.payload.get().as_bytes().to_vec(),
        headers: env
            .headers
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect(),
        timestamp_ms: env.timestamp_ms,
        rejected: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Line {
        parse_line(&Arc::from("replay"), 7, text)
    }

    #[test]
    fn a_full_envelope() {
        let Line::Event(ev) = parse(
            br#"{"type":"GameCreated","key":"k1","payload":{"price": 59.990},"headers":{"h":"v"},"offset":42,"extra":1}"#,
        ) else {
            panic!("not an event")
        };
        assert_eq!(ev.offset, 42);
        assert_eq!(ev.event_type.as_deref(), Some("GameCreated"));
        assert_eq!(ev.payload, br#"{"price": 59.990}"#);
        assert_eq!(ev.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(ev.headers, vec![("h".to_string(), b"v".to_vec())]);
    }

    #[test]
    fn the_offset_defaults_to_the_line_number() {
        let Line::Event(ev) = parse(br#"{"type":"T","payload":null}"#) else {
            panic!("not an event")
        };
        assert_eq!(ev.offset, 7);
        assert_eq!(ev.payload, b"null");
    }

    #[test]
    fn malformed_lines_name_the_line_and_the_problem() {
        for (text, expected) in [
            (&b"{not json"[..], "line 7: not a valid envelope"),
            (br#"{"payload":{}}"#, "missing field `type`"),
            (br#"{"type":"T"}"#, "missing field `payload`"),
            (
                br#"{"type":"T","payload":1,"offset":-1}"#,
                "must not be negative",
            ),
            (
                b"{\"type\":\"\xff\"}",
                "line 7: not valid UTF-8 (invalid byte at column 10)",
            ),
        ] {
            match parse(text) {
                Line::Malformed(ev, f) => {
                    assert!(f.message.contains(expected), "{}", f.message);
                    assert_eq!(f.kind, FailureKind::MalformedEnvelope);
                    assert_eq!(ev.payload, text);
                }
                Line::Event(_) => panic!("accepted {text:?}"),
            }
        }
    }
}
