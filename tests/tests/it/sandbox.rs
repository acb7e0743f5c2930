//! The sandbox: a plugin that traps, loops, blows its memory cap, writes an
//! ungranted table or does not match the contract fails with its own clear
//! error, the host survives, and only the failing event is rolled back.

use std::sync::Arc;

use ferry::Event;
use ferry::config::Config;
use ferry::pipeline::{Outcome, Pipeline, Stats};
use ferry::plugin::{FailureKind, Limits, PluginError, PluginHost};
use ferry_tests::{Workspace, count, plugin};

fn pipeline(ws: &Workspace, extra: &str) -> Pipeline {
    let path = ws.config(&format!(
        r#"
[store]
path = "ferry.db"

[[plugins]]
name = "chaos"
path = {{chaos}}
events = ["Append", "AppendThenTrap", "AppendThenFail", "Trap", "Loop", "Alloc", "WriteSecret", "FailTimes", "Retryable", "Say"]
tables = ["log"]
max_attempts = 1
{extra}
"#
    ));
    let config = Config::load(&path).unwrap();
    ferry::run::build_pipeline(&config, &ws.db(), Arc::new(Stats::default())).unwrap()
}

fn ev(offset: i64, ty: &str) -> Event {
    ev_with(offset, ty, "{}")
}

fn ev_with(offset: i64, ty: &str, payload: &str) -> Event {
    Event {
        source: "test".into(),
        partition: 0,
        offset,
        key: None,
        event_type: Some(ty.into()),
        payload: payload.as_bytes().to_vec(),
        headers: vec![],
        timestamp_ms: None,
        rejected: None,
    }
}

fn logged(p: &Pipeline) -> Vec<i64> {
    p.db().with(|c| {
        let mut s = c
            .prepare("SELECT event_offset FROM log ORDER BY id")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    })
}

