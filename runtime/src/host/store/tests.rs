use super::*;
use crate::store::{Db, StoreOptions};

fn state(tables: &[&str]) -> (tempfile::TempDir, Db, HostState) {
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
    st.store.begin_call(None);
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

#[test]
fn a_statement_prepared_under_a_wider_grant_is_not_reused_by_a_narrower_one() {
    let (_d, db, mut wide) = state(&["t", "u"]);
    db.with(|c| c.execute_batch("CREATE TABLE t(a); CREATE TABLE u(a)"))
        .unwrap();
    wide.store.begin_call(None);
    wide.query("SELECT * FROM u".into(), vec![]).unwrap();
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
        .execute_batch("CREATE VIEW v AS SELECT * FROM secret".into())
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Denied(m) if m.contains("view `v`")),
        "{e:?}"
    );
    st.execute_batch("CREATE VIEW w AS SELECT a FROM t".into())
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
