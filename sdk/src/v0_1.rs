//! Contract 0.1, served by the same projection code: the host's 0.1
//! `store` behind [`Store`], its event record as an [`Event`] view, and the
//! outcome in 0.1 terms. Used by [`crate::export_projection_v0_1!`].

use crate::bindings::v0_1::exports::ferry::plugin::handler::{
    HandleError as HandleError01, Handled as Handled01,
};
use crate::bindings::v0_1::ferry::plugin::store as host;
use crate::bindings::v0_1::ferry::plugin::types::{
    Event as Event01, StoreError as StoreError01, Value as Value01,
};
use crate::event::Headers;
use crate::{Event, HandleError, Handled, Header, Projection, Rows, Store, StoreError, Value};

fn value_out(v: &Value) -> Value01 {
    match v {
        Value::Null => Value01::Null,
        Value::Integer(i) => Value01::Integer(*i),
        Value::Real(f) => Value01::Real(*f),
        Value::Text(t) => Value01::Text(t.clone()),
        Value::Blob(b) => Value01::Blob(b.clone()),
    }
}

fn value_in(v: Value01) -> Value {
    match v {
        Value01::Null => Value::Null,
        Value01::Integer(i) => Value::Integer(i),
        Value01::Real(f) => Value::Real(f),
        Value01::Text(t) => Value::Text(t),
        Value01::Blob(b) => Value::Blob(b),
    }
}

fn error_in(e: StoreError01) -> StoreError {
    match e {
        StoreError01::Constraint(m) => StoreError::Constraint(m),
        StoreError01::Denied(m) => StoreError::Denied(m),
        StoreError01::InvalidSql(m) => StoreError::InvalidSql(m),
        StoreError01::Mismatch(m) => StoreError::Mismatch(m),
        StoreError01::Busy(m) => StoreError::Busy(m),
        StoreError01::Unavailable(m) => StoreError::Unavailable(m),
        StoreError01::Other(m) => StoreError::Other(m),
    }
}

/// The store of a 0.1 plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostStore;

impl Store for HostStore {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let params: Vec<Value01> = params.iter().map(value_out).collect();
        host::execute(sql, &params).map_err(error_in)
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, StoreError> {
        let params: Vec<Value01> = params.iter().map(value_out).collect();
        let rows = host::query(sql, &params).map_err(error_in)?;
        Ok(Rows {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(value_in).collect())
                .collect(),
        })
    }

    fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        host::execute_batch(sql).map_err(error_in)
    }
}

/// Runs `P` on a 0.1 event record.
pub fn handle<P: Projection>(event: &Event01) -> Result<Handled01, HandleError01> {
    let headers: Vec<Header> = event
        .headers
        .iter()
        .map(|h| Header {
            name: h.name.clone(),
            value: h.value.clone(),
        })
        .collect();
    let view = Event {
        source: &event.source,
        partition: event.partition,
        offset: event.offset,
        key: event.key.as_deref(),
        event_type: &event.event_type,
        payload: &event.payload,
        timestamp_ms: event.timestamp_ms,
        headers: Headers::Listed(&headers),
    };
    match P::handle(&HostStore, &view) {
        Ok(Handled::Applied) => Ok(Handled01::Applied),
        Ok(Handled::Skipped(r)) => Ok(Handled01::Skipped(r)),
        Err(HandleError::Retryable(m)) => Err(HandleError01::Retryable(m)),
        Err(HandleError::Permanent(m)) => Err(HandleError01::Permanent(m)),
    }
}
