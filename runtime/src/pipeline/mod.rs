//! The pipeline: applies batches of events through plugins into SQLite.
//!
//! One batch is one SQLite transaction: each event through its plugin's
//! `handle`, then the checkpoint row of every partition the batch advanced,
//! then COMMIT. Effect and checkpoint therefore commit together
//! (invariant 1).
//!
//! A failing event must lose its own writes and nothing else, which takes a
//! savepoint per event, and those cost about a fifth of the work per event.
//! So a batch first runs without them (the optimistic pass); if a plugin
//! fails an event, the whole transaction is rolled back, every in-memory
//! effect of the pass is undone, and the batch runs again with a savepoint
//! per event (the careful pass), which decides every outcome; the failing
//! event's call counts as its attempt there (the plugin is not called for
//! it again unless an earlier event fails on the careful pass). The next
//! [`CAREFUL_BATCHES`] batches, batches with pending retries and batches of
//! a plugin on probation run carefully from the start. Either way only one
//! pass commits, so the store sees every event applied once. A plugin's
//! handler may see the events before a failing one twice; a component's log
//! and stdout/stderr lines of the optimistic pass are held until it commits
//! and dropped if it is abandoned, so each is logged once.
//!
//! A failing event blocks only its own partition (invariant 4): the rest of
//! that partition's events in the batch are left for redelivery, the other
//! partitions go on, and the batch commits what was applied before it. The
//! caller (a source driver) waits the returned backoff and delivers the
//! partition again from the blocked offset. Once an event has used up its
//! attempts, the plugin's `on_failure` policy applies: a dead letter written
//! in the same transaction that moves the checkpoint past it, or a stopped
//! partition (invariant 3).
//!
//! Plugins are swapped, rolled back and reconfigured only between batches
//! ([`swap`]), so every event is applied entirely by one version
//! (invariant 6).

mod apply;
mod failures;
mod fences;
pub mod histogram;
mod probation;
mod reconfigure;
pub mod redrive;
pub mod router;
mod runs;
mod slot;
mod state;
pub mod stats;
pub mod swap;

use std::collections::{HashMap, HashSet};

/// A hash map with a fast (non-DoS-resistant) hasher, for the per-event
/// lookups of the hot path; its keys come from ferry's own configuration
/// and sources.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{DeadLetterGuard, PipelineConfig, PluginConfig, UnknownEventPolicy};
use crate::event::Event;
use crate::failure::Failure;
use crate::plugin::LoadedPlugin;
use crate::store::{Db, checkpoint};
use router::Router;

pub use crate::backoff::Backoff;
pub use crate::delivery::{Blocked, Fence, Fences, Note, Outcome, PartitionKey, Verdicts};
pub use histogram::Histogram;
pub use slot::{PluginCode, PluginInfo, PreviousVersion, ProbationInfo};
pub use stats::{Stats, Tally};
pub use swap::{Activation, SwapError};

use slot::Slot;
pub(crate) use state::Attempts;
use state::PassState;

/// Batches that run with a savepoint per event from the start after one
/// had to be re-run because a plugin failed an event.
pub const CAREFUL_BATCHES: u32 = 16;

/// The result of one batch: the verdicts its source follows, and what the
/// pipeline counted.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// What the batch means for its source (see [`Verdicts`]).
    pub delivery: Verdicts,
    /// Events applied.
    pub applied: usize,
    /// Events skipped (by the plugin or the unknown-type policy).
    pub skipped: usize,
    /// Events at or below the checkpoint, not applied again.
    pub already_applied: usize,
    /// Events recorded as dead letters.
    pub dead_lettered: usize,
    /// Dead letters and stops, in event order.
    pub notes: Vec<Note>,
    /// Events not applied because their partition was fenced.
    pub fenced_events: usize,
    /// Versions rolled back after the batch because they failed their
    /// probation (see [`crate::config::AutoRollback`]).
    pub rollbacks: Vec<Activation>,
}

impl std::ops::Deref for BatchReport {
    type Target = Verdicts;

    fn deref(&self) -> &Verdicts {
        &self.delivery
    }
}

