//! Dead letters: events that could not be applied, recorded in the same
//! transaction that advances the checkpoint past them.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

use super::schema::NOW;
use super::{SqlContext, StoreError};
use crate::event::Event;

/// A dead letter about to be recorded.
#[derive(Debug)]
pub struct NewDeadLetter<'a> {
    /// The event, with its bytes and headers.
    pub event: &'a Event,
    /// The plugin that failed, if the event reached one.
    pub plugin: Option<&'a str>,
    /// That plugin's digest.
    pub plugin_digest: Option<&'a str>,
    /// Error class (`permanent`, `trap`, `timeout`, `memory`, `denied`,
    /// `unknown-event-type`, `malformed-envelope`, …).
    pub error_class: &'a str,
    /// Error message.
    pub error_message: &'a str,
    /// How many attempts were made.
    pub attempts: u32,
    /// When the first attempt failed (RFC 3339, UTC); `None` means now.
    pub first_failed_at: Option<&'a str>,
}

/// A recorded dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Row id.
    pub id: i64,
    /// The event as it was delivered.
    pub event: Event,
    /// The plugin that failed, if any.
    pub plugin: Option<String>,
    /// That plugin's digest.
    pub plugin_digest: Option<String>,
    /// Error class.
    pub error_class: String,
    /// Error message.
    pub error_message: String,
    /// Attempts made.
    pub attempts: u32,
    /// First failure (RFC 3339).
    pub first_failed_at: String,
    /// Last failure (RFC 3339).
    pub last_failed_at: String,
}

/// Encodes headers as JSON: UTF-8 values as `value`, others as `hex`.
pub fn headers_to_json(headers: &[(String, Vec<u8>)]) -> String {
    let list: Vec<_> = headers
        .iter()
        .map(|(name, value)| match std::str::from_utf8(value) {
            Ok(text) => json!({ "name": name, "value": text }),
            Err(_) => json!({ "name": name, "hex": hex::encode(value) }),
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// Decodes what [`headers_to_json`] wrote.
pub fn headers_from_json(text: &str) -> Vec<(String, Vec<u8>)> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str(text) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let name = item.get("name")?.as_str()?.to_owned();
            let value = match (item.get("value"), item.get("hex")) {
                (Some(v), _) => v.as_str()?.as_bytes().to_vec(),
                (None, Some(h)) => hex::decode(h.as_str()?).ok()?,
                (None, None) => return None,
            };
            Some((name, value))
        })
        .collect()
}

/// Records a dead letter (inside the batch transaction). A second dead
/// letter for the same position replaces the first (after a `dlq retry`
/// that failed again) and keeps its first failure time.
pub fn record(conn: &Connection, dl: &NewDeadLetter<'_>) -> Result<i64, StoreError> {
    let e = dl.event;
    let sql = format!(
        r#"INSERT INTO ferry_dead_letters (source, "partition", "offset", event_type, event_key, payload,
             headers, timestamp_ms, plugin, plugin_digest, error_class, error_message, attempts,
             first_failed_at, last_failed_at)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, coalesce(?14, {NOW}), {NOW})
           ON CONFLICT (source, "partition", "offset") DO UPDATE SET
             event_type = excluded.event_type, plugin = excluded.plugin,
             plugin_digest = excluded.plugin_digest, error_class = excluded.error_class,
             error_message = excluded.error_message,
             attempts = ferry_dead_letters.attempts + excluded.attempts,
             last_failed_at = excluded.last_failed_at
           RETURNING id"#
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(
                params![
                    &*e.source,
                    e.partition,
                    e.offset,
                    e.event_type,
                    e.key,
                    e.payload,
                    headers_to_json(&e.headers),
                    e.timestamp_ms,
                    dl.plugin,
                    dl.plugin_digest,
                    dl.error_class,
                    dl.error_message,
                    dl.attempts,
                    dl.first_failed_at,
                ],
                |r| r.get(0),
            )
        })
        .during("recording a dead letter")
}

