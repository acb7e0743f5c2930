//! Offsets out of range: the broker no longer has the offset a partition
//! was to be read from (retention deleted events ferry had not applied
//! yet, or the topic was re-created). librdkafka is told to report it
//! (`auto.offset.reset = error`) instead of moving the partition silently,
//! and ferry decides here, per partition:
//!
//! - a partition with a checkpoint whose next offset is below the log start
//!   gets the missing range as one dead letter of class `gap` (in the
//!   transaction that moves the checkpoint past it) and goes on from the
//!   log start, or stops there (`on_out_of_range = "stop"`);
//! - one whose next offset is past the log end stops (the checkpoint
//!   belongs to another incarnation of the topic);
//! - one without a checkpoint starts where `start_without_checkpoint` says
//!   (a committed group offset that is gone falls back to the earliest
//!   offset, or the end when `auto.offset.reset` says `latest`).
//!
//! librdkafka's error does not say which partition it was, so every owned
//! partition's expected offset is checked against the broker's watermarks.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, RebalanceProtocol};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::context::TopicPartition;
use super::{Hold, KafkaSource, Polled};
use crate::config::{KafkaMode, OutOfRange};
use crate::event::Event;
use crate::failure::{Failure, FailureKind};

/// How long one watermark or committed-offset query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do with one partition.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Reading where it is: nothing to do.
    Keep,
    /// Read from `offset`; `gap` is the dead letter for what was skipped.
    Move {
        offset: Offset,
        gap: Option<(i64, String)>,
    },
    /// Stop at `offset` with `reason`.
    Stop { offset: i64, reason: String },
}

/// The decision for a partition expected at `next` (`None`: it has no
/// checkpoint and nothing was read yet) whose log holds `low..high`.
fn decide(
    what: &str,
    next: Option<i64>,
    (low, high): (i64, i64),
    policy: OutOfRange,
    without_checkpoint: Offset,
) -> Decision {
    match next {
        Some(n) if n < low => {
            let range = if n == low - 1 {
                format!("offset {n} of {what} is")
            } else {
                format!("offsets {n} to {} of {what} are", low - 1)
            };
            let reason = format!(
                "{range} no longer on the broker (the log now starts at {low}): deleted by retention before ferry applied them"
            );
            match policy {
                OutOfRange::DeadLetter => Decision::Move {
                    offset: Offset::Offset(low),
                    gap: Some((low - 1, reason)),
                },
                OutOfRange::Stop => Decision::Stop { offset: n, reason },
            }
        }
        Some(n) if n > high => Decision::Stop {
            offset: n,
            reason: format!(
                "the next offset {n} of {what} is past the end of its log ({high}): the topic was re-created or truncated; rebuild the projection (`ferry rebuild`) to start it again"
            ),
        },
        Some(_) => Decision::Keep,
        None => Decision::Move {
            offset: without_checkpoint,
            gap: None,
        },
    }
}

