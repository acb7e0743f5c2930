//! The `store` interface: a plugin's SQL, run on the writer connection
//! inside the host's current transaction, under the plugin's grant.
//!
//! Statements are cached per plugin: the cache key is the SQL prefixed with
//! a comment naming the plugin, so a statement authorized for one plugin is
//! never reused by another (SQLite authorizes at prepare time only).

use std::sync::Arc;

use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::HostState;
use crate::plugin::bindings::ferry::plugin::store::{Host, Rows};
use crate::plugin::bindings::{StoreError, Value};
use crate::store::{AuthScope, Grant, SharedConn};

/// Most rows one `query` call may return.
pub const MAX_QUERY_ROWS: usize = 100_000;

/// The binding of one plugin instance to the writer connection.
pub struct StoreCtx {
    conn: Option<SharedConn>,
    scope: AuthScope,
    grant: Arc<Grant>,
    cache_prefix: String,
    /// Recent statements with their statement-cache keys (the SQL behind
    /// the plugin's comment), so a call does not build its key anew.
    keys: Vec<(String, String)>,
    active: bool,
    transient: Option<String>,
    denied: Option<String>,
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
}

impl StoreCtx {
    /// Binds `grant`'s plugin to the writer connection (`None`: a detached
    /// instance, used to validate a plugin, whose store calls all fail).
    pub fn new(conn: Option<SharedConn>, scope: AuthScope, grant: Arc<Grant>) -> Self {
        let cache_prefix = format!("/* ferry plugin {} */ ", grant.plugin.replace("*/", ""));
        Self {
            conn,
            scope,
            grant,
            cache_prefix,
            keys: Vec::new(),
            active: false,
            transient: None,
            denied: None,
        }
    }

    /// Allows store calls (the host opened a savepoint or a migration
    /// transaction for this plugin).
    pub fn begin_call(&mut self) {
        self.active = true;
        self.transient = None;
        self.denied = None;
    }

    /// Forbids store calls again; reports transient errors and denials seen
    /// during the call.
    pub fn end_call(&mut self) -> CallReport {
        self.active = false;
        CallReport {
            transient: self.transient.take(),
            denied: self.denied.take(),
        }
    }

    fn run<R>(
        &mut self,
        sql: &str,
        cached: bool,
        f: impl FnOnce(&rusqlite::Connection, &str) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let Some(conn) = self.conn.as_ref().filter(|_| self.active) else {
            return Err(StoreError::Unavailable(
                "the store can only be used while the host is running `handle` or `migrate`".into(),
            ));
        };
        let sql = if cached {
            let i = match self.keys.iter().position(|(s, _)| s == sql) {
                Some(i) => i,
                None => {
                    if self.keys.len() == KEYS {
                        self.keys.remove(0);
                    }
                    self.keys
                        .push((sql.to_owned(), format!("{}{sql}", self.cache_prefix)));
                    self.keys.len() - 1
                }
            };
            self.keys[i].1.as_str()
        } else {
            sql
        };
        let conn = conn.lock();
        let (result, denial) = self.scope.as_plugin(&self.grant, || f(&conn, sql));
        drop(conn);
        result.map_err(|e| {
            if let Some(reason) = &denial {
                self.denied.get_or_insert_with(|| reason.clone());
            }
            let err = classify(&e, denial);
            if let StoreError::Busy(msg) = &err {
                self.transient = Some(msg.clone());
            } else if crate::store::is_transient(&e) {
                self.transient = Some(e.to_string());
            }
            err
        })
    }
}

