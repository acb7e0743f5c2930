//! Offsets out of range on librdkafka's in-process mock cluster (which keeps
//! only the newest ~5 MB of each partition): events deleted by retention
//! before ferry applied them are never skipped silently.

use std::time::Duration;

use ferry_tests::kafka::{
    Running, chaos_config, checkpoints, produce_to, run_until_checkpoints, wait_for,
};
use ferry_tests::{Workspace, api_addr, bounded, count, http_get};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;

const TOPIC: &str = "events";
const KEY: &str = "src/events";

fn config(ws: &Workspace, bootstrap: &str, extra_source: &str) -> std::path::PathBuf {
    chaos_config(ws, bootstrap, TOPIC, extra_source)
}

/// `n` Append events from `from`, each carrying `pad` bytes of padding.
fn appends(from: u64, n: u64, pad: usize) -> Vec<(&'static str, String, String)> {
    let pad = "x".repeat(pad);
    (from..from + n)
        .map(|i| {
            (
                "Append",
                format!("k{}", i % 10),
                format!(r#"{{"n":{i},"pad":"{pad}"}}"#),
            )
        })
        .collect()
}

fn watermarks(bootstrap: &str, partition: i32) -> (i64, i64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    c.fetch_watermarks(TOPIC, partition, Duration::from_secs(5))
        .unwrap()
}

/// Runs ferry until partitions 0 and 1 reach `until`, then stops it.
fn run_until(ws: &Workspace, path: &std::path::Path, until: [i64; 2]) -> String {
    run_until_checkpoints(ws, path, KEY, &until)
}

/// A cluster whose partition 0 lost offsets 100.. to retention after
/// ferry applied 0..=99; partition 1 lost nothing. Returns the cluster,
/// the workspace and partition 0's watermarks.
fn lost_to_retention(
    extra_source: &str,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    Workspace,
    std::path::PathBuf,
    (i64, i64),
) {
    let cluster = ferry_tests::kafka::cluster(TOPIC, 2);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    let path = config(&ws, &bootstrap, extra_source);
    produce_to(&bootstrap, TOPIC, 0, appends(0, 100, 0));
    produce_to(&bootstrap, TOPIC, 1, appends(1_000_000, 50, 0));
    run_until(&ws, &path, [99, 49]);
    // ~8 MB more into partition 0 while ferry is down: the mock broker
    // keeps ~5 MB, so offsets from 100 on are deleted.
    produce_to(&bootstrap, TOPIC, 0, appends(100, 4_000, 2_000));
    produce_to(&bootstrap, TOPIC, 1, appends(1_000_050, 50, 0));
    let (low, high) = watermarks(&bootstrap, 0);
    assert!(
        low > 100,
        "retention did not delete anything: log starts at {low}"
    );
    (cluster, ws, path, (low, high))
}

#[test]
fn offsets_deleted_by_retention_become_one_gap_dead_letter_and_the_partition_goes_on() {
    bounded(Duration::from_secs(180), || {
        gap_then_go_on("");
    });
}

#[test]
fn in_a_consumer_group_too_the_lost_offsets_become_a_gap_dead_letter() {
    bounded(Duration::from_secs(180), || {
        // An eager group: the assignment is restarted whole, at each
        // partition's position.
        // A short session: the mock broker lets the stopped first run's member
        // time out before the second run gets the partitions.
        gap_then_go_on(
            "mode = \"group\"\ngroup_id = \"ferry-retention\"\nlibrdkafka = { \"session.timeout.ms\" = \"3000\", \"heartbeat.interval.ms\" = \"100\" }",
        );
    });
}

fn gap_then_go_on(extra_source: &str) {
    let (_cluster, ws, path, (low, high)) = lost_to_retention(extra_source);
    let out = run_until(&ws, &path, [high - 1, 99]);
    let c = ws.open_db();
    assert_eq!(
        count(&c, "SELECT count(*) FROM ferry_dead_letters"),
        1,
        "{out}"
    );
    let (class, offset, message): (String, i64, String) = c
        .query_row(
            r#"SELECT error_class, "offset", error_message FROM ferry_dead_letters"#,
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((class.as_str(), offset), ("gap", low - 1));
    assert!(
        message.contains(&format!("offsets 100 to {} of {TOPIC} [0]", low - 1)),
        "{message}"
    );
    // Everything the broker still had was applied, once; partition 1 was
    // not touched.
    assert_eq!(
        count(&c, "SELECT count(*) FROM log"),
        100 + (high - low) + 100
    );
    assert_eq!(
        count(&c, "SELECT count(DISTINCT payload) FROM log"),
        100 + (high - low) + 100
    );
    assert!(
        out.contains("the gap is recorded as a dead letter"),
        "{out}"
    );
}

#[test]
fn with_on_out_of_range_stop_the_partition_stops_at_its_checkpoint_and_says_why() {
    bounded(Duration::from_secs(180), || {
        let (_cluster, ws, path, _) = lost_to_retention(r#"on_out_of_range = "stop""#);
        let run = Running::start(ws.dir.path(), &["run", "--config", path.to_str().unwrap()]);
        let mut sources = String::new();
        let stopped = wait_for(Duration::from_secs(60), || {
            let Some(addr) = api_addr(&run.output()) else {
                return false;
            };
            sources = http_get(&addr, "/sources").map(|r| r.1).unwrap_or_default();
            checkpoints(&ws.db(), KEY).get(&1) == Some(&99) && sources.contains("stopped")
        });
        let (_, out) = run.interrupt(Duration::from_secs(30));
        assert!(stopped, "{sources}\n{out}");
        assert!(sources.contains("no longer on the broker"), "{sources}");
        assert_eq!(checkpoints(&ws.db(), KEY).get(&0), Some(&99));
        let c = ws.open_db();
        assert_eq!(count(&c, "SELECT count(*) FROM ferry_dead_letters"), 0);
        assert_eq!(count(&c, "SELECT count(*) FROM log"), 200);
    });
}
