//! The pipeline: applies batches of events through plugins into SQLite.
//!
//! One batch is one SQLite transaction: for each event a savepoint, the
//! plugin's `handle`, and release (or rollback of that event alone); at the
//! end the checkpoint row of every partition the batch advanced, then
//! COMMIT. Effect and checkpoint therefore commit together (invariant 1).
//!
//! A failing event blocks only its own partition (invariant 4): the rest of
//! that partition's events in the batch are left for redelivery, the other
//! partitions go on, and the batch commits what was applied before it. The
//! caller (a source driver) waits the returned backoff and delivers the
//! partition again from the blocked offset. Once an event has used up its
//! attempts, the plugin's `on_failure` policy applies: a dead letter written
//! in the same transaction that moves the checkpoint past it, or a stopped
//! partition (invariant 3).

pub mod backoff;
mod failures;
mod fences;
pub mod redrive;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::{DeadLetterGuard, PipelineConfig, PluginConfig, UnknownEventPolicy};
use crate::event::Event;
use crate::plugin::bindings::Handled;
use crate::plugin::{Failure, LoadedPlugin, PluginInstance};
use crate::router::Router;
use crate::store::{Db, checkpoint, registry};

pub use backoff::Backoff;
pub use fences::{Fence, Fences};
pub use stats::{Outcome, Stats};

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

/// The result of one batch.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Events applied.
    pub applied: usize,
    /// Events skipped (by the plugin or the unknown-type policy).
    pub skipped: usize,
    /// Events at or below the checkpoint, not applied again.
    pub already_applied: usize,
    /// Events recorded as dead letters.
    pub dead_lettered: usize,
    /// Partitions that stopped taking events in this batch.
    pub blocked: BTreeMap<PartitionKey, Blocked>,
    /// Last committed offset of each partition the batch advanced.
    pub committed: BTreeMap<PartitionKey, i64>,
    /// Dead letters and stops, in event order.
    pub notes: Vec<Note>,
    /// Partitions this batch claimed, with their new fencing generation.
    pub claimed: BTreeMap<PartitionKey, i64>,
    /// Partitions another consumer claimed since this one did (nothing was
    /// written for them), with the generation found.
    pub fenced: BTreeMap<PartitionKey, i64>,
    /// Events not applied because their partition was fenced.
    pub fenced_events: usize,
}

struct Slot {
    config: PluginConfig,
    instance: PluginInstance,
}

#[derive(Debug, Clone)]
pub(crate) struct Attempts {
    offset: i64,
    count: u32,
    first_failed_at: String,
}

