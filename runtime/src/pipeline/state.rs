//! What a batch changes in the pipeline's memory before it commits: failed
//! attempts per partition, the flood guard's windows, and the counters of
//! versions on probation. It is one value: a pass saves it whole before it
//! starts and an abandoned pass restores it whole, so a field added here is
//! restored without anybody listing it.

use std::collections::VecDeque;
use std::sync::Arc;

use super::probation::Probation;
use super::{FastMap, PartitionKey};

/// Failed attempts at the event a partition is blocked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempts {
    pub(crate) offset: i64,
    pub(crate) count: u32,
    pub(crate) first_failed_at: String,
}

/// The pipeline's in-memory state that batches change.
#[derive(Debug, Clone, Default)]
pub(crate) struct PassState {
    /// Failed attempts per partition (only partitions blocked at an event).
    pub(crate) attempts: FastMap<PartitionKey, Attempts>,
    /// Per partition, whether each of its latest events was dead-lettered
    /// (the flood guard's window).
    pub(crate) guard_windows: FastMap<PartitionKey, VecDeque<bool>>,
    /// Versions on probation, by plugin name.
    pub(crate) probations: FastMap<Arc<str>, Probation>,
}

impl PassState {
    /// Whether a batch must run with a savepoint per event from the start:
    /// a retry is pending or a version is on probation.
    pub(crate) fn needs_care(&self) -> bool {
        !self.attempts.is_empty() || !self.probations.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AutoRollback;

    #[test]
    fn a_saved_state_restores_every_field() {
        let mut s = PassState::default();
        let key: PartitionKey = ("s".into(), 0);
        let saved = s.clone();
        s.attempts.insert(
            key.clone(),
            Attempts {
                offset: 3,
                count: 1,
                first_failed_at: "t".into(),
            },
        );
        s.guard_windows.entry(key).or_default().push_back(true);
        s.probations.insert(
            "p".into(),
            Probation::new(&AutoRollback {
                events: 10,
                max_error_rate: 0.1,
            }),
        );
        assert!(s.needs_care());
        s = saved;
        assert!(s.attempts.is_empty() && s.guard_windows.is_empty() && s.probations.is_empty());
        assert!(!s.needs_care());
    }
}
