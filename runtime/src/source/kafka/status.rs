//! What a Kafka source reports about its partitions: lag and state.

use std::collections::HashMap;
use std::sync::Arc;

use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::Offset;

use super::context::TopicPartition;
use super::{Hold, KafkaSource};
use crate::delivery::PartitionKey;
use crate::source::{PartitionState, PartitionStatus};

impl KafkaSource {
    /// Lag and state of every owned partition; `checkpoint` gives the last
    /// applied offset of a partition key. The lag is the high watermark
    /// (from librdkafka's statistics) minus the next offset to apply, or
    /// minus the consumer's position when that is further: offsets that
    /// hold no event (transaction markers, records removed by compaction,
    /// aborted transactions) are passed by the position without ever
    /// reaching ferry, so a partition whose last events were committed in a
    /// transaction is caught up at lag 0.
    pub fn partitions(
        &self,
        checkpoint: &mut dyn FnMut(&PartitionKey) -> Option<i64>,
    ) -> Vec<PartitionStatus> {
        let owned: Vec<TopicPartition> = {
            let mut v: Vec<_> = self.shared.ownership.lock().owned.keys().cloned().collect();
            v.sort();
            v
        };
        let hw = self.shared.high_watermarks.lock().clone();
        let positions = self.positions();
        owned
            .into_iter()
            .filter_map(|tp| {
                let source = Arc::clone(self.keys.get(&tp.0)?);
                let next = checkpoint(&(Arc::clone(&source), tp.1)).map_or(0, |o| o + 1);
                let next = positions.get(&tp).map_or(next, |p| next.max(*p));
                let lag = hw.get(&tp).map(|h| (h - next).max(0));
                let (state, detail) = match self.holds.get(&tp) {
                    Some(Hold::Retry { why, .. }) => {
                        (PartitionState::Retrying, Some(why.error.clone()))
                    }
                    Some(Hold::Stopped { offset, reason }) => (
                        PartitionState::Stopped,
                        Some(format!(
                            "stopped at offset {offset} until restart: {reason}"
                        )),
                    ),
                    Some(Hold::Fenced { .. }) => (
                        PartitionState::Fenced,
                        Some("another consumer claimed it in SQLite".to_owned()),
                    ),
                    None => (PartitionState::Running, None),
                };
                Some(PartitionStatus {
                    source,
                    partition: tp.1,
                    lag,
                    state,
                    detail,
                })
            })
            .collect()
    }

    /// The consumer's position (next offset to hand to ferry) of every
    /// running partition; held partitions are left out, their position
    /// says nothing about what is applied.
    fn positions(&self) -> HashMap<TopicPartition, i64> {
        let Ok(list) = self.consumer.position() else {
            return HashMap::new();
        };
        list.elements()
            .into_iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
                _ => None,
            })
            .filter(|(tp, _)| !self.holds.contains_key(tp))
            .collect()
    }
}
