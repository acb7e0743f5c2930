//! The decision on one authorizer request made while a plugin's statement
//! is prepared.
//!
//! SQLite asks about every table and column a statement touches, including
//! its own bookkeeping while it runs DDL: `CREATE TABLE` writes
//! `sqlite_master`, `DROP TABLE` of an AUTOINCREMENT table deletes its
//! `sqlite_sequence` row, `ALTER TABLE … RENAME` rewrites both. Those
//! requests come after (or, for the `sqlite_master` insert of a CREATE,
//! just before) the DDL action itself, within the same statement, so the
//! rules remember what the statement has shown so far ([`Statement`]) and
//! allow the bookkeeping only there. A plugin never reads or writes a
//! schema table directly: its reads of `sqlite_master` are rewritten to
//! its own schema view before SQLite sees them (see `store::sql_scan`).
//! SQLite refuses direct writes to `sqlite_master` itself.

use rusqlite::hooks::{AuthAction, AuthContext};

use super::{Grant, INTERNAL_PREFIX};

/// What the statement being prepared has shown so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Statement {
    ddl: Option<Ddl>,
}

impl Statement {
    /// Whether the statement creates, drops or alters a schema object.
    pub(super) fn is_ddl(&self) -> bool {
        self.ddl.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ddl {
    /// CREATE TABLE / INDEX / VIEW / TRIGGER.
    Create,
    /// DROP … or ALTER TABLE.
    Change,
}

/// A schema object a plugin statement created or altered, which the host
/// checks before it is kept (see `host::store`): a view or a trigger may
/// only read and write granted tables, and a table may only be renamed to
/// a granted name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// `CREATE VIEW name`.
    View(String),
    /// `CREATE TRIGGER name … ON table`.
    Trigger {
        /// The trigger.
        name: String,
        /// The table (or view) it is on.
        table: String,
    },
    /// `ALTER TABLE table …` (possibly a rename).
    Altered(String),
}

/// What a stretch of plugin statements showed that can only be judged
/// once they are prepared.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Views and triggers created, tables altered.
    pub(super) created: Vec<Created>,
    /// Names read without a column (`SELECT count(*) FROM x`) that are not
    /// granted tables: common table expressions and subqueries, or tables
    /// the plugin may not see. SQLite does not say which, so the host looks
    /// them up in the schema after the statement is prepared.
    pub(super) unresolved: Vec<String>,
}

/// SQLite's own tables, by what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    /// `sqlite_master` / `sqlite_schema`.
    Master,
    /// `sqlite_temp_master` / `sqlite_temp_schema`.
    TempMaster,
    /// `sqlite_sequence`: AUTOINCREMENT counters of every table.
    Sequence,
    /// Any other `sqlite_*` table (`sqlite_stat1`, …).
    Other,
}

fn special(table: &str) -> Option<Special> {
    let t = table.to_ascii_lowercase();
    match t.as_str() {
        "sqlite_master" | "sqlite_schema" => Some(Special::Master),
        "sqlite_temp_master" | "sqlite_temp_schema" => Some(Special::TempMaster),
        "sqlite_sequence" => Some(Special::Sequence),
        _ if t.starts_with("sqlite_") => Some(Special::Other),
        _ => None,
    }
}

/// Introspection pragmas a plugin may use on its own tables (as
/// `pragma_table_info('t')`, …).
const INTROSPECTION: [&str; 4] = [
    "table_info",
    "table_xinfo",
    "index_list",
    "foreign_key_list",
];

