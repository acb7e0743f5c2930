//! Probation of a freshly swapped-in plugin version (see
//! [`crate::config::AutoRollback`]): counts its calls and the events it
//! failed where the previous version succeeded, and decides; after each
//! committed batch the pipeline keeps or rolls back by its verdict.

use std::sync::Arc;

use super::Pipeline;
use super::slot::ProbationInfo;
use super::swap::Activation;
use crate::config::AutoRollback;
use crate::store::history::Trigger;

/// The counters of one probation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Probation {
    window: u32,
    max_rate: f64,
    calls: u32,
    regressions: u32,
}

/// What a probation says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not decided yet.
    Pending,
    /// The new version made `window` calls without too many regressions.
    Passed,
    /// More than `max_rate × window` regressions: roll back.
    Failed,
}

impl Probation {
    pub(crate) fn new(c: &AutoRollback) -> Self {
        Self {
            window: c.events.max(1),
            max_rate: c.max_error_rate,
            calls: 0,
            regressions: 0,
        }
    }

    /// The new version was called on one event.
    pub(crate) fn call(&mut self) {
        self.calls = self.calls.saturating_add(1);
    }

    /// The new version failed an event the previous version applied.
    pub(crate) fn regression(&mut self) {
        self.regressions = self.regressions.saturating_add(1);
    }

    /// The decision so far.
    pub(crate) fn verdict(&self) -> Verdict {
        if f64::from(self.regressions) > self.max_rate * f64::from(self.window) {
            Verdict::Failed
        } else if self.calls >= self.window {
            Verdict::Passed
        } else {
            Verdict::Pending
        }
    }

    pub(crate) fn info(&self) -> ProbationInfo {
        ProbationInfo {
            calls: self.calls,
            regressions: self.regressions,
            window: self.window,
            max_error_rate: self.max_rate,
        }
    }
}

impl Pipeline {
    /// After a committed batch: keeps versions that passed probation and
    /// rolls back those that failed it.
    pub(super) fn judge_probations(&mut self) -> Vec<Activation> {
        let mut failed = Vec::new();
        let mut passed = Vec::new();
        for (name, p) in &self.state.probations {
            match p.verdict() {
                Verdict::Passed => passed.push(Arc::clone(name)),
                Verdict::Failed => failed.push(name.to_string()),
                Verdict::Pending => {}
            }
        }
        for name in passed {
            let info = self.state.probations.remove(&name).map(|p| p.info());
            let digest = self
                .slots
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.active.digest());
            tracing::info!(plugin = %name, digest = ?digest, probation = ?info,
                "The new plugin version passed its probation and stays.");
        }
        let mut rollbacks = Vec::new();
        for name in failed {
            let info = self
                .state
                .probations
                .get(name.as_str())
                .map(Probation::info);
            tracing::error!(plugin = %name, probation = ?info,
                "The new plugin version failed its probation: it failed too many events the previous version applied.");
            match self.rollback(&name, Trigger::AutoRollback) {
                Ok(a) => rollbacks.push(a),
                Err(e) => {
                    tracing::error!(plugin = %name, error = %e,
                        "The automatic rollback failed; the new version keeps running.");
                    self.state.probations.remove(name.as_str());
                }
            }
        }
        rollbacks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(events: u32, rate: f64) -> Probation {
        Probation::new(&AutoRollback {
            events,
            max_error_rate: rate,
        })
    }

    #[test]
    fn too_many_regressions_fail_at_once_and_a_clean_window_passes() {
        let mut bad = p(10, 0.2);
        for _ in 0..2 {
            bad.call();
            bad.regression();
            assert_eq!(bad.verdict(), Verdict::Pending);
        }
        bad.call();
        bad.regression();
        assert_eq!(bad.verdict(), Verdict::Failed, "3 > 0.2 × 10");
        let mut good = p(10, 0.2);
        for i in 0..10 {
            assert_eq!(good.verdict(), Verdict::Pending, "{i}");
            good.call();
        }
        good.regression();
        assert_eq!(good.verdict(), Verdict::Passed, "1 regression is tolerated");
    }

    #[test]
    fn a_zero_rate_tolerates_nothing_and_a_saved_copy_restores() {
        let mut z = p(100, 0.0);
        let saved = z.clone();
        z.call();
        z.regression();
        assert_eq!(z.verdict(), Verdict::Failed);
        z = saved;
        assert_eq!(z.verdict(), Verdict::Pending);
    }
}
