//! `ferry run`'s main loop: poll each source for a batch, fence it, apply
//! it in one transaction, pause/commit per the report, report progress,
//! and shut down gracefully (finish the batch, commit, close).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::api::{ApiServer, PartitionView, PluginView, Status};
use crate::app::build_pipeline;
use crate::config::{Config, SourceConfig};
use crate::pipeline::{Outcome, Pipeline, Stats};
use crate::source::embedded::Embedded;
use crate::source::kafka::KafkaSource;
use crate::source::kafka::outbox::OutboxPublisher;

mod driver;
mod progress;

pub use driver::Driver;
use progress::Progress;

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
    let status = Arc::new(Status::new(&config.api, Arc::clone(&stats)));
    status.set_plugins(
        pipeline
            .plugins()
            .map(|p| PluginView {
                name: p.name.to_string(),
                version: p.metadata.version.clone(),
                digest: p.digest.clone(),
            })
            .collect(),
    );
    let api = if config.api.enabled {
        let server = ApiServer::start(&config.api.listen, Arc::clone(&status))?;
        println!("HTTP API listening on http://{}", server.addr());
        Some(server)
    } else {
        None
    };
    tracing::info!(db = %db_path.display(), sources = sources.len(), "ferry is running; Ctrl-C stops it gracefully.");
    let mut progress = Progress::new(config.runtime.progress_interval_ms, &stats);
    let mut driver = Driver::new(&config.pipeline).with_status(Arc::clone(&status));
    let mut next_publish = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        for source in &mut sources {
            driver.step(source, &mut pipeline);
        }
        status.heartbeat();
        if Instant::now() >= next_publish {
            next_publish = Instant::now() + PUBLISH_INTERVAL;
            publish_partitions(&status, &mut pipeline, &sources);
        }
        progress.maybe_report(&mut pipeline, &sources, embedded.as_ref());
    }
    drop(api);
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

/// How often the loop refreshes the partitions the API shows.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);

fn publish_partitions(status: &Status, pipeline: &mut Pipeline, sources: &[KafkaSource]) {
    let mut views = Vec::new();
    for s in sources {
        for l in s.lag(|k| pipeline.checkpoint(k).ok().flatten()) {
            let key = (Arc::clone(&l.source), l.partition);
            views.push(PartitionView {
                source: l.source.to_string(),
                partition: l.partition,
                checkpoint: pipeline.checkpoint(&key).ok().flatten(),
                lag: l.lag,
                state: l.state.to_owned(),
            });
        }
    }
    status.set_partitions(views);
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
