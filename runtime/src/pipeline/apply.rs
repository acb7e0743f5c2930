//! The inside of a batch transaction: each event routed to its plugin (or
//! to the unknown-type policy, or recorded as rejected by its source), with
//! the plugin's outcome decided per event — in a savepoint per event on the
//! careful pass, without one on the optimistic pass (see [`super`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::{BatchReport, Outcome, PartitionKey, Pipeline};
use crate::event::Event;
use crate::plugin::{Failure, FailureKind, Handled};

/// Partitions a batch advanced: last offset and the `name@digest` stamps
/// of the plugin versions that handled its events.
pub(crate) type Touched = BTreeMap<PartitionKey, (i64, Vec<Arc<str>>)>;

/// Moves a partition's pending checkpoint to `offset`, stamping the plugin
/// version that handled it.
pub(crate) fn advance(
    touched: &mut Touched,
    key: PartitionKey,
    offset: i64,
    stamp: Option<&Arc<str>>,
) {
    let entry = touched.entry(key).or_insert((offset, Vec::new()));
    entry.0 = offset;
    if let Some(s) = stamp
        && !entry.1.iter().any(|t| t == s)
    {
        entry.1.push(Arc::clone(s));
    }
}

/// An event routed to a plugin: its index in the batch, the plugin's slot,
/// and its outcome if a run already has it.
pub(crate) struct Routed {
    index: usize,
    slot: usize,
    ran: Option<(Result<Handled, Failure>, std::time::Duration)>,
}

/// How a pass over a batch's events ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Every event has its outcome.
    Complete,
    /// The optimistic pass met an event a plugin failed: roll back, and run
    /// the batch again with a savepoint per event.
    Rerun,
}

impl Pipeline {
    pub(super) fn apply_events(
        &mut self,
        events: &[Event],
        report: &mut BatchReport,
        touched: &mut Touched,
    ) -> anyhow::Result<Pass> {
        for (index, ev) in events.iter().enumerate() {
            let key: PartitionKey = (Arc::clone(&ev.source), ev.partition);
            if !report.blocked.is_empty() && report.blocked.contains_key(&key) {
                continue;
            }
            if !report.fenced.is_empty() && report.fenced.contains_key(&key) {
                report.fenced_events += 1;
                continue;
            }
            let checkpoint = match touched.get(&key) {
                Some(t) => Some(t.0),
                None => self.checkpoint(&key)?,
            };
            let ty = self.intern(ev.event_type.as_deref());
            if checkpoint.is_some_and(|c| ev.offset <= c) {
                report.already_applied += 1;
                self.tally
                    .add(&self.no_plugin, &ty, Outcome::AlreadyApplied);
                continue;
            }
            if let Some(failure) = &ev.rejected {
                self.rejected(ev, &key, &ty, failure, report, touched)?;
                continue;
            }
            let route = ev.event_type.as_deref().and_then(|t| self.router.route(t));
            match route {
                Some(i) => {
                    let ran = self.run_outcome(index, i, events, report, touched)?;
                    let routed = Routed {
                        index,
                        slot: i,
                        ran,
                    };
                    if self.handle_routed(routed, ev, key, &ty, report, touched)? == Pass::Rerun {
                        return Ok(Pass::Rerun);
                    }
                }
                None => self.unroutable(ev, &key, &ty, report, touched)?,
            }
        }
        Ok(Pass::Complete)
    }

