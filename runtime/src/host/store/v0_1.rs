//! The `store` interface of contract 0.1, served by the same store as 0.2:
//! its values, rows and errors are converted at the boundary (the types are
//! the same, generated twice).

use crate::bindings::v0_1::ferry::plugin::store::{Host, Rows as Rows01};
use crate::bindings::v0_1::ferry::plugin::types::{StoreError as Error01, Value as Value01};
use crate::bindings::{Rows, StoreError, Value};
use crate::host::HostState;

fn value_in(v: Value01) -> Value {
    match v {
        Value01::Null => Value::Null,
        Value01::Integer(i) => Value::Integer(i),
        Value01::Real(f) => Value::Real(f),
        Value01::Text(t) => Value::Text(t),
        Value01::Blob(b) => Value::Blob(b),
    }
}

fn value_out(v: Value) -> Value01 {
    match v {
        Value::Null => Value01::Null,
        Value::Integer(i) => Value01::Integer(i),
        Value::Real(f) => Value01::Real(f),
        Value::Text(t) => Value01::Text(t),
        Value::Blob(b) => Value01::Blob(b),
    }
}

fn error_out(e: StoreError) -> Error01 {
    match e {
        StoreError::Constraint(m) => Error01::Constraint(m),
        StoreError::Denied(m) => Error01::Denied(m),
        StoreError::InvalidSql(m) => Error01::InvalidSql(m),
        StoreError::Mismatch(m) => Error01::Mismatch(m),
        StoreError::Busy(m) => Error01::Busy(m),
        StoreError::Unavailable(m) => Error01::Unavailable(m),
        StoreError::Other(m) => Error01::Other(m),
    }
}

fn rows_out(r: Rows) -> Rows01 {
    Rows01 {
        columns: r.columns,
        rows: r
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(value_out).collect())
            .collect(),
    }
}

impl Host for HostState {
    fn execute(&mut self, sql: String, params: Vec<Value01>) -> Result<u64, Error01> {
        let params: Vec<Value> = params.into_iter().map(value_in).collect();
        self.store.execute(&sql, &params).map_err(error_out)
    }

    fn query(&mut self, sql: String, params: Vec<Value01>) -> Result<Rows01, Error01> {
        let params: Vec<Value> = params.into_iter().map(value_in).collect();
        self.store
            .query(&sql, &params)
            .map(rows_out)
            .map_err(error_out)
    }

    fn execute_batch(&mut self, sql: String) -> Result<(), Error01> {
        self.store.execute_batch(&sql).map_err(error_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_the_round_trip() {
        let all = [
            Value::Null,
            Value::Integer(-3),
            Value::Real(0.5),
            Value::Text("t".into()),
            Value::Blob(vec![1]),
        ];
        for v in all {
            let back = value_in(value_out(v.clone()));
            assert_eq!(format!("{back:?}"), format!("{v:?}"));
        }
        assert!(matches!(
            error_out(StoreError::Busy("b".into())),
            Error01::Busy(m) if m == "b"
        ));
    }
}