/// Applies batches of events; owns the writer connection and the plugin
/// instances.
pub struct Pipeline {
    db: Db,
    slots: Vec<Slot>,
    router: Router,
    unknown: UnknownEventPolicy,
    backoff: Backoff,
    checkpoints: FastMap<PartitionKey, Option<i64>>,
    /// What batches change in memory (saved and restored whole).
    state: PassState,
    guard: DeadLetterGuard,
    dead_letter_topics: HashMap<String, String>,
    stats: Arc<Stats>,
    tally: Tally,
    types: HashSet<Arc<str>, foldhash::fast::RandomState>,
    no_plugin: Arc<str>,
    /// Whether the running pass skips the per-event savepoints.
    optimistic: bool,
    /// Batches left to run carefully (see [`CAREFUL_BATCHES`]).
    careful_batches: u32,
    /// The failure that ended the optimistic pass: the careful pass takes
    /// it as that event's attempt instead of calling the plugin again.
    carried: Option<Carried>,
    /// Handler call durations of the optimistic pass (plugin slot, time),
    /// observed if it commits.
    pending_latency: Vec<(usize, Duration)>,
    /// Outcomes of the current run waiting for their events (see [`runs`]).
    run_buffer: runs::RunBuffer,
}

/// The failed call that ended an optimistic pass.
struct Carried {
    /// The event's index in the batch.
    index: usize,
    failure: Failure,
    /// How long the call took.
    took: Duration,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

/// Most distinct event-type names kept interned; beyond it names are
/// allocated per event (and counted as `(other)` by [`Stats`]).
const MAX_INTERNED_TYPES: usize = 4_096;

impl Pipeline {
    /// Activates `plugins` on `db` (running each one's `migrate` in its own
    /// transaction, recording new versions in the plugin history) and
    /// returns a pipeline ready to apply batches.
    pub fn new(
        db: Db,
        plugins: Vec<(PluginConfig, PluginCode)>,
        config: &PipelineConfig,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Self> {
        let mut pipeline = Self {
            slots: Vec::new(),
            router: Router::default(),
            unknown: config.unknown_event_type,
            backoff: config.retry.backoff(),
            checkpoints: FastMap::default(),
            state: PassState::default(),
            guard: config.dead_letter_guard.clone(),
            dead_letter_topics: HashMap::new(),
            stats,
            tally: Tally::default(),
            types: HashSet::default(),
            no_plugin: "-".into(),
            optimistic: false,
            careful_batches: 0,
            carried: None,
            pending_latency: Vec::new(),
            run_buffer: runs::RunBuffer::new(),
            db,
        };
        for (config, code) in plugins {
            pipeline.add_at_start(config, code)?;
        }
        pipeline.reroute();
        Ok(pipeline)
    }

    fn reroute(&mut self) {
        self.router = Router::new(
            self.slots
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.config.events.as_slice())),
        );
    }

    /// Dead letters of source `source` are also published to `topic`
    /// (through the outbox, in the transaction that records them).
    pub fn set_dead_letter_topic(&mut self, source: &str, topic: &str) {
        self.dead_letter_topics
            .insert(source.to_owned(), topic.to_owned());
    }

    /// The store.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The active WebAssembly plugins with their configuration, in
    /// configuration order.
    pub fn plugins(&self) -> impl Iterator<Item = (&PluginConfig, &Arc<LoadedPlugin>)> {
        self.slots
            .iter()
            .filter_map(|s| s.active.wasm().map(|p| (&s.config, p)))
    }

