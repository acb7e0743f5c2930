//! The Kafka source: consumes topics with rdkafka and feeds the pipeline in
//! per-partition order, with SQLite owning progress.
//!
//! - **replica** mode assigns every partition of every topic (no group
//!   balancing), each at its SQLite checkpoint + 1; new partitions are
//!   discovered periodically.
//! - **group** mode subscribes; the [`context`] positions every assigned
//!   partition at its checkpoint and fences revoked ones.
//!
//! Offsets are committed to Kafka only after the SQLite commit, as an
//! advisory copy for lag tools (and only with a `group_id`). A partition
//! whose event failed is paused (librdkafka stops fetching it), polling
//! goes on, and after the backoff it is sought back to the failed event and
//! resumed; a stopped partition stays paused.

mod assign;
pub mod client;
pub mod client_log;
pub mod context;
mod holds;
mod out_of_range;
pub mod outbox;
mod poll;
mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{PartitionStatus, Source};
use crate::config::{KafkaMode, KafkaSourceConfig};
use crate::delivery::{Fences, PartitionKey, Verdicts};
use crate::event::Event;
use crate::source::event_type::TypeExtractor;
use context::{FerryContext, Shared, TopicPartition};

/// How often replica mode looks for new partitions (and for topics that
/// did not exist yet: sooner).
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);
const MISSING_TOPIC_RETRY: Duration = Duration::from_secs(2);
/// How long closing waits for librdkafka to finish giving partitions up.
const LEAVE_LIMIT: Duration = Duration::from_secs(5);
/// How long librdkafka may take to close the consumer (leave the group,
/// finish its requests) before ferry stops waiting.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);
/// How long closing keeps serving librdkafka after the assignment is
/// empty (removed partitions' fetchers and commits finish asynchronously).
const LEAVE_GRACE: Duration = Duration::from_millis(100);

/// Why a partition is not being consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Retry from `offset` at `until`; `why` says what failed there.
    Retry {
        offset: i64,
        until: Instant,
        why: Arc<Why>,
    },
    /// Stopped at `offset` until restart, and why.
    Stopped { offset: i64, reason: String },
    /// Another consumer claimed the partition in SQLite while this one
    /// still held the assignment `generation`; released when the partition
    /// is assigned again.
    Fenced { generation: u64 },
}

/// What failed at a held partition's offset, for the resume log line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Why {
    pub(crate) event_type: Option<String>,
    pub(crate) plugin: Option<String>,
    pub(crate) error: String,
}

/// One polled event with the assignment generation it was polled under
/// (see [`KafkaSource::poll_into`]).
#[derive(Debug)]
pub struct Polled {
    event: Event,
    /// Index into [`KafkaSource::known`].
    known: usize,
    generation: u64,
}

/// A running Kafka source.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    /// Shared only so that a consumer librdkafka cannot close in time can
    /// be leaked instead of blocking shutdown (see `Drop`).
    consumer: Arc<BaseConsumer<FerryContext>>,
    pub(crate) shared: Arc<Shared>,
    extractor: TypeExtractor,
    pub(crate) keys: HashMap<String, Arc<str>>,
    topics: HashMap<Arc<str>, String>,
    pub(crate) holds: HashMap<TopicPartition, Hold>,
    next_discovery: Instant,
    owner: Arc<str>,
    polled: Vec<Polled>,
    known: Vec<poll::Known>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Connects to `bootstrap` and starts consuming `config`'s topics;
    /// checkpoints come from `positions`.
    pub fn start(
        config: &KafkaSourceConfig,
        bootstrap: &str,
        positions: Arc<dyn crate::source::Positions>,
        stats_interval_ms: u64,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            client_log: Some(client_log::ClientLog::new(&config.name, bootstrap)),
            ..Shared::default()
        });
        let context = FerryContext {
            source: config.name.clone(),
            positions,
            start: config.start_without_checkpoint,
            fallback: client::fallback_start(config),
            commits: config.group_id.is_some(),
            shared: Arc::clone(&shared),
        };
        let consumer: BaseConsumer<FerryContext> =
            client::client_config(config, bootstrap, stats_interval_ms.max(100))
                .create_with_context(context)
                .with_context(|| {
                    format!("creating the Kafka consumer of source `{}`", config.name)
                })?;
        let keys: HashMap<String, Arc<str>> = config
            .topics
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    Arc::from(crate::delivery::checkpoint_key(&config.name, t)),
                )
            })
            .collect();
        let topics = keys
            .iter()
            .map(|(t, k)| (Arc::clone(k), t.clone()))
            .collect();
        let mut source = Self {
            config: config.clone(),
            consumer: Arc::new(consumer),
            shared,
            extractor: TypeExtractor::new(&config.event_type),
            keys,
            topics,
            holds: HashMap::new(),
            next_discovery: Instant::now(),
            owner: Arc::from(format!(
                "ferry pid {} source {}",
                std::process::id(),
                config.name
            )),
            polled: Vec::new(),
            known: Vec::new(),
        };
        match config.mode {
            KafkaMode::Group => {
                let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
                source.consumer.subscribe(&topics).with_context(|| {
                    format!("subscribing source `{}` to its topics", config.name)
                })?;
                tracing::info!(source = %config.name, topics = ?config.topics, group = ?config.group_id,
                    "Joined the consumer group; partitions start at their SQLite checkpoints when assigned.");
            }
            KafkaMode::Replica => source.discover(),
        }
        Ok(source)
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn topic_partition(&self, key: &PartitionKey) -> Option<TopicPartition> {
        self.topics.get(&key.0).map(|t| (t.clone(), key.1))
    }

    /// Commits the durable offsets of the owned partitions (see
    /// `FerryContext::commit_durable`) and leaves the group (`Drop`).
    pub fn close(self) {
        let mut owned = TopicPartitionList::new();
        for tp in self.shared.ownership.lock().owned.keys() {
            owned.add_partition(&tp.0, tp.1);
        }
        self.consumer
            .context()
            .commit_durable(&self.consumer, &owned);
        tracing::info!(source = %self.config.name, "Closed the Kafka consumer.");
    }

    /// Gives the assignment up and serves librdkafka until it is gone (the
    /// revocation callback commits and unassigns), so the consumer is
    /// never destroyed with an assignment change in flight (librdkafka
    /// aborts the process then: `rd_kafka_cgrp_terminated` asserts that no
    /// assignment is in progress). Messages polled meanwhile are dropped:
    /// nothing is applied any more. False if the assignment was not given
    /// up within [`LEAVE_LIMIT`].
    fn leave(&mut self) -> bool {
        match self.config.mode {
            KafkaMode::Group => self.consumer.unsubscribe(),
            KafkaMode::Replica => {
                if let Err(e) = self.consumer.unassign() {
                    tracing::debug!(source = %self.config.name, error = %e,
                        "Unassigning the partitions on close failed.");
                }
            }
        }
        let deadline = Instant::now() + LEAVE_LIMIT;
        let mut empty_since: Option<Instant> = None;
        while Instant::now() < deadline {
            drop(self.consumer.poll(Duration::from_millis(20)));
            let empty = self.consumer.assignment().is_ok_and(|a| a.count() == 0);
            match (empty, empty_since) {
                (false, _) => empty_since = None,
                (true, None) => empty_since = Some(Instant::now()),
                (true, Some(t)) if t.elapsed() >= LEAVE_GRACE => return true,
                (true, Some(_)) => {}
            }
        }
        tracing::warn!(source = %self.config.name, limit_s = LEAVE_LIMIT.as_secs(),
            "The Kafka consumer did not give its partitions up within the limit; ferry closes it with a bound.");
        false
    }

    /// Closes the consumer through its queue and serves it until it is
    /// closed; false if that takes longer than [`CLOSE_LIMIT`].
    fn close_consumer(&self) -> bool {
        if let Err(e) = self.consumer.close_queue() {
            tracing::debug!(source = %self.config.name, error = %e,
                "Closing the Kafka consumer's queue failed; nothing to wait for.");
            return true;
        }
        let deadline = Instant::now() + CLOSE_LIMIT;
        while !self.consumer.closed() {
            if Instant::now() >= deadline {
                return false;
            }
            drop(self.consumer.poll(Duration::from_millis(50)));
        }
        true
    }
}

