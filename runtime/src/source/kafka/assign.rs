//! Replica mode's assignment: every partition of every topic, each at its
//! SQLite checkpoint, renewed when new partitions appear.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::TopicPartitionList;

use super::context::TopicPartition;
use super::{DISCOVERY_INTERVAL, KafkaSource, MISSING_TOPIC_RETRY, single};

impl KafkaSource {
    /// Assigns every partition of every topic (replica mode), each at its
    /// SQLite checkpoint. Runs again periodically; when new partitions
    /// appear the whole assignment is renewed (positions come from SQLite,
    /// the truth, since no batch is in flight here) and held partitions
    /// are paused again.
    pub(super) fn discover(&mut self) {
        let mut missing = false;
        let mut all: Vec<TopicPartition> = Vec::new();
        for topic in &self.config.topics {
            let md = match self
                .consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
            {
                Ok(md) => md,
                Err(e) => {
                    self.note_problem(
                        "metadata",
                        &format!("reading the metadata of topic `{topic}` failed: {e}"),
                    );
                    missing = true;
                    continue;
                }
            };
            for t in md.topics() {
                if t.error().is_some() || t.partitions().is_empty() {
                    self.note_problem(
                        "topic",
                        &format!(
                            "topic `{topic}` does not exist (yet): {:?}; ferry checks again every {} s",
                            t.error(),
                            MISSING_TOPIC_RETRY.as_secs()
                        ),
                    );
                    missing = true;
                    continue;
                }
                if let Some(log) = &self.shared.client_log {
                    log.ferry_resolved("topic", &format!("topic `{topic}` "));
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

    fn note_problem(&self, kind: &str, text: &str) {
        match &self.shared.client_log {
            Some(log) => log.ferry_problem(kind, text),
            None => tracing::warn!(source = %self.config.name, kind, "{text}"),
        }
    }

    fn assign_all(&mut self, all: &[TopicPartition]) -> anyhow::Result<()> {
        let offsets = self.consumer.context().start_offsets(&self.consumer, all);
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), offset) in all.iter().zip(offsets) {
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
        self.pause_held_again();
        Ok(())
    }

    /// Pauses the held partitions again after the assignment was replaced
    /// (a new assignment starts every partition fetching).
    pub(super) fn pause_held_again(&self) {
        for tp in self.holds.keys() {
            if let Err(e) = self.consumer.pause(&single(&tp.0, tp.1, None)) {
                tracing::warn!(source = %self.config.name, topic = %tp.0, partition = tp.1, error = %e,
                    "Pausing a held partition again failed.");
            }
        }
    }
}
