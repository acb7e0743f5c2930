//! Runs: a plugin that handles many events per call (contract 0.2) gets
//! them in one call, a run at a time, instead of one call per event.
//!
//! A run starts at an event routed to the plugin and takes the events that
//! follow it in the batch for as long as they go to the same plugin from
//! the same source; events the pass would not apply anyway (already
//! applied, of a fenced or stopped partition) are left out, and the run
//! ends at an event that goes elsewhere (another plugin, the unknown-type
//! policy, a source's rejection), so no other plugin's outcome can stop a
//! partition between two events of a run. The plugin stops at its first
//! failure; the pass then decides that failure like any other and the next
//! event of the plugin starts a new run. On the careful pass the host keeps
//! or discards each event's writes inside the call (a savepoint per event);
//! on the optimistic pass a failure ends the pass, as for single calls.
//! Outcomes wait in the pipeline's buffer until the pass reaches their
//! events, where everything else (attempts, the flood guard, counters,
//! checkpoints) happens exactly as for an event called alone.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::apply::Touched;
use super::{BatchReport, FastMap, PartitionKey, Pipeline};
use crate::event::Event;
use crate::plugin::{Failure, Handled};

/// Outcomes of a run waiting for the pass to reach their events: the
/// event's index in the batch, its outcome and how long it took.
pub(crate) type RunBuffer = VecDeque<(usize, Result<Handled, Failure>, Duration)>;

impl Pipeline {
    /// The outcome of event `index` (routed to plugin slot `i`) from a run,
    /// calling the plugin for a new run if needed; `None` when the event is
    /// to be called alone (a plugin without batch calls, one on probation,
    /// or the carried failure of the optimistic pass).
    pub(super) fn run_outcome(
        &mut self,
        index: usize,
        i: usize,
        events: &[Event],
        report: &BatchReport,
        touched: &Touched,
    ) -> anyhow::Result<Option<(Result<Handled, Failure>, Duration)>> {
        let slot = &self.slots[i];
        if !slot.active.batches() || self.state.probations.contains_key(&slot.name) {
            return Ok(None);
        }
        if self.carried.as_ref().is_some_and(|c| c.index == index) {
            return Ok(None);
        }
        if let Some(at) = self.run_buffer.front().map(|(at, _, _)| *at)
            && at != index
        {
            self.run_buffer.clear();
            anyhow::bail!(
                "the pipeline reached event {index} while a run held the outcome of event {at}"
            );
        }
        if self.run_buffer.is_empty() {
            self.start_run(index, i, events, report, touched)?;
        }
        Ok(self
            .run_buffer
            .pop_front()
            .filter(|(at, _, _)| *at == index)
            .map(|(_, r, took)| (r, took)))
    }

    /// Calls plugin slot `i` for the run that starts at event `index` and
    /// buffers its outcomes.
    fn start_run(
        &mut self,
        index: usize,
        i: usize,
        events: &[Event],
        report: &BatchReport,
        touched: &Touched,
    ) -> anyhow::Result<()> {
        let first = &events[index];
        let carried_at = self.carried.as_ref().map(|c| c.index);
        let mut last: FastMap<PartitionKey, i64> = FastMap::default();
        let mut members: Vec<(usize, &Event, &str)> = Vec::new();
        for (j, ev) in events.iter().enumerate().skip(index) {
            if j > index && (ev.source != first.source || carried_at == Some(j)) {
                break;
            }
            let key: PartitionKey = (Arc::clone(&ev.source), ev.partition);
            if report.blocked.contains_key(&key) || report.fenced.contains_key(&key) {
                continue;
            }
            if ev.rejected.is_some() {
                break;
            }
            let applied = match last.get(&key) {
                Some(o) => Some(*o),
                None => match touched.get(&key) {
                    Some(t) => Some(t.0),
                    None => self.checkpoint(&key)?,
                },
            };
            if applied.is_some_and(|c| ev.offset <= c) {
                continue;
            }
            let Some(ty) = ev.event_type.as_deref() else {
                break;
            };
            if self.router.route(ty) != Some(i) {
                break;
            }
            last.insert(key, ev.offset);
            members.push((j, ev, ty));
        }
        let careful = !self.optimistic;
        let calls: Vec<(&Event, &str)> = members.iter().map(|(_, e, t)| (*e, *t)).collect();
        let done = self.slots[i]
            .active
            .handle_run(&calls, careful)
            .map_err(|f| anyhow::anyhow!("plugin `{}`: {}", self.slots[i].name, f.message))?;
        self.run_buffer.extend(
            members
                .iter()
                .zip(done)
                .map(|((j, _, _), (r, took))| (*j, r, took)),
        );
        Ok(())
    }
}
