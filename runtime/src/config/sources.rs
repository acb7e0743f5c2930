//! `[[sources]]`: where events come from and how their type is found.

use std::collections::HashSet;

use serde::Deserialize;

pub use super::feed::{GapPolicy, HttpFeedSourceConfig};

/// Where the event type of a record comes from.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EventTypeFrom {
    /// Header holding the event type (default `event-type`). The
    /// CloudEvents binary-mode header `ce_type` is always accepted too.
    #[serde(default)]
    pub header: Option<String>,
    /// JSON pointer into the payload (e.g. `/type`), used instead of a
    /// header when set.
    #[serde(default)]
    pub pointer: Option<String>,
}

impl Default for EventTypeFrom {
    fn default() -> Self {
        Self {
            header: Some(DEFAULT_HEADER.into()),
            pointer: None,
        }
    }
}

/// The default event-type header.
pub const DEFAULT_HEADER: &str = "event-type";

/// One `[[sources]]` entry, chosen by its `kind`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SourceConfig {
    /// `kind = "kafka"`: one or more Kafka topics.
    Kafka(KafkaSourceConfig),
    /// `kind = "http-feed"`: a polled HTTP event feed.
    HttpFeed(HttpFeedSourceConfig),
}

impl SourceConfig {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Kafka(k) => &k.name,
            SourceConfig::HttpFeed(f) => &f.name,
        }
    }

    /// How the event type of each record is found.
    pub fn event_type(&self) -> &EventTypeFrom {
        match self {
            SourceConfig::Kafka(k) => &k.event_type,
            SourceConfig::HttpFeed(f) => &f.event_type,
        }
    }

    /// The kind, as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Kafka(_) => "kafka",
            SourceConfig::HttpFeed(_) => "http-feed",
        }
    }
}

/// How a Kafka source divides partitions between ferry instances.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KafkaMode {
    /// Every instance consumes every partition (assign, no group
    /// balancing) and keeps a full local copy: event-carried state transfer.
    #[default]
    Replica,
    /// Consumer-group balancing: each partition belongs to one instance.
    Group,
}

/// Where a partition without a checkpoint in SQLite starts.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StartFrom {
    /// The earliest retained offset: rebuild the projection of the
    /// partition (cheap on compacted topics).
    #[default]
    Earliest,
    /// The end: only events produced from now on.
    Latest,
    /// The group's committed offset; when there is none, or it is no
    /// longer on the broker: the earliest offset (or the end, when the
    /// `librdkafka` table sets `auto.offset.reset` to `latest`).
    Committed,
}

/// What happens when a partition's next offset is no longer on the broker.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OutOfRange {
    /// Record the missing offsets as one dead letter (class `gap`) in the
    /// transaction that moves the checkpoint past them, then go on from
    /// the earliest offset the broker still has.
    #[default]
    DeadLetter,
    /// Stop the partition at its checkpoint until ferry is restarted with
    /// another setting (or the projection is rebuilt).
    Stop,
}

/// The `brokers` value that starts ferry's embedded broker (librdkafka's
/// mock cluster) instead of connecting to one.
pub const EMBEDDED: &str = "embedded";

/// librdkafka properties ferry owns and refuses in the pass-through table.
pub const FORBIDDEN_LIBRDKAFKA: [(&str, &str); 6] = [
    (
        "enable.auto.commit",
        "ferry commits offsets itself, only after the SQLite commit",
    ),
    (
        "enable.auto.offset.store",
        "ferry stores offsets itself, only after the SQLite commit",
    ),
    ("group.id", "use the source's `group_id`"),
    ("bootstrap.servers", "use the source's `brokers`"),
    ("metadata.broker.list", "use the source's `brokers`"),
    (
        "isolation.level",
        "ferry reads `read_committed`: records of aborted transactions are never applied",
    ),
];

