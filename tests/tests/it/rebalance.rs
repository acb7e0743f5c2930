//! Consumer-group failure modes on the in-process mock cluster, driven
//! step by step with ferry's own source, pipeline and driver:
//! F3 (stale offsets committed after a rebalance), F4 (no flush on
//! revoke), F13 (a zombie keeps writing after losing its assignment).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::config::{Config, SourceConfig};
use ferry::pipeline::{Fences, Pipeline, Stats};
use ferry::run::Driver;
use ferry::source::PartitionState;
use ferry::source::kafka::{KafkaSource, Polled};
use ferry_tests::kafka::{appends, caught_up, checkpoints, committed, high_watermarks, produce};
use ferry_tests::{Workspace, bounded, count};

const TOPIC: &str = "events";
const PARTITIONS: i32 = 4;
const KEY: &str = "src/events";

/// A group-mode config; `max.poll.interval.ms` is short so that a member
/// that stops polling is thrown out quickly (the zombie of F13).
fn config(ws: &Workspace, bootstrap: &str, group: &str) -> std::path::PathBuf {
    ws.config(&format!(
        r#"
[store]
path = "ferry.db"

[pipeline]
batch_size = 100
linger_ms = 5

[[plugins]]
name = "chaos"
path = {{chaos}}
events = ["Append"]
tables = ["log"]

[[sources]]
name = "src"
kind = "kafka"
brokers = "{bootstrap}"
topics = ["{TOPIC}"]
mode = "group"
group_id = "{group}"
librdkafka = {{ "session.timeout.ms" = "3000", "heartbeat.interval.ms" = "100", "max.poll.interval.ms" = "3000" }}
"#
    ))
}

/// One group member: ferry's Kafka source, its pipeline and driver.
struct Member {
    source: KafkaSource,
    pipeline: Pipeline,
    driver: Driver,
}

impl Member {
    fn join(config: &Path, db: &Path, bootstrap: &str) -> Self {
        let config = Config::load(config).unwrap();
        let SourceConfig::Kafka(k) = &config.sources[0] else {
            panic!("the test config has a Kafka source")
        };
        let pipeline = ferry::run::build_pipeline(&config, db, Arc::new(Stats::default())).unwrap();
        Self {
            source: KafkaSource::start(
                k,
                bootstrap,
                Arc::new(ferry::run::ports::StorePositions::new(db.to_owned())),
                100,
            )
            .unwrap(),
            pipeline,
            driver: Driver::new(&config.pipeline),
        }
    }

    fn step(&mut self) -> usize {
        self.driver
            .step(&mut self.source, &mut self.pipeline)
            .map_or(0, |r| r.applied)
    }

    fn owned(&self) -> usize {
        self.source.partitions(&mut |_| None).len()
    }

    /// Polls without fencing (the first half of a batch).
    fn poll_raw(&mut self, out: &mut Vec<Polled>) {
        self.source.poll_into(
            out,
            400,
            Duration::from_millis(50),
            Duration::from_millis(50),
        );
    }

    /// Fences what was polled (the second half).
    fn fence(&self, mut polled: Vec<Polled>) -> (Vec<ferry::Event>, Fences) {
        let (mut events, mut fences) = (Vec::new(), Fences::new());
        self.source
            .fence_into(&mut polled, &mut events, &mut fences);
        (events, fences)
    }
}

/// Steps every member until `cond` holds (bounded).
fn step_until(
    members: &mut [&mut Member],
    limit: Duration,
    mut cond: impl FnMut(&[&mut Member]) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        for m in members.iter_mut() {
            m.step();
        }
        if cond(members) {
            return true;
        }
    }
    false
}

fn rows(db: &Path) -> (i64, i64) {
    let c = rusqlite::Connection::open(db).unwrap();
    (
        count(&c, "SELECT count(*) FROM log"),
        count(&c, "SELECT count(DISTINCT payload) FROM log"),
    )
}