fn dead_letter(p: &Pipeline, offset: i64) -> (String, String) {
    p.db().with(|c| {
        c.query_row(
            r#"SELECT error_class, error_message FROM ferry_dead_letters WHERE "offset" = ?1"#,
            [offset],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    })
}

/// Runs `[Append@1, bad@2, Append@3]`: 1 and 3 are applied, 2 is dead-lettered
/// with `class`, and nothing 2 wrote survives.
fn one_bad_event(p: &mut Pipeline, bad: &str, class: FailureKind) -> String {
    let base = logged(p).len();
    let r = p
        .apply_batch(&[ev(1, "Append"), ev(2, bad), ev(3, "Append")])
        .unwrap();
    assert_eq!((r.applied, r.dead_lettered), (2, 1), "{bad}: {r:?}");
    assert_eq!(
        logged(p)[base..],
        [1, 3],
        "{bad}: the failing event's writes are rolled back"
    );
    let (c, message) = dead_letter(p, 2);
    assert_eq!(c, class.as_str(), "{bad}: {message}");
    assert_eq!(r.committed.values().copied().collect::<Vec<_>>(), [3]);
    message
}

#[test]
fn a_trap_fails_only_its_event_and_the_instance_is_recreated() {
    let ws = Workspace::new();
    let mut p = pipeline(&ws, "");
    let m = one_bad_event(&mut p, "AppendThenTrap", FailureKind::Trap);
    assert!(
        m.contains("wasm trap") && m.contains("chaos plugin panics after writing at offset 2"),
        "{m}"
    );
    let r = p.apply_batch(&[ev(4, "Trap"), ev(5, "Append")]).unwrap();
    assert_eq!((r.applied, r.dead_lettered), (1, 1));
}

#[test]
fn an_endless_loop_hits_the_deadline() {
    let ws = Workspace::new();
    let mut p = pipeline(&ws, "timeout_ms = 100");
    let started = std::time::Instant::now();
    let m = one_bad_event(&mut p, "Loop", FailureKind::Timeout);
    assert!(
        m.contains("deadline exceeded") && m.contains("100 ms"),
        "{m}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn allocating_past_the_cap_is_a_memory_failure() {
    let ws = Workspace::new();
    let mut p = pipeline(&ws, "memory_mb = 32");
    let m = one_bad_event(&mut p, "Alloc", FailureKind::Memory);
    assert!(
        m.contains("memory cap exceeded") && m.contains("33554432"),
        "{m}"
    );
}

#[test]
fn writing_an_ungranted_table_is_denied_naming_the_table() {
    let ws = Workspace::new();
    let mut p = pipeline(&ws, "");
    p.db()
        .with(|c| c.execute_batch("CREATE TABLE secret(x)"))
        .unwrap();
    let m = one_bad_event(&mut p, "WriteSecret", FailureKind::Denied);
    assert!(
        m.contains("table `secret` is not granted to plugin `chaos`"),
        "{m}"
    );
    assert_eq!(p.db().with(|c| count(c, "SELECT count(*) FROM secret")), 0);
}

#[test]
fn a_permanent_error_after_writing_rolls_the_writes_back() {
    let ws = Workspace::new();
    let mut p = pipeline(&ws, "");
    let m = one_bad_event(&mut p, "AppendThenFail", FailureKind::Permanent);
    assert_eq!(m, "chaos fails after writing");
}

#[test]
fn a_retryable_failure_blocks_its_partition_only_and_commits_what_came_before() {
    let ws = Workspace::new();
    let mut p = pipeline(&ws, "");
    let mut other = ev(1, "Append");
    other.partition = 1;
    let batch = [
        ev(1, "Append"),
        ev_with(2, "FailTimes", r#"{"times": 2}"#),
        ev(3, "Append"),
        other,
    ];
    let r = p.apply_batch(&batch).unwrap();
    let blocked = r.blocked.values().next().unwrap();
    assert_eq!((blocked.offset, blocked.attempts), (2, 1));
    assert!(blocked.retry_after.is_some());
    assert_eq!(r.applied, 2, "offset 1 and the other partition");
    assert_eq!(logged(&p), [1, 1]);
    // Redeliver from the blocked offset until it goes through.
    let r = p.apply_batch(&batch[1..3]).unwrap();
    assert_eq!(r.blocked.values().next().unwrap().attempts, 2);
    let r = p.apply_batch(&batch[1..3]).unwrap();
    assert!(r.blocked.is_empty(), "{r:?}");
    assert_eq!(logged(&p), [1, 1, 2, 3]);
    assert_eq!(p.stats().total(Outcome::Retried), 2);
}

#[test]
fn stop_partition_policy_keeps_the_partition_at_the_failing_event() {
    let ws = Workspace::new();
    let mut p = pipeline(&ws, "on_failure = \"stop-partition\"");
    let r = p
        .apply_batch(&[ev(1, "Append"), ev(2, "Trap"), ev(3, "Append")])
        .unwrap();
    let b = r.blocked.values().next().unwrap();
    assert_eq!((b.offset, b.retry_after), (2, None));
    assert_eq!(logged(&p), [1]);
    assert_eq!(
        p.db()
            .with(|c| count(c, "SELECT count(*) FROM ferry_dead_letters")),
        0
    );
}

fn load_err(bytes: &[u8]) -> PluginError {
    let host = PluginHost::new(None).unwrap();
    host.load_bytes("bad", "<test>", bytes, &[], Limits::default())
        .unwrap_err()
}

#[test]
fn a_component_that_does_not_match_the_contract_is_refused_naming_what_is_missing() {
    let bytes = std::fs::read(plugin("mismatch_plugin")).unwrap();
    let e = load_err(&bytes);
    assert!(matches!(e, PluginError::Contract { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(
            "does not export `ferry:plugin/handler@0.2.0` or `ferry:plugin/handler@0.1.0`"
        ),
        "{msg}"
    );
    assert!(msg.contains("acme:other/greeter@1.0.0"), "{msg}");

    let msg = load_err(br#"(component (import "acme:evil/net@1.0.0" (instance)))"#).to_string();
    assert!(
        msg.contains("imports `acme:evil/net@1.0.0`, which ferry does not provide"),
        "{msg}"
    );
}

#[test]
fn a_corrupt_file_is_refused_as_not_a_component() {
    let e = load_err(b"\0asm\x0d\0\x01\0garbage");
    assert!(matches!(e, PluginError::Compile { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("is not a valid WebAssembly component"),
        "{e}"
    );
}

#[test]
fn a_second_load_comes_from_the_compiled_cache() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(plugin("game_projection")).unwrap();
    let load = || {
        let host = PluginHost::new(Some(dir.path().to_owned())).unwrap();
        host.load_bytes("g", "<test>", &bytes, &[], Limits::default())
            .unwrap()
            .provenance
    };
    assert_eq!(load(), ferry::plugin::Provenance::Compiled);
    assert_eq!(load(), ferry::plugin::Provenance::Cached);
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_plugin_logs_each_line_once_even_when_its_batch_runs_twice() {
    let ws = Workspace::new();
    let mut p = pipeline(&ws, "");
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let (first, second) = tracing::subscriber::with_default(subscriber, || {
        // The failure at 3 abandons the optimistic pass after 1 and 2 said
        // their lines; the careful pass says them again.
        let first = p
            .apply_batch(&[
                ev(1, "Say"),
                ev(2, "Say"),
                ev(3, "AppendThenFail"),
                ev(4, "Say"),
            ])
            .unwrap();
        let held = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        // A clean batch (run optimistically once the careful batches are
        // over) logs its lines when it commits.
        for _ in 0..ferry::pipeline::CAREFUL_BATCHES {
            p.apply_batch(&[]).unwrap();
        }
        let second = p.apply_batch(&[ev(5, "Say")]).unwrap();
        (first, (second, held))
    });
    assert_eq!((first.applied, first.dead_lettered), (3, 1));
    assert_eq!(p.reruns(), 1);
    assert_eq!(second.0.applied, 1);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    for n in [1, 2, 4, 5] {
        for what in ["said", "printed"] {
            let line = format!("{what} {n}");
            assert_eq!(text.matches(&line).count(), 1, "{line:?} once in:\n{text}");
        }
    }
    assert!(
        text.contains("plugin=\"chaos\"") || text.contains("plugin=chaos"),
        "{text}"
    );
    assert!(
        second.1.contains("said 4"),
        "the first batch's lines were logged when it committed"
    );
    assert_eq!(logged(&p), [1, 2, 4, 5]);
}
