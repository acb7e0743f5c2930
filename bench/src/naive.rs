//! The seed article's loop, as the baseline: one event, one native handler
//! call, one SQLite transaction with `synchronous=FULL` (effect + offset
//! row), one synchronous Kafka commit — per event.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_sdk::native::SqliteStore;
use ferry_sdk::{Event, Projection};
use game_projection::GameProjection;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rusqlite::{Connection, params};

use crate::measure::{Sample, cpu_self};
use crate::workload::TOPIC;

/// Applies the first `n` events of the topic the naive way.
pub fn run(bootstrap: &str, partitions: i32, n: u64, dir: &Path) -> anyhow::Result<Sample> {
    let conn = Connection::open(dir.join("naive.db")).context("opening the naive database")?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS offsets (topic TEXT, part INTEGER, next INTEGER,
           PRIMARY KEY (topic, part));",
    )?;
    GameProjection::migrate(&SqliteStore::new(&conn), None)
        .map_err(|e| anyhow::anyhow!("migrate: {e}"))?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("naive-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .context("creating the naive consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let store = SqliteStore::new(&conn);
    let cpu0 = cpu_self();
    let mut started: Option<Instant> = None;
    let mut applied = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while applied < n && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.context("polling")?;
        started.get_or_insert_with(Instant::now);
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| ferry_sdk::Header {
                        name: h.key.to_owned(),
                        value: h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let event_type = headers
            .iter()
            .find(|h| h.name == "event-type")
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
            .unwrap_or_default();
        let mut ev =
            Event::new(&event_type, m.payload().unwrap_or_default()).with_headers(&headers);
        ev.source = TOPIC;
        ev.partition = m.partition();
        ev.offset = m.offset();
        ev.key = m.key();
        ev.timestamp_ms = m.timestamp().to_millis();
        conn.execute_batch("BEGIN")?;
        GameProjection::handle(&store, &ev).map_err(|e| anyhow::anyhow!("handle: {e:?}"))?;
        conn.prepare_cached(
            "INSERT INTO offsets VALUES (?1, ?2, ?3)
             ON CONFLICT (topic, part) DO UPDATE SET next = excluded.next",
        )?
        .execute(params![TOPIC, m.partition(), m.offset() + 1])?;
        conn.execute_batch("COMMIT")?;
        consumer
            .commit_message(&m, CommitMode::Sync)
            .context("committing")?;
        applied += 1;
    }
    Ok(Sample {
        events: applied,
        wall: started.map_or(Duration::ZERO, |s| s.elapsed()),
        cpu: cpu_self().saturating_sub(cpu0),
        ..Sample::default()
    })
}

/// The delivery ceiling: a plain consumer polling every event of the topic
/// (payload touched, nothing applied), with ferry's client settings.
pub fn raw_consume(bootstrap: &str, partitions: i32, n: u64) -> anyhow::Result<Sample> {
    raw_consume_with_work(bootstrap, partitions, n, Duration::ZERO)
}

/// [`raw_consume`] with `work` of busy CPU per event, spent in chunks of
/// 5000 events between polls the way a batch is applied: what delivery
/// allows a consumer whose per-event work costs `work`.
pub fn raw_consume_with_work(
    bootstrap: &str,
    partitions: i32,
    n: u64,
    work: Duration,
) -> anyhow::Result<Sample> {
    // Exactly the client settings of a ferry Kafka source.
    let source: ferry::config::KafkaSourceConfig = toml::from_str(&format!(
        "name = \"raw\"\nbrokers = \"{bootstrap}\"\ntopics = [\"{TOPIC}\"]\n"
    ))
    .context("the raw consumer's source config")?;
    let consumer: BaseConsumer =
        ferry::source::kafka::client::client_config(&source, bootstrap, 1_000)
            .create()
            .context("creating the raw consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let cpu0 = cpu_self();
    let start = Instant::now();
    let mut seen = 0;
    let mut bytes = 0usize;
    let deadline = start + Duration::from_secs(600);
    let mut chunk = 0u32;
    while seen < n && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            bytes += m.context("polling")?.payload().map_or(0, <[u8]>::len);
            seen += 1;
            chunk += 1;
            if chunk == 5_000 || seen == n {
                let until = Instant::now() + work * chunk;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                chunk = 0;
            }
        }
    }
    std::hint::black_box(bytes);
    Ok(Sample {
        events: seen,
        wall: start.elapsed(),
        cpu: cpu_self().saturating_sub(cpu0),
        ..Sample::default()
    })
}