/// Decides one authorizer request for a plugin; `Err` holds the reason.
pub(super) fn decide(
    grant: &Grant,
    st: &mut Statement,
    seen: &mut Seen,
    ctx: &AuthContext<'_>,
) -> Result<(), String> {
    let p = &grant.plugin;
    let db = ctx.database_name;
    match ctx.action {
        AuthAction::Select | AuthAction::Recursive => Ok(()),
        AuthAction::Function { function_name } => function(p, function_name),
        AuthAction::Read { table_name, .. }
            if table_name.eq_ignore_ascii_case(&grant.schema_view) =>
        {
            Ok(())
        }
        AuthAction::Read {
            table_name,
            column_name,
        } => read(grant, st, seen, db, ctx.accessor, table_name, column_name),
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => pragma(grant, pragma_name, pragma_value),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => Err(format!(
            "transaction control is the host's job; plugin `{p}` may not BEGIN, COMMIT, ROLLBACK or SAVEPOINT"
        )),
        AuthAction::Attach { .. } => Err(format!("ATTACH is not allowed for plugin `{p}`")),
        AuthAction::Detach { .. } => Err(format!("DETACH is not allowed for plugin `{p}`")),
        _ if grant.read_only => Err(format!(
            "queries are read-only: plugin `{p}` may only read its tables in a query function"
        )),
        AuthAction::Insert { table_name } => write(grant, st, db, table_name, true),
        AuthAction::Update { table_name, .. } | AuthAction::Delete { table_name } => {
            write(grant, st, db, table_name, false)
        }
        AuthAction::CreateTable { table_name }
            if table_name.to_ascii_lowercase().starts_with("sqlite_stat") =>
        {
            Err(analyze(p))
        }
        AuthAction::CreateTable { table_name } => {
            main_only(p, db)?;
            owned(grant, table_name)?;
            st.ddl = Some(Ddl::Create);
            Ok(())
        }
        AuthAction::CreateIndex {
            index_name,
            table_name,
        } => {
            main_only(p, db)?;
            not_internal(p, "index", index_name)?;
            owned(grant, table_name)?;
            st.ddl = Some(Ddl::Create);
            Ok(())
        }
        AuthAction::CreateView { view_name } => {
            main_only(p, db)?;
            owned(grant, view_name)?;
            st.ddl = Some(Ddl::Create);
            seen.created.push(Created::View(view_name.to_owned()));
            Ok(())
        }
        AuthAction::CreateTrigger {
            trigger_name,
            table_name,
        } => {
            main_only(p, db)?;
            not_internal(p, "trigger", trigger_name)?;
            owned(grant, table_name)?;
            st.ddl = Some(Ddl::Create);
            seen.created.push(Created::Trigger {
                name: trigger_name.to_owned(),
                table: table_name.to_owned(),
            });
            Ok(())
        }
        AuthAction::DropTable { table_name }
        | AuthAction::DropIndex { table_name, .. }
        | AuthAction::DropTrigger { table_name, .. } => {
            main_only(p, db)?;
            owned(grant, table_name)?;
            st.ddl = Some(Ddl::Change);
            Ok(())
        }
        AuthAction::DropView { view_name } => {
            main_only(p, db)?;
            owned(grant, view_name)?;
            st.ddl = Some(Ddl::Change);
            Ok(())
        }
        AuthAction::AlterTable {
            database_name,
            table_name,
        } => {
            main_only(p, Some(database_name))?;
            owned(grant, table_name)?;
            st.ddl = Some(Ddl::Change);
            seen.created.push(Created::Altered(table_name.to_owned()));
            Ok(())
        }
        // CREATE INDEX builds its new index through a REINDEX request.
        AuthAction::Reindex { .. } if st.ddl == Some(Ddl::Create) => Ok(()),
        AuthAction::Reindex { .. } => Err(format!(
            "REINDEX is not allowed for plugin `{p}`: it rebuilds the indexes of every table, ferry's included"
        )),
        AuthAction::Analyze { .. } => Err(analyze(p)),
        AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropTempView { .. } => Err(format!(
            "temporary schema objects are not allowed for plugin `{p}`"
        )),
        AuthAction::CreateVtable { table_name, .. } | AuthAction::DropVtable { table_name, .. } => {
            Err(format!(
                "virtual table `{table_name}` is not allowed for plugin `{p}`"
            ))
        }
        _ => Err(format!(
            "a statement of a kind ferry does not recognise is not allowed for plugin `{p}`"
        )),
    }
}

fn read(
    grant: &Grant,
    st: &Statement,
    seen: &mut Seen,
    db: Option<&str>,
    accessor: Option<&str>,
    table: &str,
    column: &str,
) -> Result<(), String> {
    let p = &grant.plugin;
    match special(table) {
        // Through the plugin's own schema view (`sqlite_master` rewritten).
        Some(Special::Master)
            if accessor.is_some_and(|a| a.eq_ignore_ascii_case(&grant.schema_view)) =>
        {
            Ok(())
        }
        // SQLite's own bookkeeping of a DROP or ALTER, and the new row id
        // a CREATE reads back.
        Some(Special::Master | Special::TempMaster)
            if st.ddl == Some(Ddl::Change)
                || (st.ddl == Some(Ddl::Create) && column.eq_ignore_ascii_case("rowid")) =>
        {
            Ok(())
        }
        Some(Special::Master | Special::TempMaster) => Err(format!(
            "plugin `{p}` may not read `{table}` itself: it describes every table of the database. Name `sqlite_master` in the statement's own text (ferry answers it with the plugin's own tables) or use pragma_table_info('<table>')"
        )),
        Some(Special::Sequence) if st.ddl == Some(Ddl::Change) => Ok(()),
        Some(Special::Sequence) => Err(sequence(p)),
        Some(Special::Other) => Err(sqlite_own(p, table)),
        // An introspection pragma as a table-valued function; the PRAGMA
        // request that follows decides.
        None if table.to_ascii_lowercase().starts_with("pragma_") => Ok(()),
        None if column.is_empty() && db.is_none() && owned(grant, table).is_err() => {
            seen.unresolved.push(table.to_owned());
            Ok(())
        }
        None => {
            main_only(p, db)?;
            owned(grant, table)
        }
    }
}

