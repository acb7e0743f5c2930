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

pub mod client;
pub mod context;
pub mod outbox;
mod status;

pub use status::PartitionLag;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::config::{KafkaMode, KafkaSourceConfig};
use crate::event::Event;
use crate::pipeline::{BatchReport, Fence, Fences, PartitionKey};
use crate::router::TypeExtractor;
use context::{FerryContext, Shared, TopicPartition};

/// How often replica mode looks for new partitions (and for topics that
/// did not exist yet: sooner).
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);
const MISSING_TOPIC_RETRY: Duration = Duration::from_secs(2);
/// Longest single poll while waiting for the first event of a batch.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Why a partition is not being consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Retry from `offset` at `until`.
    Retry { offset: i64, until: Instant },
    /// Stopped at `offset` until restart.
    Stopped { offset: i64 },
    /// Another consumer claimed the partition in SQLite while this one
    /// still held the assignment `generation`; released when the partition
    /// is assigned again.
    Fenced { generation: u64 },
}

/// One polled event with the assignment generation it was polled under.
#[derive(Debug)]
pub struct Polled {
    /// The event.
    pub event: Event,
    topic_partition: TopicPartition,
    generation: u64,
}

/// A running Kafka source.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    consumer: BaseConsumer<FerryContext>,
    pub(crate) shared: Arc<Shared>,
    extractor: TypeExtractor,
    pub(crate) keys: HashMap<String, Arc<str>>,
    topics: HashMap<Arc<str>, String>,
    pub(crate) holds: HashMap<TopicPartition, Hold>,
    next_discovery: Instant,
    owner: Arc<str>,
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
    /// checkpoints are read from `db_path`.
    pub fn start(
        config: &KafkaSourceConfig,
        bootstrap: &str,
        db_path: &Path,
        stats_interval_ms: u64,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::default());
        let context = FerryContext {
            source: config.name.clone(),
            db_path: db_path.to_owned(),
            start: config.start_without_checkpoint,
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
            .map(|t| (t.clone(), Arc::from(format!("{}/{t}", config.name))))
            .collect();
        let topics = keys
            .iter()
            .map(|(t, k)| (Arc::clone(k), t.clone()))
            .collect();
        let mut source = Self {
            config: config.clone(),
            consumer,
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

    /// Assigns every partition of every topic (replica mode), each at its
    /// SQLite checkpoint. Runs again periodically; when new partitions
    /// appear the whole assignment is renewed (positions come from SQLite,
    /// the truth, since no batch is in flight here) and held partitions
    /// are paused again.
    fn discover(&mut self) {
        let mut missing = false;
        let mut all: Vec<TopicPartition> = Vec::new();
        for topic in &self.config.topics {
            let md = match self
                .consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
            {
                Ok(md) => md,
                Err(e) => {
                    tracing::warn!(source = %self.config.name, topic, error = %e,
                        "Reading topic metadata failed; ferry tries again shortly.");
                    missing = true;
                    continue;
                }
            };
            for t in md.topics() {
                if t.error().is_some() || t.partitions().is_empty() {
                    tracing::warn!(source = %self.config.name, topic, error = ?t.error(),
                        "The topic does not exist (yet); ferry checks again shortly.");
                    missing = true;
                    continue;
                }
                all.extend(t.partitions().iter().map(|p| (topic.clone(), p.id())));
            }
        }
        let new = {
            let own = self.shared.ownership.lock();
            all.iter().filter(|tp| !own.owned.contains_key(*tp)).count()
        };
        if new > 0 {
            if let Err(e) = self.assign_all(&all) {
                tracing::error!(source = %self.config.name, error = %e, "Assigning partitions failed.");
                missing = true;
            } else {
                tracing::info!(source = %self.config.name, partitions = all.len(), new,
                    "Assigned every partition (replica mode); each starts at its SQLite checkpoint.");
            }
        }
        self.next_discovery = Instant::now()
            + if missing {
                MISSING_TOPIC_RETRY
            } else {
                DISCOVERY_INTERVAL
            };
    }

    fn assign_all(&mut self, all: &[TopicPartition]) -> anyhow::Result<()> {
        let conn = crate::store::open_read_only(&self.consumer.context().db_path)?;
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in all {
            let offset = self.consumer.context().start_offset(&conn, topic, *p);
            tpl.add_partition_offset(topic, *p, offset)?;
        }
        self.consumer.assign(&tpl)?;
        {
            let mut own = self.shared.ownership.lock();
            own.generation += 1;
            let g = own.generation;
            own.owned = all.iter().map(|tp| (tp.clone(), g)).collect();
            own.claims.clear();
        }
        let held: Vec<TopicPartition> = self.holds.keys().cloned().collect();
        for tp in held {
            if let Err(e) = self.consumer.pause(&single(&tp.0, tp.1, None)) {
                tracing::warn!(source = %self.config.name, topic = %tp.0, partition = tp.1, error = %e,
                    "Pausing a held partition again failed.");
            }
        }
        Ok(())
    }

    /// Housekeeping between batches: resumes partitions whose backoff is
    /// over, forgets holds of partitions no longer owned, discovers new
    /// partitions.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let mut released = Vec::new();
        {
            let own = self.shared.ownership.lock();
            self.holds.retain(|tp, h| match (own.owned.get(tp), h) {
                (None, _) => false,
                (Some(g), Hold::Fenced { generation }) if g != generation => {
                    released.push(tp.clone());
                    false
                }
                _ => true,
            });
        }
        for (topic, p) in released {
            if let Err(e) = self.consumer.resume(&single(&topic, p, None)) {
                tracing::warn!(source = %self.config.name, topic, partition = p, error = %e,
                    "Resuming a partition assigned again after it was fenced failed.");
            }
        }
        let due: Vec<(TopicPartition, i64)> = self
            .holds
            .iter()
            .filter_map(|(tp, h)| match h {
                Hold::Retry { offset, until } if *until <= now => Some((tp.clone(), *offset)),
                _ => None,
            })
            .collect();
        for (tp, offset) in due {
            let (topic, p) = (&tp.0, tp.1);
            let resumed = self
                .consumer
                .seek(topic, p, Offset::Offset(offset), Duration::from_secs(5))
                .and_then(|()| self.consumer.resume(&single(topic, p, None)));
            match resumed {
                Ok(()) => {
                    self.holds.remove(&tp);
                    tracing::info!(source = %self.config.name, topic, partition = p, offset,
                        "Resumed the partition at the event being retried.");
                }
                Err(e) => {
                    tracing::warn!(source = %self.config.name, topic, partition = p, error = %e,
                        "Resuming a partition failed; ferry tries again shortly.");
                    self.holds.insert(
                        tp.clone(),
                        Hold::Retry {
                            offset,
                            until: now + Duration::from_millis(500),
                        },
                    );
                }
            }
        }
        if self.config.mode == KafkaMode::Replica && now >= self.next_discovery {
            self.discover();
        }
    }

    /// Polls up to `max` events: waits up to [`IDLE_POLL`] for the first
    /// one, then at most `linger` more for the batch to fill.
    pub fn poll_into(&mut self, out: &mut Vec<Polled>, max: usize, linger: Duration) {
        let mut deadline: Option<Instant> = None;
        while out.len() < max {
            let timeout = match deadline {
                None => IDLE_POLL,
                Some(d) => d.saturating_duration_since(Instant::now()),
            };
            match self.consumer.poll(timeout) {
                None => {
                    if deadline.is_none() || timeout.is_zero() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(source = %self.config.name, error = %e,
                        "The Kafka client reported an error; it reconnects and retries by itself.");
                    if deadline.is_none() {
                        break;
                    }
                }
                Some(Ok(m)) => {
                    if let Some(p) = self.convert(&m) {
                        out.push(p);
                        deadline.get_or_insert_with(|| Instant::now() + linger);
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
    }

    fn convert(&self, m: &BorrowedMessage<'_>) -> Option<Polled> {
        let tp = (m.topic().to_owned(), m.partition());
        if self.holds.contains_key(&tp) {
            return None;
        }
        let generation = *self.shared.ownership.lock().owned.get(&tp)?;
        let source = Arc::clone(self.keys.get(m.topic())?);
        let headers: Vec<(String, Vec<u8>)> = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let payload = m.payload().map(<[u8]>::to_vec).unwrap_or_default();
        let event_type = self.extractor.extract(&headers, &payload);
        Some(Polled {
            event: Event {
                source,
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                event_type,
                payload,
                headers,
                timestamp_ms: m.timestamp().to_millis(),
            },
            topic_partition: tp,
            generation,
        })
    }

    /// The events of `polled` whose partition is still owned under the
    /// generation they were polled in (a zombie never writes for a
    /// partition it lost).
    ///
    /// Also returns the batch's [`Fences`]: the SQLite generation each
    /// partition was claimed with, or a claim for its first batch.
    pub fn fence(&self, polled: Vec<Polled>) -> (Vec<Event>, Fences) {
        let own = self.shared.ownership.lock();
        let before = polled.len();
        let mut fences = Fences::new();
        let events: Vec<Event> = polled
            .into_iter()
            .filter(|p| own.owned.get(&p.topic_partition) == Some(&p.generation))
            .map(|p| {
                let key = (Arc::clone(&p.event.source), p.event.partition);
                fences
                    .entry(key)
                    .or_insert_with(|| match own.claims.get(&p.topic_partition) {
                        Some(g) => Fence::Hold(*g),
                        None => Fence::Claim(Arc::clone(&self.owner)),
                    });
                p.event
            })
            .collect();
        if events.len() < before {
            tracing::info!(source = %self.config.name, dropped = before - events.len(),
                "Dropped events polled for partitions this consumer no longer owns.");
        }
        (events, fences)
    }

    fn topic_partition(&self, key: &PartitionKey) -> Option<TopicPartition> {
        self.topics.get(&key.0).map(|t| (t.clone(), key.1))
    }

    /// Pauses blocked partitions and commits the offsets SQLite now holds.
    pub fn after_batch(&mut self, report: &BatchReport) {
        {
            let mut own = self.shared.ownership.lock();
            for (key, g) in &report.claimed {
                if let Some(tp) = self.topic_partition(key) {
                    own.claims.insert(tp, *g);
                }
            }
        }
        for key in report.fenced.keys() {
            let Some(tp) = self.topic_partition(key) else {
                continue;
            };
            let generation = {
                let mut own = self.shared.ownership.lock();
                own.claims.remove(&tp);
                own.owned.get(&tp).copied().unwrap_or_default()
            };
            self.shared.durable.lock().remove(&tp);
            tracing::error!(source = %self.config.name, topic = %tp.0, partition = tp.1,
                "This consumer lost the partition to another one on the same database; it stays paused here until it is assigned again.");
            self.pause(tp, Hold::Fenced { generation });
        }
        for (key, blocked) in &report.blocked {
            let Some(tp) = self.topic_partition(key) else {
                continue;
            };
            let hold = match blocked.retry_after {
                Some(d) => Hold::Retry {
                    offset: blocked.offset,
                    until: Instant::now() + d,
                },
                None => Hold::Stopped {
                    offset: blocked.offset,
                },
            };
            self.pause(tp, hold);
        }
        self.commit(
            report
                .committed
                .iter()
                .filter_map(|(k, o)| Some((self.topic_partition(k)?, *o))),
        );
    }

    /// After a failed batch: every partition in it waits `delay`, then
    /// starts again from the first event of the batch.
    pub fn rewind(&mut self, events: &[Event], delay: Duration) {
        let mut first: HashMap<TopicPartition, i64> = HashMap::new();
        for e in events {
            if let Some(tp) = self.topic_partition(&(Arc::clone(&e.source), e.partition)) {
                first.entry(tp).or_insert(e.offset);
            }
        }
        for (tp, offset) in first {
            self.pause(
                tp,
                Hold::Retry {
                    offset,
                    until: Instant::now() + delay,
                },
            );
        }
    }

    fn pause(&mut self, tp: TopicPartition, hold: Hold) {
        if let Err(e) = self.consumer.pause(&single(&tp.0, tp.1, None)) {
            tracing::warn!(source = %self.config.name, topic = %tp.0, partition = tp.1, error = %e,
                "Pausing a partition failed; its prefetched events are dropped until it resumes.");
        }
        self.holds.insert(tp, hold);
    }

    fn commit(&self, offsets: impl Iterator<Item = (TopicPartition, i64)>) {
        let mut tpl = TopicPartitionList::new();
        {
            let mut durable = self.shared.durable.lock();
            for (tp, offset) in offsets {
                let _ = tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(offset + 1));
                durable.insert(tp, offset + 1);
            }
        }
        if tpl.count() == 0 || self.config.group_id.is_none() {
            return;
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(source = %self.config.name, error = %e,
                "An advisory offset commit failed; SQLite still holds the progress.");
        }
    }

    /// Commits the durable offsets synchronously and leaves the group.
    pub fn close(self) {
        if self.config.group_id.is_some() {
            let durable = self.shared.durable.lock().clone();
            let owned = self.shared.ownership.lock().owned.clone();
            let mut tpl = TopicPartitionList::new();
            for (tp, o) in durable.into_iter().filter(|(tp, _)| owned.contains_key(tp)) {
                let _ = tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(o));
            }
            if tpl.count() > 0
                && let Err(e) = self.consumer.commit(&tpl, CommitMode::Sync)
            {
                tracing::warn!(source = %self.config.name, error = %e,
                        "The final advisory offset commit failed; SQLite holds the progress.");
            }
        }
        if self.config.mode == KafkaMode::Group {
            self.consumer.unsubscribe();
        }
        tracing::info!(source = %self.config.name, "Closed the Kafka consumer.");
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
