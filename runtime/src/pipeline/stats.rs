//! Counters per plugin, event type and outcome (exposed as metrics and in
//! the progress line and replay summary).

use std::collections::BTreeMap;
use std::fmt;

use parking_lot::Mutex;

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

/// Thread-safe counters.
#[derive(Debug, Default)]
pub struct Stats {
    counters: Mutex<BTreeMap<CounterKey, u64>>,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(&self, plugin: &str, event_type: &str, outcome: Outcome, n: u64) {
        let key = CounterKey {
            plugin: plugin.to_owned(),
            event_type: event_type.to_owned(),
            outcome,
        };
        *self.counters.lock().entry(key).or_default() += n;
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> BTreeMap<CounterKey, u64> {
        self.counters.lock().clone()
    }

    /// Sum of one outcome over every plugin and type.
    pub fn total(&self, outcome: Outcome) -> u64 {
        self.counters
            .lock()
            .iter()
            .filter(|(k, _)| k.outcome == outcome)
            .map(|(_, v)| v)
            .sum()
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
        assert_eq!(s.total(Outcome::Applied), 3);
        assert_eq!(s.snapshot().len(), 3);
    }
}
