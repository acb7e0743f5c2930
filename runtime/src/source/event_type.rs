//! Finding an event's type: a header (`event-type` by default, CloudEvents'
//! `ce_type` always), or a JSON pointer into the payload, as a source's
//! `event_type` settings say.

use crate::config::EventTypeFrom;

/// The CloudEvents binary-mode type header, always accepted.
pub const CE_TYPE: &str = "ce_type";

/// Finds the event type of a record for one source.
#[derive(Debug, Clone)]
pub struct TypeExtractor {
    header: Option<String>,
    pointer: Option<String>,
}

impl TypeExtractor {
    /// An extractor following a source's `event_type` settings.
    pub fn new(from: &EventTypeFrom) -> Self {
        Self {
            header: from.header.clone(),
            pointer: from.pointer.clone(),
        }
    }

    /// The event type of a record, if it has one.
    pub fn extract(&self, headers: &[(String, Vec<u8>)], payload: &[u8]) -> Option<String> {
        if let Some(ptr) = &self.pointer {
            let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
            return value.pointer(ptr)?.as_str().map(str::to_owned);
        }
        let wanted = self.header.as_deref();
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        wanted.and_then(find).or_else(|| find(CE_TYPE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn header_then_ce_type_fallback() {
        let x = TypeExtractor::new(&EventTypeFrom::default());
        assert_eq!(x.extract(&h(&[("event-type", "A")]), b""), Some("A".into()));
        assert_eq!(x.extract(&h(&[("ce_type", "B")]), b""), Some("B".into()));
        assert_eq!(
            x.extract(&h(&[("ce_type", "B"), ("event-type", "A")]), b""),
            Some("A".into())
        );
        assert_eq!(x.extract(&h(&[("other", "A")]), b""), None);
        assert_eq!(x.extract(&h(&[("event-type", " ")]), b""), None);
    }

    #[test]
    fn json_pointer() {
        let x = TypeExtractor::new(&EventTypeFrom {
            header: None,
            pointer: Some("/meta/type".into()),
        });
        assert_eq!(
            x.extract(&[], br#"{"meta":{"type":"GameCreated"}}"#),
            Some("GameCreated".into())
        );
        assert_eq!(x.extract(&[], br#"{"meta":{"type":3}}"#), None);
        assert_eq!(x.extract(&[], b"not json"), None);
    }
}
