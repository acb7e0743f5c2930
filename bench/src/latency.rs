//! Event latency under offered load: a paced producer sends Game events
//! (stamped with their send time) while ferry applies them in this
//! process; an event's latency is the time its batch committed minus its
//! send time (millisecond resolution, the Kafka timestamp's).

use std::path::Path;
use std::time::{Duration, Instant};

use ferry::pipeline::Fences;
use ferry::source::Source as _;

use crate::ferry_runs::{Handler, Setup, pipeline, source};
use crate::load::Paced;
use crate::measure::percentile;

/// One run at one offered rate.
#[derive(Debug, Clone, Default)]
pub struct LatencySample {
    /// Events per second offered.
    pub offered: f64,
    /// Events per second applied while offered.
    pub achieved: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Events measured.
    pub events: u64,
}

/// The delivery floor: a plain consumer (ferry's client settings) polling
/// a paced stream, latency measured when each message is polled.
pub fn delivery_only(
    bootstrap: &str,
    topic: &str,
    rate: u64,
    seconds: f64,
    keys: u64,
) -> anyhow::Result<LatencySample> {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("latency-raw-{topic}"))
        .set("enable.auto.commit", "false")
        .set("queued.max.messages.kbytes", "4096")
        .set("max.partition.fetch.bytes", "262144")
        .set("fetch.max.bytes", "4194304")
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let total = (rate as f64 * seconds) as u64;
    let producer = Paced::start(bootstrap, topic, rate, total, keys)?;
    let started = Instant::now();
    let warm_up = ferry::event::now_ms() + 500;
    let mut latencies = Vec::with_capacity(total as usize);
    let mut seen = 0u64;
    let deadline = started + Duration::from_secs_f64(seconds * 4.0 + 30.0);
    while seen < total && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            seen += 1;
            if let Some(t) = m.timestamp().to_millis()
                && t >= warm_up
            {
                latencies.push((ferry::event::now_ms() - t) as f64);
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    producer.finish()?;
    anyhow::ensure!(seen >= total, "polled {seen} of {total} offered events");
    Ok(LatencySample {
        offered: rate as f64,
        achieved: seen as f64 / wall,
        p50_ms: percentile(&mut latencies, 0.50),
        p99_ms: percentile(&mut latencies, 0.99),
        events: latencies.len() as u64,
    })
}

/// Offers `rate` events/s for `seconds` on `topic` and measures; the first
/// half second is warm-up, not measured.
pub fn run(
    s: &Setup,
    dir: &Path,
    handler: Handler,
    topic: &str,
    rate: u64,
    seconds: f64,
    keys: u64,
) -> anyhow::Result<LatencySample> {
    let (config, mut pipeline, db) = pipeline(s, dir, &format!("latency-{topic}"), handler)?;
    let mut src = source(s, &config, &db, topic)?;
    let total = (rate as f64 * seconds) as u64;
    let producer = Paced::start(&s.bootstrap, topic, rate, total, keys)?;
    let started = Instant::now();
    let warm_up = ferry::event::now_ms() + 500;
    let mut latencies: Vec<f64> = Vec::with_capacity(total as usize);
    let (mut events, mut fences) = (Vec::new(), Fences::new());
    let mut applied = 0u64;
    let deadline = started + Duration::from_secs_f64(seconds * 4.0 + 30.0);
    let linger = Duration::from_millis(config.pipeline.linger_ms);
    while applied < total && Instant::now() < deadline {
        src.tick();
        events.clear();
        fences.clear();
        src.poll(
            &mut events,
            &mut fences,
            config.pipeline.batch_size,
            Duration::from_millis(100),
            linger,
        );
        if events.is_empty() {
            continue;
        }
        let report = pipeline.apply_fenced(&events, &fences)?;
        let now = ferry::event::now_ms();
        for e in &events {
            if let Some(t) = e.timestamp_ms
                && t >= warm_up
            {
                latencies.push((now - t) as f64);
            }
        }
        applied += (report.applied + report.skipped) as u64;
        src.after_batch(&report.delivery);
    }
    let wall = started.elapsed().as_secs_f64();
    producer.finish()?;
    src.close();
    anyhow::ensure!(
        applied >= total,
        "applied {applied} of {total} offered events"
    );
    Ok(LatencySample {
        offered: rate as f64,
        achieved: applied as f64 / wall,
        p50_ms: percentile(&mut latencies, 0.50),
        p99_ms: percentile(&mut latencies, 0.99),
        events: latencies.len() as u64,
    })
}