    /// What the pipeline tells about every plugin, in configuration order.
    pub fn plugin_infos(&self) -> Vec<PluginInfo> {
        self.slots
            .iter()
            .map(|s| s.info(self.state.probations.get(&s.name)))
            .collect()
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The last applied offset of a partition, from SQLite (cached after
    /// the first read; the cache only changes after a commit).
    pub fn checkpoint(&mut self, key: &PartitionKey) -> anyhow::Result<Option<i64>> {
        if let Some(c) = self.checkpoints.get(key) {
            return Ok(*c);
        }
        let c = self.db.with(|c| checkpoint::load(c, &key.0, key.1))?;
        self.checkpoints.insert(key.clone(), c);
        Ok(c)
    }

    /// The interned name of an event type (`-` when unknown).
    fn intern(&mut self, event_type: Option<&str>) -> Arc<str> {
        let name = event_type.unwrap_or("-");
        if let Some(t) = self.types.get(name) {
            return Arc::clone(t);
        }
        let t: Arc<str> = name.into();
        if self.types.len() < MAX_INTERNED_TYPES {
            self.types.insert(Arc::clone(&t));
        }
        t
    }

    /// Applies `events` (in order; any mix of partitions) in one
    /// transaction. An `Err` means nothing of the batch was committed.
    pub fn apply_batch(&mut self, events: &[Event]) -> anyhow::Result<BatchReport> {
        self.apply_fenced(events, &Fences::new())
    }

    /// [`Self::apply_batch`] with fencing: each partition in `fences` is
    /// claimed or checked in the batch transaction, and a partition another
    /// consumer claimed meanwhile gets nothing written (see
    /// [`crate::delivery::Verdicts::fenced`]).
    pub fn apply_fenced(
        &mut self,
        events: &[Event],
        fences: &Fences,
    ) -> anyhow::Result<BatchReport> {
        let optimistic = self.careful_batches == 0 && !self.state.needs_care();
        if optimistic {
            self.optimistic = true;
            self.outputs(crate::host::held::Output::hold);
            let first = self.run_batch(events, fences);
            self.optimistic = false;
            if let Ok(Some(_)) = &first {
                self.outputs(crate::host::held::Output::release);
                for (i, took) in self.pending_latency.drain(..) {
                    if let Some(slot) = self.slots.get(i) {
                        slot.latency.observe(took.as_secs_f64());
                    }
                }
            } else {
                self.outputs(crate::host::held::Output::discard);
                self.pending_latency.clear();
            }
            if let Some(report) = first? {
                return Ok(report);
            }
            self.careful_batches = CAREFUL_BATCHES;
            self.stats.add_rerun();
            tracing::debug!(
                events = events.len(),
                "A plugin failed an event of the batch; the batch runs again with a savepoint per event."
            );
        } else {
            self.careful_batches = self.careful_batches.saturating_sub(1);
        }
        let careful = self.run_batch(events, fences);
        self.carried = None;
        careful?.ok_or_else(|| anyhow::anyhow!("the careful pass of a batch asked to be re-run"))
    }

    /// Applies `f` to the output of every active component.
    fn outputs(&self, f: impl Fn(&crate::host::held::Output)) {
        for slot in &self.slots {
            if let Some(o) = slot.active.output() {
                f(o);
            }
        }
    }

    /// Batches that had to be re-run with a savepoint per event because a
    /// plugin failed one of their events.
    pub fn reruns(&self) -> u64 {
        self.stats.reruns()
    }

    /// One pass over a batch in one transaction. `Ok(None)`: the optimistic
    /// pass met a failing event; nothing of it remains (the transaction and
    /// the in-memory effects are undone).
    fn run_batch(
        &mut self,
        events: &[Event],
        fences: &Fences,
    ) -> anyhow::Result<Option<BatchReport>> {
        let mut report = BatchReport::default();
        let mut touched = apply::Touched::new();
        let saved = self.state.clone();
        self.tally.clear();
        self.run_buffer.clear();
        self.db.begin()?;
        let mut result = self
            .enforce_fences(fences, &mut report)
            .map(|()| apply::Pass::Complete);
        if result.is_ok() {
            result = self.apply_events(events, &mut report, &mut touched);
        }
        let result = result.and_then(|pass| {
            if pass == apply::Pass::Rerun {
                return Ok(pass);
            }
            self.db.with(|c| {
                for (key, (offset, stamps)) in &touched {
                    let digest = stamps.iter().map(|s| &**s).collect::<Vec<&str>>().join(",");
                    let generation = Self::generation(fences, &report, key);
                    checkpoint::write(c, &key.0, key.1, *offset, &digest, generation)?;
                }
                Ok::<_, crate::store::StoreError>(())
            })?;
            self.db.commit()?;
            Ok(pass)
        });
        match result {
            Ok(apply::Pass::Complete) => {}
            Ok(apply::Pass::Rerun) => {
                self.undo(saved, &report);
                return Ok(None);
            }
            Err(e) => {
                self.undo(saved, &report);
                return Err(e.context("the batch was rolled back"));
            }
        }
        self.stats.merge(&mut self.tally);
        for (key, (offset, _)) in touched {
            self.checkpoints.insert(key.clone(), Some(offset));
            report.delivery.committed.insert(key, offset);
        }
        report.rollbacks = self.judge_probations();
        Ok(Some(report))
    }

    /// Rolls the batch transaction back and restores what the batch changed
    /// in memory.
    fn undo(&mut self, saved: PassState, report: &BatchReport) {
        self.db.rollback();
        self.run_buffer.clear();
        self.tally.clear();
        self.state = saved;
        for key in report.claimed.keys() {
            self.checkpoints.remove(key);
        }
    }
}

#[cfg(test)]
mod tests;
