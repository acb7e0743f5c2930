//! Dead letters: nothing rejected is lost, `ferry dlq` lists, shows,
//! retries (exactly once, in offset order per key, after a fix) and
//! purges them, and the flood guard stops a partition whose plugin fails
//! every event.

use std::sync::Arc;
use std::time::Duration;

use ferry::Event;
use ferry::config::Config;
use ferry::pipeline::Stats;
use ferry_tests::{ChaosConfig, Workspace, count};

const LIMIT: Duration = Duration::from_secs(60);

/// The chaos plugin on `Append` and `WriteSecret`, one attempt per event.
fn dlq_config(ws: &Workspace, tables: &[&str]) {
    ChaosConfig::new()
        .events(&["Append", "WriteSecret"])
        .tables(tables)
        .plugin("max_attempts = 1")
        .write(ws);
}

fn secret_rows(ws: &Workspace) -> Vec<i64> {
    let c = ws.open_db();
    let mut s = c.prepare("SELECT x FROM secret ORDER BY rowid").unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn f5_a_rejected_event_is_kept_and_a_retry_after_the_fix_applies_it_exactly_once_in_order() {
    let ws = Workspace::new();
    dlq_config(&ws, &["log"]);
    ws.write(
        "e.jsonl",
        [
            r#"{"type":"Append","key":"k1","payload":{}}"#,
            r#"{"type":"WriteSecret","key":"k1","payload":{}}"#,
            r#"{"type":"Append","key":"k2","payload":{}}"#,
            r#"{"type":"WriteSecret","key":"k1","payload":{}}"#,
        ]
        .join("\n"),
    );
    rusqlite::Connection::open(ws.db())
        .unwrap()
        .execute_batch("CREATE TABLE secret(x)")
        .unwrap();
    let out = ws.ferry(
        &["replay", "--config", "config.toml", "--events", "e.jsonl"],
        LIMIT,
    );
    assert_eq!(out.code(), 1, "{out:#?}");

    let out = ws.ferry(&["dlq", "list", "--config", "config.toml"], LIMIT);
    assert_eq!(out.code(), 0, "{out:#?}");
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("WriteSecret"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    for (line, offset) in lines.iter().zip(["2", "4"]) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            &cols[1..5],
            ["replay", "0", offset, "WriteSecret"],
            "{line}"
        );
        assert!(
            line.contains("denied: ") && line.contains("`secret`"),
            "{line}"
        );
    }
    let id = lines[0].split_whitespace().next().unwrap();
    let out = ws.ferry(&["dlq", "show", "--config", "config.toml", id], LIMIT);
    assert!(
        out.stdout.contains("offset:          2") && out.stdout.contains("key:             k1"),
        "{}",
        out.stdout
    );

    // Not fixed yet: the first fails again and holds back the later one of the same key.
    let out = ws.ferry(&["dlq", "retry", "--config", "config.toml", "--all"], LIMIT);
    assert_eq!(out.code(), 1, "{out:#?}");
    assert!(
        out.stdout.contains("failed again") && out.stdout.contains("held back"),
        "{}",
        out.stdout
    );
    assert!(secret_rows(&ws).is_empty());

    // The fix: grant the table. Both apply, once, in offset order.
    dlq_config(&ws, &["log", "secret"]);
    let out = ws.ferry(&["dlq", "retry", "--config", "config.toml", "--all"], LIMIT);
    assert_eq!(out.code(), 0, "{out:#?}");
    assert!(
        out.stdout
            .contains("retried 2: 2 applied, 0 still dead-lettered"),
        "{}",
        out.stdout
    );
    assert_eq!(secret_rows(&ws), [2, 4]);
    let out = ws.ferry(&["dlq", "retry", "--config", "config.toml", "--all"], LIMIT);
    assert!(out.stdout.contains("retried 0"), "{}", out.stdout);
    assert_eq!(secret_rows(&ws), [2, 4], "exactly once");
    assert_eq!(
        count(&ws.open_db(), "SELECT count(*) FROM ferry_dead_letters"),
        0
    );
}

#[test]
fn purge_deletes_dead_letters() {
    let ws = Workspace::new();
    dlq_config(&ws, &["log"]);
    ws.write("e.jsonl", "{not json\n{\"type\":\"Nope\"}\n");
    let out = ws.ferry(
        &["replay", "--config", "config.toml", "--events", "e.jsonl"],
        LIMIT,
    );
    assert_eq!(out.code(), 1, "{out:#?}");
    let out = ws.ferry(&["dlq", "purge", "--config", "config.toml"], LIMIT);
    assert_eq!(out.code(), 2, "ids or --all are required: {out:#?}");
    let out = ws.ferry(&["dlq", "purge", "--config", "config.toml", "--all"], LIMIT);
    assert!(out.stdout.contains("purged 2 dead letter(s)"), "{out:#?}");
    let out = ws.ferry(&["dlq", "list", "--config", "config.toml"], LIMIT);
    assert!(out.stdout.contains("no dead letters"), "{out:#?}");
}

#[test]
fn a_plugin_that_always_fails_trips_the_flood_guard_and_stops_the_partition() {
    let ws = Workspace::new();
    let path = ws.config(
        r#"
[store]
path = "ferry.db"

[pipeline.dead_letter_guard]
window_events = 10
max_dead_letters = 3

[[plugins]]
name = "chaos"
path = {chaos}
events = ["Permanent", "Append"]
tables = ["log"]
max_attempts = 1
"#,
    );
    let config = Config::load(&path).unwrap();
    let mut p = ferry::run::build_pipeline(&config, &ws.db(), Arc::new(Stats::default())).unwrap();
    let ev = |offset: i64, ty: &str| Event {
        source: "s".into(),
        partition: 0,
        offset,
        key: None,
        event_type: Some(ty.into()),
        payload: b"{}".to_vec(),
        headers: vec![],
        timestamp_ms: None,
        rejected: None,
    };
    let mut batch: Vec<Event> = (1..=3).map(|o| ev(o, "Append")).collect();
    batch.extend((4..=20).map(|o| ev(o, "Permanent")));
    let r = p.apply_batch(&batch).unwrap();
    assert_eq!((r.applied, r.dead_lettered), (3, 3));
    let b = r.blocked.values().next().expect("the partition stopped");
    assert_eq!((b.offset, b.retry_after), (7, None));
    assert!(
        b.failure
            .message
            .contains("dead-letter flood guard: 3 of the last 10 events"),
        "{}",
        b.failure.message
    );
    assert_eq!(
        p.db()
            .with(|c| count(c, "SELECT count(*) FROM ferry_dead_letters")),
        3
    );
    assert_eq!(
        r.committed.values().copied().collect::<Vec<_>>(),
        [6],
        "the checkpoint stays before the stop"
    );
}
