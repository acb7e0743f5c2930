//! Starting what `ferry run` consumes: the embedded broker (if a source
//! asks for it), every configured source, and the dead-letter outbox
//! publishers.

use std::path::Path;

use crate::config::{Config, SourceConfig};
use crate::pipeline::Pipeline;
use crate::source::Source;

/// The embedded broker's bootstrap address, as written in the config.
pub const EMBEDDED: &str = "embedded";

/// What runs beside the sources and must stop after them.
#[derive(Default)]
pub(crate) struct Companions {
    #[cfg(feature = "kafka")]
    pub(crate) embedded: Option<crate::source::embedded::Embedded>,
    #[cfg(feature = "kafka")]
    pub(crate) publishers: Vec<crate::source::kafka::outbox::OutboxPublisher>,
}

impl Companions {
    /// Stops them (after the sources closed): the outbox publishers, then
    /// the embedded broker.
    pub(crate) fn stop(self) {
        #[cfg(feature = "kafka")]
        {
            drop(self.publishers);
            drop(self.embedded);
        }
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

/// Starts every configured source (and what it needs).
pub(crate) fn start_sources(
    config: &Config,
    pipeline: &mut Pipeline,
    db_path: &Path,
    announce: bool,
) -> anyhow::Result<(Vec<Box<dyn Source>>, Companions)> {
    #[allow(unused_mut)]
    let mut companions = Companions::default();
    let _ = (&pipeline, db_path);
    #[cfg(feature = "kafka")]
    {
        companions.embedded = start_embedded(config, announce)?;
    }
    #[cfg(feature = "kafka")]
    let stats_ms = config.runtime.progress_interval_ms.clamp(100, 5_000);
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for s in &config.sources {
        match s {
            #[cfg(feature = "kafka")]
            SourceConfig::Kafka(k) => {
                use crate::source::kafka::KafkaSource;
                use crate::source::kafka::outbox::OutboxPublisher;
                let bootstrap = if k.brokers == EMBEDDED {
                    companions
                        .embedded
                        .as_ref()
                        .map(|e| e.bootstrap().to_owned())
                        .unwrap_or_default()
                } else {
                    k.brokers.clone()
                };
                if let Some(topic) = &k.dead_letter_topic {
                    pipeline.set_dead_letter_topic(&k.name, topic);
                    companions
                        .publishers
                        .push(OutboxPublisher::start(k, &bootstrap, db_path)?);
                }
                sources.push(Box::new(KafkaSource::start(
                    k, &bootstrap, db_path, stats_ms,
                )?));
            }
            #[cfg(feature = "http-feed")]
            SourceConfig::HttpFeed(f) => {
                let backoff = crate::pipeline::Backoff::new(&config.pipeline.retry);
                sources.push(Box::new(crate::source::http_feed::HttpFeedSource::start(
                    f, db_path, backoff,
                )?));
            }
            #[allow(unreachable_patterns)]
            other => anyhow::bail!(
                "source `{}` is of kind `{}`, which this ferry was built without",
                other.name(),
                other.kind()
            ),
        }
    }
    let _ = announce;
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
        // (tested: `tests/tests/apache_kafka.rs`).
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
