//! Event sources: each turns records from somewhere into [`crate::Event`]s
//! in partition order and follows the pipeline's verdicts (pause a
//! partition and retry it from an offset, stop it, drop a fenced one).
//!
//! - [`kafka`]: topics consumed with librdkafka (feature `kafka`);
//! - [`http_feed`]: a polled HTTP event feed (feature `http-feed`);
//! - [`embedded`]: librdkafka's mock cluster and a sample publisher
//!   (feature `kafka`);
//! - [`replay`]: a JSON Lines file, for `ferry replay`;
//! - [`factory`]: the one place a source is built from its configuration;
//! - [`ports`]: what a source needs from the store ([`Positions`],
//!   [`Outbox`]), implemented by the run loop: sources never open SQLite;
//! - [`event_type`]: finding a record's event type.

#[cfg(feature = "kafka")]
pub mod embedded;
pub mod event_type;
pub mod factory;
#[cfg(feature = "http-feed")]
pub mod http_feed;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod ports;
pub mod replay;

pub use ports::{Outbox, Positions};

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::delivery::{Fences, PartitionKey, Verdicts};
use crate::event::Event;

/// A running source, driven by the run loop one batch at a time.
pub trait Source: Send {
    /// The configured source name.
    fn name(&self) -> &str;

    /// `kafka` or `http-feed`.
    fn kind(&self) -> &'static str;

    /// Housekeeping between batches: resume partitions whose backoff is
    /// over, discover new partitions.
    fn tick(&mut self);

    /// Appends up to `max` events to `out` (in partition order), waiting
    /// up to `idle` for the first one and then at most `linger` for the
    /// batch to fill; records in `fences` what each partition's batch must
    /// prove in SQLite (see [`crate::delivery::Fence`]).
    fn poll(
        &mut self,
        out: &mut Vec<Event>,
        fences: &mut Fences,
        max: usize,
        idle: Duration,
        linger: Duration,
    );

    /// Follows a committed batch's verdicts: pause blocked partitions
    /// (retry later from their offset, or stop), release fenced ones, and
    /// acknowledge what SQLite now holds.
    fn after_batch(&mut self, verdicts: &Verdicts);

    /// After a batch that could not be committed at all: every partition
    /// in `events` waits `delay`, then starts again from its first event.
    fn rewind(&mut self, events: &[Event], delay: Duration);

    /// Where every partition stands; `checkpoint` gives the last applied
    /// offset of a partition key.
    fn partitions(
        &self,
        checkpoint: &mut dyn FnMut(&PartitionKey) -> Option<i64>,
    ) -> Vec<PartitionStatus>;

    /// The checkpoint key of one of its streams: for Kafka
    /// `<source>/<topic>` (`topic` may be omitted when there is one), for a
    /// feed the source name.
    fn key_for(&self, topic: Option<&str>) -> Result<Arc<str>, String>;

    /// Stops consuming (commits what is durable, leaves the group).
    fn close(self: Box<Self>);

    /// What keeps the source from consuming right now (its brokers cannot
    /// be reached, a topic is missing), in words; `None` when nothing.
    fn problem(&self) -> Option<String> {
        None
    }
}

/// A partition's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionState {
    /// Consuming.
    Running,
    /// Waiting out a backoff before retrying an event.
    Retrying,
    /// Stopped at an event until restart (policy, flood guard, or a
    /// source that cannot go on, such as a feed answering 404).
    Stopped,
    /// Another consumer claimed it in SQLite.
    Fenced,
    /// The source cannot reach its upstream right now and retries.
    Failing,
}

impl PartitionState {
    /// The name shown in the API and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionState::Running => "running",
            PartitionState::Retrying => "retrying",
            PartitionState::Stopped => "stopped",
            PartitionState::Fenced => "fenced",
            PartitionState::Failing => "failing",
        }
    }
}

/// A partition's position and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    /// Checkpoint key (`<source>/<topic>` for Kafka, the name for a feed).
    pub source: Arc<str>,
    /// Partition (0 for a feed).
    pub partition: i32,
    /// Events known to exist and not applied yet (`None` while unknown).
    pub lag: Option<i64>,
    /// Its state.
    pub state: PartitionState,
    /// Why it is not running, when known.
    pub detail: Option<String>,
}
