//! `kind = "http-feed"`: a polled HTTP event feed.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::sources::EventTypeFrom;

/// What happens when the feed's sequence numbers skip some.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GapPolicy {
    /// Wait `gap_timeout_ms` for the missing numbers to appear (a writer
    /// may still be committing them), then record the gap as a dead letter
    /// (class `gap`) in the transaction that moves past it, and go on.
    #[default]
    DeadLetter,
    /// Wait `gap_timeout_ms`, then stop the source at the gap until restart.
    Stop,
}

/// `kind = "http-feed"`: `GET {url}?start={seq}&end={seq}` returning a JSON
/// array of `{sequenceNumber, occuredAt | occurredAt, name, content}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpFeedSourceConfig {
    /// Unique name; the checkpoint is keyed by it (partition 0).
    pub name: String,
    /// The feed's address, without the `start`/`end` query (other query
    /// parameters are kept). `http` or `https`.
    pub url: String,
    /// Events asked for per request (`end = start + page_size - 1`). A
    /// full page is followed at once by the next (catch-up).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Wait after a page that was not full, in milliseconds.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Longest time one request may take (connect, send, receive), in
    /// milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Redirects followed per request (0: none).
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// Extra request headers, e.g. `{ Authorization = "Bearer …" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The first `start` when the feed has no checkpoint yet. The first
    /// event returned starts the stream (numbers before it are not a gap).
    #[serde(default)]
    pub start_sequence: i64,
    /// How long missing sequence numbers are waited for, in milliseconds.
    #[serde(default = "default_gap_timeout_ms")]
    pub gap_timeout_ms: u64,
    /// `dead-letter` (default) or `stop`: what a gap that did not fill in
    /// time becomes.
    #[serde(default)]
    pub on_gap: GapPolicy,
    /// Where the event type comes from: the entry's `name` (default), or a
    /// JSON pointer into `content`.
    #[serde(default = "name_field")]
    pub event_type: EventTypeFrom,
}

fn default_page_size() -> u32 {
    500
}
fn default_poll_interval_ms() -> u64 {
    1_000
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_redirects() -> u32 {
    5
}
fn default_gap_timeout_ms() -> u64 {
    5_000
}
fn name_field() -> EventTypeFrom {
    EventTypeFrom {
        header: None,
        pointer: None,
    }
}

pub(super) fn validate(key: &str, f: &HttpFeedSourceConfig, p: &mut Vec<String>) {
    let lower = f.url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        p.push(format!(
            "{key}.url must be an http:// or https:// address, not {:?}",
            f.url
        ));
    } else if f.url.contains('#') {
        p.push(format!("{key}.url must not contain a fragment (`#…`)"));
    }
    if !(1..=100_000).contains(&f.page_size) {
        p.push(format!(
            "{key}.page_size must be between 1 and 100000, not {}",
            f.page_size
        ));
    }
    if !(1..=3_600_000).contains(&f.poll_interval_ms) {
        p.push(format!(
            "{key}.poll_interval_ms must be between 1 and 3600000, not {}",
            f.poll_interval_ms
        ));
    }
    if !(1..=600_000).contains(&f.timeout_ms) {
        p.push(format!(
            "{key}.timeout_ms must be between 1 and 600000, not {}",
            f.timeout_ms
        ));
    }
    if f.max_redirects > 20 {
        p.push(format!(
            "{key}.max_redirects must be at most 20, not {}",
            f.max_redirects
        ));
    }
    if f.gap_timeout_ms > 3_600_000 {
        p.push(format!(
            "{key}.gap_timeout_ms must be at most 3600000, not {}",
            f.gap_timeout_ms
        ));
    }
    if f.start_sequence < 0 {
        p.push(format!(
            "{key}.start_sequence must not be negative, not {}",
            f.start_sequence
        ));
    }
    for name in f.headers.keys() {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !ok {
            p.push(format!(
                "{key}.headers: `{name}` is not a valid header name"
            ));
        }
    }
    if f.event_type.header.is_some() {
        p.push(format!(
            "{key}.event_type.header does not apply to a feed: the type is the entry's `name`, or set `pointer` into `content`"
        ));
    }
}
