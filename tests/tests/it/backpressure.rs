//! F9: a slow plugin must not make in-flight memory grow with the topic:
//! librdkafka's prefetch is bounded, a batch holds at most `batch_size`
//! events, so ferry's RSS stays flat while a large backlog waits.

use std::time::Duration;

use ferry_tests::Workspace;
use ferry_tests::kafka::{Running, checkpoints, produce, wait_for};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn f9_in_flight_memory_stays_bounded_under_a_slow_plugin() {
    let cluster = ferry_tests::kafka::cluster("backlog", 8);
    let bootstrap = cluster.bootstrap_servers();
    // ~40 MB of backlog (the mock cluster keeps ~5 MB per partition).
    let filler = "x".repeat(900);
    produce(
        &bootstrap,
        "backlog",
        (0..45_000).map(|i| {
            (
                "Slow",
                format!("k{}", i % 64),
                format!("{{\"ms\":2,\"n\":{i},\"pad\":\"{filler}\"}}"),
            )
        }),
    );
    let ws = Workspace::new();
    ws.config(&format!(
        r#"
[store]
path = "ferry.db"

[pipeline]
batch_size = 100
linger_ms = 10

[[plugins]]
name = "chaos"
path = {{chaos}}
events = ["Slow"]
tables = ["log"]

[[sources]]
name = "src"
kind = "kafka"
brokers = "{bootstrap}"
topics = ["backlog"]
"#
    ));
    let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
    let pid = run.child.id();
    assert!(wait_for(Duration::from_secs(60), || !checkpoints(
        &ws.db(),
        "src/backlog"
    )
    .is_empty()));
    std::thread::sleep(Duration::from_secs(2));
    let mut samples = Vec::new();
    for _ in 0..8 {
        samples.push(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(750));
    }
    let applied: i64 = checkpoints(&ws.db(), "src/backlog").values().sum();
    let (status, out) = run.interrupt(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    let (first, max) = (samples[0], *samples.iter().max().unwrap());
    eprintln!("RSS samples (KiB): {samples:?}; applied offsets so far ~{applied}");
    assert!(
        applied < 40_000,
        "the plugin was not slow enough for the backlog to matter"
    );
    assert!(max < 200 * 1024, "RSS {max} KiB is not bounded");
    assert!(
        max - first < 24 * 1024,
        "RSS grew from {first} to {max} KiB while the backlog waited"
    );
}