/// Applies batches of events; owns the writer connection and the plugin
/// instances.
pub struct Pipeline {
    db: Db,
    slots: Vec<Slot>,
    router: Router,
    unknown: UnknownEventPolicy,
    backoff: Backoff,
    checkpoints: HashMap<PartitionKey, Option<i64>>,
    attempts: HashMap<PartitionKey, Attempts>,
    guard: DeadLetterGuard,
    guard_windows: HashMap<PartitionKey, VecDeque<bool>>,
    dead_letter_topics: HashMap<String, String>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Activates `plugins` on `db` (running each one's `migrate` in its own
    /// transaction) and returns a pipeline ready to apply batches.
    pub fn new(
        db: Db,
        plugins: Vec<(PluginConfig, Arc<LoadedPlugin>)>,
        config: &PipelineConfig,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Self> {
        let router = Router::new(
            plugins
                .iter()
                .enumerate()
                .map(|(i, (c, _))| (i, c.events.as_slice())),
        );
        let mut pipeline = Self {
            slots: Vec::new(),
            router,
            unknown: config.unknown_event_type,
            backoff: Backoff::new(&config.retry),
            checkpoints: HashMap::new(),
            attempts: HashMap::new(),
            guard: config.dead_letter_guard.clone(),
            guard_windows: HashMap::new(),
            dead_letter_topics: HashMap::new(),
            stats,
            db,
        };
        for (config, loaded) in plugins {
            let instance = PluginInstance::new(loaded, pipeline.db.shared(), pipeline.db.scope());
            pipeline.slots.push(Slot { config, instance });
        }
        for i in 0..pipeline.slots.len() {
            pipeline.activate(i)?;
        }
        Ok(pipeline)
    }

    fn activate(&mut self, i: usize) -> anyhow::Result<()> {
        let slot = &mut self.slots[i];
        let plugin = Arc::clone(slot.instance.plugin());
        let name = &*plugin.name;
        let previous = self.db.with(|c| registry::get(c, name))?;
        let from = previous.as_ref().map(|p| p.schema_version);
        self.db.begin()?;
        if let Err(f) = slot.instance.migrate(from) {
            self.db.rollback();
            anyhow::bail!("plugin `{name}`: `migrate` failed, nothing it wrote was kept: {f}");
        }
        let meta = &plugin.metadata;
        let recorded = self
            .db
            .with(|c| registry::activate(c, name, &plugin.digest, &meta.version, meta.schema));
        recorded
            .map_err(anyhow::Error::from)
            .and_then(|()| self.db.commit().map_err(anyhow::Error::from))
            .with_context(|| format!("activating plugin `{name}`"))?;
        tracing::info!(
            plugin = name, version = %meta.version, digest = %plugin.digest,
            schema_from = ?from, schema = meta.schema,
            "Activated the plugin; its tables are migrated."
        );
        Ok(())
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

    /// The active plugins, in configuration order.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.slots.iter().map(|s| s.instance.plugin())
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

    /// Applies `events` (in order; any mix of partitions) in one
    /// transaction. An `Err` means nothing of the batch was committed.
    pub fn apply_batch(&mut self, events: &[Event]) -> anyhow::Result<BatchReport> {
        self.apply_fenced(events, &Fences::new())
    }

    /// [`Self::apply_batch`] with fencing: each partition in `fences` is
    /// claimed or checked in the batch transaction, and a partition another
    /// consumer claimed meanwhile gets nothing written (see
    /// [`BatchReport::fenced`]).
    pub fn apply_fenced(
        &mut self,
        events: &[Event],
        fences: &Fences,
    ) -> anyhow::Result<BatchReport> {
        let mut report = BatchReport::default();
        let mut touched = Touched::new();
        let attempts_before = self.attempts.clone();
        self.db.begin()?;
        let mut result = self.enforce_fences(fences, &mut report);
        let mut attempts_after = self.attempts.clone();
        if result.is_ok() {
            result = self.apply_events(events, &mut report, &mut touched, &mut attempts_after);
        }
        let result = result.and_then(|()| {
            self.db.with(|c| {
                for (key, (offset, digests)) in &touched {
                    let digest = digests.iter().cloned().collect::<Vec<_>>().join(",");
                    let generation = Self::generation(fences, &report, key);
                    checkpoint::write(c, &key.0, key.1, *offset, &digest, generation)?;
                }
                Ok::<_, crate::store::StoreError>(())
            })?;
            self.db.commit()?;
            Ok(())
        });
        if let Err(e) = result {
            self.db.rollback();
            self.attempts = attempts_before;
            for key in report.claimed.keys() {
                self.checkpoints.remove(key);
            }
            return Err(e.context("the batch was rolled back"));
        }
        for (key, (offset, _)) in touched {
            self.checkpoints.insert(key.clone(), Some(offset));
            report.committed.insert(key, offset);
        }
        self.attempts = attempts_after;
        Ok(report)
    }

    fn apply_events(
        &mut self,
        events: &[Event],
        report: &mut BatchReport,
        touched: &mut Touched,
        attempts: &mut HashMap<PartitionKey, Attempts>,
    ) -> anyhow::Result<()> {
        for ev in events {
            let key: PartitionKey = (Arc::clone(&ev.source), ev.partition);
            if report.blocked.contains_key(&key) {
                continue;
            }
            if report.fenced.contains_key(&key) {
                report.fenced_events += 1;
                continue;
            }
            let done = touched.get(&key).map(|t| t.0);
            let checkpoint = match done {
                Some(o) => Some(o),
                None => self.checkpoint(&key)?,
            };
            if checkpoint.is_some_and(|c| ev.offset <= c) {
                report.already_applied += 1;
                let ty = ev.event_type.as_deref().unwrap_or("-");
                self.stats.add("-", ty, Outcome::AlreadyApplied, 1);
                continue;
            }
            let event_type = ev.event_type.as_deref();
            let route = event_type.and_then(|t| self.router.route(t));
            let Some(i) = route else {
                self.unroutable(ev, &key, report, touched)?;
                continue;
            };
            self.db.savepoint()?;
            let ty = event_type.unwrap_or_default();
            let result = self.slots[i].instance.handle(ev, ty);
            let plugin = Arc::clone(&self.slots[i].instance.plugin().name);
            match result {
                Ok(handled) => {
                    self.db.release()?;
                    attempts.remove(&key);
                    let digest = &self.slots[i].instance.plugin().digest;
                    let stamp = format!("{plugin}@{digest}");
                    self.guard_record(&key, false);
                    advance(touched, key, ev.offset, Some(stamp));
                    match handled {
                        Handled::Applied => {
                            report.applied += 1;
                            self.stats.add(&plugin, ty, Outcome::Applied, 1);
                        }
                        Handled::Skipped(reason) => {
                            report.skipped += 1;
                            self.stats.add(&plugin, ty, Outcome::Skipped, 1);
                            tracing::debug!(plugin = &*plugin, event = %ev.position(), event_type = ty, %reason,
                                "The plugin skipped the event.");
                        }
                    }
                }
                Err(failure) => {
                    self.db.rollback_event()?;
                    self.failed(i, ev, key, failure, report, touched, attempts)?;
                }
            }
        }
        Ok(())
    }
}

/// Partitions a batch advanced: last offset and the plugin stamps.
pub(crate) type Touched = BTreeMap<PartitionKey, (i64, BTreeSet<String>)>;

/// Moves a partition's pending checkpoint to `offset`, stamping the plugin
/// (`name@digest`) that handled it.
pub(crate) fn advance(
    touched: &mut Touched,
    key: PartitionKey,
    offset: i64,
    stamp: Option<String>,
) {
    let entry = touched.entry(key).or_insert((offset, BTreeSet::new()));
    entry.0 = offset;
    if let Some(s) = stamp {
        entry.1.insert(s);
    }
}
