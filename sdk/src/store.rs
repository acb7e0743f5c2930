//! The store: the host's SQLite, inside the current transaction.

use crate::bindings::ferry::plugin::store as host;
use crate::{HandleError, Rows, StoreError, Value};

/// What a projection can do with its tables. [`HostStore`] is the real one
/// inside ferry; `native::SqliteStore` runs the same logic natively.
pub trait Store {
    /// Runs one statement; returns the rows changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs one query; returns every row.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, StoreError>;
    /// Runs several `;`-separated statements without parameters.
    fn execute_batch(&self, sql: &str) -> Result<(), StoreError>;
}

/// Conveniences on top of [`Store`].
pub trait StoreExt: Store {
    /// The first row of a query, if any.
    fn query_row(&self, sql: &str, params: &[Value]) -> Result<Option<Vec<Value>>, StoreError> {
        Ok(self.query(sql, params)?.rows.into_iter().next())
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// The store the ferry host provides to the plugin.
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
