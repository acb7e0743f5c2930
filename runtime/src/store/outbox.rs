//! The transactional outbox: messages (dead letters for a dead-letter
//! topic) decided by a SQLite commit and sent afterwards, at least once, by
//! a background publisher that deletes each row once the broker has it.

use rusqlite::{Connection, params};

use super::dead_letter::{headers_from_json, headers_to_json};
use super::schema::NOW;
use super::{SqlContext, StoreError};

pub use crate::delivery::Outgoing as OutboxMessage;

/// Queues a message (inside the caller's transaction).
pub fn enqueue(
    conn: &Connection,
    source: &str,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: &[(String, Vec<u8>)],
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO ferry_outbox (source, topic, event_key, payload, headers, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, {NOW})"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.execute(params![
                source,
                topic,
                key,
                payload,
                headers_to_json(headers)
            ])
        })
        .during("queueing an outbox message")?;
    Ok(())
}

/// The oldest `limit` messages of `source`.
pub fn fetch(
    conn: &Connection,
    source: &str,
    limit: usize,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, source, topic, event_key, payload, headers, attempts FROM ferry_outbox
             WHERE source = ?1 ORDER BY id LIMIT ?2",
        )
        .during("reading the outbox")?;
    let rows = stmt
        .query_map(params![source, limit as i64], |r| {
            let headers: String = r.get(5)?;
            Ok(OutboxMessage {
                id: r.get(0)?,
                source: r.get(1)?,
                topic: r.get(2)?,
                key: r.get(3)?,
                payload: r.get(4)?,
                headers: headers_from_json(&headers),
                attempts: r.get(6)?,
            })
        })
        .during("reading the outbox")?;
    rows.collect::<Result<_, _>>().during("reading the outbox")
}

/// Removes messages the broker acknowledged.
pub fn delete(conn: &Connection, ids: &[i64]) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached("DELETE FROM ferry_outbox WHERE id = ?1")
        .during("deleting sent outbox messages")?;
    for id in ids {
        stmt.execute(params![id])
            .during("deleting sent outbox messages")?;
    }
    Ok(())
}

/// Records a failed send.
pub fn failed(conn: &Connection, id: i64, error: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE ferry_outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
        params![id, error],
    )
    .during("recording a failed outbox send")?;
    Ok(())
}

/// The outbox publisher's own connection: a second writer beside the
/// pipeline's, opened with the same pragmas (`store::open_writer`); SQLite's
/// lock and busy timeout order its short transactions with the batches.
#[derive(Debug)]
pub struct PublisherConn(Connection);

impl PublisherConn {
    /// Opens it on the database at `path`.
    pub fn open(path: &std::path::Path, options: &super::StoreOptions) -> Result<Self, StoreError> {
        Ok(Self(super::open_writer(path, options)?))
    }

    /// Up to `limit` messages of `source`, oldest first.
    pub fn fetch(&self, source: &str, limit: usize) -> Result<Vec<OutboxMessage>, StoreError> {
        fetch(&self.0, source, limit)
    }

    /// Removes the messages the broker acknowledged, in one transaction.
    pub fn delivered(&self, ids: &[i64]) -> Result<(), StoreError> {
        let tx = self
            .0
            .unchecked_transaction()
            .during("deleting sent outbox messages")?;
        delete(&tx, ids)?;
        tx.commit().during("deleting sent outbox messages")
    }

    /// Records a failed send of message `id`.
    pub fn failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        failed(&self.0, id, error)
    }
}

/// Messages waiting to be sent.
pub fn pending(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT count(*) FROM ferry_outbox", [], |r| r.get(0))
        .during("counting outbox messages")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enqueue_fetch_fail_delete() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::schema::DDL).unwrap();
        let h = vec![("a".to_string(), b"1".to_vec())];
        enqueue(&c, "s", "t.dlq", Some(b"k"), b"{}", &h).unwrap();
        enqueue(&c, "other", "x", None, b"", &[]).unwrap();
        let m = fetch(&c, "s", 10).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].topic.as_str(), m[0].headers.clone()), ("t.dlq", h));
        failed(&c, m[0].id, "broker down").unwrap();
        assert_eq!(fetch(&c, "s", 10).unwrap()[0].attempts, 1);
        delete(&c, &[m[0].id]).unwrap();
        assert_eq!(pending(&c).unwrap(), 1);
    }
}
