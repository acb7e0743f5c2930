//! What a Kafka source reports about its partitions: lag and state.

use std::sync::Arc;

use super::context::TopicPartition;
use super::{Hold, KafkaSource};
use crate::pipeline::PartitionKey;

/// A partition's position for progress reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// `<source>/<topic>`.
    pub source: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// High watermark minus the next offset to apply (`None` until
    /// librdkafka's statistics have reported a watermark).
    pub lag: Option<i64>,
    /// `running`, `retrying` (waiting out a backoff), `stopped` (until a
    /// restart) or `fenced` (another consumer claimed it).
    pub state: &'static str,
}

impl KafkaSource {
    /// Lag and state of every owned partition; `checkpoint` gives the last
    /// applied offset of a partition key.
    pub fn lag(
        &self,
        mut checkpoint: impl FnMut(&PartitionKey) -> Option<i64>,
    ) -> Vec<PartitionLag> {
        let owned: Vec<TopicPartition> = {
            let mut v: Vec<_> = self.shared.ownership.lock().owned.keys().cloned().collect();
            v.sort();
            v
        };
        let hw = self.shared.high_watermarks.lock().clone();
        owned
            .into_iter()
            .filter_map(|tp| {
                let source = Arc::clone(self.keys.get(&tp.0)?);
                let next = checkpoint(&(Arc::clone(&source), tp.1)).map_or(0, |o| o + 1);
                let lag = hw.get(&tp).map(|h| (h - next).max(0));
                let state = match self.holds.get(&tp) {
                    Some(Hold::Retry { .. }) => "retrying",
                    Some(Hold::Stopped { .. }) => "stopped",
                    Some(Hold::Fenced { .. }) => "fenced",
                    None => "running",
                };
                Some(PartitionLag {
                    source,
                    partition: tp.1,
                    lag,
                    state,
                })
            })
            .collect()
    }

    /// Partitions that are stopped, with the offset they stopped at.
    pub fn stopped(&self) -> Vec<(TopicPartition, i64)> {
        self.holds
            .iter()
            .filter_map(|(tp, h)| match h {
                Hold::Stopped { offset } => Some((tp.clone(), *offset)),
                Hold::Retry { .. } | Hold::Fenced { .. } => None,
            })
            .collect()
    }
}