const COLUMNS: &str = r#"id, source, "partition", "offset", event_type, event_key, payload, headers,
    timestamp_ms, plugin, plugin_digest, error_class, error_message, attempts, first_failed_at,
    last_failed_at"#;

fn from_row(r: &Row<'_>) -> rusqlite::Result<DeadLetter> {
    let source: String = r.get(1)?;
    let headers: String = r.get(7)?;
    Ok(DeadLetter {
        id: r.get(0)?,
        event: Event {
            source: source.into(),
            partition: r.get(2)?,
            offset: r.get(3)?,
            event_type: r.get(4)?,
            key: r.get(5)?,
            payload: r.get(6)?,
            headers: headers_from_json(&headers),
            timestamp_ms: r.get(8)?,
            rejected: None,
        },
        plugin: r.get(9)?,
        plugin_digest: r.get(10)?,
        error_class: r.get(11)?,
        error_message: r.get(12)?,
        attempts: r.get(13)?,
        first_failed_at: r.get(14)?,
        last_failed_at: r.get(15)?,
    })
}

/// Dead letters in source, partition, offset order (optionally of one
/// source).
pub fn list(conn: &Connection, source: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
    let sql = format!(
        r#"SELECT {COLUMNS} FROM ferry_dead_letters WHERE ?1 IS NULL OR source = ?1
           ORDER BY source, "partition", "offset""#
    );
    let mut stmt = conn.prepare(&sql).during("listing dead letters")?;
    let rows = stmt
        .query_map(params![source], from_row)
        .during("listing dead letters")?;
    rows.collect::<Result<_, _>>()
        .during("listing dead letters")
}

/// One dead letter by id.
pub fn get(conn: &Connection, id: i64) -> Result<Option<DeadLetter>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM ferry_dead_letters WHERE id = ?1");
    conn.query_row(&sql, params![id], from_row)
        .optional()
        .during("reading a dead letter")
}

/// Deletes one dead letter; returns whether it existed.
pub fn delete(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    conn.execute("DELETE FROM ferry_dead_letters WHERE id = ?1", params![id])
        .map(|n| n > 0)
        .during("deleting a dead letter")
}

/// Deletes every dead letter (optionally of one source); returns how many.
pub fn purge(conn: &Connection, source: Option<&str>) -> Result<usize, StoreError> {
    conn.execute(
        "DELETE FROM ferry_dead_letters WHERE ?1 IS NULL OR source = ?1",
        params![source],
    )
    .during("purging dead letters")
}

/// How many dead letters there are.
pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT count(*) FROM ferry_dead_letters", [], |r| r.get(0))
        .during("counting dead letters")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(offset: i64) -> Event {
        Event {
            source: "s".into(),
            partition: 2,
            offset,
            key: Some(b"k".to_vec()),
            event_type: Some("T".into()),
            payload: b"{}".to_vec(),
            headers: vec![("a".into(), b"x".to_vec()), ("b".into(), vec![0xff, 0])],
            timestamp_ms: Some(5),
            rejected: None,
        }
    }

    #[test]
    fn record_list_get_and_replace() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::schema::DDL).unwrap();
        let ev = event(7);
        let new = NewDeadLetter {
            event: &ev,
            plugin: Some("p"),
            plugin_digest: Some("d"),
            error_class: "permanent",
            error_message: "missing field `name`",
            attempts: 3,
            first_failed_at: None,
        };
        let id = record(&c, &new).unwrap();
        let again = record(&c, &NewDeadLetter { attempts: 1, ..new }).unwrap();
        assert_eq!(id, again);
        let dl = get(&c, id).unwrap().unwrap();
        assert_eq!(dl.event, ev);
        assert_eq!(dl.attempts, 4);
        assert_eq!(list(&c, Some("s")).unwrap().len(), 1);
        assert_eq!(list(&c, Some("other")).unwrap().len(), 0);
        assert!(delete(&c, id).unwrap());
        assert_eq!(count(&c).unwrap(), 0);
    }
}
