//! The consumer context: partition ownership with an assignment
//! generation, high watermarks from librdkafka's statistics, and (in
//! `group` mode) the rebalance choreography: on assignment every partition
//! is positioned at its SQLite checkpoint before consumption starts; on
//! revocation the partition stops being owned at once, so nothing polled
//! for it before is ever applied, and the offsets already durable in SQLite
//! are committed to the group for the next owner.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use crate::config::StartFrom;
use crate::delivery::checkpoint_key;
use crate::source::Positions;

/// How long reading the group's committed offsets may take.
const COMMITTED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `(topic, partition)`.
pub type TopicPartition = (String, i32);

/// Which partitions this consumer owns, and since which assignment.
#[derive(Debug, Default)]
pub struct Ownership {
    /// Incremented on every assignment change.
    pub generation: u64,
    /// Owned partitions and the generation they were assigned in.
    pub owned: HashMap<TopicPartition, u64>,
    /// SQLite fencing generations claimed under the current assignment
    /// (see `store::fence`); a partition without one is claimed
    /// by its next batch.
    pub claims: HashMap<TopicPartition, i64>,
}

/// State shared between the consumer's callbacks and the source.
#[derive(Debug, Default)]
pub struct Shared {
    /// Partition ownership.
    pub ownership: Mutex<Ownership>,
    /// High watermarks from the latest statistics.
    pub high_watermarks: Mutex<HashMap<TopicPartition, i64>>,
    /// Next offset to commit per partition (durable in SQLite).
    pub durable: Mutex<HashMap<TopicPartition, i64>>,
    /// librdkafka's problems, summarised (see [`super::client_log`]).
    pub client_log: Option<super::client_log::ClientLog>,
}

/// The librdkafka context of a ferry Kafka source.
pub struct FerryContext {
    /// Source name (checkpoint keys are `<source>/<topic>`).
    pub source: String,
    /// The checkpoints in SQLite.
    pub positions: Arc<dyn Positions>,
    /// Where partitions without a checkpoint start.
    pub start: StartFrom,
    /// Where a partition without a checkpoint starts when `start` is
    /// `committed` and the group has no offset for it (`Beginning`, or
    /// `End` when the `auto.offset.reset` passthrough says `latest`).
    pub fallback: Offset,
    /// Whether a group id is set (commits are possible).
    pub commits: bool,
    /// Shared with the source.
    pub shared: Arc<Shared>,
}

impl ClientContext for FerryContext {
    fn stats(&self, statistics: Statistics) {
        let broker_up = statistics.brokers.values().any(|b| b.state == "UP");
        {
            let mut hw = self.shared.high_watermarks.lock();
            for (topic, t) in statistics.topics {
                for (p, part) in t.partitions {
                    if p >= 0 && part.hi_offset >= 0 {
                        hw.insert((topic.clone(), p), part.hi_offset);
                    }
                }
            }
        }
        if let Some(log) = &self.shared.client_log {
            log.tick(broker_up);
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match &self.shared.client_log {
            Some(log) => log.line(level, fac, log_message),
            None => tracing::debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match &self.shared.client_log {
            Some(log) => log.error(&error, reason),
            None => tracing::error!(target: "librdkafka", error = %error, "{reason}"),
        }
    }
}

impl FerryContext {
    /// The offset to start `(topic, partition)` from: checkpoint + 1, or
    /// the `start_without_checkpoint` choice (`Stored` for `committed`; see
    /// [`Self::start_offsets`], which resolves it).
    pub fn start_offset(&self, topic: &str, partition: i32) -> Offset {
        let key = checkpoint_key(&self.source, topic);
        match self.positions.checkpoint(&key, partition) {
            Ok(Some(o)) => Offset::Offset(o + 1),
            Ok(None) => self.without_checkpoint(),
            Err(e) => {
                tracing::error!(source = %self.source, topic, partition, error = %e,
                    "Reading a checkpoint failed; starting the partition from its stored group offset.");
                Offset::Stored
            }
        }
    }

    /// Where a partition without a checkpoint starts, as
    /// `start_without_checkpoint` says (`Stored`: the group's committed
    /// offset).
    pub fn without_checkpoint(&self) -> Offset {
        match self.start {
            StartFrom::Earliest => Offset::Beginning,
            StartFrom::Latest => Offset::End,
            StartFrom::Committed => Offset::Stored,
        }
    }

    /// [`Self::without_checkpoint`], with [`Self::fallback`] where the
    /// group's offset is missing or gone.
    pub fn fallback_start(&self) -> Offset {
        match self.without_checkpoint() {
            Offset::Stored => self.fallback,
            other => other,
        }
    }

    /// The start offsets of `parts`, with the group's committed offsets
    /// resolved here (one query for all of them) rather than by librdkafka:
    /// ferry runs it with `auto.offset.reset = error`, so a partition
    /// without a committed offset starts at [`Self::fallback`] instead of
    /// reporting an error. If the query fails, `Stored` is left for the
    /// out-of-range handling to resolve.
    pub fn start_offsets(
        &self,
        consumer: &BaseConsumer<Self>,
        parts: &[TopicPartition],
    ) -> Vec<Offset> {
        let mut offsets: Vec<Offset> = parts
            .iter()
            .map(|(t, p)| self.start_offset(t, *p))
            .collect();
        let mut stored = TopicPartitionList::new();
        for ((t, p), o) in parts.iter().zip(&offsets) {
            if *o == Offset::Stored {
                stored.add_partition(t, *p);
            }
        }
        if stored.count() == 0 {
            return offsets;
        }
        let committed = if self.commits {
            match consumer.committed_offsets(stored, COMMITTED_TIMEOUT) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(source = %self.source, error = %e,
                        "Reading the group's committed offsets failed; librdkafka reports partitions without one, and they start from the fallback then.");
                    return offsets;
                }
            }
        } else {
            None
        };
        for ((t, p), o) in parts.iter().zip(offsets.iter_mut()) {
            if *o != Offset::Stored {
                continue;
            }
            *o = match committed
                .as_ref()
                .and_then(|c| c.find_partition(t, *p))
                .map(|e| e.offset())
            {
                Some(Offset::Offset(c)) if c >= 0 => Offset::Offset(c),
                _ => self.fallback,
            };
        }
        offsets
    }

