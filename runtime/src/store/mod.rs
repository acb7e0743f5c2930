//! SQLite storage: the writer connection, batch transactions with a
//! savepoint per event, checkpoints, dead letters and the plugin registry.
//!
//! There is exactly one writer connection. It is shared (behind a mutex)
//! between the pipeline, which drives transactions and writes checkpoints,
//! and the plugin host, whose `store` import runs the plugin's statements
//! inside the same transaction. All of it runs on the pipeline's own thread,
//! never on an async reactor.

pub mod authorizer;
pub mod checkpoint;
pub mod checkpointer;
mod connection;
pub mod dead_letter;
pub mod fence;
pub mod history;
pub mod outbox;
pub mod rebuild;
pub mod registry;
pub mod schema;
pub mod sql_scan;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;

pub use authorizer::{AuthScope, Created, Finished, Grant};
pub use checkpoint::Checkpoint;
pub use connection::{open_read_only, open_reader, open_writer};
pub use dead_letter::{DeadLetter, NewDeadLetter};

/// The writer connection, shared by the pipeline and the plugin host.
pub type SharedConn = Arc<Mutex<Connection>>;

/// Errors at the store's edge.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or prepared.
    #[error("cannot open the SQLite database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The database was written by a newer ferry.
    #[error(
        "the SQLite database {path} has ferry schema version {found}, newer than this ferry's {supported}"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Schema version found in the file.
        found: i64,
        /// Newest schema version this build knows.
        supported: i64,
    },
    /// A statement failed.
    #[error("SQLite error while {what}: {source}")]
    Sql {
        /// What the store was doing.
        what: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// Whether retrying later may succeed (busy or locked database, I/O).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Sql { source, .. } | StoreError::Open { source, .. } => {
                is_transient(source)
            }
            StoreError::TooNew { .. } => false,
        }
    }
}

/// Whether a SQLite error is worth retrying.
pub fn is_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(DatabaseBusy | DatabaseLocked | SystemIoFailure | DiskFull | OutOfMemory)
    )
}

pub(crate) trait SqlContext<T> {
    fn during(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn during(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sql { what, source })
    }
}

pub use crate::config::Synchronous;

/// What to do with the per-event savepoint (`ferry_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSavepoint {
    /// Open it, before an event is handled.
    Open,
    /// Release it, keeping the event's writes.
    Keep,
    /// Roll back to it and release it, discarding the event's writes.
    Discard,
}

/// Opens, keeps or discards the per-event savepoint on `conn` (the
/// pipeline does it between events; the plugin host inside a batch call).
pub fn event_savepoint(conn: &Connection, op: EventSavepoint) -> Result<(), StoreError> {
    let steps: &[(&str, &'static str)] = match op {
        EventSavepoint::Open => &[("SAVEPOINT ferry_event", "opening an event savepoint")],
        EventSavepoint::Keep => &[("RELEASE ferry_event", "releasing an event savepoint")],
        EventSavepoint::Discard => &[
            ("ROLLBACK TO ferry_event", "rolling back an event savepoint"),
            ("RELEASE ferry_event", "releasing an event savepoint"),
        ],
    };
    for (sql, what) in steps {
        let mut stmt = conn.prepare_cached(sql).during(what)?;
        stmt.raw_execute().during(what)?;
    }
    Ok(())
}

/// Options for opening the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Commit durability.
    pub synchronous: Synchronous,
    /// How long a statement waits on a locked database before failing.
    pub busy_timeout_ms: u64,
    /// SQLite page cache size in KiB.
    pub cache_size_kib: u64,
    /// Checkpoint the write-ahead log on a background thread every this
    /// many milliseconds (0: inline, SQLite's default, every 1000 pages).
    pub checkpoint_interval_ms: u64,
}

impl From<&crate::config::StoreConfig> for StoreOptions {
    fn from(c: &crate::config::StoreConfig) -> Self {
        Self {
            synchronous: c.synchronous,
            busy_timeout_ms: c.busy_timeout_ms,
            cache_size_kib: c.cache_size_kib,
            checkpoint_interval_ms: c.checkpoint_interval_ms,
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            busy_timeout_ms: 5_000,
            cache_size_kib: 65_536,
            checkpoint_interval_ms: 100,
        }
    }
}