impl Drop for KafkaSource {
    /// Gives the assignment up, then closes the consumer, bounded: rdkafka's
    /// own close waits without a limit (for ever when the broker has gone
    /// away mid-shutdown), so ferry closes the consumer itself within
    /// `CLOSE_LIMIT` and abandons one that does not close (its threads
    /// keep running until the process ends) rather than hanging shutdown.
    /// rdkafka then finds the consumer closed and logs that closing its
    /// queue again failed (target `rdkafka::consumer::base_consumer`; the
    /// `ferry` binary filters it out).
    fn drop(&mut self) {
        self.leave();
        if !self.close_consumer() {
            tracing::error!(source = %self.config.name, limit_s = CLOSE_LIMIT.as_secs(),
                "The Kafka consumer did not close within the limit; it is abandoned so that shutdown goes on. Progress is safe in SQLite.");
            std::mem::forget(Arc::clone(&self.consumer));
        }
    }
}

impl Source for KafkaSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn tick(&mut self) {
        KafkaSource::tick(self);
    }

    fn poll(
        &mut self,
        out: &mut Vec<Event>,
        fences: &mut Fences,
        max: usize,
        idle: Duration,
        linger: Duration,
    ) {
        let mut polled = std::mem::take(&mut self.polled);
        polled.clear();
        self.poll_into(&mut polled, max, idle, linger);
        self.fence_into(&mut polled, out, fences);
        self.polled = polled;
    }

    fn after_batch(&mut self, report: &Verdicts) {
        KafkaSource::after_batch(self, report);
    }

    fn rewind(&mut self, events: &[Event], delay: Duration) {
        KafkaSource::rewind(self, events, delay);
    }

    fn partitions(
        &self,
        checkpoint: &mut dyn FnMut(&PartitionKey) -> Option<i64>,
    ) -> Vec<PartitionStatus> {
        KafkaSource::partitions(self, checkpoint)
    }

    fn key_for(&self, topic: Option<&str>) -> Result<Arc<str>, String> {
        match topic {
            Some(t) => self.keys.get(t).cloned().ok_or_else(|| {
                format!(
                    "source `{}` does not consume topic `{t}` (its topics: {})",
                    self.config.name,
                    self.config.topics.join(", ")
                )
            }),
            None if self.config.topics.len() == 1 => self
                .keys
                .get(&self.config.topics[0])
                .cloned()
                .ok_or_else(|| "no topic".to_owned()),
            None => Err(format!(
                "source `{}` consumes several topics ({}): name one with `topic`",
                self.config.name,
                self.config.topics.join(", ")
            )),
        }
    }

    fn close(self: Box<Self>) {
        KafkaSource::close(*self);
    }

    fn problem(&self) -> Option<String> {
        self.shared.client_log.as_ref()?.current()
    }
}

fn single(topic: &str, partition: i32, offset: Option<i64>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    match offset {
        Some(o) => {
            let _ = tpl.add_partition_offset(topic, partition, Offset::Offset(o));
        }
        None => {
            tpl.add_partition(topic, partition);
        }
    }
    tpl
}
