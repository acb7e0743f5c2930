//! Fencing tokens: `(source, partition) -> generation, owner`.
//!
//! A consumer that starts applying a partition claims it (the generation
//! goes up by one) inside its first batch transaction; every later batch
//! checks, in its own transaction, that the generation is still the one it
//! claimed. A consumer that lost the partition without noticing (a zombie:
//! paused past `max.poll.interval.ms`, or a second process started on the
//! same database) finds a newer generation and writes nothing for it.

use rusqlite::{Connection, OptionalExtension, params};

use super::schema::NOW;
use super::{SqlContext, StoreError};

/// Claims `(source, partition)` for `owner`: returns the new generation.
/// Must run inside the batch transaction (which holds the write lock).
pub fn claim(
    conn: &Connection,
    source: &str,
    partition: i32,
    owner: &str,
) -> Result<i64, StoreError> {
    let sql = format!(
        r#"INSERT INTO ferry_fences (source, "partition", generation, owner, claimed_at)
           VALUES (?1, ?2, 1, ?3, {NOW})
           ON CONFLICT (source, "partition") DO UPDATE SET
             generation = ferry_fences.generation + 1, owner = excluded.owner,
             claimed_at = excluded.claimed_at
           RETURNING generation"#
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_row(params![source, partition, owner], |r| r.get(0)))
        .during("claiming a partition")
}

/// The current generation and owner of `(source, partition)`, if claimed.
pub fn current(
    conn: &Connection,
    source: &str,
    partition: i32,
) -> Result<Option<(i64, String)>, StoreError> {
    conn.prepare_cached(
        r#"SELECT generation, owner FROM ferry_fences WHERE source = ?1 AND "partition" = ?2"#,
    )
    .and_then(|mut s| {
        s.query_row(params![source, partition], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    })
    .during("reading a partition's fencing token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_claim_supersedes_the_previous_one() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::schema::DDL).unwrap();
        assert_eq!(current(&c, "s", 0).unwrap(), None);
        assert_eq!(claim(&c, "s", 0, "a").unwrap(), 1);
        assert_eq!(claim(&c, "s", 0, "b").unwrap(), 2);
        assert_eq!(claim(&c, "s", 1, "a").unwrap(), 1);
        assert_eq!(current(&c, "s", 0).unwrap(), Some((2, "b".to_owned())));
    }
}
