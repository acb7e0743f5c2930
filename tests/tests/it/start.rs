//! Where a partition without a checkpoint starts
//! (`start_without_checkpoint`), on librdkafka's in-process mock cluster:
//! the group's committed offset, the earliest or the end; a checkpoint
//! always wins over all of them.

use std::time::Duration;

use ferry_tests::kafka::{
    Running, appends, chaos_config, checkpoints, commit, produce_to, run_until_checkpoints,
    wait_for,
};
use ferry_tests::{Workspace, bounded, count};

const TOPIC: &str = "events";
const KEY: &str = "src/events";
const GROUP: &str = "ferry-start";

fn config(ws: &Workspace, bootstrap: &str, source: &str) -> std::path::PathBuf {
    chaos_config(ws, bootstrap, TOPIC, source)
}

/// A group member that leaves quickly, so the next run gets the
/// partitions at once (the mock broker waits out the session otherwise).
const GROUP_SOURCE: &str = r#"mode = "group"
group_id = "ferry-start"
librdkafka = { "session.timeout.ms" = "3000", "heartbeat.interval.ms" = "100" }"#;

/// Runs ferry until the checkpoints of partitions 0 and 1 are `until`.
fn run_until(ws: &Workspace, path: &std::path::Path, until: [i64; 2]) -> String {
    run_until_checkpoints(ws, path, KEY, &until)
}

/// The `n` of every applied Append event, in order of application.
fn applied(ws: &Workspace) -> Vec<u64> {
    let c = ws.open_db();
    let mut s = c.prepare("SELECT payload FROM log ORDER BY rowid").unwrap();
    s.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_str(&p.unwrap()).unwrap();
            v["n"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn committed_starts_at_the_group_offset_or_the_earliest_and_a_checkpoint_wins_later() {
    bounded(Duration::from_secs(180), || {
        let _cluster = ferry_tests::kafka::cluster(TOPIC, 2);
        let bootstrap = _cluster.bootstrap_servers();
        produce_to(&bootstrap, TOPIC, 0, appends(0, 100, 10));
        produce_to(&bootstrap, TOPIC, 1, appends(1_000, 60, 10));
        // Partition 0 has a group offset (40), partition 1 none. A second
        // group has offsets behind where the first run will have got to.
        commit(&bootstrap, GROUP, TOPIC, &[(0, 40)]);
        commit(&bootstrap, "ferry-start-2", TOPIC, &[(0, 10), (1, 0)]);
        let ws = Workspace::new();
        let path = config(
            &ws,
            &bootstrap,
            &format!("{GROUP_SOURCE}\nstart_without_checkpoint = \"committed\""),
        );
        let out = run_until(&ws, &path, [99, 59]);
        let mut got = applied(&ws);
        got.sort_unstable();
        let want: Vec<u64> = (40..100).chain(1_000..1_060).collect();
        assert_eq!(got, want, "{out}");
        // Resolved when the partitions were assigned, not through librdkafka's
        // offset-reset error.
        assert!(!out.contains("missing or gone"), "{out}");

        // Restarted in the second group, whose offsets are behind the
        // checkpoints: the checkpoints win, nothing is applied twice.
        let path = config(
            &ws,
            &bootstrap,
            &format!("{GROUP_SOURCE}\nstart_without_checkpoint = \"committed\"")
                .replace(GROUP, "ferry-start-2"),
        );
        produce_to(&bootstrap, TOPIC, 0, appends(100, 20, 10));
        let out = run_until(&ws, &path, [119, 59]);
        let c = ws.open_db();
        assert_eq!(count(&c, "SELECT count(*) FROM log"), 60 + 60 + 20, "{out}");
        assert_eq!(count(&c, "SELECT count(DISTINCT payload) FROM log"), 140);
    });
}

#[test]
fn earliest_is_the_default_and_ignores_the_group_offset() {
    bounded(Duration::from_secs(180), || {
        let _cluster = ferry_tests::kafka::cluster(TOPIC, 2);
        let bootstrap = _cluster.bootstrap_servers();
        produce_to(&bootstrap, TOPIC, 0, appends(0, 30, 10));
        produce_to(&bootstrap, TOPIC, 1, appends(1_000, 20, 10));
        commit(&bootstrap, GROUP, TOPIC, &[(0, 25), (1, 15)]);
        let ws = Workspace::new();
        let path = config(&ws, &bootstrap, GROUP_SOURCE);
        run_until(&ws, &path, [29, 19]);
        assert_eq!(applied(&ws).len(), 50);
    });
}

/// Starts ferry on a topic that already holds events, then produces more
/// until ferry has applied some on both partitions: only those are applied.
fn only_new_events(source: &str) {
    let _cluster = ferry_tests::kafka::cluster(TOPIC, 2);
    let bootstrap = _cluster.bootstrap_servers();
    produce_to(&bootstrap, TOPIC, 0, appends(0, 50, 10));
    produce_to(&bootstrap, TOPIC, 1, appends(1_000, 50, 10));
    let ws = Workspace::new();
    let path = config(&ws, &bootstrap, source);
    let run = Running::start(ws.dir.path(), &["run", "--config", path.to_str().unwrap()]);
    let mut next = 10_000;
    // Ferry resolves "the end" asynchronously after the assignment, so new
    // events are produced until some of each partition's arrive.
    let both = wait_for(Duration::from_secs(60), || {
        produce_to(&bootstrap, TOPIC, 0, appends(next, 5, 10));
        produce_to(&bootstrap, TOPIC, 1, appends(next + 5, 5, 10));
        next += 10;
        std::thread::sleep(Duration::from_millis(200));
        checkpoints(&ws.db(), KEY).len() == 2
    });
    let (status, out) = run.interrupt(Duration::from_secs(30));
    assert!(both, "{out}");
    assert!(status.is_some_and(|s| s.success()), "{out}");
    let got = applied(&ws);
    assert!(!got.is_empty());
    assert!(
        got.iter().all(|n| *n >= 10_000),
        "events already on the topic were applied: {got:?}"
    );
}

#[test]
fn latest_applies_only_events_produced_after_the_start() {
    bounded(Duration::from_secs(180), || {
        only_new_events(r#"start_without_checkpoint = "latest""#);
    });
}

#[test]
fn committed_without_a_group_offset_follows_an_auto_offset_reset_of_latest() {
    bounded(Duration::from_secs(180), || {
        only_new_events(&format!(
            "{}\nstart_without_checkpoint = \"committed\"",
            GROUP_SOURCE.replace(
                r#""heartbeat.interval.ms" = "100" }"#,
                r#""heartbeat.interval.ms" = "100", "auto.offset.reset" = "latest" }"#
            )
        ));
    });
}
