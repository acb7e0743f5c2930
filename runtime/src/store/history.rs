//! The plugin history: every activation, swap, rollback, rebuild and
//! refused deployment of a plugin, with the offset of every partition at
//! which an activated version took over.
//!
//! An entry with outcome `activated` is written in the same transaction as
//! the new version's `migrate` and the registry update, between two batch
//! transactions. Its positions are the checkpoints of that moment plus
//! one: on each partition, every event at or after `from_offset` was
//! handled by the new version (until the next entry), every event before
//! it by an earlier one. A partition without a position had no checkpoint
//! yet, so the new version handles it from its first event.

use rusqlite::{Connection, params};

use super::schema::NOW;
use super::{SqlContext, StoreError};

/// What caused a history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The plugin was loaded at start (first activation or a new digest).
    Start,
    /// The plugin's file changed on disk.
    File,
    /// `SIGHUP` (or an embedding host) re-read the configuration.
    Reload,
    /// `PUT /plugins/{name}` (or an embedding host's swap).
    Api,
    /// An operator asked for a rollback.
    Rollback,
    /// The new version failed too often on probation.
    AutoRollback,
    /// `ferry rebuild` cut the rebuilt tables over.
    Rebuild,
}

impl Trigger {
    /// The name stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::File => "file",
            Trigger::Reload => "reload",
            Trigger::Api => "api",
            Trigger::Rollback => "rollback",
            Trigger::AutoRollback => "auto-rollback",
            Trigger::Rebuild => "rebuild",
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One version of a plugin, as a history entry names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version<'a> {
    /// Content digest (`sha256:…`, or `native:…`).
    pub digest: &'a str,
    /// The version the plugin reports.
    pub version: &'a str,
}

/// A history entry about to be written.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// Plugin name.
    pub plugin: &'a str,
    /// What caused it.
    pub trigger: Trigger,
    /// The version that was running (none on first activation).
    pub old: Option<Version<'a>>,
    /// The version that was (or would have been) activated.
    pub new: Option<Version<'a>>,
    /// `None`: the new version took over. `Some(reason)`: it was refused
    /// and the old one kept running.
    pub error: Option<&'a str>,
}

/// Writes an entry; an activation also records the position of every
/// partition (checkpoint + 1). Returns the entry's id.
pub fn record(conn: &Connection, e: &NewEntry<'_>) -> Result<i64, StoreError> {
    let outcome = if e.error.is_some() {
        "refused"
    } else {
        "activated"
    };
    let sql = format!(
        "INSERT INTO ferry_plugin_history
           (plugin, cause, outcome, old_digest, old_version, new_digest, new_version, error, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, {NOW})"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.execute(params![
                e.plugin,
                e.trigger.as_str(),
                outcome,
                e.old.as_ref().map(|v| v.digest),
                e.old.as_ref().map(|v| v.version),
                e.new.as_ref().map(|v| v.digest),
                e.new.as_ref().map(|v| v.version),
                e.error,
            ])
        })
        .during("writing the plugin history")?;
    let id = conn.last_insert_rowid();
    if e.error.is_none() {
        conn.prepare_cached(
            r#"INSERT INTO ferry_plugin_history_positions (history_id, source, "partition", from_offset)
               SELECT ?1, source, "partition", "offset" + 1 FROM ferry_checkpoints"#,
        )
        .and_then(|mut s| s.execute(params![id]))
        .during("recording where a plugin version took over")?;
    }
    Ok(id)
}

/// One history entry as read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = HistoryEntry)]
pub struct Entry {
    /// Row id (increasing).
    pub id: i64,
    /// Plugin name.
    pub plugin: String,
    /// What caused it (`start`, `file`, `reload`, `api`, `rollback`,
    /// `auto-rollback`, `rebuild`).
    pub trigger: String,
    /// `activated` or `refused`.
    pub outcome: String,
    /// Digest of the version that was running before.
    pub old_digest: Option<String>,
    /// Its version.
    pub old_version: Option<String>,
    /// Digest of the version activated (or refused).
    pub new_digest: Option<String>,
    /// Its version.
    pub new_version: Option<String>,
    /// Why it was refused.
    pub error: Option<String>,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// The newest `limit` entries of `plugin` (all plugins when `None`),
/// newest first.
pub fn list(
    conn: &Connection,
    plugin: Option<&str>,
    limit: usize,
) -> Result<Vec<Entry>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, plugin, cause, outcome, old_digest, old_version, new_digest, new_version, error, at
             FROM ferry_plugin_history WHERE ?1 IS NULL OR plugin = ?1 ORDER BY id DESC LIMIT ?2",
        )
        .during("reading the plugin history")?;
    let rows = stmt
        .query_map(params![plugin, limit as i64], |r| {
            Ok(Entry {
                id: r.get(0)?,
                plugin: r.get(1)?,
                trigger: r.get(2)?,
                outcome: r.get(3)?,
                old_digest: r.get(4)?,
                old_version: r.get(5)?,
                new_digest: r.get(6)?,
                new_version: r.get(7)?,
                error: r.get(8)?,
                at: r.get(9)?,
            })
        })
        .during("reading the plugin history")?;
    rows.collect::<Result<_, _>>()
        .during("reading the plugin history")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_activation_records_every_partition_position_and_a_refusal_none() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::schema::DDL).unwrap();
        crate::store::checkpoint::write(&c, "s/t", 0, 41, "", 0).unwrap();
        crate::store::checkpoint::write(&c, "s/t", 1, 9, "", 0).unwrap();
        let v1 = Version {
            digest: "sha256:a",
            version: "1",
        };
        let v2 = Version {
            digest: "sha256:b",
            version: "2",
        };
        let id = record(
            &c,
            &NewEntry {
                plugin: "p",
                trigger: Trigger::File,
                old: Some(v1.clone()),
                new: Some(v2.clone()),
                error: None,
            },
        )
        .unwrap();
        let refused = record(
            &c,
            &NewEntry {
                plugin: "p",
                trigger: Trigger::Api,
                old: Some(v2),
                new: Some(v1),
                error: Some("migrate failed"),
            },
        )
        .unwrap();
        let positions: Vec<(i64, String, i32, i64)> = c
            .prepare(r#"SELECT history_id, source, "partition", from_offset FROM ferry_plugin_history_positions ORDER BY 3"#)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            positions,
            vec![(id, "s/t".into(), 0, 42), (id, "s/t".into(), 1, 10)]
        );
        let entries = list(&c, Some("p"), 10).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, refused);
        assert_eq!(entries[0].outcome, "refused");
        assert_eq!(entries[0].error.as_deref(), Some("migrate failed"));
        assert_eq!(entries[1].trigger, "file");
        assert_eq!(entries[1].outcome, "activated");
    }
}
