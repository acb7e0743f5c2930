//! Counters per plugin, event type and outcome, and handler latency per
//! plugin (exposed as metrics, in the progress line and replay summary).
//!
//! The pipeline counts a batch's outcomes in a [`Tally`] and merges it
//! after the commit, so the counters describe committed outcomes (plus
//! failed attempts); a batch rolled back whole counts nothing.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::histogram::Histogram;

use crate::delivery::Outcome;

/// The slot of `o` in per-outcome arrays.
fn index(o: Outcome) -> usize {
    o as usize
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Key of one counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterKey {
    /// Plugin name (`-` when no plugin handles the type).
    pub plugin: String,
    /// Event type (`-` when unknown).
    pub event_type: String,
    /// Outcome.
    pub outcome: Outcome,
}

/// Most distinct event types counted per plugin; further ones are counted
/// as [`OTHER_TYPES`], so a stream of random type names cannot grow the
/// counters (and the metrics) without bound.
pub const MAX_TYPES_PER_PLUGIN: usize = 1_000;
/// The event-type label of types beyond [`MAX_TYPES_PER_PLUGIN`].
pub const OTHER_TYPES: &str = "(other)";

type Counts = [u64; Outcome::ALL.len()];

/// Thread-safe counters and latency histograms.
#[derive(Debug, Default)]
pub struct Stats {
    counters: Mutex<HashMap<String, HashMap<String, Counts>>>,
    latency: Mutex<BTreeMap<String, Arc<Histogram>>>,
    reruns: AtomicU64,
}

impl Stats {
    /// Counts a batch applied a second time, with a savepoint per event,
    /// because a plugin failed one of its events.
    pub fn add_rerun(&self) {
        self.reruns.fetch_add(1, Ordering::Relaxed);
    }

    /// Batches applied a second time (see [`Self::add_rerun`]).
    pub fn reruns(&self) -> u64 {
        self.reruns.load(Ordering::Relaxed)
    }

    /// Adds `n` to a counter.
    pub fn add(&self, plugin: &str, event_type: &str, outcome: Outcome, n: u64) {
        let mut c = self.counters.lock();
        bump(&mut c, plugin, event_type, outcome, n);
    }

    /// Adds a batch's tally.
    pub fn merge(&self, tally: &mut Tally) {
        if tally.counts.is_empty() {
            return;
        }
        let mut c = self.counters.lock();
        for ((plugin, ty, outcome), n) in tally.counts.drain() {
            bump(&mut c, &plugin, &ty, outcome, n);
        }
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> BTreeMap<CounterKey, u64> {
        let c = self.counters.lock();
        let mut out = BTreeMap::new();
        for (plugin, types) in c.iter() {
            for (ty, counts) in types {
                for o in Outcome::ALL {
                    let n = counts[index(o)];
                    if n > 0 {
                        out.insert(
                            CounterKey {
                                plugin: plugin.clone(),
                                event_type: ty.clone(),
                                outcome: o,
                            },
                            n,
                        );
                    }
                }
            }
        }
        out
    }

    /// Sum of one outcome over every plugin and type.
    pub fn total(&self, outcome: Outcome) -> u64 {
        self.counters
            .lock()
            .values()
            .flat_map(HashMap::values)
            .map(|c| c[index(outcome)])
            .sum()
    }

    /// Sum of each outcome over every type of one plugin.
    pub fn plugin_totals(&self, plugin: &str) -> BTreeMap<Outcome, u64> {
        let c = self.counters.lock();
        let mut out = BTreeMap::new();
        for counts in c.get(plugin).into_iter().flat_map(HashMap::values) {
            for o in Outcome::ALL {
                *out.entry(o).or_default() += counts[index(o)];
            }
        }
        out
    }

    /// The handler-latency histogram of `plugin` (created on first use).
    pub fn latency(&self, plugin: &str) -> Arc<Histogram> {
        let mut l = self.latency.lock();
        if let Some(h) = l.get(plugin) {
            return Arc::clone(h);
        }
        let h = Arc::new(super::histogram::durations());
        l.insert(plugin.to_owned(), Arc::clone(&h));
        h
    }

    /// Every plugin's handler-latency histogram.
    pub fn latencies(&self) -> Vec<(String, Arc<Histogram>)> {
        self.latency
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }
}

fn bump(
    c: &mut HashMap<String, HashMap<String, Counts>>,
    plugin: &str,
    event_type: &str,
    outcome: Outcome,
    n: u64,
) {
    let types = match c.get_mut(plugin) {
        Some(t) => t,
        None => c.entry(plugin.to_owned()).or_default(),
    };
    if let Some(counts) = types.get_mut(event_type) {
        counts[index(outcome)] += n;
        return;
    }
    let label = if types.len() >= MAX_TYPES_PER_PLUGIN {
        OTHER_TYPES
    } else {
        event_type
    };
    types.entry(label.to_owned()).or_default()[index(outcome)] += n;
}

/// One batch's outcome counts, merged into [`Stats`] after the commit.
#[derive(Debug, Default)]
pub struct Tally {
    counts: super::FastMap<(Arc<str>, Arc<str>, Outcome), u64>,
}

impl Tally {
    /// Counts one event of `event_type` with `outcome` for `plugin`.
    pub fn add(&mut self, plugin: &Arc<str>, event_type: &Arc<str>, outcome: Outcome) {
        *self
            .counts
            .entry((Arc::clone(plugin), Arc::clone(event_type), outcome))
            .or_default() += 1;
    }

    /// Forgets everything counted (the batch was rolled back).
    pub fn clear(&mut self) {
        self.counts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let s = Stats::default();
        s.add("p", "A", Outcome::Applied, 2);
        s.add("p", "B", Outcome::Applied, 1);
        s.add("-", "C", Outcome::Skipped, 1);
        let mut t = Tally::default();
        let (p, a): (Arc<str>, Arc<str>) = ("p".into(), "A".into());
        t.add(&p, &a, Outcome::Applied);
        t.add(&p, &a, Outcome::Retried);
        s.merge(&mut t);
        assert_eq!(s.total(Outcome::Applied), 4);
        assert_eq!(s.total(Outcome::Retried), 1);
        assert_eq!(s.snapshot().len(), 4);
        assert_eq!(s.plugin_totals("p")[&Outcome::Applied], 4);
    }

    #[test]
    fn event_types_beyond_the_cap_are_counted_as_other() {
        let s = Stats::default();
        for i in 0..MAX_TYPES_PER_PLUGIN + 5 {
            s.add("-", &format!("T{i}"), Outcome::Skipped, 1);
        }
        let snap = s.snapshot();
        assert_eq!(snap.len(), MAX_TYPES_PER_PLUGIN + 1);
        let other = CounterKey {
            plugin: "-".into(),
            event_type: OTHER_TYPES.into(),
            outcome: Outcome::Skipped,
        };
        assert_eq!(snap[&other], 5);
        assert_eq!(s.total(Outcome::Skipped), (MAX_TYPES_PER_PLUGIN + 5) as u64);
    }
}
