//! `[[sources]]`: where events come from and how their type is found.

use std::collections::HashSet;

use serde::Deserialize;

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

/// The kind of a source.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A Kafka topic set.
    Kafka,
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name; checkpoints and dead letters are keyed by it, so
    /// renaming a source starts it from scratch. `replay` is reserved.
    pub name: String,
    /// `kafka`.
    pub kind: SourceKind,
    /// How the event type of each record is found.
    #[serde(default)]
    pub event_type: EventTypeFrom,
}

pub(super) fn validate(sources: &[SourceConfig], p: &mut Vec<String>) {
    let mut names = HashSet::new();
    for (i, s) in sources.iter().enumerate() {
        let key = format!("sources[{i}]");
        if s.name.is_empty() || s.name.len() > 64 {
            p.push(format!("{key}.name must be 1 to 64 characters"));
        } else if s.name == "replay" {
            p.push(format!(
                "{key}.name `replay` is reserved for `ferry replay`"
            ));
        } else if !names.insert(s.name.as_str()) {
            p.push(format!("{key}.name `{}` is used by another source", s.name));
        }
        let et = &s.event_type;
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