/// Maps a SQLite error (and the authorizer's reason, if it denied the
/// statement) to the WIT `store-error`.
fn classify(e: &rusqlite::Error, denial: Option<String>) -> StoreError {
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
            C::TypeMismatch | C::TooBig => StoreError::Mismatch(msg),
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

fn to_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl Host for HostState {
    fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<u64, StoreError> {
        self.store.run(&sql, true, |conn, sql| {
            let mut stmt = conn.prepare_cached(sql)?;
            let n = stmt.execute(rusqlite::params_from_iter(params.iter()))?;
            Ok(n as u64)
        })
    }

    fn query(&mut self, sql: String, params: Vec<Value>) -> Result<Rows, StoreError> {
        self.store.run(&sql, true, |conn, sql| {
            let mut stmt = conn.prepare_cached(sql)?;
            let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
            let width = columns.len();
            let mut rows = Vec::new();
            let mut cursor = stmt.query(rusqlite::params_from_iter(params.iter()))?;
            while let Some(row) = cursor.next()? {
                if rows.len() == MAX_QUERY_ROWS {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG),
                        Some(format!("a query may return at most {MAX_QUERY_ROWS} rows")),
                    ));
                }
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    values.push(to_value(row.get_ref(i)?));
                }
                rows.push(values);
            }
            Ok(Rows { columns, rows })
        })
    }

    fn execute_batch(&mut self, sql: String) -> Result<(), StoreError> {
        self.store
            .run(&sql, false, |conn, sql| conn.execute_batch(sql))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, StoreOptions};

    fn state(tables: &[&str]) -> (tempfile::TempDir, Db, HostState) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), &StoreOptions::default()).unwrap();
        let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        let grant = Arc::new(Grant::new("p", &tables));
        let ctx = StoreCtx::new(Some(db.shared()), db.scope(), grant);
        let st = HostState::new(
            "p".into(),
            ctx,
            1 << 20,
            crate::host::held::Output::new("p".into()),
        );
        (dir, db, st)
    }

    #[test]
    fn execute_query_and_batch_roundtrip_typed_values() {
        let (_d, _db, mut st) = state(&["t"]);
        st.store.begin_call();
        st.execute_batch("CREATE TABLE t(a, b, c, d, e)".into())
            .unwrap();
        let n = st
            .execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)".into(),
                vec![
                    Value::Null,
                    Value::Integer(-4),
                    Value::Real(1.5),
                    Value::Text("x".into()),
                    Value::Blob(vec![0, 1]),
                ],
            )
            .unwrap();
        assert_eq!(n, 1);
        let rows = st.query("SELECT * FROM t".into(), vec![]).unwrap();
        assert_eq!(rows.columns, ["a", "b", "c", "d", "e"]);
        assert_eq!(rows.rows.len(), 1);
        assert!(matches!(rows.rows[0][4], Value::Blob(ref b) if b == &[0, 1]));
        assert_eq!(st.store.end_call(), CallReport::default());
    }

    #[test]
    fn errors_are_typed() {
        let (_d, db, mut st) = state(&["t"]);
        db.with(|c| c.execute_batch("CREATE TABLE t(a PRIMARY KEY); CREATE TABLE secret(x)"))
            .unwrap();
        assert!(matches!(
            st.execute("INSERT INTO t VALUES (1)".into(), vec![]),
            Err(StoreError::Unavailable(_))
        ));
        st.store.begin_call();
        st.execute("INSERT INTO t VALUES (1)".into(), vec![])
            .unwrap();
        let cases = [
            ("INSERT INTO t VALUES (1)", "constraint"),
            ("SELECT * FROM secret", "denied"),
            ("INSERT INTO nope VALUES (1)", "invalid"),
            ("SELEC 1", "invalid"),
            ("INSERT INTO t VALUES (?1, ?2)", "invalid"),
            ("SELECT * FROM t", "invalid"),
        ];
        for (sql, kind) in cases {
            let e = st.execute(sql.into(), vec![]).unwrap_err();
            let got = match e {
                StoreError::Constraint(_) => "constraint",
                StoreError::Denied(m) => {
                    assert!(m.contains("plugin `p`"), "{m}");
                    "denied"
                }
                StoreError::InvalidSql(_) => "invalid",
                other => panic!("{sql}: {other:?}"),
            };
            assert_eq!(got, kind, "{sql}");
        }
        let e = st
            .execute("INSERT INTO t VALUES (?1)".into(), vec![])
            .unwrap_err();
        assert!(matches!(e, StoreError::Mismatch(_)), "{e:?}");
        let report = st.store.end_call();
        assert!(report.denied.unwrap().contains("`secret`"));
    }
}
