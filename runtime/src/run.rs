//! `ferry run`'s main loop: poll each source for a batch, fence it, apply
//! it in one transaction, pause/commit per the report, report progress,
//! and shut down gracefully (finish the batch, commit, close).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::app::build_pipeline;
use crate::config::{Config, SourceConfig};
use crate::pipeline::{Backoff, Outcome, Pipeline, Stats};
use crate::source::embedded::Embedded;
use crate::source::kafka::KafkaSource;
use crate::source::kafka::outbox::OutboxPublisher;

/// The embedded broker's bootstrap address, printed at start.
pub const EMBEDDED: &str = "embedded";

/// Runs every configured source until `stop` is set.
pub fn run(config: &Config, db_path: &Path, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    if config.sources.is_empty() {
        anyhow::bail!("no [[sources]] are configured: `ferry run` has nothing to consume");
    }
    let stats = Arc::new(Stats::default());
    let mut pipeline = build_pipeline(config, db_path, Arc::clone(&stats))?;
    let embedded = start_embedded(config)?;
    let stats_ms = config.runtime.progress_interval_ms.clamp(100, 5_000);
    let mut sources = Vec::new();
    let mut publishers = Vec::new();
    for s in &config.sources {
        match s {
            SourceConfig::Kafka(k) => {
                let bootstrap = if k.brokers == EMBEDDED {
                    embedded
                        .as_ref()
                        .map(|e| e.bootstrap().to_owned())
                        .unwrap_or_default()
                } else {
                    k.brokers.clone()
                };
                if let Some(topic) = &k.dead_letter_topic {
                    pipeline.set_dead_letter_topic(&k.name, topic);
                    publishers.push(OutboxPublisher::start(k, &bootstrap, db_path)?);
                }
                sources.push(KafkaSource::start(k, &bootstrap, db_path, stats_ms)?);
            }
        }
    }
    tracing::info!(db = %db_path.display(), sources = sources.len(), "ferry is running; Ctrl-C stops it gracefully.");
    let mut progress = Progress::new(config.runtime.progress_interval_ms, &stats);
    let retry = Backoff::new(&config.pipeline.retry);
    let mut host_failures = 0u32;
    let linger = Duration::from_millis(config.pipeline.linger_ms);
    let mut polled = Vec::with_capacity(config.pipeline.batch_size);
    while !stop.load(Ordering::Relaxed) {
        for source in &mut sources {
            source.tick();
            polled.clear();
            source.poll_into(&mut polled, config.pipeline.batch_size, linger);
            let events = source.fence(std::mem::take(&mut polled));
            if events.is_empty() {
                continue;
            }
            match pipeline.apply_batch(&events) {
                Ok(report) => {
                    host_failures = 0;
                    source.after_batch(&report);
                }
                Err(e) => {
                    host_failures += 1;
                    let delay = retry.delay(host_failures);
                    tracing::error!(source = source.name(), error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64,
                        "A batch could not be committed; nothing of it was applied, and its partitions start again from it after a pause.");
                    source.rewind(&events, delay);
                }
            }
        }
        progress.maybe_report(&mut pipeline, &sources, embedded.as_ref());
    }
    tracing::info!("Stopping: the last batch is committed; closing the sources.");
    for s in sources {
        s.close();
    }
    drop(publishers);
    drop(embedded);
    println!(
        "ferry stopped: {} applied, {} skipped, {} dead-lettered, {} retried",
        stats.total(Outcome::Applied),
        stats.total(Outcome::Skipped),
        stats.total(Outcome::DeadLettered),
        stats.total(Outcome::Retried)
    );
    Ok(())
}

fn start_embedded(config: &Config) -> anyhow::Result<Option<Embedded>> {
    let topics: Vec<String> = config
        .sources
        .iter()
        .flat_map(|s| match s {
            SourceConfig::Kafka(k) if k.brokers == EMBEDDED => k
                .topics
                .iter()
                .chain(&k.dead_letter_topic)
                .cloned()
                .collect(),
            SourceConfig::Kafka(_) => Vec::new(),
        })
        .collect();
    if topics.is_empty() {
        return Ok(None);
    }
    let mut e =
        Embedded::start(&config.embedded, &topics).context("starting the embedded broker")?;
    println!(
        "embedded Kafka broker (librdkafka mock cluster) listening on {}; topics: {} ({} partitions each)",
        e.bootstrap(),
        topics.join(", "),
        config.embedded.partitions
    );
    println!(
        "  produce to it with any Kafka client, e.g. kafka-python: KafkaProducer(bootstrap_servers=\"{}\")",
        e.bootstrap()
    );
    if config.embedded.publisher {
        e.start_publisher(&config.embedded, &topics[0])?;
        println!(
            "  sample publisher: {} Catalog events/s over {} games on topic {}",
            config.embedded.publish_rate, config.embedded.games, topics[0]
        );
    }
    Ok(Some(e))
}

/// The periodic progress line.
struct Progress {
    interval: Option<Duration>,
    next: Instant,
    last_total: u64,
    last_at: Instant,
}

impl Progress {
    fn new(interval_ms: u64, stats: &Stats) -> Self {
        let interval = (interval_ms > 0).then(|| Duration::from_millis(interval_ms));
        Self {
            interval,
            next: Instant::now() + interval.unwrap_or_default(),
            last_total: total(stats),
            last_at: Instant::now(),
        }
    }

    fn maybe_report(
        &mut self,
        pipeline: &mut Pipeline,
        sources: &[KafkaSource],
        embedded: Option<&Embedded>,
    ) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + interval;
        let stats = Arc::clone(pipeline.stats());
        let t = total(&stats);
        let rate =
            (t - self.last_total) as f64 / now.duration_since(self.last_at).as_secs_f64().max(1e-3);
        self.last_total = t;
        self.last_at = now;
        let mut lags = Vec::new();
        for s in sources {
            for l in s.lag(|k| pipeline.checkpoint(k).ok().flatten()) {
                let lag = l.lag.map_or_else(|| "?".to_owned(), |v| v.to_string());
                let state = if l.state == "running" {
                    String::new()
                } else {
                    format!("({})", l.state)
                };
                lags.push(format!("{}/{}={lag}{state}", l.source, l.partition));
            }
        }
        tracing::info!(
            events_per_s = format!("{rate:.0}"),
            applied = stats.total(Outcome::Applied),
            skipped = stats.total(Outcome::Skipped),
            dead_lettered = stats.total(Outcome::DeadLettered),
            retried = stats.total(Outcome::Retried),
            published = embedded.map(Embedded::published),
            lag = lags.join(" "),
            "Progress."
        );
    }
}

fn total(stats: &Stats) -> u64 {
    stats.total(Outcome::Applied)
        + stats.total(Outcome::Skipped)
        + stats.total(Outcome::DeadLettered)
}
