//! Kafka delivery on librdkafka's in-process mock cluster: exact rows,
//! checkpoints, commits never ahead of SQLite, fault injection, SIGKILL
//! crash safety of the real binary, consumer-group handoff, and the
//! newcomer's `ferry run` with the root config.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_tests::kafka::{
    Running, appends, caught_up, checkpoints, committed, consume, high_watermarks, produce,
    wait_for,
};
use ferry_tests::{Workspace, api_addr, count, http_get, toml_path};

const TOPIC: &str = "events";
const PARTITIONS: i32 = 4;
const KEY: &str = "src/events";

fn config(ws: &Workspace, bootstrap: &str, extra_source: &str) -> std::path::PathBuf {
    ws.config(&format!(
        r#"
[store]
path = "ferry.db"

[runtime]
progress_interval_ms = 500
component_cache = {cache}

[pipeline]
batch_size = 200
linger_ms = 10

[pipeline.retry]
initial_backoff_ms = 10
max_backoff_ms = 200

[[plugins]]
name = "chaos"
path = {{chaos}}
events = ["Append", "FailKey"]
tables = ["log"]

[[sources]]
name = "src"
kind = "kafka"
brokers = "{bootstrap}"
topics = ["{TOPIC}"]
{extra_source}
"#,
        cache = toml_path(&std::env::temp_dir().join("ferry-test-component-cache")),
    ))
}

/// Runs a `ferry::Runtime` in a thread; returns its stop flag and handle.
fn run_in_process(
    path: &std::path::Path,
    db: &std::path::Path,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<anyhow::Result<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = ferry::Runtime::builder()
        .config_file(path)
        .unwrap()
        .store_path(db)
        .stop_flag(Arc::clone(&stop))
        .build()
        .unwrap();
    (stop, std::thread::spawn(move || runtime.run_blocking()))
}

