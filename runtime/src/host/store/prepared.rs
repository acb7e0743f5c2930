//! Prepared statements (contract 0.2 `statement`): SQL a plugin prepares
//! once under its grant and runs many times with new parameters, with no
//! SQL text crossing the boundary and no statement cache searched per run.
//!
//! A [`Prepared`] lives in the resource table of the instance that
//! prepared it, so it is finalized with that instance: a swap, a rollback
//! or a trap (which replace the instance's store) never lets a statement
//! of one version run under another. Statements that change the schema are
//! refused here (they must go through the view and trigger checks of
//! `execute` every time they run).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::Statement;

use super::{StoreCtx, collect_rows};
use crate::bindings::{Rows, StoreError, Value};
use crate::store::{Finished, SharedConn, sql_scan};

/// One prepared statement of a plugin instance.
pub struct Prepared {
    /// The statement. Declared before `conn` so that it is finalized while
    /// the connection it points into is certainly alive; `None` only while
    /// it is being dropped.
    stmt: Option<Statement<'static>>,
    /// The connection the statement belongs to (kept alive by this `Arc`;
    /// the statement is only used and finalized while it is locked).
    conn: SharedConn,
    /// Whether it reads the grant's schema view (which must exist when it
    /// runs).
    schema: bool,
    /// The instance's count of live statements.
    live: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

// SAFETY: a `Prepared` may move to another thread with its instance; the
// statement and the connection it points into are only touched while that
// connection's mutex is held (`run_statement`, `drop`), so no two threads
// use them at once.
#[expect(
    unsafe_code,
    reason = "the statement is used only under its connection's mutex"
)]
unsafe impl Send for Prepared {}

impl Drop for Prepared {
    fn drop(&mut self) {
        // Finalizing reports errors through the connection: hold its lock.
        let _conn = self.conn.lock();
        drop(self.stmt.take());
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl StoreCtx {
    /// Prepares `sql` under the plugin's grant as a statement it keeps.
    pub fn prepare_statement(&mut self, sql: &str) -> Result<Prepared, StoreError> {
        let rewritten = sql_scan::rewrite_schema_refs(sql, self.grant.schema_view());
        let schema = rewritten.is_some();
        let live = Arc::clone(&self.live_statements);
        self.with_conn(|this, conn| {
            if schema {
                this.schema_view(conn)?;
            }
            let text = rewritten.as_deref().unwrap_or(sql);
            let Some((stmt, finished)) = this.prepare(conn, || conn.prepare(text).map(Some))?
            else {
                return Err(StoreError::InvalidSql("the statement is empty".into()));
            };
            if finished.ddl || !finished.created.is_empty() {
                return Err(StoreError::InvalidSql(
                    "a prepared statement cannot change the schema: run DDL with `execute` or `execute-batch`"
                        .into(),
                ));
            }
            let shared = this.conn.as_ref().map(Arc::clone).ok_or_else(|| {
                StoreError::Unavailable("this instance has no store".into())
            })?;
            // SAFETY: the statement borrows the `Connection` inside
            // `shared`'s mutex, which lives on the heap as long as any
            // clone of the `Arc` does; `Prepared` keeps one and drops the
            // statement first. The connection is never replaced inside the
            // mutex, and the statement is only stepped, reset and
            // finalized while the mutex is held (`run_statement`, `drop`),
            // so it is never used concurrently with other users of the
            // connection.
            #[expect(
                unsafe_code,
                reason = "a statement a plugin keeps across calls outlives the lock guard it was prepared under"
            )]
            let stmt = unsafe { std::mem::transmute::<Statement<'_>, Statement<'static>>(stmt) };
            live.fetch_add(1, Ordering::Relaxed);
            Ok(Prepared {
                stmt: Some(stmt),
                conn: shared,
                schema,
                live,
            })
        })
    }

    /// Runs a prepared statement with `params` through `step`, under the
    /// plugin's grant (SQLite prepares it again under that grant if the
    /// schema changed) and within the call's deadline and memory cap.
    fn run_statement<R>(
        &mut self,
        prepared: &mut Prepared,
        step: impl FnOnce(&mut Statement<'_>, usize) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let same = self
            .conn
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &prepared.conn));
        if !same {
            return Err(StoreError::Unavailable(
                "the statement belongs to another store".into(),
            ));
        }
        let cap = self.memory_cap;
        let schema = prepared.schema;
        self.with_conn(|this, conn| {
            if schema {
                this.schema_view(conn)?;
            }
            let Some(stmt) = prepared.stmt.as_mut() else {
                return Err(StoreError::Unavailable(
                    "the statement was finalized".into(),
                ));
            };
            this.run(conn, stmt, &Finished::default(), |s| step(s, cap))
        })
    }

    /// Runs a prepared statement; the rows it changed.
    pub fn execute_statement(
        &mut self,
        prepared: &mut Prepared,
        params: &[Value],
    ) -> Result<u64, StoreError> {
        self.run_statement(prepared, |stmt, _| {
            let n = stmt.execute(rusqlite::params_from_iter(params.iter()))?;
            Ok(n as u64)
        })
    }

    /// Runs a prepared query; every row, within the memory cap.
    pub fn query_statement(
        &mut self,
        prepared: &mut Prepared,
        params: &[Value],
    ) -> Result<Rows, StoreError> {
        self.run_statement(prepared, |stmt, cap| collect_rows(stmt, params, cap))
    }

    /// Statements this instance holds now.
    pub fn live_statements(&self) -> usize {
        self.live_statements.load(Ordering::Relaxed)
    }
}
