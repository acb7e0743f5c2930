//! What passes between a source and the pipeline, as plain data: which
//! partition an event is in, what a batch must prove about a partition in
//! SQLite (its fence), and the verdicts of a committed batch that a source
//! follows (what was committed, where a partition is blocked, which were
//! fenced). Plain types: they import nothing of ferry but the failure
//! classes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::failure::Failure;

/// The checkpoint key of `topic` in Kafka source `source`
/// (`<source>/<topic>`); a feed's key is the source name itself.
pub fn checkpoint_key(source: &str, topic: &str) -> String {
    format!("{source}/{topic}")
}

/// What a batch must prove about one partition before writing for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    /// First batch under a new assignment: claim the partition for this
    /// owner (a description of the consumer, for operators).
    Claim(Arc<str>),
    /// The partition was claimed with this generation; it must still be.
    Hold(i64),
}

/// The fences of a batch, per partition. Partitions without an entry are
/// not fenced (replay, dead-letter retries).
pub type Fences = HashMap<PartitionKey, Fence>;

/// What happened to one event (or attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Applied by its plugin.
    Applied,
    /// Skipped: the plugin said it is irrelevant, or no plugin handles its
    /// type under the `skip` policy.
    Skipped,
    /// At or below the checkpoint: applied before, not applied again.
    AlreadyApplied,
    /// One attempt failed; it will be retried.
    Retried,
    /// Recorded as a dead letter.
    DeadLettered,
    /// Its partition stopped at it.
    Stopped,
}

impl Outcome {
    /// Every outcome, in display order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Applied,
        Outcome::Skipped,
        Outcome::AlreadyApplied,
        Outcome::Retried,
        Outcome::DeadLettered,
        Outcome::Stopped,
    ];

    /// Name used in metrics and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Skipped => "skipped",
            Outcome::AlreadyApplied => "already-applied",
            Outcome::Retried => "retried",
            Outcome::DeadLettered => "dead-lettered",
            Outcome::Stopped => "stopped",
        }
    }
}

/// A source partition.
pub type PartitionKey = (Arc<str>, i32);

/// Why a partition stopped taking events in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocked {
    /// Offset of the event it is blocked at.
    pub offset: i64,
    /// Its event type, if known.
    pub event_type: Option<String>,
    /// The plugin that failed, if any.
    pub plugin: Option<String>,
    /// The last failure.
    pub failure: Failure,
    /// Attempts made so far.
    pub attempts: u32,
    /// `Some(delay)`: deliver the partition again from `offset` after the
    /// delay. `None`: the partition is stopped (policy `stop-partition` or
    /// `unknown_event_type = "fail"`).
    pub retry_after: Option<Duration>,
}

/// Something a caller should show about one event (dead letters, stops).
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Partition of the event.
    pub partition: PartitionKey,
    /// Offset of the event.
    pub offset: i64,
    /// Its event type, if known.
    pub event_type: Option<String>,
    /// What happened to it.
    pub outcome: Outcome,
    /// Why.
    pub failure: Failure,
}

/// The verdicts of one committed batch that its source follows: what is
/// durable, where a partition is blocked (retry later or stopped), which
/// partitions it claimed, and which another consumer claimed meanwhile.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Verdicts {
    /// Partitions that stopped taking events in this batch.
    pub blocked: BTreeMap<PartitionKey, Blocked>,
    /// Last committed offset of each partition the batch advanced.
    pub committed: BTreeMap<PartitionKey, i64>,
    /// Partitions this batch claimed, with their new fencing generation.
    pub claimed: BTreeMap<PartitionKey, i64>,
    /// Partitions another consumer claimed since this one did (nothing was
    /// written for them), with the generation found.
    pub fenced: BTreeMap<PartitionKey, i64>,
}

/// A message queued in the outbox for a dead-letter topic, to be sent
/// after the SQLite commit that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Row id.
    pub id: i64,
    /// The configured source whose publisher sends it.
    pub source: String,
    /// Destination topic.
    pub topic: String,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub payload: Vec<u8>,
    /// Record headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Failed send attempts so far.
    pub attempts: u32,
}
