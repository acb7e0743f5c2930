//! Probation of a freshly swapped-in plugin version (see
//! [`crate::config::AutoRollback`]): counts its calls and the events it
//! failed where the previous version succeeded, and decides.

use super::slot::ProbationInfo;
use crate::config::AutoRollback;

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

    /// Counters to restore when a batch is rolled back.
    pub(crate) fn counts(&self) -> (u32, u32) {
        (self.calls, self.regressions)
    }

    /// Restores counters saved with [`Self::counts`].
    pub(crate) fn restore(&mut self, (calls, regressions): (u32, u32)) {
        self.calls = calls;
        self.regressions = regressions;
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
    fn a_zero_rate_tolerates_nothing_and_counts_restore() {
        let mut z = p(100, 0.0);
        let saved = z.counts();
        z.call();
        z.regression();
        assert_eq!(z.verdict(), Verdict::Failed);
        z.restore(saved);
        assert_eq!(z.verdict(), Verdict::Pending);
    }
}
