use super::*;
use crate::host::HostState;
use crate::store::{Db, StoreOptions};

/// A host state whose store is bound to a fresh database granting `tables`.
pub(crate) fn state(tables: &[&str]) -> (tempfile::TempDir, Db, HostState) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("t.db"), &StoreOptions::default()).unwrap();
    let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    let grant = Arc::new(Grant::new("p", &tables));
    let ctx = StoreCtx::new(Some(db.shared()), db.scope(), grant, 1 << 20);
    let st = HostState::new(
        "p".into(),
        ctx,
        1 << 20,
        crate::host::held::Output::new("p".into()),
        crate::host::call::CallContext::new("sha256:p".into(), false, 1 << 20),
    );
    (dir, db, st)
}

#[test]
fn execute_query_and_batch_roundtrip_typed_values() {
    let (_d, _db, mut st) = state(&["t"]);
    st.store.begin_call(None);
    st.store
        .execute_batch("CREATE TABLE t(a, b, c, d, e)")
        .unwrap();
    let n = st
        .store
        .execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                Value::Null,
                Value::Integer(-4),
                Value::Real(1.5),
                Value::Text("x".into()),
                Value::Blob(vec![0, 1]),
            ],
        )
        .unwrap();
    assert_eq!(n, 1);
    let rows = st.store.query("SELECT * FROM t", &[]).unwrap();
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
        st.store.execute("INSERT INTO t VALUES (1)", &[]),
        Err(StoreError::Unavailable(_))
    ));
    st.store.begin_call(None);
    st.store.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    let cases = [
        ("INSERT INTO t VALUES (1)", "constraint"),
        ("SELECT * FROM secret", "denied"),
        ("INSERT INTO nope VALUES (1)", "invalid"),
        ("SELEC 1", "invalid"),
        ("INSERT INTO t VALUES (?1, ?2)", "invalid"),
        ("SELECT * FROM t", "invalid"),
    ];
    for (sql, kind) in cases {
        let e = st.store.execute(sql, &[]).unwrap_err();
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
        .store
        .execute("INSERT INTO t VALUES (?1)", &[])
        .unwrap_err();
    assert!(matches!(e, StoreError::Mismatch(_)), "{e:?}");
    let report = st.store.end_call();
    assert!(report.denied.unwrap().contains("`secret`"));
}

#[test]
fn a_statement_prepared_under_a_wider_grant_is_not_reused_by_a_narrower_one() {
    let (_d, db, mut wide) = state(&["t", "u"]);
    db.with(|c| c.execute_batch("CREATE TABLE t(a); CREATE TABLE u(a)"))
        .unwrap();
    wide.store.begin_call(None);
    wide.store.query("SELECT * FROM u", &[]).unwrap();
    // A reload narrows the grant: same plugin name, same connection.
    let grant = Arc::new(Grant::new("p", &["t".into()]));
    let mut narrow = StoreCtx::new(Some(db.shared()), db.scope(), grant, 1 << 20);
    narrow.begin_call(None);
    let key_wide = wide.store.key("SELECT * FROM u").0;
    let key_narrow = narrow.key("SELECT * FROM u").0;
    assert_ne!(key_wide, key_narrow);
}

#[test]
fn a_view_over_an_ungranted_table_is_rolled_back_and_a_granted_one_kept() {
    let (_d, db, mut st) = state(&["t", "v", "w"]);
    db.with(|c| c.execute_batch("CREATE TABLE t(a); CREATE TABLE secret(x)"))
        .unwrap();
    st.store.begin_call(None);
    let e = st
        .store
        .execute_batch("CREATE VIEW v AS SELECT * FROM secret")
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Denied(m) if m.contains("view `v`")),
        "{e:?}"
    );
    st.store
        .execute_batch("CREATE VIEW w AS SELECT a FROM t")
        .unwrap();
    let report = st.store.end_call();
    assert!(report.denied.is_some());
    let views: Vec<String> = db
        .with(|c| {
            let mut s = c.prepare("SELECT name FROM sqlite_master WHERE type = 'view'")?;
            s.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .unwrap();
    assert_eq!(views, ["w"]);
}

#[test]
fn a_prepared_statement_runs_many_times_and_follows_schema_changes() {
    let (_d, db, mut st) = state(&["t"]);
    db.with(|c| c.execute_batch("CREATE TABLE t(a PRIMARY KEY, b)"))
        .unwrap();
    st.store.begin_call(None);
    let mut ins = st
        .store
        .prepare_statement(
            "INSERT INTO t (a, b) VALUES (?1, ?2) ON CONFLICT (a) DO UPDATE SET b = excluded.b",
        )
        .unwrap();
    let mut sel = st
        .store
        .prepare_statement("SELECT b FROM t WHERE a = ?1")
        .unwrap();
    assert_eq!(st.store.live_statements(), 2);
    for i in 0..10 {
        let n = st
            .store
            .execute_statement(&mut ins, &[Value::Integer(i % 3), Value::Integer(i)])
            .unwrap();
        assert_eq!(n, 1);
    }
    let rows = st
        .store
        .query_statement(&mut sel, &[Value::Integer(0)])
        .unwrap();
    assert!(matches!(rows.rows[0][0], Value::Integer(9)), "{rows:?}");
    // The schema changes (a migration): SQLite prepares them again.
    db.with(|c| c.execute_batch("ALTER TABLE t ADD COLUMN c"))
        .unwrap();
    st.store
        .execute_statement(&mut ins, &[Value::Integer(7), Value::Integer(7)])
        .unwrap();
    assert_eq!(st.store.end_call(), CallReport::default());
    // Outside a call the statement cannot run.
    assert!(matches!(
        st.store
            .execute_statement(&mut ins, &[Value::Integer(1), Value::Null]),
        Err(StoreError::Unavailable(_))
    ));
    drop(ins);
    drop(sel);
    assert_eq!(st.store.live_statements(), 0);
}

#[test]
fn prepare_refuses_ddl_and_ungranted_tables() {
    let (_d, db, mut st) = state(&["t", "t2"]);
    db.with(|c| c.execute_batch("CREATE TABLE t(a); CREATE TABLE secret(x)"))
        .unwrap();
    st.store.begin_call(None);
    let e = st
        .store
        .prepare_statement("CREATE TABLE t2(a)")
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::InvalidSql(m) if m.contains("cannot change the schema")),
        "{e:?}"
    );
    let e = st
        .store
        .prepare_statement("SELECT * FROM secret")
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Denied(m) if m.contains("secret")),
        "{e:?}"
    );
    let e = st
        .store
        .prepare_statement("SELECT * FROM ferry_checkpoints")
        .unwrap_err();
    assert!(matches!(e, StoreError::Denied(_)), "{e:?}");
    let e = st
        .store
        .prepare_statement("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidSql(_)), "{e:?}");
    assert_eq!(st.store.live_statements(), 0);
}

#[test]
fn a_statement_prepared_under_one_grant_is_not_run_under_another() {
    let (_d, db, mut st) = state(&["t"]);
    db.with(|c| c.execute_batch("CREATE TABLE t(a)")).unwrap();
    st.store.begin_call(None);
    let mut stmt = st.store.prepare_statement("SELECT a FROM t").unwrap();
    // Another instance (another plugin, or another version) on another
    // connection: the statement is not its own.
    let (_d2, db2, mut other) = state(&["t"]);
    db2.with(|c| c.execute_batch("CREATE TABLE t(a)")).unwrap();
    other.store.begin_call(None);
    assert!(matches!(
        other.store.query_statement(&mut stmt, &[]),
        Err(StoreError::Unavailable(_))
    ));
}
