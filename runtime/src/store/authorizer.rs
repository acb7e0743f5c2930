//! SQLite authorizer: confines each plugin to the tables its config grants.
//!
//! One authorizer is installed on the writer connection for its whole life
//! (changing it would expire every prepared statement). It consults a shared
//! [`AuthScope`]: while the host runs its own statements the scope is
//! `Host` and everything is allowed; while a plugin's statement is prepared
//! and stepped the scope names that plugin's [`Grant`], and only reads and
//! writes of granted tables (plus the DDL to create them) get through.
//!
//! Statements are authorized when SQLite prepares them, so a cached
//! statement must never be shared between scopes: the host store keys its
//! cache by plugin (see `host::store`).

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// Prefix reserved for ferry's own tables; never granted to a plugin.
pub const INTERNAL_PREFIX: &str = "ferry_";

/// The tables one plugin may touch.
#[derive(Debug)]
pub struct Grant {
    /// Plugin name, for error messages.
    pub plugin: String,
    tables: HashSet<String>,
    read_only: bool,
}

impl Grant {
    /// A grant for `plugin` over `tables` (compared case-insensitively, as
    /// SQLite compares identifiers).
    pub fn new(plugin: &str, tables: &[String]) -> Self {
        Self {
            plugin: plugin.to_owned(),
            tables: tables.iter().map(|t| t.to_ascii_lowercase()).collect(),
            read_only: false,
        }
    }

    /// A grant for `plugin`'s query functions: reads of `tables` only.
    pub fn reader(plugin: &str, tables: &[String]) -> Self {
        Self {
            read_only: true,
            ..Self::new(plugin, tables)
        }
    }

    fn allows(&self, table: &str) -> bool {
        let lower = table.to_ascii_lowercase();
        !lower.starts_with(INTERNAL_PREFIX) && self.tables.contains(&lower)
    }
}

#[derive(Default)]
struct ScopeState {
    current: Option<Arc<Grant>>,
    denial: Option<String>,
}

/// Who is running statements on the connection right now.
#[derive(Clone, Default)]
pub struct AuthScope {
    state: Arc<Mutex<ScopeState>>,
}

impl std::fmt::Debug for AuthScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthScope").finish_non_exhaustive()
    }
}

impl AuthScope {
    /// Runs `f` with statements authorized against `grant`, and returns the
    /// reason of the first denial (if any) alongside `f`'s result.
    pub fn as_plugin<R>(&self, grant: &Arc<Grant>, f: impl FnOnce() -> R) -> (R, Option<String>) {
        {
            let mut s = self.state.lock();
            s.current = Some(Arc::clone(grant));
            s.denial = None;
        }
        let result = f();
        let mut s = self.state.lock();
        s.current = None;
        (result, s.denial.take())
    }

    /// Installs the authorizer on `conn`.
    pub fn install(&self, conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
        let state = Arc::clone(&self.state);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            let mut s = state.lock();
            let Some(grant) = s.current.clone() else {
                return Authorization::Allow;
            };
            match decide(&grant, &ctx) {
                Ok(()) => Authorization::Allow,
                Err(reason) => {
                    if s.denial.is_none() {
                        s.denial = Some(reason);
                    }
                    Authorization::Deny
                }
            }
        }))
    }
}

/// Tables SQLite itself reads and writes while running DDL.
fn is_schema_table(table: &str) -> bool {
    matches!(
        table.to_ascii_lowercase().as_str(),
        "sqlite_master" | "sqlite_schema" | "sqlite_sequence"
    )
}

