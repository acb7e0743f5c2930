//! The `store` interface of contract 0.2: one-shot statements and
//! prepared `statement` resources, kept in the instance's resource table.

use wasmtime::component::Resource;

use crate::bindings::v0_2::ferry::plugin::store::{Host, HostStatement, Statement};
use crate::bindings::{Rows, StoreError, Value};
use crate::host::HostState;

use super::Prepared;

/// The table entry behind a guest's statement handle.
fn entry(handle: &Resource<Statement>) -> Resource<Prepared> {
    Resource::new_borrow(handle.rep())
}

impl Host for HostState {
    fn prepare(&mut self, sql: String) -> Result<Resource<Statement>, StoreError> {
        let prepared = self.store.prepare_statement(&sql)?;
        let entry = self
            .table
            .push(prepared)
            .map_err(|e| StoreError::Other(format!("keeping the statement failed: {e}")))?;
        Ok(Resource::new_own(entry.rep()))
    }

    fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<u64, StoreError> {
        self.store.execute(&sql, &params)
    }

    fn query(&mut self, sql: String, params: Vec<Value>) -> Result<Rows, StoreError> {
        self.store.query(&sql, &params)
    }

    fn execute_batch(&mut self, sql: String) -> Result<(), StoreError> {
        self.store.execute_batch(&sql)
    }
}

impl HostState {
    /// Runs `f` with the statement behind `handle` and the store.
    fn with_statement<R>(
        &mut self,
        handle: &Resource<Statement>,
        f: impl FnOnce(&mut super::StoreCtx, &mut Prepared) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let prepared = self
            .table
            .get_mut(&entry(handle))
            .map_err(|e| StoreError::Unavailable(format!("no such statement: {e}")))?;
        f(&mut self.store, prepared)
    }
}

impl HostStatement for HostState {
    fn execute(
        &mut self,
        handle: Resource<Statement>,
        params: Vec<Value>,
    ) -> Result<u64, StoreError> {
        self.with_statement(&handle, |store, p| store.execute_statement(p, &params))
    }

    fn query(
        &mut self,
        handle: Resource<Statement>,
        params: Vec<Value>,
    ) -> Result<Rows, StoreError> {
        self.with_statement(&handle, |store, p| store.query_statement(p, &params))
    }

    fn drop(&mut self, handle: Resource<Statement>) -> wasmtime::Result<()> {
        let owned: Resource<Prepared> = Resource::new_own(handle.rep());
        self.table.delete(owned)?;
        Ok(())
    }
}
