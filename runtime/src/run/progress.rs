//! The periodic progress line of `ferry run`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pipeline::{Outcome, Pipeline, Stats};
use crate::source::{PartitionState, Source};

/// The periodic progress line.
pub(super) struct Progress {
    interval: Option<Duration>,
    next: Instant,
    last_total: u64,
    last_at: Instant,
}

impl Progress {
    pub(super) fn new(interval_ms: u64, stats: &Stats) -> Self {
        let interval = (interval_ms > 0).then(|| Duration::from_millis(interval_ms));
        Self {
            interval,
            next: Instant::now() + interval.unwrap_or_default(),
            last_total: total(stats),
            last_at: Instant::now(),
        }
    }

    pub(super) fn maybe_report(
        &mut self,
        pipeline: &mut Pipeline,
        sources: &[Box<dyn Source>],
        published: Option<u64>,
    ) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + interval;
        let stats = Arc::clone(pipeline.stats());
        let t = total(&stats);
        let rate =
            (t - self.last_total) as f64 / now.duration_since(self.last_at).as_secs_f64().max(1e-3);
        self.last_total = t;
        self.last_at = now;
        let mut lags = Vec::new();
        for s in sources {
            for l in s.partitions(&mut |k| pipeline.checkpoint(k).ok().flatten()) {
                let lag = l.lag.map_or_else(|| "?".to_owned(), |v| v.to_string());
                let state = if l.state == PartitionState::Running {
                    String::new()
                } else {
                    format!("({})", l.state.as_str())
                };
                lags.push(format!("{}/{}={lag}{state}", l.source, l.partition));
            }
        }
        tracing::info!(
            events_per_s = format!("{rate:.0}"),
            applied = stats.total(Outcome::Applied),
            skipped = stats.total(Outcome::Skipped),
            dead_lettered = stats.total(Outcome::DeadLettered),
            retried = stats.total(Outcome::Retried),
            published,
            lag = lags.join(" "),
            "Progress."
        );
    }
}

fn total(stats: &Stats) -> u64 {
    stats.total(Outcome::Applied)
        + stats.total(Outcome::Skipped)
        + stats.total(Outcome::DeadLettered)
}