/// F13: member A polls a batch, then stalls past `max.poll.interval.ms`;
/// the group hands its partitions to B (same database), which claims them
/// and applies everything. When A finally applies its stale batch, the
/// fencing generation checked inside A's transaction refuses every event:
/// nothing is written twice and no checkpoint moves.
#[test]
fn f13_a_zombie_that_lost_its_assignment_writes_nothing() {
    bounded(Duration::from_secs(180), || {
        let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
        let bootstrap = cluster.bootstrap_servers();
        let ws = Workspace::new();
        let path = config(&ws, &bootstrap, "ferry-f13");
        let db = ws.db();
        produce(&bootstrap, TOPIC, appends(0, 400, 16));
        let mut a = Member::join(&path, &db, &bootstrap);
        let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
        assert!(
            step_until(&mut [&mut a], Duration::from_secs(30), |_| caught_up(
                &db, KEY, &high
            )),
            "A did not catch up: {:?}",
            checkpoints(&db, KEY)
        );
        // A polls the next events, then stalls before applying them.
        produce(&bootstrap, TOPIC, appends(400, 400, 16));
        let mut polled = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while polled.len() < 100 && Instant::now() < deadline {
            a.poll_raw(&mut polled);
        }
        assert!(!polled.is_empty(), "A polled nothing");
        let (stale, fences) = a.fence(polled);
        assert!(!stale.is_empty());
        // B joins; A does not poll, so the group throws it out and B gets all.
        let mut b = Member::join(&path, &db, &bootstrap);
        let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
        assert!(
            step_until(&mut [&mut b], Duration::from_secs(60), |m| {
                m[0].owned() == PARTITIONS as usize && caught_up(&db, KEY, &high)
            }),
            "B did not take over: owns {}, checkpoints {:?}",
            b.owned(),
            checkpoints(&db, KEY)
        );
        let before = checkpoints(&db, KEY);
        // The zombie wakes up and applies what it polled long ago.
        let report = a.pipeline.apply_fenced(&stale, &fences).unwrap();
        assert_eq!(report.applied, 0, "the zombie applied events: {report:?}");
        assert_eq!(report.fenced_events, stale.len());
        assert!(!report.fenced.is_empty());
        assert_eq!(
            checkpoints(&db, KEY),
            before,
            "the zombie moved a checkpoint"
        );
        let (n, distinct) = rows(&db);
        assert_eq!((n, distinct), (800, 800), "every event exactly once");
        // Its source stops taking those partitions instead of retrying them.
        a.source.after_batch(&report.delivery);
        let states: Vec<PartitionState> = a
            .source
            .partitions(&mut |_| None)
            .iter()
            .map(|l| l.state)
            .collect();
        assert!(
            states.iter().all(|s| *s == PartitionState::Fenced),
            "{states:?}"
        );
    });
}

/// F3: after a rebalance, a member must never commit the offsets it held
/// for partitions it gave away. A applies everything, B joins and takes
/// half, both apply more; when A shuts down, the group's offsets of B's
/// partitions must still be B's, not A's older ones.
#[test]
fn f3_no_stale_offsets_are_committed_after_a_rebalance() {
    bounded(Duration::from_secs(180), || {
        let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
        let bootstrap = cluster.bootstrap_servers();
        let ws = Workspace::new();
        let path = config(&ws, &bootstrap, "ferry-f3");
        let db = ws.db();
        produce(&bootstrap, TOPIC, appends(0, 400, 16));
        let mut a = Member::join(&path, &db, &bootstrap);
        let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
        assert!(step_until(&mut [&mut a], Duration::from_secs(30), |_| {
            caught_up(&db, KEY, &high)
        }));
        let mut b = Member::join(&path, &db, &bootstrap);
        assert!(
            step_until(&mut [&mut a, &mut b], Duration::from_secs(60), |m| {
                m[0].owned() > 0 && m[1].owned() > 0
            }),
            "the group did not split the partitions"
        );
        produce(&bootstrap, TOPIC, appends(400, 400, 16));
        let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
        let want: Vec<Option<i64>> = high.iter().map(|h| Some(*h)).collect();
        assert!(
            step_until(&mut [&mut a, &mut b], Duration::from_secs(60), |_| {
                caught_up(&db, KEY, &high)
                    && committed(&bootstrap, "ferry-f3", TOPIC, PARTITIONS) == want
            }),
            "not caught up and committed: {:?} vs {high:?}",
            committed(&bootstrap, "ferry-f3", TOPIC, PARTITIONS)
        );
        a.source.close();
        assert_eq!(
            committed(&bootstrap, "ferry-f3", TOPIC, PARTITIONS),
            want,
            "A's shutdown committed offsets older than what the group had"
        );
        assert_eq!(rows(&db), (800, 800));
    });
}

