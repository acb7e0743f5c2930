//! The replay source: events from a JSON Lines file, one envelope a line,
//! through the same pipeline as `ferry run` (source `replay`, partition 0).
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
use std::io::BufRead;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::Event;
use crate::pipeline::{Blocked, Note, Pipeline};
use crate::plugin::{Failure, FailureKind};

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

/// A failing event worth showing, with the line it came from.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Line number in the file.
    pub line: u64,
    /// What happened.
    pub note: Note,
}

/// The result of a replay.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    /// Lines read (including blank ones).
    pub lines: u64,
    /// Events (non-blank lines).
    pub events: u64,
    /// Dead letters and stops, in file order.
    pub problems: Vec<Problem>,
    /// Set when the partition stopped (policy `stop-partition` or
    /// `unknown_event_type = "fail"`): the replay ended there.
    pub stopped: Option<(u64, Blocked)>,
}

/// Feeds `reader` through `pipeline` in batches of `batch_size`. Retries
/// wait out the pipeline's backoff; `progress` is called with the bytes
/// read so far.
pub fn replay(
    pipeline: &mut Pipeline,
    reader: impl BufRead,
    batch_size: usize,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<ReplaySummary> {
    let source: Arc<str> = SOURCE.into();
    let mut summary = ReplaySummary::default();
    let mut batch: Vec<(u64, Event)> = Vec::with_capacity(batch_size);
    let mut reader = reader;
    let mut buf = Vec::new();
    let mut read = 0u64;
    let mut last_offset: Option<i64> = None;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        summary.lines += 1;
        let line = summary.lines;
        let mut bytes = trim_line(&buf);
        if line == 1 {
            bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        summary.events += 1;
        match parse_line(&source, line, bytes) {
            Line::Event(ev) => {
                if let Some(prev) = last_offset.filter(|p| ev.offset <= *p) {
                    flush(pipeline, &mut batch, &mut summary)?;
                    anyhow::bail!(
                        "line {line}: offset {} is not greater than the previous event's offset {prev}; \
                         offsets in a replay file must increase (lines before it were applied)",
                        ev.offset
                    );
                }
                last_offset = Some(ev.offset);
                batch.push((line, ev));
                if batch.len() >= batch_size && !flush(pipeline, &mut batch, &mut summary)? {
                    return Ok(summary);
                }
            }
            Line::Malformed(ev, failure) => {
                if !flush(pipeline, &mut batch, &mut summary)? {
                    return Ok(summary);
                }
                if !pipeline.reject(&ev, &failure)? {
                    progress(read);
                    continue;
                }
                tracing::error!(line, error = %failure.message,
                    "A replay line is not a valid event; it was recorded as a dead letter.");
                summary.problems.push(Problem {
                    line,
                    note: Note {
                        partition: (Arc::clone(&source), 0),
                        offset: ev.offset,
                        event_type: None,
                        outcome: crate::pipeline::Outcome::DeadLettered,
                        failure,
                    },
                });
            }
        }
        progress(read);
    }
    flush(pipeline, &mut batch, &mut summary)?;
    progress(read);
    Ok(summary)
}

fn trim_line(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && matches!(buf[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &buf[..end]
}

/// Applies the buffered events; returns `false` if the partition stopped.
fn flush(
    pipeline: &mut Pipeline,
    batch: &mut Vec<(u64, Event)>,
    summary: &mut ReplaySummary,
) -> anyhow::Result<bool> {
    let mut start = 0;
    while start < batch.len() {
        let events: Vec<Event> = batch[start..].iter().map(|(_, e)| e.clone()).collect();
        let report = pipeline.apply_batch(&events)?;
        let line_of = |offset: i64| {
            batch
                .iter()
                .find(|(_, e)| e.offset == offset)
                .map_or(0, |(l, _)| *l)
        };
        for note in report.notes {
            summary.problems.push(Problem {
                line: line_of(note.offset),
                note,
            });
        }
        let Some((_, blocked)) = report.blocked.into_iter().next() else {
            break;
        };
        let Some(delay) = blocked.retry_after else {
            summary.stopped = Some((line_of(blocked.offset), blocked));
            batch.clear();
            return Ok(false);
        };
        std::thread::sleep(delay);
        start = batch
            .iter()
            .position(|(_, e)| e.offset == blocked.offset)
            .unwrap_or(batch.len());
    }
    batch.clear();
    Ok(true)
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
