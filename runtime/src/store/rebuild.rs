//! The statements of `ferry rebuild` on the live database: the live
//! checkpoints a shadow must reach, and the cut-over, one transaction that
//! holds the live write lock and replaces a plugin's tables and dead
//! letters by the shadow's (attached as `shadow`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::history::{self, NewEntry, Trigger, Version};
use super::{SqlContext, StoreError, checkpoint};

/// Checkpoint per `(key, partition)`.
pub type Targets = BTreeMap<(String, i32), i64>;

/// `<db>.rebuild-<name>`: the shadow database of a rebuild.
pub fn shadow_path(db: &Path, name: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(format!(".rebuild-{name}"));
    PathBuf::from(p)
}

/// Removes a database file and its WAL and shared-memory files.
pub fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// A connection to the live database, beside the live ferry's own.
#[derive(Debug)]
pub struct Live {
    conn: Connection,
}

fn targets(conn: &Connection, keys: &[String]) -> Result<Targets, StoreError> {
    Ok(checkpoint::load_all(conn, None)?
        .into_iter()
        .filter(|c| keys.contains(&c.source))
        .map(|c| ((c.source, c.partition), c.offset))
        .collect())
}

impl Live {
    /// Opens the live database at `path`, waiting up to `busy` for its
    /// lock.
    pub fn open(path: &Path, busy: Duration) -> Result<Self, StoreError> {
        let open = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open)?;
        conn.busy_timeout(busy).map_err(open)?;
        Ok(Self { conn })
    }

    /// The plugin registry's row for `name`: (digest, version).
    pub fn active(
        &self,
        name: &str,
    ) -> Result<Option<super::registry::RegisteredPlugin>, StoreError> {
        super::registry::get(&self.conn, name)
    }

    /// The live checkpoints of `keys`.
    pub fn targets(&self, keys: &[String]) -> Result<Targets, StoreError> {
        targets(&self.conn, keys)
    }

    /// Attaches the shadow at `shadow` and takes the live write lock (a
    /// write to plugin `name`'s registry row): the live ferry's next batch
    /// waits until the cut-over commits or rolls back.
    pub fn lock(&self, shadow: &Path, name: &str) -> Result<Locked<'_>, StoreError> {
        self.conn
            .execute(
                "ATTACH DATABASE ?1 AS shadow",
                params![shadow.to_string_lossy()],
            )
            .during("attaching the shadow database")?;
        let locked = Locked {
            conn: &self.conn,
            done: false,
        };
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .during("beginning the cut-over")?;
        self.conn
            .execute(
                "UPDATE ferry_plugins SET digest = digest WHERE name = ?1",
                params![name],
            )
            .during("taking the live write lock")?;
        Ok(locked)
    }
}

/// The cut-over transaction; rolled back (and the shadow detached) unless
/// [`Locked::finish`] commits it.
#[derive(Debug)]
pub struct Locked<'a> {
    conn: &'a Connection,
    done: bool,
}

impl Locked<'_> {
    /// The live checkpoints of `keys`, under the lock.
    pub fn targets(&self, keys: &[String]) -> Result<Targets, StoreError> {
        targets(self.conn, keys)
    }

    /// The digest plugin `name` runs in the live database.
    pub fn active_digest(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT digest FROM main.ferry_plugins WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .during("reading the active version")
    }

    /// Replaces every table of `tables` by the shadow's (schema, rows,
    /// indexes, triggers); the row count of each.
    pub fn replace_tables(&self, tables: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
        tables
            .iter()
            .map(|t| Ok((t.clone(), replace_table(self.conn, t)?)))
            .collect()
    }

    /// Replaces plugin `name`'s dead letters by the shadow's; how many
    /// there are now. The columns are read from the table itself, so a new
    /// column is copied without anybody listing it here.
    pub fn replace_dead_letters(&self, name: &str) -> Result<i64, StoreError> {
        let what = "replacing the plugin's dead letters";
        self.conn
            .execute(
                "DELETE FROM main.ferry_dead_letters WHERE plugin = ?1",
                params![name],
            )
            .during(what)?;
        let cols: Vec<String> = {
            let mut s = self
                .conn
                .prepare("SELECT name FROM pragma_table_info('ferry_dead_letters') WHERE pk = 0")
                .during(what)?;
            s.query_map([], |r| r.get::<_, String>(0))
                .during(what)?
                .collect::<Result<_, _>>()
                .during(what)?
        };
        let cols = cols
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let n = self
            .conn
            .execute(
                &format!(
                    "INSERT OR IGNORE INTO main.ferry_dead_letters ({cols}) SELECT {cols} FROM shadow.ferry_dead_letters WHERE plugin = ?1"
                ),
                params![name],
            )
            .during(what)?;
        Ok(n as i64)
    }

    /// Takes the shadow's schema version, records the `rebuild` in the
    /// plugin history, and commits.
    pub fn finish(mut self, name: &str, digest: &str, version: &str) -> Result<(), StoreError> {
        let what = "finishing the cut-over";
        let schema: Option<i64> = self
            .conn
            .query_row(
                "SELECT schema_version FROM shadow.ferry_plugins WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .during(what)?;
        if let Some(s) = schema {
            self.conn
                .execute(
                    "UPDATE main.ferry_plugins SET schema_version = ?2 WHERE name = ?1",
                    params![name, s],
                )
                .during(what)?;
        }
        history::record(
            self.conn,
            &NewEntry {
                plugin: name,
                trigger: Trigger::Rebuild,
                old: Some(Version { digest, version }),
                new: Some(Version { digest, version }),
                error: None,
            },
        )?;
        self.conn.execute_batch("COMMIT").during(what)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let _ = self.conn.execute_batch("DETACH DATABASE shadow");
    }
}

/// Drops `main.<table>` and recreates it from `shadow.<table>`: schema,
/// rows, then its indexes and triggers. Returns the row count.
fn replace_table(live: &Connection, table: &str) -> Result<i64, StoreError> {
    let what = "replacing a plugin table by the shadow's";
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    let objects: Vec<(String, String)> = live
        .prepare("SELECT type, sql FROM shadow.sqlite_master WHERE tbl_name = ?1 COLLATE NOCASE AND sql IS NOT NULL ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END")
        .during(what)?
        .query_map(params![table], |r| Ok((r.get(0)?, r.get(1)?)))
        .during(what)?
        .collect::<Result<_, _>>()
        .during(what)?;
    live.execute_batch(&format!("DROP TABLE IF EXISTS main.{quoted}"))
        .during(what)?;
    let Some((_, create)) = objects.iter().find(|(t, _)| t == "table") else {
        return Ok(0);
    };
    live.execute_batch(create).during(what)?;
    let n = live
        .execute(
            &format!("INSERT INTO main.{quoted} SELECT * FROM shadow.{quoted}"),
            [],
        )
        .during(what)?;
    for (kind, sql) in &objects {
        if kind != "table" {
            live.execute_batch(sql).during(what)?;
        }
    }
    Ok(n as i64)
}
