//! The pipeline's own tests, through a native projection whose outcome is
//! chosen per event: the passes, per-event rollback, retries and dead
//! letters, the state an abandoned pass restores, the flood guard, and
//! what the swap entry points refuse for native code.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::*;
use crate::config::Config;
use crate::plugin::{HandleError, Handled, NativeProjection};
use crate::store::{Db, StoreOptions, history::Trigger};

/// Inserts one row per event (`payload` decides: `ok`, `skip`, `retry`,
/// `fail`, or `flaky`: fails from its second call on, as a plugin that is
/// not deterministic), and records every call.
struct Script {
    calls: Arc<Mutex<Vec<i64>>>,
}

impl NativeProjection for Script {
    fn version(&self) -> String {
        "1.0.0".into()
    }
    fn schema(&self) -> u32 {
        1
    }
    fn migrate(&mut self, conn: &rusqlite::Connection, _from: Option<u32>) -> Result<(), String> {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS rows (off INTEGER, part INTEGER)")
            .map_err(|e| e.to_string())
    }
    fn handle(
        &mut self,
        conn: &rusqlite::Connection,
        event: &Event,
        _event_type: &str,
    ) -> Result<Handled, HandleError> {
        let seen_before = {
            let mut calls = self
                .calls
                .lock()
                .map_err(|e| HandleError::Permanent(e.to_string()))?;
            let seen = calls.contains(&event.offset);
            calls.push(event.offset);
            seen
        };
        conn.execute(
            "INSERT INTO rows VALUES (?1, ?2)",
            [event.offset, i64::from(event.partition)],
        )
        .map_err(|e| HandleError::Permanent(e.to_string()))?;
        match event.payload.as_slice() {
            b"skip" => Ok(Handled::Skipped("not for me".into())),
            b"retry" => Err(HandleError::Retryable("later".into())),
            b"fail" => Err(HandleError::Permanent("never".into())),
            b"flaky" if seen_before => Err(HandleError::Permanent("not again".into())),
            _ => Ok(Handled::Applied),
        }
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    p: Pipeline,
    calls: Arc<Mutex<Vec<i64>>>,
}

fn fixture(extra: &str, pipeline_extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = Config::parse(
        &format!(
            "[pipeline]\n{pipeline_extra}\n[pipeline.retry]\ninitial_backoff_ms = 1\nmax_backoff_ms = 2\n[[plugins]]\nname = \"script\"\npath = \"x.wasm\"\nevents = [\"E\"]\ntables = [\"rows\"]\n{extra}"
        ),
        Path::new("."),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let db = Db::open(&dir.path().join("t.db"), &StoreOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let code = PluginCode::Native(Box::new(Script {
        calls: Arc::clone(&calls),
    }));
    let p = Pipeline::new(
        db,
        vec![(config.plugins[0].clone(), code)],
        &config.pipeline,
        Arc::new(Stats::default()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        _dir: dir,
        p,
        calls,
    }
}

fn ev(partition: i32, offset: i64, payload: &str) -> Event {
    Event::new(
        "s".into(),
        partition,
        offset,
        Some("E".into()),
        payload.as_bytes().to_vec(),
    )
}

fn rows(p: &Pipeline) -> Vec<(i64, i64)> {
    p.db()
        .with(|c| {
            let mut s = c.prepare("SELECT part, off FROM rows ORDER BY rowid")?;
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap_or_else(|e| panic!("{e}"))
}

fn calls(f: &Fixture) -> Vec<i64> {
    f.calls.lock().map(|c| c.clone()).unwrap_or_default()
}

/// Partition 0, offsets `range`: `fail` at the offsets in `fail`, `flaky`
/// at those in `flaky`, `ok` elsewhere.
fn batch(range: std::ops::Range<i64>, fail: &[i64], flaky: &[i64]) -> Vec<Event> {
    range
        .map(|o| {
            let payload = if fail.contains(&o) {
                "fail"
            } else if flaky.contains(&o) {
                "flaky"
            } else {
                "ok"
            };
            ev(0, o, payload)
        })
        .collect()
}

impl Fixture {
    /// Applies a batch, keeping only its calls.
    fn apply(&mut self, events: &[Event]) -> BatchReport {
        if let Ok(mut c) = self.calls.lock() {
            c.clear();
        }
        self.p.apply_batch(events).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Calls the handler histogram counted: the calls that stand.
    fn handler_calls_counted(&self) -> u64 {
        self.p
            .stats()
            .latencies()
            .into_iter()
            .find(|(name, _)| name == "script")
            .map_or(0, |(_, h)| h.count())
    }
}

const DEAD_LETTER_AT_ONCE: &str = "max_attempts = 1\non_failure = \"dead-letter\"";

#[test]
fn a_clean_batch_commits_in_one_optimistic_pass() {
    let mut f = fixture("", "");
    let r =
        f.p.apply_batch(&[ev(0, 1, "ok"), ev(0, 2, "skip"), ev(1, 1, "ok")])
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.applied, r.skipped), (2, 1));
    assert_eq!(f.p.reruns(), 0);
    assert_eq!(calls(&f), [1, 2, 1], "each event called once");
    assert_eq!(r.committed.get(&("s".into(), 0)), Some(&2));
    assert_eq!(rows(&f.p), [(0, 1), (0, 2), (1, 1)]);
}

#[test]
fn a_failure_reruns_the_batch_carefully_and_its_call_counts_as_the_attempt() {
    let mut f = fixture("max_attempts = 3", "");
    let r =
        f.p.apply_batch(&[
            ev(0, 1, "ok"),
            ev(0, 2, "retry"),
            ev(0, 3, "ok"),
            ev(1, 1, "ok"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.p.reruns(), 1);
    // The optimistic pass called 1 and 2; the careful pass called 1 again,
    // took 2's failure as its attempt, skipped the rest of partition 0.
    assert_eq!(calls(&f), [1, 2, 1, 1]);
    let b = r
        .blocked
        .get(&("s".into(), 0))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!((b.offset, b.attempts), (2, 1));
    assert!(b.retry_after.is_some());
    assert_eq!(rows(&f.p), [(0, 1), (1, 1)], "only what was applied, once");
    assert_eq!(f.p.state.attempts.len(), 1);
    assert_eq!(f.p.careful_batches, CAREFUL_BATCHES);
}

#[test]
fn an_abandoned_pass_leaves_no_trace_in_memory() {
    let mut f = fixture("max_attempts = 3", "");
    f.p.apply_batch(&[ev(0, 1, "ok")])
        .unwrap_or_else(|e| panic!("{e}"));
    let window_before = f.p.state.guard_windows.get(&("s".into(), 0)).cloned();
    assert_eq!(window_before.as_ref().map(VecDeque::len), Some(1));
    f.p.apply_batch(&[ev(0, 2, "ok"), ev(0, 3, "retry")])
        .unwrap_or_else(|e| panic!("{e}"));
    // Event 2 went through the guard's window on both passes but counts
    // once: the optimistic pass's changes were restored whole.
    let window = f.p.state.guard_windows.get(&("s".into(), 0)).cloned();
    assert_eq!(window.as_ref().map(VecDeque::len), Some(2), "{window:?}");
    assert_eq!(
        f.p.state.attempts.get(&("s".into(), 0)).map(|a| a.count),
        Some(1)
    );
}

#[test]
fn used_up_attempts_become_a_dead_letter_in_the_transaction_that_moves_past_it() {
    let mut f = fixture("max_retryable_attempts = 2", "");
    let batch = [ev(0, 1, "retry"), ev(0, 2, "ok")];
    let r = f.p.apply_batch(&batch).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.dead_lettered, 0);
    let r = f.p.apply_batch(&batch).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.dead_lettered, r.applied), (1, 1));
    assert!(r.blocked.is_empty());
    assert_eq!(r.committed.get(&("s".into(), 0)), Some(&2));
    assert!(f.p.state.attempts.is_empty());
    let (class, attempts): (String, i64) =
        f.p.db()
            .with(|c| {
                c.query_row(
                    "SELECT error_class, attempts FROM ferry_dead_letters",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((class.as_str(), attempts), ("retryable", 2));
    assert_eq!(
        rows(&f.p),
        [(0, 2)],
        "the dead event's write was rolled back"
    );
}

#[test]
fn a_permanent_rejection_is_dead_lettered_at_once_without_backoff() {
    // However many attempts the plugin is allowed: waiting does not fix a
    // payload the plugin itself calls permanently bad.
    let mut f = fixture("max_attempts = 5", "");
    let r =
        f.p.apply_batch(&[ev(0, 1, "ok"), ev(0, 2, "fail"), ev(0, 3, "ok")])
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.applied, r.dead_lettered), (2, 1));
    assert!(r.blocked.is_empty(), "{r:?}");
    assert_eq!(r.committed.get(&("s".into(), 0)), Some(&3));
    assert!(f.p.state.attempts.is_empty());
    assert_eq!(rows(&f.p), [(0, 1), (0, 3)]);
}

#[test]
fn a_retryable_failure_keeps_waiting_and_never_dead_letters_without_a_limit() {
    let mut f = fixture("", "");
    for n in 1..=5 {
        let r =
            f.p.apply_batch(&[ev(0, 1, "retry")])
                .unwrap_or_else(|e| panic!("{e}"));
        let b = r
            .blocked
            .get(&("s".into(), 0))
            .unwrap_or_else(|| panic!("{r:?}"));
        assert_eq!(b.attempts, n);
        assert!(b.retry_after.is_some());
    }
}

#[test]
fn the_flood_guard_stops_a_partition_instead_of_dead_lettering_it_all() {
    let mut f = fixture(
        "max_attempts = 1",
        "[pipeline.dead_letter_guard]\nwindow_events = 4\nmax_dead_letters = 2",
    );
    let batch: Vec<Event> = (1..=4).map(|o| ev(0, o, "fail")).collect();
    let r = f.p.apply_batch(&batch).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.dead_lettered, 2);
    let b = r
        .blocked
        .get(&("s".into(), 0))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!((b.offset, b.retry_after), (3, None));
    assert!(
        b.failure.message.contains("flood guard"),
        "{}",
        b.failure.message
    );
}

#[test]
fn events_at_or_below_the_checkpoint_are_not_applied_again() {
    let mut f = fixture("", "");
    f.p.apply_batch(&[ev(0, 1, "ok"), ev(0, 2, "ok")])
        .unwrap_or_else(|e| panic!("{e}"));
    let r =
        f.p.apply_batch(&[ev(0, 1, "ok"), ev(0, 2, "ok"), ev(0, 3, "ok")])
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.already_applied, r.applied), (2, 1));
    assert_eq!(rows(&f.p).len(), 3);
}

#[test]
fn native_code_is_not_swapped_and_has_nothing_to_roll_back_to() {
    let mut f = fixture("", "");
    assert!(matches!(
        f.p.rollback("script", Trigger::Api),
        Err(SwapError::NoPrevious(_))
    ));
    assert!(matches!(
        f.p.rollback("nope", Trigger::Api),
        Err(SwapError::Unknown(_))
    ));
    let infos = f.p.plugin_infos();
    assert_eq!(infos.len(), 1);
    assert_eq!(
        (infos[0].kind, infos[0].digest.as_str()),
        ("native", "native:1.0.0")
    );
    assert!(infos[0].probation.is_none());
    assert_eq!(
        f.p.versions("script"),
        Some((("native:1.0.0".into(), "1.0.0".into()), None))
    );
}

#[test]
fn a_rerun_counts_one_handler_call_per_event_and_keeps_each_write_once() {
    let mut f = fixture(DEAD_LETTER_AT_ONCE, "");
    let r = f.apply(&batch(0..100, &[50], &[]));
    assert_eq!((r.applied, r.dead_lettered), (99, 1));
    let expected: Vec<i64> = (0..=50).chain(0..50).chain(51..100).collect();
    assert_eq!(calls(&f), expected);
    assert_eq!(f.handler_calls_counted(), 100);
    let offsets: Vec<i64> = rows(&f.p).into_iter().map(|(_, o)| o).collect();
    assert_eq!(offsets, (0..100).filter(|o| *o != 50).collect::<Vec<_>>());
}

#[test]
fn after_a_failure_batches_run_carefully_for_a_while_then_optimistically() {
    let mut f = fixture(DEAD_LETTER_AT_ONCE, "");
    f.apply(&batch(0..100, &[50], &[]));
    let r = f.apply(&batch(100..200, &[150], &[]));
    assert_eq!((r.applied, r.dead_lettered), (99, 1));
    assert_eq!(calls(&f), (100..200).collect::<Vec<_>>(), "no second pass");
    assert_eq!(f.p.reruns(), 1);
    for b in 1..i64::from(CAREFUL_BATCHES) {
        f.apply(&batch(100 + 100 * b..200 + 100 * b, &[], &[]));
    }
    let next = 100 + 100 * i64::from(CAREFUL_BATCHES);
    f.apply(&batch(next..next + 10, &[next + 5], &[]));
    assert_eq!(f.p.reruns(), 2, "optimistic again, so a failure reruns");
    let total = i64::try_from(rows(&f.p).len()).unwrap_or_default();
    assert_eq!(total, next + 10 - 3, "every event once but the failures");
}

#[test]
fn the_flood_guard_does_not_count_the_abandoned_pass() {
    // A window of 3 events allowing 1 dead letter: after one dead letter,
    // a second one within 3 events stops the partition.
    let guard = "[pipeline.dead_letter_guard]\nwindow_events = 3\nmax_dead_letters = 1";
    let mut f = fixture(DEAD_LETTER_AT_ONCE, guard);
    assert_eq!(f.apply(&batch(0..1, &[0], &[])).dead_lettered, 1);
    for _ in 0..CAREFUL_BATCHES {
        f.apply(&[]);
    }
    // Optimistic pass: 1 and 2 succeed, 3 fails, the pass is abandoned.
    // Had its two successes stayed in the window, the careful pass would
    // push the first dead letter out of it and dead-letter 3 as well.
    let r = f.apply(&batch(1..4, &[3], &[]));
    assert_eq!(f.p.reruns(), 2);
    assert_eq!(r.dead_lettered, 0);
    let b = r.blocked.values().next().unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!((b.offset, b.retry_after), (3, None));
    assert_eq!(rows(&f.p), [(0, 1), (0, 2)]);
}

#[test]
fn a_failure_met_on_another_state_is_not_reused() {
    // 10 succeeds on the optimistic pass and fails on the careful one, so
    // the failure of 20 met on the optimistic pass came from a state the
    // careful pass never reaches: 20 is called again.
    let mut f = fixture(DEAD_LETTER_AT_ONCE, "");
    let r = f.apply(&batch(0..30, &[20], &[10]));
    assert_eq!((r.applied, r.dead_lettered), (28, 2));
    let expected: Vec<i64> = (0..=20).chain(0..30).collect();
    assert_eq!(calls(&f), expected);
    let offsets: Vec<i64> = rows(&f.p).into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        offsets,
        (0..30).filter(|o| *o != 10 && *o != 20).collect::<Vec<_>>()
    );
}
