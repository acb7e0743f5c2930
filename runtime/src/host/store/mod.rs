//! The `store` interface: a plugin's SQL, run on the writer connection
//! inside the host's current transaction, under the plugin's grant.
//!
//! Every statement goes through the same steps: prepared under the
//! plugin's grant (the authorizer decides per table and column), checked
//! for what only the host can judge (`guard`: views, triggers, renames,
//! tables read without a column), then run. A statement that creates a
//! view or trigger or alters a table runs in a savepoint of its own and is
//! rolled back if what it made reaches past the grant. While it runs,
//! SQLite's progress handler interrupts it at the call's deadline, and no
//! single value may be longer than the plugin's memory cap; a query's
//! results may take at most that much host memory in all.
//!
//! Statements are cached per grant: the cache key is the SQL prefixed with
//! a comment naming the plugin and its grant, so a statement authorized for
//! one plugin (or under an older grant) is never reused by another (SQLite
//! authorizes at prepare time only). DDL statements are never cached, so
//! they are checked every time they run. The plugin's reads of
//! `sqlite_master` are rewritten to its own schema view first (see
//! `store::sql_scan`).

mod guard;
mod prepared;
mod v0_1;
mod v0_2;
mod values;

use std::sync::Arc;
use std::time::Instant;

use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::limits::Limit;
use rusqlite::{Connection, Statement};

use crate::bindings::{Rows, StoreError, Value};
use crate::store::{AuthScope, Finished, Grant, SharedConn, sql_scan};
use values::Budget;

pub use prepared::Prepared;

/// Most rows one `query` call may return.
pub const MAX_QUERY_ROWS: usize = 100_000;

/// The binding of one plugin instance to the writer connection.
pub struct StoreCtx {
    conn: Option<SharedConn>,
    scope: AuthScope,
    grant: Arc<Grant>,
    cache_prefix: String,
    /// Recent statements: the plugin's SQL, its statement-cache key (the
    /// SQL as run, behind the grant's comment), and whether it reads the
    /// schema view.
    keys: Vec<(String, String, bool)>,
    active: bool,
    deadline: Option<Instant>,
    memory_cap: usize,
    report: CallReport,
    /// Prepared statements alive in this instance.
    live_statements: Arc<std::sync::atomic::AtomicUsize>,
}

/// Statements whose cache keys a [`StoreCtx`] remembers.
const KEYS: usize = 16;

/// What the store saw during one plugin call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallReport {
    /// A host-side transient error (busy database, I/O), if one occurred.
    pub transient: Option<String>,
    /// The authorizer's reason, if a statement was denied.
    pub denied: Option<String>,
    /// A statement was interrupted at (or refused after) the call's
    /// deadline.
    pub timeout: Option<String>,
    /// A value or the query results exceeded the plugin's memory cap.
    pub memory: Option<String>,
}

impl StoreCtx {
    /// Binds `grant`'s plugin to the writer connection (`None`: a detached
    /// instance, used to validate a plugin, whose store calls all fail).
    /// `memory_cap` bounds a value and a call's query results.
    pub fn new(
        conn: Option<SharedConn>,
        scope: AuthScope,
        grant: Arc<Grant>,
        memory_cap: usize,
    ) -> Self {
        let cache_prefix = format!(
            "/* ferry plugin {} grant {} */ ",
            grant.plugin.replace("*/", ""),
            grant.id()
        );
        Self {
            conn,
            scope,
            grant,
            cache_prefix,
            keys: Vec::new(),
            active: false,
            deadline: None,
            memory_cap,
            report: CallReport::default(),
            live_statements: Arc::default(),
        }
    }

    /// Allows store calls until `deadline` (the host opened a savepoint or
    /// a migration transaction for this plugin).
    pub fn begin_call(&mut self, deadline: Option<Instant>) {
        self.active = true;
        self.deadline = deadline;
        self.report = CallReport::default();
    }

    /// Forbids store calls again; reports what went wrong during the call.
    pub fn end_call(&mut self) -> CallReport {
        self.active = false;
        self.deadline = None;
        std::mem::take(&mut self.report)
    }

