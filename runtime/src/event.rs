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
}

impl Event {
    /// `source/partition@offset`, for log lines and error messages.
    pub fn position(&self) -> String {
        format!("{}/{}@{}", self.source, self.partition, self.offset)
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
