//! The one place sources are built from their configuration, for `ferry
//! run` and `ferry rebuild` alike; the cargo feature gates live here.

use std::sync::Arc;

use crate::backoff::Backoff;
use crate::config::SourceConfig;
use crate::delivery::checkpoint_key;

use super::{Outbox, Positions, Source};

/// Something that runs beside a source and stops when dropped (the
/// dead-letter outbox publisher of a Kafka source).
pub type Companion = Box<dyn Send>;

/// What building a source needs besides its configuration.
pub struct Needs<'a> {
    /// The checkpoints in SQLite.
    pub positions: Arc<dyn Positions>,
    /// The address of the embedded broker, when one runs.
    pub embedded: Option<&'a str>,
    /// How often librdkafka reports statistics (high watermarks), ms.
    pub stats_interval_ms: u64,
    /// Backoff of a failing feed request.
    pub retry: Backoff,
    /// Opens the outbox a dead-letter topic's publisher sends from; `None`:
    /// no publisher (the rebuild's shadow database records no dead-letter
    /// topic).
    pub outbox: Option<&'a dyn Fn() -> anyhow::Result<Box<dyn Outbox>>>,
}

impl std::fmt::Debug for Needs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Needs")
            .field("embedded", &self.embedded)
            .finish_non_exhaustive()
    }
}

/// A started source and what runs beside it.
pub struct Opened {
    /// The source.
    pub source: Box<dyn Source>,
    /// Its outbox publisher, if it has a dead-letter topic.
    pub companion: Option<Companion>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("source", &self.source.name())
            .finish_non_exhaustive()
    }
}

/// The checkpoint keys of a source's streams: `<source>/<topic>` for each
/// Kafka topic, the source name for a feed.
pub fn checkpoint_keys(config: &SourceConfig) -> Vec<String> {
    match config {
        SourceConfig::Kafka(k) => k
            .topics
            .iter()
            .map(|t| checkpoint_key(&k.name, t))
            .collect(),
        SourceConfig::HttpFeed(f) => vec![f.name.clone()],
    }
}

/// Starts the source `config` describes, or says which feature this build
/// lacks for it.
pub fn open(
    config: &SourceConfig,
    #[cfg_attr(
        not(any(feature = "kafka", feature = "http-feed")),
        expect(
            unused_variables,
            reason = "a build without sources only names the missing feature"
        )
    )]
    needs: &Needs<'_>,
) -> anyhow::Result<Opened> {
    match config {
        #[cfg(feature = "kafka")]
        SourceConfig::Kafka(k) => {
            let bootstrap = match needs.embedded {
                Some(e) if k.brokers == crate::config::EMBEDDED => e.to_owned(),
                _ => k.brokers.clone(),
            };
            let companion = match (&k.dead_letter_topic, needs.outbox) {
                (Some(_), Some(outbox)) => Some(Box::new(
                    super::kafka::outbox::OutboxPublisher::start(k, &bootstrap, outbox()?)?,
                ) as Companion),
                _ => None,
            };
            let source = super::kafka::KafkaSource::start(
                k,
                &bootstrap,
                Arc::clone(&needs.positions),
                needs.stats_interval_ms,
            )?;
            Ok(Opened {
                source: Box::new(source),
                companion,
            })
        }
        #[cfg(feature = "http-feed")]
        SourceConfig::HttpFeed(f) => Ok(Opened {
            source: Box::new(super::http_feed::HttpFeedSource::start(
                f,
                needs.positions.as_ref(),
                needs.retry.clone(),
            )?),
            companion: None,
        }),
        #[cfg_attr(
            all(feature = "kafka", feature = "http-feed"),
            expect(unreachable_patterns, reason = "every kind is built in")
        )]
        other => anyhow::bail!(
            "source `{}` is of kind `{}`, which this ferry was built without",
            other.name(),
            other.kind()
        ),
    }
}
