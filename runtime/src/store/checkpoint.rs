//! The checkpoint table: `(source, partition) -> offset, plugin digest,
//! generation, updated_at`, written in the same transaction as the effect.

use rusqlite::{Connection, OptionalExtension, params};

use super::schema::NOW;
use super::{SqlContext, StoreError};

/// One checkpoint row: the last offset applied for a source partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Source name.
    pub source: String,
    /// Partition.
    pub partition: i32,
    /// Last applied offset (the next event to apply is `offset + 1`).
    pub offset: i64,
    /// Digest(s) of the plugin version(s) that applied the batch ending here.
    pub plugin_digest: String,
    /// Assignment generation of the writer (consumer-group fencing).
    pub generation: i64,
    /// When the row was last written (RFC 3339, UTC).
    pub updated_at: String,
}

/// The last applied offset of one partition, if any.
pub fn load(conn: &Connection, source: &str, partition: i32) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached(
        r#"SELECT "offset" FROM ferry_checkpoints WHERE source = ?1 AND "partition" = ?2"#,
    )
    .and_then(|mut s| {
        s.query_row(params![source, partition], |r| r.get(0))
            .optional()
    })
    .during("reading a checkpoint")
}

/// Every checkpoint, optionally of one source only, ordered by source and
/// partition.
pub fn load_all(conn: &Connection, source: Option<&str>) -> Result<Vec<Checkpoint>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            r#"SELECT source, "partition", "offset", plugin_digest, generation, updated_at
               FROM ferry_checkpoints WHERE ?1 IS NULL OR source = ?1
               ORDER BY source, "partition""#,
        )
        .during("reading checkpoints")?;
    let rows = stmt
        .query_map(params![source], |r| {
            Ok(Checkpoint {
                source: r.get(0)?,
                partition: r.get(1)?,
                offset: r.get(2)?,
                plugin_digest: r.get(3)?,
                generation: r.get(4)?,
                updated_at: r.get(5)?,
            })
        })
        .during("reading checkpoints")?;
    rows.collect::<Result<_, _>>().during("reading checkpoints")
}

/// Records `offset` as applied for `(source, partition)`. Must run inside
/// the batch transaction that holds the effect. The offset never moves
/// backwards: an older offset leaves the row as it is.
pub fn write(
    conn: &Connection,
    source: &str,
    partition: i32,
    offset: i64,
    plugin_digest: &str,
    generation: i64,
) -> Result<(), StoreError> {
    let sql = format!(
        r#"INSERT INTO ferry_checkpoints (source, "partition", "offset", plugin_digest, generation, updated_at)
           VALUES (?1, ?2, ?3, ?4, ?5, {NOW})
           ON CONFLICT (source, "partition") DO UPDATE SET
             "offset" = excluded."offset", plugin_digest = excluded.plugin_digest,
             generation = excluded.generation, updated_at = excluded.updated_at
           WHERE excluded."offset" > ferry_checkpoints."offset""#
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.execute(params![
                source,
                partition,
                offset,
                plugin_digest,
                generation
            ])
        })
        .during("writing a checkpoint")?;
    Ok(())
}

/// Deletes the checkpoints of a source (all partitions).
pub fn delete_source(conn: &Connection, source: &str) -> Result<usize, StoreError> {
    conn.execute(
        "DELETE FROM ferry_checkpoints WHERE source = ?1",
        params![source],
    )
    .during("deleting checkpoints")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::schema::DDL).unwrap();
        c
    }

    #[test]
    fn write_then_load_and_never_move_backwards() {
        let c = conn();
        assert_eq!(load(&c, "s", 0).unwrap(), None);
        write(&c, "s", 0, 10, "d1", 0).unwrap();
        write(&c, "s", 0, 7, "d2", 0).unwrap();
        assert_eq!(load(&c, "s", 0).unwrap(), Some(10));
        write(&c, "s", 0, 11, "d2", 0).unwrap();
        write(&c, "s", 1, 3, "d2", 0).unwrap();
        let all = load_all(&c, Some("s")).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].offset, all[0].plugin_digest.as_str()), (11, "d2"));
        assert_eq!(delete_source(&c, "s").unwrap(), 2);
    }
}