impl KafkaSource {
    /// Handles librdkafka's report that an offset is out of range (see the
    /// module doc). Dead letters for skipped ranges are appended to `out`,
    /// in the batch being polled.
    pub(super) fn recover_out_of_range(&mut self, out: &mut Vec<Polled>) {
        let positions_port = std::sync::Arc::clone(&self.consumer.context().positions);
        let assigned = match self.consumer.assignment() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(source = %self.config.name, error = %e,
                    "An offset is out of range, and the assignment cannot be read.");
                return;
            }
        };
        let positions = self.consumer.position().ok();
        // Every assigned partition with the offset it reads from next, and
        // whether to restart it there (held and unchecked partitions are
        // left alone where the assignment can change one at a time).
        let mut plan: Vec<(TopicPartition, Offset, bool)> = Vec::new();
        for e in assigned.elements() {
            let tp: TopicPartition = (e.topic().to_owned(), e.partition());
            let consumed = positions
                .as_ref()
                .and_then(|p| p.find_partition(&tp.0, tp.1))
                .and_then(|p| match p.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            let next = consumed.or_else(|| {
                let key = self.keys.get(&tp.0)?;
                match positions_port.checkpoint(key, tp.1) {
                    Ok(c) => c.map(|c| c + 1),
                    Err(e) => {
                        tracing::error!(source = %self.config.name, topic = %tp.0, partition = tp.1, error = %e,
                            "An offset is out of range, and the checkpoint cannot be read to decide what to do; ferry tries again at the next report.");
                        None
                    }
                }
            });
            let current = next.map_or_else(
                || self.consumer.context().without_checkpoint(),
                Offset::Offset,
            );
            if self.holds.contains_key(&tp) {
                // Checked again when it resumes (a retry seeks first).
                plan.push((tp, current, false));
                continue;
            }
            let watermarks = match self.consumer.fetch_watermarks(&tp.0, tp.1, QUERY_TIMEOUT) {
                Ok(w) => w,
                Err(err) => {
                    tracing::warn!(source = %self.config.name, topic = %tp.0, partition = tp.1, error = %err,
                        "Reading a partition's watermarks failed; it is checked again at the next report.");
                    plan.push((tp, current, false));
                    continue;
                }
            };
            let without = match next {
                None => self.start_in_range(&tp, watermarks),
                Some(_) => self.consumer.context().fallback_start(),
            };
            let what = format!("{} [{}]", tp.0, tp.1);
            match decide(
                &what,
                next,
                watermarks,
                self.config.on_out_of_range,
                without,
            ) {
                // Restarted too: librdkafka stops fetching the partition it
                // reported, and the report does not say which one it was.
                Decision::Keep => plan.push((tp, current, true)),
                Decision::Move { offset, gap } => {
                    if let Some((last_missing, reason)) = gap {
                        tracing::error!(source = %self.config.name, topic = %tp.0, partition = tp.1, error = %reason,
                            "Offsets after the checkpoint are gone from the broker; the gap is recorded as a dead letter and the partition goes on from the log start.");
                        self.push_gap(out, &tp, last_missing, reason);
                    } else {
                        tracing::warn!(source = %self.config.name, topic = %tp.0, partition = tp.1, start = ?offset,
                            "The partition has no checkpoint and the offset it was to start from is missing or gone; it starts from the fallback.");
                    }
                    plan.push((tp, offset, true));
                }
                Decision::Stop { offset, reason } => {
                    tracing::error!(source = %self.config.name, topic = %tp.0, partition = tp.1, offset, error = %reason,
                        "The partition's next offset is not on the broker; the partition stops there until restart.");
                    self.pause(tp.clone(), Hold::Stopped { offset, reason });
                    plan.push((tp, Offset::Offset(offset), false));
                }
            }
        }
        self.reposition(plan);
    }

    /// Where a partition without a checkpoint starts now: where
    /// `start_without_checkpoint` says (the group's committed offset
    /// included) if the broker still has that offset, else the fallback.
    fn start_in_range(&self, tp: &TopicPartition, (low, high): (i64, i64)) -> Offset {
        let context = self.consumer.context();
        match context
            .start_offsets(&self.consumer, std::slice::from_ref(tp))
            .first()
        {
            Some(Offset::Offset(o)) if (low..=high).contains(o) => Offset::Offset(*o),
            _ => context.fallback_start(),
        }
    }

    /// The dead letter for a skipped range: a rejected event at the last
    /// missing offset, so the checkpoint moves past the range with it.
    fn push_gap(
        &self,
        out: &mut Vec<Polled>,
        tp: &TopicPartition,
        last_missing: i64,
        reason: String,
    ) {
        let Some(index) = self.known.iter().position(|k| k.tp == *tp) else {
            return;
        };
        let known = &self.known[index];
        let mut gap = Event::new(
            Arc::clone(&known.key),
            tp.1,
            last_missing,
            None,
            reason.clone().into_bytes(),
        );
        gap.rejected = Some(Failure::new(FailureKind::Gap, reason));
        out.push(Polled {
            event: gap,
            known: index,
            generation: known.generation,
        });
    }

    /// Restarts fetching at the decided offsets: only the partitions
    /// marked for a restart where the assignment can change one partition
    /// at a time (replica mode, a cooperative group), else the whole
    /// assignment at its offsets (held partitions are paused again).
    fn reposition(&mut self, plan: Vec<(TopicPartition, Offset, bool)>) {
        let incremental = self.config.mode == KafkaMode::Replica
            || matches!(
                self.consumer.rebalance_protocol(),
                RebalanceProtocol::Cooperative
            );
        let result = if incremental {
            let mut gone = TopicPartitionList::new();
            let mut back = TopicPartitionList::new();
            for (tp, offset, _) in plan.iter().filter(|(_, _, restart)| *restart) {
                gone.add_partition(&tp.0, tp.1);
                let _ = back.add_partition_offset(&tp.0, tp.1, *offset);
            }
            if back.count() == 0 {
                return;
            }
            self.consumer
                .incremental_unassign(&gone)
                .and_then(|()| self.consumer.incremental_assign(&back))
        } else {
            let mut all = TopicPartitionList::new();
            for (tp, offset, _) in &plan {
                let _ = all.add_partition_offset(&tp.0, tp.1, *offset);
            }
            let r = self
                .consumer
                .unassign()
                .and_then(|()| self.consumer.assign(&all));
            self.pause_held_again();
            r
        };
        if let Err(e) = result {
            tracing::error!(source = %self.config.name, error = %e,
                "Restarting partitions after an offset out of range failed; ferry tries again at the next report.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_next_offset_below_the_log_start_is_a_gap_or_a_stop() {
        let d = decide(
            "t [0]",
            Some(5),
            (10, 20),
            OutOfRange::DeadLetter,
            Offset::Beginning,
        );
        let Decision::Move {
            offset: Offset::Offset(10),
            gap: Some((9, reason)),
        } = d
        else {
            panic!("{d:?}");
        };
        assert!(
            reason.starts_with("offsets 5 to 9 of t [0] are no longer on the broker"),
            "{reason}"
        );
        let d = decide(
            "t [0]",
            Some(9),
            (10, 20),
            OutOfRange::DeadLetter,
            Offset::Beginning,
        );
        assert!(
            matches!(&d, Decision::Move { gap: Some((9, r)), .. } if r.starts_with("offset 9 of t [0] is")),
            "{d:?}"
        );
        let d = decide(
            "t [0]",
            Some(5),
            (10, 20),
            OutOfRange::Stop,
            Offset::Beginning,
        );
        assert!(
            matches!(&d, Decision::Stop { offset: 5, reason } if reason.contains("retention")),
            "{d:?}"
        );
    }

    #[test]
    fn past_the_end_stops_in_range_stays_and_no_checkpoint_takes_the_fallback() {
        let d = decide(
            "t [1]",
            Some(30),
            (10, 20),
            OutOfRange::DeadLetter,
            Offset::Beginning,
        );
        assert!(
            matches!(&d, Decision::Stop { offset: 30, reason } if reason.contains("re-created")),
            "{d:?}"
        );
        for n in [10, 15, 20] {
            assert_eq!(
                decide(
                    "t [1]",
                    Some(n),
                    (10, 20),
                    OutOfRange::DeadLetter,
                    Offset::Beginning
                ),
                Decision::Keep
            );
        }
        assert_eq!(
            decide("t [1]", None, (10, 20), OutOfRange::Stop, Offset::End),
            Decision::Move {
                offset: Offset::End,
                gap: None
            }
        );
    }
}
