//! Parsing a feed page: a JSON array of `{sequenceNumber, occuredAt |
//! occurredAt, name, content}` (field names matched without regard to
//! case, extra fields ignored).
//!
//! A page that cannot be placed in the sequence (not an array, an entry
//! without an integer `sequenceNumber`, numbers not increasing) is
//! malformed as a whole and is not applied; an entry that can be placed
//! but lacks `name` or `content` becomes a rejected event (a dead letter
//! with its raw JSON).

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// One entry of a page.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    /// `sequenceNumber`.
    pub(super) seq: i64,
    /// `name` (the event type), if present and a string.
    pub(super) name: Option<String>,
    /// `content`: a string's value, or any other JSON value's text.
    pub(super) payload: Option<Vec<u8>>,
    /// `occurredAt` / `occuredAt`, as written.
    pub(super) occurred_at: Option<String>,
    /// The entry's JSON text.
    pub(super) raw: Vec<u8>,
}

fn field<'a>(obj: &'a BTreeMap<String, &'a RawValue>, names: &[&str]) -> Option<&'a RawValue> {
    obj.iter()
        .find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
        .map(|(_, v)| *v)
}

/// The entries of a page body, in order.
pub(super) fn parse(body: &[u8]) -> Result<Vec<Entry>, String> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
        let start: String = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        format!("the page is not a JSON array of entries ({e}); it starts with {start:?}")
    })?;
    let mut out = Vec::with_capacity(items.len());
    let mut last: Option<i64> = None;
    for (i, item) in items.into_iter().enumerate() {
        let obj: BTreeMap<String, &RawValue> = serde_json::from_str(item.get())
            .map_err(|_| format!("entry {i} is not a JSON object: {}", cut(item.get())))?;
        let seq = field(&obj, &["sequenceNumber"])
            .and_then(|v| serde_json::from_str::<i64>(v.get()).ok())
            .ok_or_else(|| {
                format!(
                    "entry {i} has no integer `sequenceNumber`: {}",
                    cut(item.get())
                )
            })?;
        if let Some(prev) = last
            && seq <= prev
        {
            return Err(format!(
                "sequence numbers must increase within a page, but {seq} follows {prev}"
            ));
        }
        last = Some(seq);
        let name = field(&obj, &["name"])
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
            .filter(|n| !n.trim().is_empty());
        let payload = field(&obj, &["content"]).map(|v| {
            let text = v.get();
            if text.starts_with('"') {
                serde_json::from_str::<String>(text)
                    .map(String::into_bytes)
                    .unwrap_or_else(|_| text.as_bytes().to_vec())
            } else {
                text.as_bytes().to_vec()
            }
        });
        let occurred_at = field(&obj, &["occurredAt", "occuredAt"])
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok());
        out.push(Entry {
            seq,
            name,
            payload,
            occurred_at,
            raw: item.get().as_bytes().to_vec(),
        });
    }
    Ok(out)
}

fn cut(s: &str) -> String {
    if s.chars().count() <= 200 {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(200).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_shape_with_both_spellings_and_extra_fields() {
        let body = br#"[
            {"sequenceNumber": 3, "occuredAt": "2024-05-01T12:00:00Z", "name": "GameCreated", "content": {"id": "a", "price": 59.990}, "extra": 1},
            {"SequenceNumber": 4, "OccurredAt": "2024-05-01T12:00:01Z", "Name": "GameDeleted", "Content": "{\"id\":\"a\"}"},
            {"sequenceNumber": 7, "name": "NoContent"}
        ]"#;
        let e = parse(body).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].seq, 3);
        assert_eq!(e[0].name.as_deref(), Some("GameCreated"));
        assert_eq!(
            e[0].payload.as_deref(),
            Some(&br#"{"id": "a", "price": 59.990}"#[..])
        );
        assert_eq!(e[0].occurred_at.as_deref(), Some("2024-05-01T12:00:00Z"));
        assert_eq!(
            e[1].payload.as_deref(),
            Some(&br#"{"id":"a"}"#[..]),
            "a string content is its value"
        );
        assert_eq!(e[1].occurred_at.as_deref(), Some("2024-05-01T12:00:01Z"));
        assert_eq!(e[2].payload, None);
        assert!(parse(b"\xef\xbb\xbf[]").unwrap().is_empty());
    }

    #[test]
    fn pages_that_cannot_be_placed_are_malformed() {
        for (body, expected) in [
            (&b"<html>oops</html>"[..], "not a JSON array"),
            (b"{\"items\":[]}", "not a JSON array"),
            (b"[1]", "entry 0 is not a JSON object"),
            (b"[{\"name\":\"A\"}]", "no integer `sequenceNumber`"),
            (
                b"[{\"sequenceNumber\":\"x\"}]",
                "no integer `sequenceNumber`",
            ),
            (
                b"[{\"sequenceNumber\":2},{\"sequenceNumber\":2}]",
                "must increase",
            ),
        ] {
            let e = parse(body).unwrap_err();
            assert!(e.contains(expected), "{e}");
        }
    }
}
