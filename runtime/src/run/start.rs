//! Starting what `ferry run` consumes: the embedded broker (if a source
//! asks for it), every configured source, and the dead-letter outbox
//! publishers.

use std::path::Path;

use std::sync::Arc;

use super::ports::{StoreOutbox, StorePositions};
use crate::config::{Config, SourceConfig};
use crate::pipeline::Pipeline;
use crate::source::Source;
use crate::source::factory::{self, Companion, Needs};

pub use crate::config::EMBEDDED;

/// What runs beside the sources and must stop after them.
#[derive(Default)]
pub(crate) struct Companions {
    #[cfg(feature = "kafka")]
    pub(crate) embedded: Option<crate::source::embedded::Embedded>,
    pub(crate) publishers: Vec<Companion>,
}

impl Companions {
    /// Stops them (after the sources closed): the outbox publishers, then
    /// the embedded broker.
    pub(crate) fn stop(self) {
        drop(self.publishers);
        #[cfg(feature = "kafka")]
        drop(self.embedded);
    }

    /// Events the embedded broker's sample publisher has produced.
    pub(crate) fn published(&self) -> Option<u64> {
        #[cfg(feature = "kafka")]
        {
            self.embedded
                .as_ref()
                .map(crate::source::embedded::Embedded::published)
        }
        #[cfg(not(feature = "kafka"))]
        {
            None
        }
    }
}

/// Starts every configured source (and what it needs) through the
/// source factory, with checkpoints and the outbox from the store.
pub(crate) fn start_sources(
    config: &Config,
    pipeline: &mut Pipeline,
    db_path: &Path,
    announce: bool,
) -> anyhow::Result<(Vec<Box<dyn Source>>, Companions)> {
    let mut companions = Companions::default();
    #[cfg(feature = "kafka")]
    {
        companions.embedded = start_embedded(config, announce)?;
    }
    #[cfg(not(feature = "kafka"))]
    let _ = announce;
    #[cfg(feature = "kafka")]
    let embedded = companions
        .embedded
        .as_ref()
        .map(|e| e.bootstrap().to_owned());
    #[cfg(not(feature = "kafka"))]
    let embedded: Option<String> = None;
    let options = crate::store::StoreOptions::from(&config.store);
    let outbox = || -> anyhow::Result<Box<dyn crate::source::Outbox>> {
        Ok(Box::new(StoreOutbox::open(db_path, &options)?))
    };
    let needs = Needs {
        positions: Arc::new(StorePositions::new(db_path.to_owned())),
        embedded: embedded.as_deref(),
        stats_interval_ms: config.runtime.progress_interval_ms.clamp(100, 5_000),
        retry: config.pipeline.retry.backoff(),
        outbox: Some(&outbox),
    };
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for s in &config.sources {
        if let SourceConfig::Kafka(k) = s
            && let Some(topic) = &k.dead_letter_topic
        {
            pipeline.set_dead_letter_topic(&k.name, topic);
        }
        let opened = factory::open(s, &needs)?;
        sources.push(opened.source);
        companions.publishers.extend(opened.companion);
    }
    Ok((sources, companions))
}

#[cfg(feature = "kafka")]
fn start_embedded(
    config: &Config,
    announce: bool,
) -> anyhow::Result<Option<crate::source::embedded::Embedded>> {
    use anyhow::Context as _;
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
            _ => Vec::new(),
        })
        .collect();
    if topics.is_empty() {
        return Ok(None);
    }
    let mut e = crate::source::embedded::Embedded::start(&config.embedded, &topics)
        .context("starting the embedded broker")?;
    if announce {
        println!(
            "embedded Kafka broker (librdkafka mock cluster) listening on {}; topics: {} ({} partitions each)",
            e.bootstrap(),
            topics.join(", "),
            config.embedded.partitions
        );
        // librdkafka's mock broker speaks ApiVersions up to v2 and answers
        // a newer one in a form that kafka-python 3 and the Java client
        // 4.x cannot read, so the hint names a librdkafka-based client
        // (tested: `tests/tests/it/apache_kafka.rs`).
        println!(
            "  produce to it with a librdkafka-based client, e.g. confluent-kafka (Python): Producer({{\"bootstrap.servers\": \"{}\"}})",
            e.bootstrap()
        );
    }
    if config.embedded.publisher {
        e.start_publisher(&config.embedded, &topics[0])?;
        if announce {
            println!(
                "  sample publisher: {} Catalog events/s over {} games on topic {}",
                config.embedded.publish_rate, config.embedded.games, topics[0]
            );
        }
    }
    Ok(Some(e))
}
