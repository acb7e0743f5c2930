//! The HTTP API of `ferry run` as a child process against the in-process
//! mock cluster: F10 (health says ready while the loop is stuck), a
//! stopped partition visible in `/sources` and `/health/ready`, and
//! `/metrics` counters matching what was sent.

use std::time::Duration;

use ferry_tests::kafka::{
    Running, appends, caught_up, high_watermarks, produce, produce_to, wait_for,
};
use ferry_tests::{Workspace, api_addr, count, http_get};

const TOPIC: &str = "events";
const PARTITIONS: i32 = 2;
const KEY: &str = "src/events";

fn start(ws: &Workspace, bootstrap: &str, plugin_extra: &str) -> (Running, String) {
    ws.config(&format!(
        r#"
[store]
path = "ferry.db"
busy_timeout_ms = 200

[runtime]
progress_interval_ms = 0
component_cache = {cache}

[pipeline]
batch_size = 100
linger_ms = 5

[pipeline.retry]
initial_backoff_ms = 10
max_backoff_ms = 100

[api]
listen = "127.0.0.1:0"
stuck_after_ms = 1500
ready_max_lag = 0

[[plugins]]
name = "chaos"
path = {{chaos}}
events = ["Append", "Permanent"]
tables = ["log"]
{plugin_extra}

[[sources]]
name = "src"
kind = "kafka"
brokers = "{bootstrap}"
topics = ["{TOPIC}"]
"#,
        cache = ferry_tests::toml_path(&std::env::temp_dir().join("ferry-test-component-cache")),
    ));
    let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
    assert!(
        wait_for(Duration::from_secs(30), || api_addr(&run.output())
            .is_some()),
        "{}",
        run.output()
    );
    let addr = api_addr(&run.output()).unwrap();
    (run, addr)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    http_get(addr, path).unwrap_or((0, String::new()))
}

/// F10: while another process holds SQLite's write lock, ferry's loop
/// still turns but cannot commit; with events waiting, `/health/live` and
/// `/health/ready` must both fail within `stuck_after_ms`, then recover
/// once the lock is gone, with every event applied exactly once.
#[test]
fn f10_health_is_not_ready_while_the_loop_is_stuck() {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    produce(&bootstrap, TOPIC, appends(0, 300, 8));
    let (run, addr) = start(&ws, &bootstrap, "");
    assert!(
        wait_for(Duration::from_secs(30), || get(&addr, "/health/ready").0
            == 200),
        "never ready: {:?}\n{}",
        get(&addr, "/health/ready"),
        run.output()
    );
    assert_eq!(get(&addr, "/health/live").0, 200);
    // Another writer takes the database's write lock and keeps it.
    let blocker = rusqlite::Connection::open(ws.db()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    produce(&bootstrap, TOPIC, appends(300, 300, 8));
    assert!(
        wait_for(Duration::from_secs(20), || get(&addr, "/health/live").0
            == 503),
        "live stayed up while nothing could be committed: {:?}\n{}",
        get(&addr, "/health/live"),
        run.output()
    );
    let (code, why) = get(&addr, "/health/ready");
    assert_eq!(code, 503, "{why}");
    assert!(why.contains("nothing was committed"), "{why}");
    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
    assert!(
        wait_for(Duration::from_secs(30), || {
            caught_up(&ws.db(), KEY, &high) && get(&addr, "/health/ready").0 == 200
        }),
        "did not recover: {:?}\n{}",
        get(&addr, "/health/ready"),
        run.output()
    );
    assert_eq!(get(&addr, "/health/live").0, 200);
    let (status, out) = run.interrupt(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    let c = ws.open_db();
    assert_eq!(count(&c, "SELECT count(*) FROM log"), 600);
    assert_eq!(count(&c, "SELECT count(DISTINCT payload) FROM log"), 600);
}

/// A partition stopped by `on_failure = "stop-partition"` shows as
/// `stopped` in `/sources`, fails `/health/ready` with its name while
/// `/health/live` stays up (the other partition keeps flowing), and
/// `/metrics` counts exactly what was sent.
#[test]
fn a_stopped_partition_is_reported_by_sources_ready_and_metrics() {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    let to = |p: i32, from: u64, n: u64| {
        produce_to(
            &bootstrap,
            TOPIC,
            p,
            appends(from, n, 1).map(|(t, _, v)| (t, format!("p{p}"), v)),
        );
    };
    to(0, 0, 20);
    produce_to(
        &bootstrap,
        TOPIC,
        0,
        [("Permanent", "p0".to_owned(), "{}".to_owned())],
    );
    to(0, 20, 5);
    to(1, 100, 30);
    let (run, addr) = start(
        &ws,
        &bootstrap,
        "max_attempts = 1\non_failure = \"stop-partition\"",
    );
    assert!(
        wait_for(Duration::from_secs(30), || {
            let sources = get(&addr, "/sources").1;
            sources.contains("\"lag\":6,\"state\":\"stopped\"")
                && get(&addr, "/metrics").1.contains("outcome=\"applied\"} 50")
        }),
        "{:?}\n{}",
        get(&addr, "/sources"),
        run.output()
    );
    let (code, why) = get(&addr, "/health/ready");
    assert_eq!(code, 503);
    assert!(why.contains("src/events/0 is stopped"), "{why}");
    assert_eq!(
        get(&addr, "/health/live").0,
        200,
        "a stopped partition is not a stuck loop"
    );
    let sources: serde_json::Value = serde_json::from_str(&get(&addr, "/sources").1).unwrap();
    let p0 = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"] == 0)
        .unwrap();
    assert_eq!(p0["checkpoint"], 19, "{sources}");
    assert_eq!(p0["lag"], 6, "{sources}");
    let metrics = get(&addr, "/metrics").1;
    let applied = |plugin_line: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(plugin_line))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert_eq!(
        applied("ferry_events_total{plugin=\"chaos\",event_type=\"Append\",outcome=\"applied\"}"),
        Some(50),
        "{metrics}"
    );
    assert_eq!(
        applied(
            "ferry_events_total{plugin=\"chaos\",event_type=\"Permanent\",outcome=\"stopped\"}"
        ),
        Some(1),
        "{metrics}"
    );
    assert!(metrics.contains(
        "ferry_partition_state{source=\"src/events\",partition=\"0\",state=\"stopped\"} 1"
    ));
    drop(run);
}
