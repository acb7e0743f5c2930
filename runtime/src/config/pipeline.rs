//! `[pipeline]`: batching, the unknown-type policy, retries and the dead-letter flood guard.

use serde::Deserialize;

/// What happens to an event whose type no plugin handles.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownEventPolicy {
    /// Advance past it and count it (`skipped` with reason
    /// `unknown-event-type`).
    #[default]
    Skip,
    /// Record it as a dead letter and advance.
    DeadLetter,
    /// Stop the partition at it.
    Fail,
}

/// `[pipeline]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Most events in one SQLite transaction.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest wait for a batch to fill, in milliseconds.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// What to do with an event no plugin handles: `skip` (default),
    /// `dead-letter` or `fail`.
    #[serde(default)]
    pub unknown_event_type: UnknownEventPolicy,
    /// Backoff between attempts at a failing event.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Stops a partition that dead-letters too much.
    #[serde(default)]
    pub dead_letter_guard: DeadLetterGuard,
}

/// `[pipeline.dead_letter_guard]`: if more than `max_dead_letters` of the
/// last `window_events` events of a partition were dead-lettered, the next
/// event that would be dead-lettered stops the partition instead, so a
/// broken plugin cannot shovel a whole topic into the dead-letter table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterGuard {
    /// How many recent events of a partition the guard looks at.
    #[serde(default = "default_guard_window")]
    pub window_events: u32,
    /// Most dead letters allowed in that window (0 turns the guard off).
    #[serde(default = "default_guard_max")]
    pub max_dead_letters: u32,
}

fn default_guard_window() -> u32 {
    100
}
fn default_guard_max() -> u32 {
    20
}

impl Default for DeadLetterGuard {
    fn default() -> Self {
        Self {
            window_events: default_guard_window(),
            max_dead_letters: default_guard_max(),
        }
    }
}

fn default_batch_size() -> usize {
    5_000
}
fn default_linger_ms() -> u64 {
    5
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_size: default_batch_size(),
            linger_ms: default_linger_ms(),
            unknown_event_type: UnknownEventPolicy::default(),
            retry: RetryConfig::default(),
            dead_letter_guard: DeadLetterGuard::default(),
        }
    }
}

/// `[pipeline.retry]`: capped exponential backoff with jitter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay before the second attempt, in milliseconds.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Longest delay between attempts, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Factor the delay grows by after each failed attempt.
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    /// Random spread of each delay, as a fraction (0.2 = ±20%).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
}

impl RetryConfig {
    /// The delay schedule this section describes.
    pub fn backoff(&self) -> crate::backoff::Backoff {
        crate::backoff::Backoff::new(
            std::time::Duration::from_millis(self.initial_backoff_ms),
            std::time::Duration::from_millis(self.max_backoff_ms),
            self.multiplier,
            self.jitter,
        )
    }
}

fn default_initial_backoff_ms() -> u64 {
    100
}
fn default_max_backoff_ms() -> u64 {
    30_000
}
fn default_multiplier() -> f64 {
    2.0
}
fn default_jitter() -> f64 {
    0.2
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            multiplier: default_multiplier(),
            jitter: default_jitter(),
        }
    }
}

impl PipelineConfig {
    /// Adds every problem of this section to `p`, each naming its key.
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if !(1..=100_000).contains(&self.batch_size) {
            p.push(format!(
                "pipeline.batch_size must be between 1 and 100000, not {}",
                self.batch_size
            ));
        }
        if self.linger_ms > 60_000 {
            p.push(format!(
                "pipeline.linger_ms must be at most 60000, not {}",
                self.linger_ms
            ));
        }
        let r = &self.retry;
        if r.initial_backoff_ms == 0 {
            p.push("pipeline.retry.initial_backoff_ms must be greater than 0".into());
        }
        if r.max_backoff_ms < r.initial_backoff_ms {
            p.push(format!(
            "pipeline.retry.max_backoff_ms ({}) must not be below pipeline.retry.initial_backoff_ms ({})",
            r.max_backoff_ms, r.initial_backoff_ms
        ));
        }
        if !(r.multiplier >= 1.0 && r.multiplier <= 100.0) {
            p.push(format!(
                "pipeline.retry.multiplier must be between 1 and 100, not {}",
                r.multiplier
            ));
        }
        if !(0.0..=1.0).contains(&r.jitter) {
            p.push(format!(
                "pipeline.retry.jitter must be between 0 and 1, not {}",
                r.jitter
            ));
        }
        let g = &self.dead_letter_guard;
        if g.max_dead_letters > 0 && !(1..=1_000_000).contains(&g.window_events) {
            p.push(format!(
                "pipeline.dead_letter_guard.window_events must be between 1 and 1000000, not {}",
                g.window_events
            ));
        } else if g.max_dead_letters > g.window_events {
            p.push(format!(
            "pipeline.dead_letter_guard.max_dead_letters ({}) must not exceed window_events ({})",
            g.max_dead_letters, g.window_events
        ));
        }
    }
}
