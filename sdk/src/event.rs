//! Events as a handler sees them: borrowed views into what the host handed
//! over (a 0.2 chunk's buffer, a 0.1 event record, or a test's own values).

use serde::de::DeserializeOwned;

use crate::bindings::v0_2::ferry::plugin::batch::Events;
use crate::{HandleError, Header};

/// Where an event's headers are.
#[derive(Clone, Copy)]
pub(crate) enum Headers<'a> {
    /// In a list the SDK holds.
    Listed(&'a [Header]),
    /// With the host, `n` of them, fetched on demand (contract 0.2).
    Host(&'a Events, u32),
}

/// One event.
#[derive(Clone, Copy)]
pub struct Event<'a> {
    /// Name of the configured source (`replay` for `ferry replay`).
    pub source: &'a str,
    /// Partition within the source (0 for feeds and replays).
    pub partition: i32,
    /// Offset or sequence number, increasing within a partition.
    pub offset: i64,
    /// Record key, if any.
    pub key: Option<&'a [u8]>,
    /// The event type the host routed it by (e.g. `GameCreated`).
    pub event_type: &'a str,
    /// Payload bytes (for JSON events, UTF-8 JSON text).
    pub payload: &'a [u8],
    /// Production time, milliseconds since the Unix epoch, if known.
    pub timestamp_ms: Option<i64>,
    pub(crate) headers: Headers<'a>,
}

impl std::fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("source", &self.source)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("event_type", &self.event_type)
            .field("payload", &String::from_utf8_lossy(self.payload))
            .finish_non_exhaustive()
    }
}

impl<'a> Event<'a> {
    /// An event of type `event_type` with `payload`, at `test/0@0`, with
    /// no key, headers or timestamp (for tests; set the fields you need).
    pub fn new(event_type: &'a str, payload: &'a [u8]) -> Self {
        Self {
            source: "test",
            partition: 0,
            offset: 0,
            key: None,
            event_type,
            payload,
            timestamp_ms: None,
            headers: Headers::Listed(&[]),
        }
    }

    /// The same event with these headers (for tests).
    pub fn with_headers(mut self, headers: &'a [Header]) -> Self {
        self.headers = Headers::Listed(headers);
        self
    }

    /// Its headers, in delivery order (with contract 0.2 they cross the
    /// boundary only when asked for).
    pub fn headers(&self) -> Vec<Header> {
        match self.headers {
            Headers::Listed(h) => h.to_vec(),
            Headers::Host(_, 0) => Vec::new(),
            Headers::Host(events, _) => events.headers(),
        }
    }

    /// How many headers it has.
    pub fn header_count(&self) -> usize {
        match self.headers {
            Headers::Listed(h) => h.len(),
            Headers::Host(_, n) => n as usize,
        }
    }
}

/// Helpers on [`Event`].
pub trait EventExt {
    /// Decodes the JSON payload. A payload that does not fit `T` is a
    /// permanent error whose message names the event type, the offset and
    /// serde's reason (e.g. ``missing field `name` ``).
    fn json<T: DeserializeOwned>(&self) -> Result<T, HandleError>;
    /// The key as UTF-8 text, if there is one and it is text.
    fn key_str(&self) -> Option<&str>;
    /// The first header named `name`, as UTF-8 text.
    fn header(&self, name: &str) -> Option<String>;
}

impl EventExt for Event<'_> {
    fn json<T: DeserializeOwned>(&self) -> Result<T, HandleError> {
        serde_json::from_slice(self.payload).map_err(|e| {
            HandleError::Permanent(format!(
                "invalid {} payload at {}/{}@{}: {e}",
                self.event_type, self.source, self.partition, self.offset
            ))
        })
    }

    fn key_str(&self) -> Option<&str> {
        self.key.and_then(|k| std::str::from_utf8(k).ok())
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|h| h.name == name)
            .and_then(|h| String::from_utf8(h.value).ok())
    }
}