fn write(
    grant: &Grant,
    st: &Statement,
    db: Option<&str>,
    table: &str,
    insert: bool,
) -> Result<(), String> {
    let p = &grant.plugin;
    match special(table) {
        // The schema rows of CREATE, DROP and ALTER (SQLite itself refuses
        // a direct write to these tables).
        Some(Special::Master | Special::TempMaster) => Ok(()),
        // A dropped or renamed AUTOINCREMENT table's counter.
        Some(Special::Sequence) if st.ddl == Some(Ddl::Change) && !insert => Ok(()),
        Some(Special::Sequence) => Err(sequence(p)),
        Some(Special::Other) => Err(sqlite_own(p, table)),
        None => {
            main_only(p, db)?;
            owned(grant, table)
        }
    }
}

fn pragma(grant: &Grant, name: &str, value: Option<&str>) -> Result<(), String> {
    let p = &grant.plugin;
    let introspection = INTROSPECTION.iter().any(|i| name.eq_ignore_ascii_case(i));
    match value {
        Some(table) if introspection => owned(grant, table),
        _ => Err(format!("PRAGMA {name} is not allowed for plugin `{p}`")),
    }
}

fn function(p: &str, name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "random" | "randomblob" => Err(format!(
            "SQL function `{name}()` is not allowed for plugin `{p}`: a projection must give the same table from the same events (WASI random inside the plugin is seeded from the event)"
        )),
        "current_date" | "current_time" | "current_timestamp" => Err(format!(
            "`{}` is not allowed for plugin `{p}`: it reads the host's clock, and a projection must give the same table from the same events (use the event's timestamp)",
            name.to_ascii_uppercase()
        )),
        "load_extension" => Err(format!(
            "SQL function `{name}()` is not allowed for plugin `{p}`"
        )),
        _ => Ok(()),
    }
}

fn analyze(p: &str) -> String {
    format!(
        "ANALYZE is not allowed for plugin `{p}`: it writes `sqlite_stat1`, which every table of the database shares"
    )
}

fn sequence(p: &str) -> String {
    format!(
        "table `sqlite_sequence` is not accessible to plugin `{p}`: it holds the AUTOINCREMENT counters of every table, ferry's included (SQLite keeps the plugin's own counters itself)"
    )
}

fn sqlite_own(p: &str, table: &str) -> String {
    format!("table `{table}` is SQLite's own and not accessible to plugin `{p}`")
}

fn main_only(p: &str, db: Option<&str>) -> Result<(), String> {
    match db {
        Some(db) if db != "main" => Err(format!(
            "plugin `{p}` may only use the main database, not `{db}`"
        )),
        _ => Ok(()),
    }
}

fn not_internal(p: &str, what: &str, name: &str) -> Result<(), String> {
    if name.to_ascii_lowercase().starts_with(INTERNAL_PREFIX) {
        Err(format!(
            "the name `{name}` is reserved for ferry; plugin `{p}` may not create a {what} with it"
        ))
    } else {
        Ok(())
    }
}

/// Whether `table` is granted; `Err` names why not.
pub(super) fn owned(grant: &Grant, table: &str) -> Result<(), String> {
    let p = &grant.plugin;
    if table.to_ascii_lowercase().starts_with(INTERNAL_PREFIX) {
        Err(format!(
            "table `{table}` is internal to ferry and not accessible to plugin `{p}`"
        ))
    } else if special(table).is_some() {
        Err(sqlite_own(p, table))
    } else if grant.allows(table) {
        Ok(())
    } else {
        Err(format!(
            "table `{table}` is not granted to plugin `{p}` (add it to the plugin's `tables` in the config)"
        ))
    }
}