/// The store: one writer connection plus its authorizer scope.
pub struct Db {
    conn: SharedConn,
    scope: AuthScope,
    path: PathBuf,
    in_tx: bool,
    _checkpointer: Option<checkpointer::Checkpointer>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (creating if needed) the database at `path`, switches it to WAL,
    /// creates ferry's tables and installs the plugin authorizer.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = connection::open_writer(path, options)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        if version > schema::SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found: version,
                supported: schema::SCHEMA_VERSION,
            });
        }
        conn.execute_batch(schema::DDL).map_err(open_err)?;
        conn.execute_batch(&format!("PRAGMA user_version = {}", schema::SCHEMA_VERSION))
            .map_err(open_err)?;
        conn.set_prepared_statement_cache_capacity(512);
        let scope = AuthScope::default();
        scope.install(&mut conn).map_err(open_err)?;
        let checkpointer = (options.checkpoint_interval_ms > 0)
            .then(|| {
                checkpointer::Checkpointer::start(
                    path,
                    std::time::Duration::from_millis(options.checkpoint_interval_ms),
                )
            })
            .transpose()?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            scope,
            path: path.to_owned(),
            in_tx: false,
            _checkpointer: checkpointer,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The shared writer connection (for the plugin host's `store` import).
    pub fn shared(&self) -> SharedConn {
        Arc::clone(&self.conn)
    }

    /// The authorizer scope of the writer connection.
    pub fn scope(&self) -> AuthScope {
        self.scope.clone()
    }

    /// Runs `f` on the connection in host scope.
    pub fn with<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        f(&self.conn.lock())
    }

    /// Whether a batch transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.in_tx
    }

    /// Opens the batch transaction (`BEGIN IMMEDIATE`: take the write lock
    /// now rather than fail half-way).
    pub fn begin(&mut self) -> Result<(), StoreError> {
        self.exec("BEGIN IMMEDIATE", "beginning a transaction")?;
        self.in_tx = true;
        Ok(())
    }

    /// Commits the batch transaction.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        let r = self.exec("COMMIT", "committing a transaction");
        if r.is_ok() {
            self.in_tx = false;
        } else {
            self.rollback();
        }
        r
    }

    /// Rolls the batch transaction back (best effort: a failed rollback
    /// means SQLite already rolled back).
    pub fn rollback(&mut self) {
        if self.in_tx {
            let conn = self.conn.lock();
            if !conn.is_autocommit()
                && let Err(e) = conn.execute_batch("ROLLBACK")
            {
                {
                    tracing::warn!(error = %e, "Rolling back a transaction failed; SQLite had already ended it.");
                }
            }
            self.in_tx = false;
        }
    }

    /// Opens the per-event savepoint.
    pub fn savepoint(&self) -> Result<(), StoreError> {
        event_savepoint(&self.conn.lock(), EventSavepoint::Open)
    }

    /// Keeps the event's writes.
    pub fn release(&self) -> Result<(), StoreError> {
        event_savepoint(&self.conn.lock(), EventSavepoint::Keep)
    }

    /// Discards the event's writes.
    pub fn rollback_event(&self) -> Result<(), StoreError> {
        event_savepoint(&self.conn.lock(), EventSavepoint::Discard)
    }

    fn exec(&self, sql: &str, what: &'static str) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(sql).during(what)?;
        stmt.raw_execute().during(what)?;
        Ok(())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.rollback();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_schema_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a/b.db"), &StoreOptions::default()).unwrap();
        let mode: String = db
            .with(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(mode, "wal");
        let n: i64 = db
            .with(|c| {
                c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name LIKE 'ferry_%' AND type = 'table'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(n, 7);
    }

    #[test]
    fn savepoint_rolls_back_one_event_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("t.db"), &StoreOptions::default()).unwrap();
        db.with(|c| c.execute_batch("CREATE TABLE t(x)")).unwrap();
        db.begin().unwrap();
        db.savepoint().unwrap();
        db.with(|c| c.execute("INSERT INTO t VALUES (1)", []))
            .unwrap();
        db.release().unwrap();
        db.savepoint().unwrap();
        db.with(|c| c.execute("INSERT INTO t VALUES (2)", []))
            .unwrap();
        db.rollback_event().unwrap();
        db.commit().unwrap();
        let xs: Vec<i64> = db
            .with(|c| {
                let mut s = c.prepare("SELECT x FROM t")?;
                s.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()
            })
            .unwrap();
        assert_eq!(xs, vec![1]);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let err = Db::open(&path, &StoreOptions::default()).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
