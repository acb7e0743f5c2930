//! What the authorizer cannot decide while a plugin's statement is being
//! prepared, checked by the host around it:
//!
//! - a view or trigger may only be created if everything it reads and
//!   writes is granted: each is compiled once more under the plugin's
//!   grant (a `SELECT` from the view; an `INSERT`, `UPDATE` and `DELETE` on
//!   the trigger's table) before the statement's savepoint is released;
//! - `ALTER TABLE … RENAME TO` may only give a table a granted name;
//! - a table read without a column (`SELECT count(*) FROM x`) is allowed
//!   when `x` is a common table expression or a subquery, and denied when
//!   it names a table of the database the plugin is not granted.
//!
//! A DDL statement that creates a view or trigger or alters a table runs in
//! a savepoint of its own, so a refused object is rolled back whole.

use std::time::Instant;

use rusqlite::{Connection, OptionalExtension};

use crate::store::{AuthScope, Created, Grant};

/// Where the tables an ALTER statement touches were before it ran.
#[derive(Debug, Default)]
pub(super) struct Before {
    roots: Vec<(String, i64)>,
}

const SAVEPOINT: &str = "SAVEPOINT ferry_plugin_ddl";

/// Opens the statement's savepoint and notes where altered tables are.
pub(super) fn begin(conn: &Connection, created: &[Created]) -> rusqlite::Result<Before> {
    conn.execute_batch(SAVEPOINT)?;
    let mut before = Before::default();
    for c in created {
        if let Created::Altered(table) = c {
            let root: Option<i64> = conn
                .query_row(
                    "SELECT rootpage FROM main.sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                    [table],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(root) = root {
                before.roots.push((table.clone(), root));
            }
        }
    }
    Ok(before)
}

/// Keeps (`keep`) or rolls back what the statement did, and closes its
/// savepoint.
pub(super) fn end(conn: &Connection, keep: bool) -> rusqlite::Result<()> {
    if !keep {
        conn.execute_batch("ROLLBACK TO ferry_plugin_ddl")?;
    }
    conn.execute_batch("RELEASE ferry_plugin_ddl")
}

/// Why what the statement created may not stay, if so.
pub(super) fn verify(
    conn: &Connection,
    scope: &AuthScope,
    grant: &std::sync::Arc<Grant>,
    deadline: Option<Instant>,
    created: &[Created],
    before: &Before,
) -> rusqlite::Result<Option<String>> {
    let p = &grant.plugin;
    for c in created {
        let verdict = match c {
            Created::View(view) => probe(
                conn,
                scope,
                grant,
                deadline,
                &format!("SELECT * FROM {}", quote(view)),
            )?
            .map(|why| format!("view `{view}` reads what plugin `{p}` may not: {why}")),
            Created::Trigger { name, table } => {
                trigger(conn, scope, grant, deadline, table)?.map(|why| {
                    format!("trigger `{name}` on `{table}` does what plugin `{p}` may not: {why}")
                })
            }
            Created::Altered(table) => renamed(conn, grant, table, before)?,
        };
        if verdict.is_some() {
            return Ok(verdict);
        }
    }
    Ok(None)
}

fn trigger(
    conn: &Connection,
    scope: &AuthScope,
    grant: &std::sync::Arc<Grant>,
    deadline: Option<Instant>,
    table: &str,
) -> rusqlite::Result<Option<String>> {
    let t = quote(table);
    let columns: Vec<String> = {
        let mut s = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
        s.query_map([table], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut probes = vec![
        format!("INSERT INTO {t} DEFAULT VALUES"),
        format!("DELETE FROM {t}"),
    ];
    if !columns.is_empty() {
        let set: Vec<String> = columns
            .iter()
            .map(|c| format!("{0} = {0}", quote(c)))
            .collect();
        probes.push(format!("UPDATE {t} SET {}", set.join(", ")));
    }
    for sql in probes {
        if let Some(why) = probe(conn, scope, grant, deadline, &sql)? {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

fn renamed(
    conn: &Connection,
    grant: &Grant,
    table: &str,
    before: &Before,
) -> rusqlite::Result<Option<String>> {
    let Some((_, root)) = before.roots.iter().find(|(t, _)| t == table) else {
        return Ok(None);
    };
    let now: Option<String> = conn
        .query_row(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' AND rootpage = ?1",
            [root],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match now {
        Some(new) if !new.eq_ignore_ascii_case(table) => grant
            .check(&new)
            .err()
            .map(|why| format!("renaming table `{table}` to `{new}` is not allowed: {why}")),
        _ => None,
    })
}

/// Prepares (never runs) `sql` under the plugin's grant; the denial, if
/// any.
fn probe(
    conn: &Connection,
    scope: &AuthScope,
    grant: &std::sync::Arc<Grant>,
    deadline: Option<Instant>,
    sql: &str,
) -> rusqlite::Result<Option<String>> {
    scope.enter(grant, deadline);
    let prepared = conn.prepare(sql).map(drop);
    let f = scope.leave();
    if let Some(denial) = f.denial {
        return Ok(Some(denial));
    }
    if let Some(denial) = unresolved(conn, grant, &f.unresolved)? {
        return Ok(Some(denial));
    }
    // A probe that does not compile for another reason (a view over a
    // missing table, an INSERT into a view without an INSTEAD OF trigger)
    // reaches nothing it could be denied.
    let _ = prepared;
    Ok(None)
}

/// The denial for names read without a column, if one is a table or view
/// of the database the plugin may not see (rather than a common table
/// expression or subquery of the statement).
pub(super) fn unresolved(
    conn: &Connection,
    grant: &Grant,
    names: &[String],
) -> rusqlite::Result<Option<String>> {
    for name in names {
        let exists: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM main.sqlite_master WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE
                 UNION ALL SELECT 1 FROM temp.sqlite_master WHERE name = ?1 COLLATE NOCASE AND name <> ?2 COLLATE NOCASE",
                [name.as_str(), grant.schema_view()],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_some()
            && let Err(why) = grant.check(name)
        {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// `name` as a quoted SQL identifier.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