/// Decides one authorizer request for a plugin; `Err` holds the reason.
fn decide(grant: &Grant, ctx: &AuthContext<'_>) -> Result<(), String> {
    let plugin = &grant.plugin;
    if let Some(db) = ctx.database_name
        && db != "main"
        && !matches!(ctx.action, AuthAction::Function { .. })
    {
        return Err(format!(
            "plugin `{plugin}` may only use the main database, not `{db}`"
        ));
    }
    let table_check = |table: &str| -> Result<(), String> {
        if is_schema_table(table) || grant.allows(table) {
            Ok(())
        } else if table.to_ascii_lowercase().starts_with(INTERNAL_PREFIX) {
            Err(format!(
                "table `{table}` is internal to ferry and not accessible to plugin `{plugin}`"
            ))
        } else {
            Err(format!(
                "table `{table}` is not granted to plugin `{plugin}` (add it to the plugin's `tables` in the config)"
            ))
        }
    };
    if grant.read_only {
        return match ctx.action {
            AuthAction::Select | AuthAction::Recursive | AuthAction::Function { .. } => Ok(()),
            AuthAction::Read { table_name, .. } => table_check(table_name),
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => Err(format!(
                "transaction control is the host's job; plugin `{plugin}` may not BEGIN, COMMIT, ROLLBACK or SAVEPOINT"
            )),
            _ => Err(format!(
                "queries are read-only: plugin `{plugin}` may only read its tables in a query function"
            )),
        };
    }
    match ctx.action {
        AuthAction::Select | AuthAction::Recursive | AuthAction::Function { .. } => Ok(()),
        AuthAction::Read { table_name, .. }
        | AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
        | AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::Analyze { table_name }
        | AuthAction::CreateIndex { table_name, .. }
        | AuthAction::DropIndex { table_name, .. }
        | AuthAction::CreateTrigger { table_name, .. }
        | AuthAction::DropTrigger { table_name, .. } => table_check(table_name),
        AuthAction::CreateView { view_name } | AuthAction::DropView { view_name } => {
            table_check(view_name)
        }
        AuthAction::Reindex { .. } => Ok(()),
        AuthAction::Pragma { pragma_name, .. } => Err(format!(
            "PRAGMA {pragma_name} is not allowed for plugin `{plugin}`"
        )),
        AuthAction::Attach { .. } => Err(format!("ATTACH is not allowed for plugin `{plugin}`")),
        AuthAction::Detach { .. } => Err(format!("DETACH is not allowed for plugin `{plugin}`")),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => Err(format!(
            "transaction control is the host's job; plugin `{plugin}` may not BEGIN, COMMIT, ROLLBACK or SAVEPOINT"
        )),
        AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropTempView { .. } => Err(format!(
            "temporary schema objects are not allowed for plugin `{plugin}`"
        )),
        AuthAction::CreateVtable { table_name, .. } | AuthAction::DropVtable { table_name, .. } => {
            Err(format!(
                "virtual table `{table_name}` is not allowed for plugin `{plugin}`"
            ))
        }
        _ => Err(format!(
            "a statement of a kind ferry does not recognise is not allowed for plugin `{plugin}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn setup() -> (Connection, AuthScope, Arc<Grant>) {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE games(id TEXT PRIMARY KEY); CREATE TABLE secrets(x); CREATE TABLE ferry_checkpoints(x);",
        )
        .unwrap();
        let scope = AuthScope::default();
        scope.install(&mut conn).unwrap();
        let grant = Arc::new(Grant::new("p", &["games".into(), "extra".into()]));
        (conn, scope, grant)
    }

    fn run(conn: &Connection, scope: &AuthScope, grant: &Arc<Grant>, sql: &str) -> Option<String> {
        let (res, denial) = scope.as_plugin(grant, || conn.execute_batch(sql));
        match res {
            Ok(()) => None,
            Err(e) => Some(denial.unwrap_or_else(|| e.to_string())),
        }
    }

    #[test]
    fn granted_tables_are_usable_including_ddl() {
        let (conn, scope, grant) = setup();
        for sql in [
            "INSERT INTO games VALUES ('a')",
            "SELECT * FROM games",
            "UPDATE games SET id = 'b'",
            "DELETE FROM games",
            "CREATE TABLE extra(a INTEGER PRIMARY KEY AUTOINCREMENT, b)",
            "CREATE INDEX extra_b ON extra(b)",
            "ALTER TABLE extra ADD COLUMN c",
            "INSERT INTO extra(b) VALUES (1)",
            "DROP TABLE extra",
        ] {
            assert_eq!(run(&conn, &scope, &grant, sql), None, "{sql}");
        }
    }

    #[test]
    fn everything_else_is_denied_with_a_reason_naming_it() {
        let (conn, scope, grant) = setup();
        let cases = [
            ("SELECT * FROM secrets", "`secrets` is not granted"),
            ("INSERT INTO secrets VALUES (1)", "`secrets` is not granted"),
            ("DELETE FROM ferry_checkpoints", "internal to ferry"),
            ("PRAGMA journal_mode", "PRAGMA journal_mode"),
            ("ATTACH ':memory:' AS other", "ATTACH"),
            ("BEGIN", "transaction control"),
            ("SAVEPOINT x", "transaction control"),
            ("CREATE TEMP TABLE t(x)", "temp"),
            ("CREATE TABLE other(x)", "`other` is not granted"),
        ];
        for (sql, expected) in cases {
            let reason = run(&conn, &scope, &grant, sql).unwrap_or_default();
            assert!(reason.contains(expected), "{sql}: {reason}");
        }
    }

    #[test]
    fn host_scope_allows_everything() {
        let (conn, _scope, _grant) = setup();
        conn.execute_batch("INSERT INTO secrets VALUES (1); PRAGMA user_version = 3;")
            .unwrap();
    }

    #[test]
    fn a_reader_grant_reads_but_never_writes() {
        let (conn, scope, _) = setup();
        let reader = Arc::new(Grant::reader("p", &["games".into()]));
        assert_eq!(run(&conn, &scope, &reader, "SELECT * FROM games"), None);
        for sql in [
            "INSERT INTO games VALUES ('x')",
            "DELETE FROM games",
            "CREATE TABLE games2(x)",
        ] {
            let reason = run(&conn, &scope, &reader, sql).unwrap_or_default();
            assert!(reason.contains("read-only"), "{sql}: {reason}");
        }
        let reason = run(&conn, &scope, &reader, "SELECT * FROM secrets").unwrap_or_default();
        assert!(reason.contains("not granted"), "{reason}");
    }

    #[test]
    fn a_grant_of_an_internal_table_is_ignored() {
        let (conn, scope, _) = setup();
        let grant = Arc::new(Grant::new("p", &["ferry_checkpoints".into()]));
        assert!(run(&conn, &scope, &grant, "SELECT * FROM ferry_checkpoints").is_some());
    }
}
