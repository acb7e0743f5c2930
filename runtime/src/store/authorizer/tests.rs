use super::*;
use rusqlite::Connection;
use std::time::Duration;

fn setup() -> (Connection, AuthScope, Arc<Grant>) {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE games(id TEXT PRIMARY KEY, n INT); CREATE TABLE secrets(x);
         CREATE TABLE ferry_checkpoints(x);
         CREATE TABLE ferry_dead_letters(id INTEGER PRIMARY KEY AUTOINCREMENT, x);
         INSERT INTO ferry_dead_letters(x) VALUES (1);",
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
fn granted_tables_are_usable_including_ddl_and_autoincrement_bookkeeping() {
    let (conn, scope, grant) = setup();
    for sql in [
        "INSERT INTO games VALUES ('a', 1)",
        "SELECT * FROM games",
        "UPDATE games SET id = 'b'",
        "DELETE FROM games",
        "CREATE TABLE extra(a INTEGER PRIMARY KEY AUTOINCREMENT, b)",
        "CREATE INDEX extra_b ON extra(b)",
        "ALTER TABLE extra ADD COLUMN c",
        "ALTER TABLE extra RENAME COLUMN c TO d",
        "ALTER TABLE extra DROP COLUMN d",
        "INSERT INTO extra(b) VALUES (1)",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) INSERT INTO extra(b) SELECT x FROM c",
        "WITH g AS (SELECT * FROM games) SELECT * FROM g",
        "SELECT * FROM pragma_table_info('games')",
        "DROP INDEX extra_b",
        "DROP TABLE extra",
    ] {
        assert_eq!(run(&conn, &scope, &grant, sql), None, "{sql}");
    }
    let left: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_sequence", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 1, "only ferry's own counter is left");
}

#[test]
fn everything_else_is_denied_with_a_reason_naming_it() {
    let (conn, scope, grant) = setup();
    let cases = [
        ("SELECT * FROM secrets", "`secrets` is not granted"),
        ("INSERT INTO secrets VALUES (1)", "`secrets` is not granted"),
        ("DELETE FROM ferry_checkpoints", "internal to ferry"),
        ("PRAGMA journal_mode", "PRAGMA journal_mode"),
        (
            "SELECT * FROM pragma_table_info('secrets')",
            "`secrets` is not granted",
        ),
        ("ATTACH ':memory:' AS other", "ATTACH"),
        ("BEGIN", "transaction control"),
        ("SAVEPOINT x", "transaction control"),
        ("CREATE TEMP TABLE t(x)", "temporary schema objects"),
        ("CREATE TABLE other(x)", "`other` is not granted"),
        (
            "INSERT OR REPLACE INTO sqlite_sequence(name, seq) VALUES ('ferry_dead_letters', 9223372036854775807)",
            "`sqlite_sequence` is not accessible",
        ),
        (
            "DELETE FROM sqlite_sequence",
            "`sqlite_sequence` is not accessible",
        ),
        (
            "SELECT * FROM sqlite_sequence",
            "`sqlite_sequence` is not accessible",
        ),
        (
            "SELECT name FROM sqlite_master",
            "may not read `sqlite_master`",
        ),
        (
            "CREATE TABLE extra AS SELECT sql FROM sqlite_master",
            "may not read `sqlite_master`",
        ),
        ("REINDEX", "REINDEX is not allowed"),
        ("ANALYZE games", "ANALYZE is not allowed"),
        (
            "SELECT count(*) FROM sqlite_sequence",
            "`sqlite_sequence` is not accessible",
        ),
        ("SELECT random()", "`random()` is not allowed"),
        (
            "INSERT INTO games VALUES (CURRENT_TIMESTAMP, 1)",
            "CURRENT_TIMESTAMP",
        ),
        ("CREATE INDEX ferry_x ON games(n)", "reserved for ferry"),
        ("SELECT * FROM temp.sqlite_master", "may not read"),
    ];
    for (sql, expected) in cases {
        let reason = run(&conn, &scope, &grant, sql).unwrap_or_default();
        assert!(reason.contains(expected), "{sql}: {reason}");
    }
    let seq: i64 = conn
        .query_row("SELECT seq FROM sqlite_sequence", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seq, 1, "ferry's counter is untouched");
}

#[test]
fn the_schema_view_answers_with_the_plugins_own_tables_only() {
    let (conn, scope, grant) = setup();
    conn.execute_batch(&grant.schema_view_ddl()).unwrap();
    let sql = crate::store::sql_scan::rewrite_schema_refs(
        "SELECT name FROM sqlite_master ORDER BY name",
        grant.schema_view(),
    )
    .unwrap();
    let (names, denial) = scope.as_plugin(&grant, || {
        let mut s = conn.prepare(&sql)?;
        s.query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()
    });
    assert_eq!(denial, None);
    assert_eq!(names.unwrap(), ["games", "sqlite_autoindex_games_1"]);
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
        "INSERT INTO games VALUES ('x', 1)",
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

#[test]
fn grants_of_the_same_tables_share_a_schema_view_but_not_an_id() {
    let a = Grant::new("p", &["b".into(), "a".into()]);
    let b = Grant::new("p", &["A".into(), "b".into()]);
    assert_eq!(a.schema_view(), b.schema_view());
    assert_ne!(a.id(), b.id());
    assert_ne!(
        a.schema_view(),
        Grant::new("q", &["a".into(), "b".into()]).schema_view()
    );
}

#[test]
fn a_plugin_statement_is_interrupted_at_its_deadline_and_a_host_one_is_not() {
    let (conn, scope, grant) = setup();
    let endless =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c";
    scope.enter(&grant, Some(Instant::now() + Duration::from_millis(50)));
    let started = Instant::now();
    let err = conn
        .query_row(endless, [], |r| r.get::<_, i64>(0))
        .unwrap_err();
    let finished = scope.leave();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::OperationInterrupted),
        "{err} {:?}",
        finished.denial
    );
    assert_eq!(finished.denial, None);
    // The deadline is gone once the plugin's scope is left.
    let n: i64 = conn
        .query_row(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT count(*) FROM c",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 100_000);
}

#[test]
fn a_table_read_without_columns_is_left_for_the_host_to_look_up() {
    let (conn, scope, grant) = setup();
    scope.enter(&grant, None);
    conn.execute_batch(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT count(*) FROM c;
         SELECT count(*) FROM ferry_dead_letters; SELECT count(*) FROM games",
    )
    .unwrap();
    let f = scope.leave();
    assert_eq!(f.denial, None);
    assert_eq!(f.unresolved, ["c", "ferry_dead_letters"]);
}

#[test]
fn views_triggers_and_alters_are_reported_for_verification() {
    let (conn, scope, grant) = setup();
    scope.enter(&grant, None);
    conn.execute_batch(
        "CREATE VIEW extra AS SELECT * FROM games;
         CREATE TRIGGER t AFTER INSERT ON games BEGIN SELECT 1; END;
         ALTER TABLE games ADD COLUMN z",
    )
    .unwrap();
    let f = scope.leave();
    assert_eq!(
        f.created,
        [
            Created::View("extra".into()),
            Created::Trigger {
                name: "t".into(),
                table: "games".into()
            },
            Created::Altered("games".into()),
        ]
    );
}
