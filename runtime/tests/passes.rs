//! The pipeline's two passes over a batch: optimistic (no savepoint per
//! event) and, when a plugin fails an event, careful (a savepoint per
//! event) — with a native projection whose failures are chosen per offset.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ferry::config::Config;
use ferry::pipeline::{BatchReport, CAREFUL_BATCHES, Pipeline, PluginCode, Stats};
use ferry::plugin::{HandleError, Handled};
use ferry::store::{Db, StoreOptions};
use ferry::{Event, NativeProjection};

/// Inserts one row per event, then fails the offsets in `fail`
/// (permanently) after its write, so a failure leaves a write to undo.
struct Rows {
    fail: HashSet<i64>,
    /// Offsets that fail from their second call on (a plugin that is not
    /// deterministic).
    flaky: HashSet<i64>,
    calls: Arc<Mutex<Vec<i64>>>,
}

impl NativeProjection for Rows {
    fn version(&self) -> String {
        "1.0.0".into()
    }
    fn schema(&self) -> u32 {
        1
    }
    fn migrate(&mut self, conn: &rusqlite::Connection, _from: Option<u32>) -> Result<(), String> {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS rows (offset INTEGER PRIMARY KEY)")
            .map_err(|e| e.to_string())
    }
    fn handle(
        &mut self,
        conn: &rusqlite::Connection,
        event: &Event,
        _event_type: &str,
    ) -> Result<Handled, HandleError> {
        let seen_before = {
            let mut calls = self.calls.lock().unwrap();
            let seen = calls.contains(&event.offset);
            calls.push(event.offset);
            seen
        };
        conn.execute("INSERT INTO rows VALUES (?1)", [event.offset])
            .map_err(|e| HandleError::Permanent(e.to_string()))?;
        if self.fail.contains(&event.offset) || (seen_before && self.flaky.contains(&event.offset))
        {
            return Err(HandleError::Permanent(format!(
                "offset {} is bad",
                event.offset
            )));
        }
        Ok(Handled::Applied)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    pipeline: Pipeline,
    calls: Arc<Mutex<Vec<i64>>>,
}

fn fixture(fail: &[i64], extra: &str) -> Fixture {
    flaky_fixture(fail, &[], extra)
}

fn flaky_fixture(fail: &[i64], flaky: &[i64], extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(
        &format!(
            "[[plugins]]\nname = \"rows\"\npath = \"rows.wasm\"\nevents = [\"E\"]\ntables = [\"rows\"]\nmax_attempts = 1\non_failure = \"dead-letter\"\n{extra}"
        ),
        Path::new("."),
    )
    .unwrap();
    let db = Db::open(&dir.path().join("p.db"), &StoreOptions::default()).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let rows = Rows {
        fail: fail.iter().copied().collect(),
        flaky: flaky.iter().copied().collect(),
        calls: Arc::clone(&calls),
    };
    let pipeline = Pipeline::new(
        db,
        vec![(
            config.plugins[0].clone(),
            PluginCode::Native(Box::new(rows)),
        )],
        &config.pipeline,
        Arc::new(Stats::default()),
    )
    .unwrap();
    Fixture {
        _dir: dir,
        pipeline,
        calls,
    }
}

fn events(offsets: std::ops::Range<i64>) -> Vec<Event> {
    offsets
        .map(|o| Event::new("s".into(), 0, o, Some("E".into()), b"{}".to_vec()))
        .collect()
}

impl Fixture {
    fn batch(&mut self, offsets: std::ops::Range<i64>) -> BatchReport {
        self.calls.lock().unwrap().clear();
        self.pipeline.apply_batch(&events(offsets)).unwrap()
    }
    fn handler_calls_counted(&self) -> u64 {
        self.pipeline
            .stats()
            .latencies()
            .into_iter()
            .find(|(name, _)| name == "rows")
            .map_or(0, |(_, h)| h.count())
    }
    fn calls(&self) -> Vec<i64> {
        self.calls.lock().unwrap().clone()
    }
    fn rows(&self) -> Vec<i64> {
        self.pipeline
            .db()
            .with(|c| {
                let mut s = c.prepare("SELECT offset FROM rows ORDER BY offset")?;
                s.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()
            })
            .unwrap()
    }
}

#[test]
fn a_clean_batch_calls_each_handler_once_and_commits_everything() {
    let mut f = fixture(&[], "");
    let report = f.batch(0..100);
    assert_eq!(report.applied, 100);
    assert_eq!(f.calls(), (0..100).collect::<Vec<_>>());
    assert_eq!(f.handler_calls_counted(), 100);
    assert_eq!(f.rows(), (0..100).collect::<Vec<_>>());
    assert_eq!(f.pipeline.reruns(), 0);
}

#[test]
fn a_failure_reruns_the_batch_carefully_and_commits_each_event_once() {
    let mut f = fixture(&[50], "");
    let report = f.batch(0..100);
    assert_eq!((report.applied, report.dead_lettered), (99, 1));
    assert_eq!(report.committed.values().copied().collect::<Vec<_>>(), [99]);
    // The optimistic pass stopped at the failing event; the careful pass
    // ran the others again and took that failure as the event's attempt.
    let expected: Vec<i64> = (0..=50).chain(0..50).chain(51..100).collect();
    assert_eq!(f.calls(), expected);
    assert_eq!(f.pipeline.reruns(), 1);
    // The handler histogram counts the calls that stand: one per event.
    assert_eq!(f.handler_calls_counted(), 100);
    // The failing event's own write is gone, every other one is there once.
    assert_eq!(f.rows(), (0..100).filter(|o| *o != 50).collect::<Vec<_>>());

    // The next batches run carefully from the start (no second pass even
    // with a failure), then optimistically again.
    let mut f = fixture(&[50, 150], "");
    f.batch(0..100);
    let report = f.batch(100..200);
    assert_eq!((report.applied, report.dead_lettered), (99, 1));
    assert_eq!(f.calls(), (100..200).collect::<Vec<_>>());
    assert_eq!(f.pipeline.reruns(), 1);
    for b in 1..CAREFUL_BATCHES as i64 {
        f.batch(100 + 100 * b..200 + 100 * b);
    }
    assert_eq!(f.pipeline.reruns(), 1);
    let next = 100 + 100 * i64::from(CAREFUL_BATCHES);
    f.batch(next..next + 10);
    assert_eq!(f.calls().len(), 10);
    let total = f.rows().len() as i64;
    assert_eq!(
        total,
        next + 10 - 2,
        "every event once but the two failures"
    );
}

#[test]
fn the_flood_guard_does_not_count_the_abandoned_pass() {
    // A window of 3 events allowing 1 dead letter: after one dead letter,
    // a second one within 3 events stops the partition.
    let guard = "[pipeline.dead_letter_guard]\nwindow_events = 3\nmax_dead_letters = 1\n";
    let mut f = fixture(&[0, 3], guard);
    assert_eq!(f.batch(0..1).dead_lettered, 1);
    for _ in 0..CAREFUL_BATCHES {
        f.batch(1..1);
    }
    // Optimistic pass: 1 and 2 succeed, 3 fails, the pass is abandoned.
    // Had its two successes stayed in the window, the careful pass would
    // push the first dead letter out of it and dead-letter 3 as well.
    let report = f.batch(1..4);
    assert_eq!(f.pipeline.reruns(), 2);
    assert_eq!(report.dead_lettered, 0);
    let blocked = report.blocked.values().next().expect("partition stopped");
    assert_eq!(blocked.offset, 3);
    assert_eq!(blocked.retry_after, None);
    assert_eq!(f.rows(), [1, 2]);
}

#[test]
fn a_failure_seen_on_another_state_is_not_reused() {
    // 10 succeeds on the optimistic pass and fails on the careful one, so
    // the failure 20 met on the optimistic pass came from a state the
    // careful pass never reaches: 20 is called again.
    let mut f = flaky_fixture(&[20], &[10], "");
    let report = f.batch(0..30);
    assert_eq!((report.applied, report.dead_lettered), (28, 2));
    let expected: Vec<i64> = (0..=20).chain(0..30).collect();
    assert_eq!(f.calls(), expected);
    assert_eq!(
        f.rows(),
        (0..30).filter(|o| *o != 10 && *o != 20).collect::<Vec<_>>()
    );
}