    fn position_at_checkpoints(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let parts: Vec<TopicPartition> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let offsets = self.start_offsets(consumer, &parts);
        for ((topic, p), offset) in parts.into_iter().zip(offsets) {
            if let Err(e) = tpl.set_partition_offset(&topic, p, offset) {
                tracing::error!(topic, partition = p, error = %e, "Cannot set a start offset.");
            }
        }
    }

    /// Commits the SQLite-durable offsets of `revoked` partitions (revoked
    /// by the group, or given up on close) to the group (sent before the
    /// partitions are released, so the next owner normally starts exactly
    /// after them) and forgets them. Asynchronous: librdkafka's synchronous
    /// commit waits without a limit, and with the coordinator gone the
    /// revocation would never finish; the commit is advisory, SQLite holds
    /// the progress.
    pub(super) fn commit_durable(
        &self,
        consumer: &BaseConsumer<Self>,
        revoked: &TopicPartitionList,
    ) {
        let mut durable = self.shared.durable.lock();
        let mut tpl = TopicPartitionList::new();
        for e in revoked.elements() {
            // Forgotten either way: once the next owner moves on, this
            // consumer's offset for the partition is stale and must never
            // be committed again (F3).
            if let Some(o) = durable.remove(&(e.topic().to_owned(), e.partition())) {
                let _ = tpl.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o));
            }
        }
        drop(durable);
        if !self.commits {
            return;
        }
        if tpl.count() == 0 {
            return;
        }
        match consumer.commit(&tpl, CommitMode::Async) {
            Ok(()) => self.confirm_committed(consumer, &tpl),
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "Committing the durable offsets of partitions given up failed; the next owner starts from its own checkpoint or an older group offset, SQLite holds the progress.");
            }
        }
    }

    /// Waits, at most [`CONFIRM_TIMEOUT`], until the group holds the
    /// offsets `sent` (or later ones): the next owner of a revoked
    /// partition reads them when it is assigned, and one that read an older
    /// offset would apply again in its own database what this member
    /// already applied in its. Bounded, because the coordinator may be
    /// gone (the commit is advisory; SQLite holds the progress).
    fn confirm_committed(&self, consumer: &BaseConsumer<Self>, sent: &TopicPartitionList) {
        let deadline = std::time::Instant::now() + CONFIRM_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                tracing::warn!(source = %self.source, timeout_ms = CONFIRM_TIMEOUT.as_millis() as u64,
                    "The group did not confirm the offsets of partitions given up in time; their next owner may start from an older group offset.");
                return;
            }
            match consumer.committed_offsets(sent.clone(), left) {
                Ok(held) if holds(&held, sent) => return,
                Ok(_) => std::thread::sleep(std::time::Duration::from_millis(10).min(left)),
                Err(e) => {
                    tracing::warn!(source = %self.source, error = %e,
                        "Reading back the offsets of partitions given up failed; their next owner may start from an older group offset.");
                    return;
                }
            }
        }
    }
}

/// Longest wait for the group to confirm the offsets of partitions given up.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether `held` has, for every partition of `sent`, at least its offset.
fn holds(held: &TopicPartitionList, sent: &TopicPartitionList) -> bool {
    sent.elements().iter().all(|s| {
        let Offset::Offset(want) = s.offset() else {
            return true;
        };
        held.find_partition(s.topic(), s.partition())
            .is_some_and(|h| matches!(h.offset(), Offset::Offset(o) if o >= want))
    })
}

impl ConsumerContext for FerryContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            rdkafka::consumer::RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.position_at_checkpoints(consumer, tpl);
                {
                    let mut own = self.shared.ownership.lock();
                    own.generation += 1;
                    let g = own.generation;
                    if !cooperative {
                        own.owned.clear();
                        own.claims.clear();
                    }
                    for e in tpl.elements() {
                        let tp = (e.topic().to_owned(), e.partition());
                        own.claims.remove(&tp);
                        own.owned.insert(tp, g);
                    }
                    tracing::info!(source = %self.source, generation = g, partitions = tpl.count(),
                        "Partitions were assigned; each starts at its SQLite checkpoint.");
                }
                let r: KafkaResult<()> = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "Applying a partition assignment failed.");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                {
                    let mut own = self.shared.ownership.lock();
                    own.generation += 1;
                    for e in tpl.elements() {
                        let tp = (e.topic().to_owned(), e.partition());
                        own.owned.remove(&tp);
                        own.claims.remove(&tp);
                    }
                    tracing::info!(source = %self.source, generation = own.generation, partitions = tpl.count(),
                        "Partitions were revoked; events polled for them are dropped, not applied.");
                }
                self.commit_durable(consumer, tpl);
                let r = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "Releasing revoked partitions failed.");
                }
            }
            other => {
                tracing::error!(error = ?other, "A rebalance failed; librdkafka will retry it.");
                let _ = consumer.unassign();
                let mut own = self.shared.ownership.lock();
                own.owned.clear();
                own.claims.clear();
            }
        }
    }
}
