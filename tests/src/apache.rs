//! Apache Kafka in the tests: the broker `scripts/test` starts (its
//! address in `FERRY_KAFKA`), driven by clients ferry did not write:
//! kafka-python (`tests/e2e/kafka_cli.py`: topics, producing with linger or
//! in transactions, offsets, reading) and Kafka's own command-line tools
//! (`scripts/kafka run …`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{Output, Workspace, repo_root, run_bounded};

/// The broker's `host:port` (`FERRY_KAFKA`, set by `scripts/test`).
pub fn bootstrap() -> String {
    std::env::var("FERRY_KAFKA").unwrap_or_else(|_| {
        panic!(
            "FERRY_KAFKA is not set: these tests need Apache Kafka. Run scripts/test (it starts one), \
             or `scripts/kafka start DIR` and export the FERRY_KAFKA it prints"
        )
    })
}

/// The Python with kafka-python (`FERRY_PYTHON`, set by `scripts/test`).
pub fn python() -> String {
    std::env::var("FERRY_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A topic name no other test (or earlier run on the same broker) uses.
pub fn topic(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{nanos}", std::process::id())
}

fn checked(out: Output, what: &str) -> String {
    assert!(
        out.status.is_some_and(|s| s.success()),
        "{what} failed: {out:#?}"
    );
    out.stdout
}

/// Runs `kafka_cli.py ARGS` (bounded to 3 minutes) and returns its stdout.
pub fn cli(args: &[&str]) -> String {
    let out = run_bounded(
        Command::new(python())
            .arg(repo_root().join("tests/e2e/kafka_cli.py"))
            .args(args),
        Duration::from_secs(180),
    );
    checked(out, &format!("kafka_cli.py {}", args.join(" ")))
}

/// Creates `topic` with `partitions` and topic configs (`key=value`).
pub fn create(topic: &str, partitions: i32, configs: &[&str]) {
    let b = bootstrap();
    let p = partitions.to_string();
    let mut args = vec!["create", &b, topic, &p];
    args.extend_from_slice(configs);
    cli(&args);
}

/// Deletes `topic` (and waits until the broker no longer lists it).
pub fn delete(topic: &str) {
    cli(&["delete", &bootstrap(), topic]);
}

/// One record to produce.
#[derive(Debug, Clone)]
pub struct Rec {
    /// Event type (the `event-type` header).
    pub ty: String,
    /// Key.
    pub key: String,
    /// Payload text.
    pub raw: String,
    /// Partition, or the producer's choice by key.
    pub partition: Option<i32>,
}

impl Rec {
    /// A record keyed `key`, partitioned by the producer.
    pub fn new(ty: &str, key: impl Into<String>, raw: impl Into<String>) -> Self {
        Self {
            ty: ty.to_owned(),
            key: key.into(),
            raw: raw.into(),
            partition: None,
        }
    }
}

/// `n` chaos `Append` records from `from` (payload `{"n": i}`, unique),
/// over `keys` keys.
pub fn appends(from: u64, n: u64, keys: u64) -> Vec<Rec> {
    (from..from + n)
        .map(|i| Rec::new("Append", format!("k{}", i % keys), format!("{{\"n\":{i}}}")))
        .collect()
}

/// Produces `records` to `topic` with kafka-python; `options` go to
/// `kafka_cli.py produce` (`--linger-ms`, `--batch-size`,
/// `--transactional-id`, `--transaction-size`, `--abort`). Returns
/// (produced, aborted).
pub fn produce(ws: &Workspace, topic: &str, records: &[Rec], options: &[&str]) -> (u64, u64) {
    let mut text = String::new();
    for r in records {
        let mut v = serde_json::json!({"type": r.ty, "key": r.key, "raw": r.raw});
        if let Some(p) = r.partition {
            v["partition"] = p.into();
        }
        text.push_str(&v.to_string());
        text.push('\n');
    }
    let file = ws.write(&format!("{topic}.produce.jsonl"), text);
    let b = bootstrap();
    let f = file.to_str().expect("utf-8 path").to_owned();
    let mut args = vec!["produce", &b, topic, &f];
    args.extend_from_slice(options);
    let out: serde_json::Value = serde_json::from_str(cli(&args).trim()).expect("produce output");
    (
        out["produced"].as_u64().unwrap_or(0),
        out["aborted"].as_u64().unwrap_or(0),
    )
}

/// Log start and end offset of every partition of `topic`.
pub fn offsets(topic: &str) -> BTreeMap<i32, (i64, i64)> {
    let v: BTreeMap<String, (i64, i64)> =
        serde_json::from_str(cli(&["offsets", &bootstrap(), topic]).trim()).expect("offsets");
    v.into_iter()
        .map(|(p, o)| (p.parse().expect("partition"), o))
        .collect()
}

/// Records a read_committed consumer reads from the beginning.
pub fn count(topic: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(cli(&["count", &bootstrap(), topic, "60"]).trim()).expect("count");
    v["count"].as_u64().unwrap_or(0)
}

/// Reads `n` records of `topic` from the beginning with Kafka's own
/// console consumer (`kafka-console-consumer`), printing partition,
/// offset, headers, key and value; returns its lines.
pub fn console_consume(topic: &str, n: usize) -> Vec<String> {
    let out = run_bounded(
        Command::new(repo_root().join("scripts/kafka")).args([
            "run",
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server",
            &bootstrap(),
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            &n.to_string(),
            "--timeout-ms",
            "30000",
            "--formatter-property",
            "print.partition=true",
            "--formatter-property",
            "print.offset=true",
            "--formatter-property",
            "print.headers=true",
            "--formatter-property",
            "print.key=true",
        ]),
        Duration::from_secs(120),
    );
    checked(out, "kafka-console-consumer")
        .lines()
        .filter(|l| l.starts_with("Partition:"))
        .map(str::to_owned)
        .collect()
}

/// A config for a Kafka source `src` on `topic` of the test broker, with
/// `plugins` (TOML `[[plugins]]` tables) and extra source keys.
pub fn config(ws: &Workspace, topic: &str, plugins: &str, source_extra: &str) -> PathBuf {
    ws.config(&format!(
        r#"
[store]
path = "ferry.db"

[runtime]
progress_interval_ms = 0

[pipeline]
batch_size = 500
linger_ms = 10

{plugins}

[[sources]]
name = "src"
kind = "kafka"
brokers = "{}"
topics = ["{topic}"]
{source_extra}
"#,
        bootstrap()
    ))
}

/// The chaos plugin on `Append` (and `FailKey`) events into table `log`.
pub const CHAOS: &str = r#"
[[plugins]]
name = "chaos"
path = {chaos}
events = ["Append", "FailKey"]
tables = ["log"]
max_attempts = 1
"#;

/// The game projection.
pub const GAMES: &str = r#"
[[plugins]]
name = "game-projection"
path = {games}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]
"#;

/// The `n` values of the chaos `log` table (each event's payload), in
/// apply order.
pub fn applied(db: &rusqlite::Connection) -> Vec<i64> {
    let mut s = db
        .prepare("SELECT payload FROM log ORDER BY id")
        .expect("log table");
    s.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|p| {
            let v: serde_json::Value = serde_json::from_str(&p.expect("row")).expect("json");
            v["n"].as_i64().expect("n")
        })
        .collect()
}