    /// The statement-cache key of `sql` (rewritten to the schema view if it
    /// names `sqlite_master`), and whether it was rewritten.
    fn key(&mut self, sql: &str) -> (String, bool) {
        if let Some(i) = self.keys.iter().position(|(s, _, _)| s == sql) {
            let (_, key, schema) = &self.keys[i];
            return (key.clone(), *schema);
        }
        let rewritten = sql_scan::rewrite_schema_refs(sql, self.grant.schema_view());
        let schema = rewritten.is_some();
        let key = format!(
            "{}{}",
            self.cache_prefix,
            rewritten.as_deref().unwrap_or(sql)
        );
        if self.keys.len() == KEYS {
            self.keys.remove(0);
        }
        self.keys.push((sql.to_owned(), key.clone(), schema));
        (key, schema)
    }

    /// Runs `f` on the connection for one store call: refused outside a
    /// call or after its deadline; the longest value is capped meanwhile.
    fn with_conn<R>(
        &mut self,
        f: impl FnOnce(&mut Self, &Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let Some(shared) = self.conn.as_ref().filter(|_| self.active).map(Arc::clone) else {
            return Err(StoreError::Unavailable(
                "the store can only be used while the host is running `handle` or `migrate`".into(),
            ));
        };
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(self.timed_out());
        }
        let conn = shared.lock();
        let cap = i32::try_from(self.memory_cap).unwrap_or(i32::MAX);
        let previous = conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, cap).ok();
        let result = f(self, &conn);
        if let Some(p) = previous {
            let _ = conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, p);
        }
        result
    }

    fn timed_out(&mut self) -> StoreError {
        let msg = "deadline exceeded: the call ran out of time inside a store call".to_owned();
        self.report.timeout.get_or_insert_with(|| msg.clone());
        StoreError::Other(msg)
    }

    /// The store error for `e`, recording in the call's report what it
    /// means for the event (denied, timeout, memory, transient).
    fn fail(&mut self, e: &rusqlite::Error, denial: Option<String>) -> StoreError {
        use rusqlite::ErrorCode as C;
        if let Some(reason) = &denial {
            self.report.denied.get_or_insert_with(|| reason.clone());
        }
        match e.sqlite_error_code() {
            Some(C::OperationInterrupted) if denial.is_none() => return self.timed_out(),
            Some(C::TooBig) if denial.is_none() => {
                let msg = match e {
                    rusqlite::Error::SqliteFailure(_, Some(m)) if m.starts_with("memory cap") => {
                        m.clone()
                    }
                    _ => format!(
                        "memory cap exceeded: a value is longer than the plugin's cap of {} bytes ({e})",
                        self.memory_cap
                    ),
                };
                self.report.memory.get_or_insert_with(|| msg.clone());
                return StoreError::Other(msg);
            }
            _ => {}
        }
        let err = values::classify(e, denial);
        if let StoreError::Busy(msg) = &err {
            self.report.transient = Some(msg.clone());
        } else if crate::store::is_transient(e) {
            self.report.transient = Some(e.to_string());
        }
        err
    }

    fn deny(&mut self, reason: String) -> StoreError {
        self.report.denied.get_or_insert_with(|| reason.clone());
        StoreError::Denied(reason)
    }

    /// Makes sure the grant's schema view exists (a temporary view on this
    /// connection, created in host scope).
    fn schema_view(&mut self, conn: &Connection) -> Result<(), StoreError> {
        conn.execute_batch(&self.grant.schema_view_ddl())
            .map_err(|e| self.fail(&e, None))
    }

    /// Prepares a statement under the plugin's grant with `prepare`; `None`
    /// when there was nothing to prepare.
    fn prepare<S>(
        &mut self,
        conn: &Connection,
        prepare: impl FnOnce() -> rusqlite::Result<Option<S>>,
    ) -> Result<Option<(S, Finished)>, StoreError> {
        self.scope.enter(&self.grant, self.deadline);
        let prepared = prepare();
        let mut f = self.scope.leave();
        if f.denial.is_none() && !f.unresolved.is_empty() {
            f.denial = guard::unresolved(conn, &self.grant, &f.unresolved)
                .map_err(|e| self.fail(&e, None))?;
        }
        match prepared {
            Err(e) => Err(self.fail(&e, f.denial)),
            Ok(_) if f.denial.is_some() => Err(self.deny(f.denial.unwrap_or_default())),
            Ok(None) => Ok(None),
            Ok(Some(s)) => Ok(Some((s, f))),
        }
    }

    /// Runs a prepared statement with `step` under the plugin's grant; a
    /// statement that created views or triggers or altered a table runs in
    /// a savepoint and is rolled back unless [`guard::verify`] accepts it.
    fn run<R>(
        &mut self,
        conn: &Connection,
        stmt: &mut Statement<'_>,
        prepared: &Finished,
        step: impl FnOnce(&mut Statement<'_>) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let guarded = !prepared.created.is_empty();
        let before = if guarded {
            Some(guard::begin(conn, &prepared.created).map_err(|e| self.fail(&e, None))?)
        } else {
            None
        };
        self.scope.enter(&self.grant, self.deadline);
        let stepped = step(stmt);
        let f = self.scope.leave();
        let result = stepped.map_err(|e| self.fail(&e, f.denial));
        let Some(before) = before else {
            return result;
        };
        let verdict = match &result {
            Ok(_) => guard::verify(
                conn,
                &self.scope,
                &self.grant,
                self.deadline,
                &prepared.created,
                &before,
            )
            .map_err(|e| self.fail(&e, None))?,
            Err(_) => None,
        };
        let keep = result.is_ok() && verdict.is_none();
        guard::end(conn, keep).map_err(|e| self.fail(&e, None))?;
        match verdict {
            Some(reason) => Err(self.deny(reason)),
            None => result,
        }
    }

    /// One statement with parameters, from the statement cache.
    fn single<R>(
        &mut self,
        sql: &str,
        step: impl FnOnce(&mut Statement<'_>, usize) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let (key, schema) = self.key(sql);
        let cap = self.memory_cap;
        self.with_conn(|this, conn| {
            if schema {
                this.schema_view(conn)?;
            }
            let Some((mut stmt, prepared)) =
                this.prepare(conn, || conn.prepare_cached(&key).map(Some))?
            else {
                return Err(StoreError::InvalidSql("the statement is empty".into()));
            };
            let result = this.run(conn, &mut stmt, &prepared, |s| step(s, cap));
            if prepared.ddl {
                stmt.discard();
            }
            result
        })
    }
}

impl StoreCtx {
    /// Opens, keeps or discards the per-event savepoint (a batch call on
    /// the careful pass; see `host::batch`).
    pub fn event_savepoint(&self, op: crate::store::EventSavepoint) -> Result<(), String> {
        let Some(conn) = self.conn.as_ref() else {
            return Err("this instance has no store".into());
        };
        crate::store::event_savepoint(&conn.lock(), op).map_err(|e| e.to_string())
    }

    /// Runs one statement with parameters; the rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        self.single(sql, |stmt, _| {
            let n = stmt.execute(rusqlite::params_from_iter(params.iter()))?;
            Ok(n as u64)
        })
    }

    /// Runs one query with parameters; every row, within the memory cap.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, StoreError> {
        self.single(sql, |stmt, cap| collect_rows(stmt, params, cap))
    }

    /// Runs `;`-separated statements without parameters.
    pub fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let rewritten = sql_scan::rewrite_schema_refs(sql, self.grant.schema_view());
        self.with_conn(|this, conn| {
            if rewritten.is_some() {
                this.schema_view(conn)?;
            }
            let mut batch = rusqlite::Batch::new(conn, rewritten.as_deref().unwrap_or(sql));
            while let Some((mut stmt, prepared)) = this.prepare(conn, || batch.next())? {
                this.run(conn, &mut stmt, &prepared, |s| {
                    s.raw_query().next().map(drop)
                })?;
            }
            Ok(())
        })
    }
}

/// Every row of `stmt` run with `params`, counted against `cap` bytes.
fn collect_rows(stmt: &mut Statement<'_>, params: &[Value], cap: usize) -> rusqlite::Result<Rows> {
    let mut budget = Budget::new(cap);
    let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut cursor = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(row) = cursor.next()? {
        if rows.len() == MAX_QUERY_ROWS {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
                Some(format!("a query may return at most {MAX_QUERY_ROWS} rows")),
            ));
        }
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(budget.take(row.get_ref(i)?)?);
        }
        rows.push(values);
    }
    Ok(Rows { columns, rows })
}

#[cfg(test)]
pub(crate) mod tests;