/// `kind = "kafka"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Unique name; checkpoints are keyed by `<name>/<topic>` and the
    /// partition, so renaming a source starts it from scratch. `replay` is
    /// reserved.
    pub name: String,
    /// How the event type of each record is found.
    #[serde(default)]
    pub event_type: EventTypeFrom,
    /// `host:port,host:port`, or `embedded` for librdkafka's in-process
    /// mock cluster (a real Kafka-protocol listener on a loopback port).
    pub brokers: String,
    /// The topics to consume.
    pub topics: Vec<String>,
    /// `replica` (default: every partition, full local copy) or `group`
    /// (consumer-group balancing).
    #[serde(default)]
    pub mode: KafkaMode,
    /// Consumer group. Required in `group` mode. In `replica` mode it is
    /// optional and only used for the advisory offset commits (give every
    /// instance its own).
    #[serde(default)]
    pub group_id: Option<String>,
    /// Where a partition with no checkpoint in SQLite starts: `earliest`
    /// (default), `latest` or `committed`.
    #[serde(default)]
    pub start_without_checkpoint: StartFrom,
    /// What happens when the offsets after a partition's checkpoint are no
    /// longer on the broker (deleted by retention before ferry applied
    /// them): `dead-letter` (default) records the missing range as a dead
    /// letter of class `gap` and goes on from the earliest retained
    /// offset; `stop` stops the partition there. A checkpoint past the
    /// partition's end (the topic was re-created or truncated) always
    /// stops it. librdkafka's `auto.offset.reset` never moves a partition
    /// that has a checkpoint.
    #[serde(default)]
    pub on_out_of_range: OutOfRange,
    /// Topic that dead letters of this source are also published to
    /// (through a transactional outbox: at least once, after the SQLite
    /// commit that recorded them). Unset: dead letters stay in SQLite only.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Extra librdkafka client properties (security, timeouts, fetch
    /// sizes), passed through as they are. `enable.auto.commit`,
    /// `enable.auto.offset.store`, `group.id`, `bootstrap.servers` and
    /// `isolation.level` (always `read_committed`) are refused: ferry owns
    /// them.
    #[serde(default)]
    pub librdkafka: std::collections::BTreeMap<String, String>,
}

pub(super) fn validate(sources: &[SourceConfig], p: &mut Vec<String>) {
    let mut names = HashSet::new();
    for (i, s) in sources.iter().enumerate() {
        let key = format!("sources[{i}]");
        let name = s.name();
        if name.is_empty() || name.len() > 64 || name.contains('/') {
            p.push(format!("{key}.name must be 1 to 64 characters without `/`"));
        } else if name == "replay" {
            p.push(format!(
                "{key}.name `replay` is reserved for `ferry replay`"
            ));
        } else if !names.insert(name) {
            p.push(format!("{key}.name `{name}` is used by another source"));
        }
        match s {
            SourceConfig::Kafka(k) => {
                if !cfg!(feature = "kafka") {
                    p.push(format!(
                        "{key}.kind = \"kafka\": this ferry was built without Kafka support (cargo feature `kafka`)"
                    ));
                }
                validate_kafka(&key, k, p);
            }
            SourceConfig::HttpFeed(f) => {
                if !cfg!(feature = "http-feed") {
                    p.push(format!(
                        "{key}.kind = \"http-feed\": this ferry was built without HTTP feed support (cargo feature `http-feed`)"
                    ));
                }
                super::feed::validate(&key, f, p);
            }
        }
        let et = s.event_type();
        if et.header.is_some() && et.pointer.is_some() {
            p.push(format!(
                "{key}.event_type: set either `header` or `pointer`, not both"
            ));
        }
        if let Some(ptr) = &et.pointer
            && !ptr.starts_with('/')
        {
            p.push(format!(
                "{key}.event_type.pointer `{ptr}` must be a JSON pointer starting with `/`"
            ));
        }
        if let Some(h) = &et.header
            && h.trim().is_empty()
        {
            p.push(format!("{key}.event_type.header must not be empty"));
        }
    }
}

fn validate_kafka(key: &str, k: &KafkaSourceConfig, p: &mut Vec<String>) {
    if k.brokers.trim().is_empty() {
        p.push(format!(
            "{key}.brokers must name at least one broker, or be `embedded`"
        ));
    }
    if k.topics.is_empty() {
        p.push(format!("{key}.topics must list at least one topic"));
    }
    let mut seen = HashSet::new();
    if let Some(d) = &k.dead_letter_topic
        && k.topics.contains(d)
    {
        p.push(format!(
            "{key}.dead_letter_topic `{d}` must not be one of the topics it consumes"
        ));
    }
    for t in k.topics.iter().chain(&k.dead_letter_topic) {
        let ok = !t.is_empty()
            && t.len() <= 249
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            p.push(format!(
                "{key}.topics: `{t}` is not a valid Kafka topic name"
            ));
        } else if !seen.insert(t) {
            p.push(format!("{key}.topics: `{t}` is listed twice"));
        }
    }
    match (&k.mode, &k.group_id) {
        (KafkaMode::Group, None) => {
            p.push(format!("{key}.group_id is required when mode = \"group\""))
        }
        (_, Some(g)) if g.trim().is_empty() => p.push(format!("{key}.group_id must not be empty")),
        _ => {}
    }
    if k.start_without_checkpoint == StartFrom::Committed && k.group_id.is_none() {
        p.push(format!(
            "{key}.start_without_checkpoint = \"committed\" needs a group_id to read committed offsets from"
        ));
    }
    for (prop, why) in FORBIDDEN_LIBRDKAFKA {
        if k.librdkafka.contains_key(prop) {
            p.push(format!("{key}.librdkafka.\"{prop}\" is not allowed: {why}"));
        }
    }
}