    /// Runs plugin `i` on `ev` (in a savepoint on the careful pass), or
    /// takes its outcome from a run (whose call kept or discarded the
    /// event's writes itself), and decides the outcome. A version on
    /// probation that fails the event hands it to the previous version (in
    /// a fresh savepoint); if that one applies it, its result stands and
    /// the failure counts against the new version. On the optimistic pass a
    /// failure ends the pass instead.
    fn handle_routed(
        &mut self,
        routed: Routed,
        ev: &Event,
        key: PartitionKey,
        ty: &Arc<str>,
        report: &mut BatchReport,
        touched: &mut Touched,
    ) -> anyhow::Result<Pass> {
        let Routed {
            index,
            slot: i,
            ran,
        } = routed;
        let optimistic =
            self.optimistic && !self.state.probations.contains_key(&self.slots[i].name);
        // A run's call managed the event's savepoint itself.
        let batched = ran.is_some();
        if !optimistic && !batched {
            self.db.savepoint()?;
        }
        let carried = match self.carried.take() {
            Some(c) if c.index == index => Some(c),
            other => {
                self.carried = other;
                None
            }
        };
        let slot = &mut self.slots[i];
        let mut result = match carried {
            // The optimistic pass's call on this same state already failed:
            // that was this attempt.
            Some(c) => {
                slot.latency.observe(c.took.as_secs_f64());
                Err(c.failure)
            }
            None => {
                let (r, took) = match ran {
                    Some(outcome) => outcome,
                    None => {
                        let started = Instant::now();
                        let r = slot.active.handle(ev, ty);
                        (r, started.elapsed())
                    }
                };
                // A call of the optimistic pass is observed only if the pass
                // commits, or with its failure as the carried attempt.
                match (optimistic, &r) {
                    (true, Err(failure)) => {
                        self.carried = Some(super::Carried {
                            index,
                            failure: failure.clone(),
                            took,
                        });
                        return Ok(Pass::Rerun);
                    }
                    (true, Ok(_)) => self.pending_latency.push((i, took)),
                    (false, _) => slot.latency.observe(took.as_secs_f64()),
                }
                r
            }
        };
        if result.is_err() {
            // An earlier event failed where the optimistic pass saw it
            // succeed: the carried failure was seen on another state.
            self.carried = None;
        }
        let mut stamp = Arc::clone(&slot.stamp);
        if let (Some(probation), Some((previous, previous_stamp))) = (
            self.state.probations.get_mut(&slot.name),
            slot.previous.as_mut(),
        ) {
            probation.call();
            if let Err(f) = &result
                && f.kind != FailureKind::HostTransient
            {
                self.db.rollback_event()?;
                self.db.savepoint()?;
                if let Ok(handled) = previous.handle(ev, ty) {
                    probation.regression();
                    tracing::warn!(
                        plugin = %slot.name, event = %ev.at(), event_type = &**ty,
                        error_class = %f.kind, error = %f.message, new = %slot.stamp, previous = %previous_stamp,
                        "The new plugin version failed an event on probation; the previous version applied it."
                    );
                    stamp = Arc::clone(previous_stamp);
                    result = Ok(handled);
                }
            }
        }
        let plugin = Arc::clone(&self.slots[i].name);
        match result {
            Ok(handled) => {
                if !optimistic && !batched {
                    self.db.release()?;
                }
                if !self.state.attempts.is_empty() {
                    self.state.attempts.remove(&key);
                }
                self.guard_record(&key, false);
                advance(touched, key, ev.offset, Some(&stamp));
                match handled {
                    Handled::Applied => {
                        report.applied += 1;
                        self.tally.add(&plugin, ty, Outcome::Applied);
                    }
                    Handled::Skipped(reason) => {
                        report.skipped += 1;
                        self.tally.add(&plugin, ty, Outcome::Skipped);
                        tracing::debug!(plugin = &*plugin, event = %ev.at(), event_type = &**ty, %reason,
                            "The plugin skipped the event.");
                    }
                }
            }
            Err(failure) => {
                if !batched {
                    self.db.rollback_event()?;
                }
                self.failed(i, ev, key, ty, failure, report, touched)?;
            }
        }
        Ok(Pass::Complete)
    }

    /// An event its source already rejected (malformed entry, gap): a dead
    /// letter in this transaction, unless the flood guard stops the
    /// partition instead.
    fn rejected(
        &mut self,
        ev: &Event,
        key: &PartitionKey,
        ty: &Arc<str>,
        failure: &Failure,
        report: &mut BatchReport,
        touched: &mut Touched,
    ) -> anyhow::Result<()> {
        if let Some(stop) = self.guard_trips(key, ev, failure, None, 1) {
            self.tally.add(&self.no_plugin, ty, Outcome::Stopped);
            report.notes.push(super::failures::note(
                key,
                ev,
                Outcome::Stopped,
                &stop.failure,
            ));
            report.delivery.blocked.insert(key.clone(), stop);
            return Ok(());
        }
        self.dead_letter(ev, None, failure, 1, None)?;
        report.dead_lettered += 1;
        self.tally.add(&self.no_plugin, ty, Outcome::DeadLettered);
        tracing::error!(event = %ev.at(), error_class = %failure.kind, error = %failure.message,
            "The source rejected an event; it was recorded as a dead letter.");
        report.notes.push(super::failures::note(
            key,
            ev,
            Outcome::DeadLettered,
            failure,
        ));
        advance(touched, key.clone(), ev.offset, None);
        Ok(())
    }
}
