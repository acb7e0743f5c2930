//! SQL values across the boundary: WIT `value`s as SQLite parameters,
//! result columns as WIT `value`s (counted against the call's memory
//! budget), and SQLite errors as the WIT `store-error`.

use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::bindings::{StoreError, Value};

/// Bytes one result value costs besides its text or blob (the WIT value and
/// its place in the row).
const VALUE_OVERHEAD: usize = 32;

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// Host memory one call's query results may take: the plugin's memory cap.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    left: usize,
    cap: usize,
}

impl Budget {
    pub(super) fn new(cap: usize) -> Self {
        Self { left: cap, cap }
    }

    /// Converts `v`, unless it does not fit in what is left of the budget
    /// (then an SQLITE_TOOBIG error naming the cap, which the host reports
    /// as a memory failure).
    pub(super) fn take(&mut self, v: ValueRef<'_>) -> rusqlite::Result<Value> {
        let size = VALUE_OVERHEAD
            + match v {
                ValueRef::Text(t) | ValueRef::Blob(t) => t.len(),
                _ => 0,
            };
        if size > self.left {
            return Err(too_big(format!(
                "memory cap exceeded: the query's results need more than {} bytes of host memory, the plugin's cap",
                self.cap
            )));
        }
        self.left -= size;
        Ok(match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
}

/// An SQLITE_TOOBIG error with `message`.
pub(super) fn too_big(message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG),
        Some(message),
    )
}

/// Maps a SQLite error (and the authorizer's reason, if it denied the
/// statement) to the WIT `store-error`.
pub(super) fn classify(e: &rusqlite::Error, denial: Option<String>) -> StoreError {
    use rusqlite::Error as E;
    use rusqlite::ErrorCode as C;
    if let Some(reason) = denial {
        return StoreError::Denied(reason);
    }
    let msg = e.to_string();
    match e {
        E::SqliteFailure(f, _) => match f.code {
            C::ConstraintViolation => StoreError::Constraint(msg),
            C::DatabaseBusy | C::DatabaseLocked => StoreError::Busy(msg),
            C::AuthorizationForStatementDenied | C::PermissionDenied => StoreError::Denied(msg),
            C::TypeMismatch => StoreError::Mismatch(msg),
            C::Unknown => StoreError::InvalidSql(msg),
            _ => StoreError::Other(msg),
        },
        E::SqlInputError { .. } | E::MultipleStatement => StoreError::InvalidSql(msg),
        E::ExecuteReturnedResults => StoreError::InvalidSql(
            "the statement returns rows: use `query` instead of `execute`".into(),
        ),
        E::InvalidParameterCount(..)
        | E::InvalidParameterName(_)
        | E::InvalidColumnType(..)
        | E::ToSqlConversionFailure(_)
        | E::IntegralValueOutOfRange(..) => StoreError::Mismatch(msg),
        _ => StoreError::Other(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_every_value_and_refuses_past_the_cap() {
        let mut b = Budget::new(200);
        assert!(matches!(
            b.take(ValueRef::Integer(1)),
            Ok(Value::Integer(1))
        ));
        assert!(b.take(ValueRef::Text(&[b'x'; 60])).is_ok());
        assert!(b.take(ValueRef::Blob(&[0; 10])).is_ok());
        let e = b.take(ValueRef::Blob(&[0; 10])).unwrap_err();
        assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::TooBig));
        assert!(e.to_string().contains("200 bytes"), "{e}");
    }
}
