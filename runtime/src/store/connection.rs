//! Opening connections to a ferry database: the writer's pragmas (WAL,
//! durability, cache, busy timeout) in one place, for the pipeline's writer
//! and the outbox publisher alike, and read-only connections for readers.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};

use super::{AuthScope, SharedConn, StoreError, StoreOptions, Synchronous, checkpointer};

/// A read-write connection to `path` (created, with its directory, if
/// missing) with ferry's pragmas: WAL, `options`' durability, page cache
/// and busy timeout, foreign keys, checkpointing as `options` says.
pub fn open_writer(path: &Path, options: &StoreOptions) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            open_err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create directory {}: {e}", dir.display())),
            ))
        })?;
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    let sync = match options.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.busy_timeout(std::time::Duration::from_millis(options.busy_timeout_ms))
        .map_err(open_err)?;
    let autocheckpoint = if options.checkpoint_interval_ms > 0 {
        checkpointer::SAFETY_NET_PAGES
    } else {
        1_000
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA cache_size = -{};
             PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = {autocheckpoint};
             PRAGMA journal_size_limit = 67108864;",
        options.cache_size_kib
    ))
    .map_err(open_err)?;
    Ok(conn)
}

/// Opens a read-only connection to a ferry database (for the CLI's
/// inspection commands and readers).
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })
}

/// Opens a read-only connection for plugin query functions: SQLite's
/// authorizer installed (the caller scopes each call to a reader grant),
/// a busy timeout, and a small statement cache.
pub fn open_reader(
    path: &Path,
    busy_timeout_ms: u64,
) -> Result<(SharedConn, AuthScope), StoreError> {
    let mut conn = open_read_only(path)?;
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    conn.busy_timeout(std::time::Duration::from_millis(busy_timeout_ms))
        .map_err(open_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    let scope = AuthScope::default();
    scope.install(&mut conn).map_err(open_err)?;
    Ok((Arc::new(Mutex::new(conn)), scope))
}
