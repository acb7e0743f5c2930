//! Holding partitions: pause a partition whose event failed (retry it
//! from that offset after the backoff, or keep it stopped), release one
//! fenced by another consumer once it is assigned again, and send the
//! advisory commits of what SQLite holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::context::TopicPartition;
use super::{Hold, KafkaSource, Why, single};
use crate::config::KafkaMode;
use crate::delivery::Verdicts;
use crate::event::Event;

impl KafkaSource {
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
        let due: Vec<(TopicPartition, i64, Arc<Why>)> = self
            .holds
            .iter()
            .filter_map(|(tp, h)| match h {
                Hold::Retry { offset, until, why } if *until <= now => {
                    Some((tp.clone(), *offset, Arc::clone(why)))
                }
                _ => None,
            })
            .collect();
        for (tp, offset, why) in due {
            let (topic, p) = (&tp.0, tp.1);
            let resumed = self
                .consumer
                .seek(topic, p, Offset::Offset(offset), Duration::from_secs(5))
                .and_then(|()| self.consumer.resume(&single(topic, p, None)));
            match resumed {
                Ok(()) => {
                    self.holds.remove(&tp);
                    tracing::info!(source = %self.config.name, topic, partition = p, offset,
                        event_type = why.event_type.as_deref().unwrap_or("-"),
                        plugin = why.plugin.as_deref().unwrap_or("-"), error = %why.error,
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
                            why,
                        },
                    );
                }
            }
        }
        if self.config.mode == KafkaMode::Replica && now >= self.next_discovery {
            self.discover();
        }
    }

    /// Pauses blocked partitions and commits the offsets SQLite now holds.
    pub fn after_batch(&mut self, report: &Verdicts) {
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
                    why: Arc::new(Why {
                        event_type: blocked.event_type.clone(),
                        plugin: blocked.plugin.clone(),
                        error: blocked.failure.to_string(),
                    }),
                },
                None => Hold::Stopped {
                    offset: blocked.offset,
                    reason: blocked.failure.to_string(),
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
        let why = Arc::new(Why {
            error: "the batch could not be committed".to_owned(),
            ..Why::default()
        });
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
                    why: Arc::clone(&why),
                },
            );
        }
    }

    pub(super) fn pause(&mut self, tp: TopicPartition, hold: Hold) {
        if let Err(e) = self.consumer.pause(&single(&tp.0, tp.1, None)) {
            tracing::warn!(source = %self.config.name, topic = %tp.0, partition = tp.1, error = %e,
                "Pausing a partition failed; its prefetched events are dropped until it resumes.");
        }
        self.holds.insert(tp, hold);
    }

    pub(super) fn commit(&self, offsets: impl Iterator<Item = (TopicPartition, i64)>) {
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
}