/// F4: a revocation finds nothing in flight. Everything A applied before
/// it is committed in SQLite (the batch transaction ends before the next
/// poll, where revocations are delivered), events A polled but had not
/// applied yet are dropped rather than applied after the partition moved,
/// and B continues from A's SQLite checkpoints: every event exactly once.
/// (The advisory group commit on revocation is best effort: librdkafka's
/// mock broker refuses commits while a rebalance is in progress.)
#[test]
fn f4_a_revocation_finds_every_applied_event_durable_and_drops_the_unapplied() {
    bounded(Duration::from_secs(180), || {
        let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
        let bootstrap = cluster.bootstrap_servers();
        let ws = Workspace::new();
        let path = config(&ws, &bootstrap, "ferry-f4");
        let db = ws.db();
        produce(&bootstrap, TOPIC, appends(0, 400, 16));
        let mut a = Member::join(&path, &db, &bootstrap);
        let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
        assert!(step_until(&mut [&mut a], Duration::from_secs(30), |_| {
            caught_up(&db, KEY, &high)
        }));
        // A holds polled, unapplied events when B joins.
        produce(&bootstrap, TOPIC, appends(400, 400, 16));
        let mut held = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while held.len() < 100 && Instant::now() < deadline {
            a.poll_raw(&mut held);
        }
        assert!(!held.is_empty(), "A polled nothing");
        let mut b = Member::join(&path, &db, &bootstrap);
        // A keeps polling (into a scratch batch it never applies) until the
        // revocation has been delivered to it.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut scratch = Vec::new();
        while a.owned() == PARTITIONS as usize && Instant::now() < deadline {
            a.poll_raw(&mut scratch);
            b.step();
        }
        assert!(a.owned() < PARTITIONS as usize, "A was never revoked");
        let (late, _) = a.fence(held);
        let (late_scratch, _) = a.fence(std::mem::take(&mut scratch));
        assert!(
            late.is_empty() && late_scratch.is_empty(),
            "events polled before the revocation survived it"
        );
        // Nothing A applied was lost or is applied again by anyone.
        let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
        assert!(
            step_until(&mut [&mut a, &mut b], Duration::from_secs(60), |_| {
                caught_up(&db, KEY, &high)
            }),
            "not caught up: {:?} vs {high:?}",
            checkpoints(&db, KEY)
        );
        assert_eq!(rows(&db), (800, 800));
    });
}

/// Closing a group member whose broker has gone away does not hang: the
/// source gives its assignment up without the broker and librdkafka's
/// close is bounded.
#[test]
fn closing_a_member_after_the_broker_is_gone_does_not_hang() {
    bounded(Duration::from_secs(120), || {
        let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
        let bootstrap = cluster.bootstrap_servers();
        let ws = Workspace::new();
        let path = config(&ws, &bootstrap, "ferry-gone");
        let db = ws.db();
        produce(&bootstrap, TOPIC, appends(0, 100, 16));
        let mut a = Member::join(&path, &db, &bootstrap);
        let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
        assert!(step_until(&mut [&mut a], Duration::from_secs(30), |_| {
            caught_up(&db, KEY, &high)
        }));
        drop(cluster);
        let started = Instant::now();
        a.source.close();
        let took = started.elapsed();
        // 5 s to give the assignment up, 10 s to close, and slack for a
        // loaded machine.
        assert!(took < Duration::from_secs(30), "closing took {took:?}");
        assert_eq!(rows(&db).0, 100);
    });
}
