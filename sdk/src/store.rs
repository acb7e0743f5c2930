//! The store: the host's SQLite, inside the current transaction.

use std::sync::OnceLock;

use crate::bindings::v0_2::ferry::plugin::store as host;
use crate::{HandleError, Rows, StoreError, Value};

/// A statement the plugin prepares once per instance and then only binds
/// and runs: declare it as a `static`, run it with [`Store::run`] or
/// [`Store::select`].
///
/// ```ignore
/// static UPSERT: Sql = Sql::new("INSERT INTO t (id, n) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET n = excluded.n");
/// store.run(&UPSERT, &[id.into(), n.into()])?;
/// ```
///
/// Inside ferry (contract 0.2) the first run prepares it on the host and
/// keeps the handle; no SQL text crosses the boundary after that. A new
/// plugin version, or an instance restarted after a trap, starts with
/// nothing prepared.
pub struct Sql {
    text: &'static str,
    prepared: OnceLock<host::Statement>,
}

impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sql").field(&self.text).finish()
    }
}

impl Sql {
    /// A statement with this SQL (one statement, no DDL).
    pub const fn new(text: &'static str) -> Self {
        Self {
            text,
            prepared: OnceLock::new(),
        }
    }

    /// Its SQL text.
    pub fn text(&self) -> &'static str {
        self.text
    }

    /// The host's prepared statement, prepared on first use.
    fn host(&self) -> Result<&host::Statement, StoreError> {
        if let Some(s) = self.prepared.get() {
            return Ok(s);
        }
        let s = host::prepare(self.text)?;
        Ok(self.prepared.get_or_init(|| s))
    }
}

/// What a projection can do with its tables. [`HostStore`] is the real one
/// inside ferry; `native::SqliteStore` runs the same logic natively.
pub trait Store {
    /// Runs one statement; returns the rows changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs one query; returns every row.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, StoreError>;
    /// Runs several `;`-separated statements without parameters.
    fn execute_batch(&self, sql: &str) -> Result<(), StoreError>;
    /// Runs a prepared statement; returns the rows changed. By default the
    /// same as [`Store::execute`] with its text.
    fn run(&self, sql: &Sql, params: &[Value]) -> Result<u64, StoreError> {
        self.execute(sql.text(), params)
    }
    /// Runs a prepared query; returns every row. By default the same as
    /// [`Store::query`] with its text.
    fn select(&self, sql: &Sql, params: &[Value]) -> Result<Rows, StoreError> {
        self.query(sql.text(), params)
    }
}

/// Conveniences on top of [`Store`].
pub trait StoreExt: Store {
    /// The first row of a query, if any.
    fn query_row(&self, sql: &str, params: &[Value]) -> Result<Option<Vec<Value>>, StoreError> {
        Ok(self.query(sql, params)?.rows.into_iter().next())
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// The store the ferry host provides to the plugin (contract 0.2).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostStore;

impl Store for HostStore {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        host::execute(sql, params)
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, StoreError> {
        host::query(sql, params)
    }

    fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        host::execute_batch(sql)
    }

    fn run(&self, sql: &Sql, params: &[Value]) -> Result<u64, StoreError> {
        sql.host()?.execute(params)
    }

    fn select(&self, sql: &Sql, params: &[Value]) -> Result<Rows, StoreError> {
        sql.host()?.query(params)
    }
}

/// A one-line description of a store error: its kind and SQLite's message.
pub fn describe(e: &StoreError) -> String {
    let (kind, msg) = match e {
        StoreError::Constraint(m) => ("constraint violated", m),
        StoreError::Denied(m) => ("denied", m),
        StoreError::InvalidSql(m) => ("invalid SQL", m),
        StoreError::Mismatch(m) => ("type mismatch", m),
        StoreError::Busy(m) => ("database busy", m),
        StoreError::Unavailable(m) => ("store unavailable", m),
        StoreError::Other(m) => ("SQLite error", m),
    };
    format!("{kind}: {msg}")
}

/// A busy database is worth retrying; every other store error is not.
impl From<StoreError> for HandleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy(_) => HandleError::Retryable(describe(&e)),
            _ => HandleError::Permanent(describe(&e)),
        }
    }
}
