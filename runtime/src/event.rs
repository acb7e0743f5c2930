//! The host's view of one event, whatever source it came from.

use std::sync::Arc;

/// One event as the pipeline handles it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Name of the source it came from (`replay` for `ferry replay`).
    pub source: Arc<str>,
    /// Partition within the source (0 for feeds and replays).
    pub partition: i32,
    /// Offset or sequence number; strictly increasing within a partition.
    pub offset: i64,
    /// Record key, if any.
    pub key: Option<Vec<u8>>,
    /// The event type the source resolved (header, CloudEvents `ce_type`,
    /// JSON pointer or envelope field); `None` if it could not.
    pub event_type: Option<String>,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Headers in delivery order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Production time in milliseconds since the Unix epoch, if known.
    pub timestamp_ms: Option<i64>,
    /// Set by a source that already knows this is not an applicable event
    /// (a malformed feed entry, a gap in a feed's sequence numbers): the
    /// pipeline records it as a dead letter with this failure, in the
    /// transaction that moves the checkpoint past it, without calling a
    /// plugin.
    pub rejected: Option<crate::failure::Failure>,
}

/// Where an event is: `source/partition@offset`, formatted only when shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Source (checkpoint key).
    pub source: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.source, self.partition, self.offset)
    }
}

impl Event {
    /// A bare event: no key, headers, timestamp or rejection.
    pub fn new(
        source: Arc<str>,
        partition: i32,
        offset: i64,
        event_type: Option<String>,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            source,
            partition,
            offset,
            key: None,
            event_type,
            payload,
            headers: Vec::new(),
            timestamp_ms: None,
            rejected: None,
        }
    }

    /// `source/partition@offset`, for log lines and error messages.
    pub fn position(&self) -> String {
        self.at().to_string()
    }

    /// Where the event is, cheaply (formatted only when shown).
    pub fn at(&self) -> Position {
        Position {
            source: Arc::clone(&self.source),
            partition: self.partition,
            offset: self.offset,
        }
    }

    /// The key as text, lossily, for log lines.
    pub fn key_text(&self) -> Option<String> {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