/// Every event exactly once, and in partition order (keys stay in their
/// partition, so each key's `n` values must increase in apply order).
fn assert_exactly_once_in_order(conn: &rusqlite::Connection, n: i64) {
    assert_eq!(count(conn, "SELECT count(*) FROM log"), n, "rows");
    assert_eq!(
        count(conn, "SELECT count(DISTINCT payload) FROM log"),
        n,
        "duplicates"
    );
    let mut s = conn
        .prepare("SELECT event_key, payload FROM log ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String)> = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut last: std::collections::HashMap<String, i64> = Default::default();
    for (key, payload) in rows {
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
        let n = v["n"].as_i64().unwrap();
        if let Some(prev) = last.insert(key.clone(), n) {
            assert!(n > prev, "key {key}: {n} applied after {prev}");
        }
    }
}

#[test]
fn events_across_partitions_become_exact_rows_and_commits_never_lead_sqlite() {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    let path = config(&ws, &bootstrap, r#"group_id = "ferry-commits""#);
    // Enough events that ferry is still applying when the first committed
    // offsets are sampled (contract 0.2 applies 3,000 before that).
    const N: i64 = 30_000;
    produce(&bootstrap, TOPIC, appends(0, N as u64, 40));
    let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
    assert_eq!(high.iter().sum::<i64>(), N);
    let (stop, handle) = run_in_process(&path, &ws.db());
    let mut samples = 0;
    let done = wait_for(Duration::from_secs(60), || {
        // Kafka first, SQLite second: a commit is only ever sent after the
        // SQLite commit, so what Kafka holds can never lead.
        let kafka = committed(&bootstrap, "ferry-commits", TOPIC, PARTITIONS);
        let sqlite = checkpoints(&ws.db(), KEY);
        for (p, c) in kafka.iter().enumerate() {
            if let Some(c) = c {
                let cp = sqlite.get(&(p as i32)).copied().unwrap_or(-1);
                assert!(
                    *c <= cp + 1,
                    "partition {p}: Kafka committed {c}, SQLite holds {cp}"
                );
                samples += 1;
            }
        }
        caught_up(&ws.db(), KEY, &high)
    });
    assert!(done, "ferry did not catch up");
    // The last advisory commits reach Kafka too.
    assert!(wait_for(Duration::from_secs(10), || {
        committed(&bootstrap, "ferry-commits", TOPIC, PARTITIONS)
            .iter()
            .zip(&high)
            .all(|(c, h)| *c == Some(*h))
    }));
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();
    assert!(samples > 0, "never saw a committed offset");
    let conn = ws.open_db();
    assert_exactly_once_in_order(&conn, N);
    let cps = checkpoints(&ws.db(), KEY);
    for (p, h) in high.iter().enumerate() {
        assert_eq!(
            cps[&(p as i32)],
            h - 1,
            "checkpoint == last offset of partition {p}"
        );
    }
}

#[test]
fn broker_down_and_request_errors_lose_nothing() {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    let path = config(&ws, &bootstrap, "");
    produce(&bootstrap, TOPIC, appends(0, 1_000, 16));
    let (stop, handle) = run_in_process(&path, &ws.db());
    assert!(wait_for(Duration::from_secs(30), || !checkpoints(
        &ws.db(),
        KEY
    )
    .is_empty()));
    cluster.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    cluster.broker_up(1).unwrap();
    produce(&bootstrap, TOPIC, appends(1_000, 1_000, 16));
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    produce(&bootstrap, TOPIC, appends(2_000, 1_000, 16));
    let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
    assert!(
        wait_for(Duration::from_secs(60), || caught_up(&ws.db(), KEY, &high)),
        "did not recover"
    );
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();
    assert_exactly_once_in_order(&ws.open_db(), 3_000);
}

#[test]
fn a_poison_key_is_dead_lettered_and_published_without_blocking_other_partitions() {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    cluster.create_topic("events.dlq", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    let path = config(&ws, &bootstrap, r#"dead_letter_topic = "events.dlq""#);
    let events = (0..400).map(|i| {
        (
            "FailKey",
            format!("k{}", i % 40),
            format!("{{\"n\":{i},\"bad\":\"k3\"}}"),
        )
    });
    produce(&bootstrap, TOPIC, events);
    let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
    let (stop, handle) = run_in_process(&path, &ws.db());
    assert!(wait_for(Duration::from_secs(60), || caught_up(
        &ws.db(),
        KEY,
        &high
    )));
    // Dead letters reach the topic through the outbox (at least once).
    let published = consume(&bootstrap, "events.dlq", 10, Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();
    let c = ws.open_db();
    assert_eq!(
        count(&c, "SELECT count(*) FROM ferry_dead_letters"),
        10,
        "every k3 event"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM log"), 390);
    assert_eq!(
        count(&c, "SELECT count(*) FROM log WHERE event_key = 'k3'"),
        0
    );
    assert_eq!(published.len(), 10, "dead letters on the topic");
    let header = |r: &ferry_tests::kafka::Record, name: &str| {
        r.2.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    for r in &published {
        assert_eq!(r.0.as_deref(), Some(&b"k3"[..]));
        assert!(String::from_utf8_lossy(&r.1).contains("\"bad\":\"k3\""));
        assert_eq!(header(r, "ferry-error-class").as_deref(), Some("permanent"));
        assert_eq!(header(r, "ferry-source").as_deref(), Some(KEY));
        assert_eq!(
            header(r, "event-type").as_deref(),
            Some("FailKey"),
            "original headers are kept"
        );
        assert!(
            header(r, "ferry-error-message")
                .unwrap()
                .contains("key k3 is poison")
        );
    }
    assert!(
        wait_for(Duration::from_secs(10), || count(
            &ws.open_db(),
            "SELECT count(*) FROM ferry_outbox"
        ) == 0),
        "sent messages leave the outbox"
    );
}

#[test]
fn f11_sigkill_at_random_moments_then_restart_gives_the_clean_projection() {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    config(&ws, &bootstrap, "");
    // Enough events that a kill 0–200 ms after the first commit lands
    // mid-stream (contract 0.2 applies 6,000 within that).
    const N: u64 = 60_000;
    produce(&bootstrap, TOPIC, appends(0, N, 64));
    let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
    let mut seed = 0x2545_f491_u64;
    let mut killed_mid_stream = 0;
    for _ in 0..4 {
        let before: i64 = checkpoints(&ws.db(), KEY).values().sum();
        let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
        assert!(wait_for(Duration::from_secs(60), || {
            checkpoints(&ws.db(), KEY).values().sum::<i64>() > before
                || caught_up(&ws.db(), KEY, &high)
        }));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 200));
        run.kill();
        if !caught_up(&ws.db(), KEY, &high) {
            killed_mid_stream += 1;
        }
    }
    assert!(
        killed_mid_stream >= 1,
        "never killed mid-stream: the test proved nothing"
    );
    let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
    assert!(wait_for(Duration::from_secs(60), || caught_up(
        &ws.db(),
        KEY,
        &high
    )));
    let (status, out) = run.interrupt(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    assert_exactly_once_in_order(&ws.open_db(), N as i64);
}

#[test]
fn group_mode_survivor_takes_over_and_completes_every_partition() {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let group = r#"mode = "group"
group_id = "ferry-group-test"
librdkafka = { "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }"#;
    let (a, b) = (Workspace::new(), Workspace::new());
    config(&a, &bootstrap, group);
    config(&b, &bootstrap, group);
    produce(&bootstrap, TOPIC, appends(0, 2_000, 32));
    let run_a = Running::start(a.dir.path(), &["run", "--config", "config.toml"]);
    let run_b = Running::start(b.dir.path(), &["run", "--config", "config.toml"]);
    // Both own something, then A dies mid-stream.
    assert!(
        wait_for(Duration::from_secs(60), || {
            !checkpoints(&a.db(), KEY).is_empty() && !checkpoints(&b.db(), KEY).is_empty()
        }),
        "A: {}\nB: {}",
        run_a.output(),
        run_b.output()
    );
    let owned_by_b_before: Vec<i32> = checkpoints(&b.db(), KEY).keys().copied().collect();
    assert!(
        owned_by_b_before.len() < PARTITIONS as usize,
        "B owned everything from the start"
    );
    run_a.kill();
    produce(&bootstrap, TOPIC, appends(2_000, 2_000, 32));
    let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
    assert!(
        wait_for(Duration::from_secs(90), || caught_up(&b.db(), KEY, &high)),
        "B did not take over: {}",
        run_b.output()
    );
    let (status, out) = run_b.interrupt(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    // B rebuilt the partitions it had no checkpoint for from the earliest
    // offset: a complete projection, every event exactly once.
    assert_exactly_once_in_order(&b.open_db(), 4_000);
    // A never applied anything twice either.
    let ca = a.open_db();
    assert_eq!(
        count(&ca, "SELECT count(*) FROM log"),
        count(&ca, "SELECT count(DISTINCT payload) FROM log")
    );
}

#[test]
fn the_newcomers_run_command_shows_progress_and_stops_gracefully() {
    let ws = Workspace::new();
    ws.root_config(&[("progress_interval_ms = 5000", "progress_interval_ms = 500")]);
    let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
    let progressed = wait_for(Duration::from_secs(60), || {
        run.output()
            .lines()
            .any(|l| l.contains("Progress.") && !l.contains("applied=0 "))
    });
    assert!(
        progressed,
        "no progress line within a minute:\n{}",
        run.output()
    );
    let out = run.output();
    assert!(
        out.contains("embedded Kafka broker (librdkafka mock cluster) listening on 127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("lag=\"catalog/catalog.games/0="), "{out}");
    let api = api_addr(&out).expect("the API address is printed");
    assert_eq!(http_get(&api, "/health/live").unwrap().0, 200, "{out}");
    let (code, metrics) = http_get(&api, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("ferry_events_total{plugin=\"game-projection\",event_type=\"GameCreated\",outcome=\"applied\"}"),
        "{metrics}"
    );
    let (code, plugins) = http_get(&api, "/plugins").unwrap();
    assert_eq!(code, 200);
    assert!(
        plugins.contains("\"name\":\"game-projection\""),
        "{plugins}"
    );
    let (status, out) = run.interrupt(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    assert!(out.contains("ferry stopped:"), "{out}");
    let c = ws.open_db();
    assert!(count(&c, "SELECT count(*) FROM games") > 0);
    assert!(
        count(
            &c,
            "SELECT count(*) FROM ferry_checkpoints WHERE source = 'catalog/catalog.games'"
        ) > 0
    );
}

/// F1/F2/F7: a failing event never has its offset (or a later one)
/// committed, in SQLite or in Kafka; F6: a partition whose event fails
/// transiently resumes; other partitions keep flowing meanwhile.
#[test]
fn f1_f2_f6_f7_a_failing_event_blocks_only_its_partition_and_no_offset_passes_it() {
    use ferry_tests::kafka::produce_to;
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    let path = config(&ws, &bootstrap, r#"group_id = "ferry-f2""#);
    let appends_to = |p: i32, from: u64, n: u64| {
        produce_to(
            &bootstrap,
            TOPIC,
            p,
            appends(from, n, 1).map(|(t, _, v)| (t, format!("p{p}"), v)),
        );
    };
    // Partition 0: 50 appends, an event that always fails, 50 appends.
    appends_to(0, 0, 50);
    produce_to(
        &bootstrap,
        TOPIC,
        0,
        [("Retryable", "p0".to_owned(), "{}".to_owned())],
    );
    appends_to(0, 50, 50);
    // Partition 1: 50 appends, an event failing 3 times, 50 appends.
    appends_to(1, 1_000, 50);
    produce_to(
        &bootstrap,
        TOPIC,
        1,
        [("FailTimes", "p1".to_owned(), r#"{"times":3}"#.to_owned())],
    );
    appends_to(1, 1_050, 50);
    // Partitions 2 and 3 just flow.
    appends_to(2, 2_000, 100);
    appends_to(3, 3_000, 100);
    let path_text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        path_text.replace(
            r#"events = ["Append", "FailKey"]"#,
            r#"events = ["Append", "FailKey", "Retryable", "FailTimes"]"#,
        ),
    )
    .unwrap();
    let (stop, handle) = run_in_process(&path, &ws.db());
    let done = wait_for(Duration::from_secs(60), || {
        let cps = checkpoints(&ws.db(), KEY);
        cps.get(&1) == Some(&100)
            && cps.get(&2) == Some(&99)
            && cps.get(&3) == Some(&99)
            && cps.get(&0) == Some(&49)
    });
    // Let the stuck partition retry a few more times.
    std::thread::sleep(Duration::from_millis(500));
    let kafka = committed(&bootstrap, "ferry-f2", TOPIC, PARTITIONS);
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();
    assert!(done, "checkpoints: {:?}", checkpoints(&ws.db(), KEY));
    let cps = checkpoints(&ws.db(), KEY);
    assert_eq!(cps[&0], 49, "SQLite never moves past the failing offset 50");
    assert!(
        kafka[0].is_some_and(|c| c <= 50),
        "Kafka never gets past the failing offset: {kafka:?}"
    );
    assert_eq!(
        kafka[1],
        Some(101),
        "the transiently failing partition resumed and completed"
    );
    let c = ws.open_db();
    assert_eq!(
        count(&c, "SELECT count(*) FROM log WHERE event_key = 'p0'"),
        50,
        "nothing after the failing event"
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM log WHERE event_key = 'p1'"),
        101
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM ferry_dead_letters"),
        0,
        "retryable failures are not dead-lettered"
    );
}
