//! `[[plugins]]`: which component handles which event types, with which
//! tables and limits.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Resource limits of one plugin, and what its sandbox grants beyond the
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deadline of one call (`handle`, `migrate`, `metadata`, a query),
    /// host calls included.
    pub timeout: Duration,
    /// Linear memory cap of one instance, in bytes; also the most host
    /// memory one call's query results may take, and the longest value.
    pub memory_bytes: usize,
    /// Whether the plugin reads the host's real clock (`clock = "host"`)
    /// instead of the event's time.
    pub host_clock: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(1_000),
            memory_bytes: 64 << 20,
            host_clock: false,
        }
    }
}

/// What happens to an event once its attempts are used up.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Record it as a dead letter (in the same transaction that advances
    /// the checkpoint past it) and go on.
    #[default]
    DeadLetter,
    /// Stop the partition at it: for projections where skipping an event
    /// breaks correctness. Nothing after it is applied until it succeeds.
    StopPartition,
}

/// Which clock a plugin reads.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ClockGrant {
    /// The event's timestamp (the Unix epoch when it has none, and in
    /// `migrate` and queries): the same events give the same table.
    #[default]
    Event,
    /// The host's real clock. A projection that stores what it reads is no
    /// longer reproducible by `ferry rebuild` or a replay.
    Host,
}

/// One `[[plugins]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique name (letters, digits, `-`, `_`); used in logs, metrics, the
    /// registry and dead letters.
    pub name: String,
    /// Path of the component (`.wasm`), relative to the config file.
    pub path: PathBuf,
    /// Event types this plugin handles. Each type belongs to one plugin.
    pub events: Vec<String>,
    /// Tables the plugin may create, read and write. Everything else is
    /// denied by SQLite's authorizer; `ferry_*` tables never are granted.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Deadline of one `handle` or `migrate` call, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Linear-memory cap of one instance, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Attempts at an event that fails permanently (error, trap, timeout,
    /// memory cap, denied SQL) before `on_failure` applies.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Attempts at an event that fails with a retryable error before
    /// `on_failure` applies. Unset: retry until it succeeds (the partition
    /// waits, with backoff; health reports it).
    #[serde(default)]
    pub max_retryable_attempts: Option<u32>,
    /// `dead-letter` (default) or `stop-partition`.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// Automatic rollback of a newly swapped-in version that fails where
    /// the previous one succeeds. Absent: no automatic rollback.
    #[serde(default)]
    pub auto_rollback: Option<AutoRollback>,
    /// The clock the plugin reads (`wasi:clocks/wall-clock` and
    /// `ferry:plugin/clock`): `event` (default) or `host`, an explicit
    /// grant of real time that `ferry check` shows.
    #[serde(default)]
    pub clock: ClockGrant,
}

/// `[plugins.auto_rollback]`: probation of a newly swapped-in version.
///
/// For its first `events` calls the previous version stays loaded. When
/// the new version fails an event (anything but a busy database), the
/// previous version is tried on the same event in a fresh savepoint: if it
/// succeeds, its result is kept (the event is applied exactly once, by the
/// previous version) and the failure counts against the new version. When
/// more than `max_error_rate × events` such failures happen, the new
/// version is rolled back; once it has made `events` calls without that,
/// it is kept. An event both versions fail is an ordinary failing event.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AutoRollback {
    /// How many calls of a new version are on probation.
    #[serde(default = "default_probation_events")]
    pub events: u32,
    /// Largest tolerated share of probation calls that fail where the
    /// previous version succeeds (0 to 1).
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
}

fn default_probation_events() -> u32 {
    100
}
fn default_max_error_rate() -> f64 {
    0.1
}

fn default_timeout_ms() -> u64 {
    1_000
}
fn default_memory_mb() -> u64 {
    64
}
fn default_max_attempts() -> u32 {
    3
}

impl PluginConfig {
    /// The plugin's resource limits.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: usize::try_from(self.memory_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            host_clock: self.clock == ClockGrant::Host,
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_table(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn validate(plugins: &[PluginConfig], p: &mut Vec<String>) {
    if plugins.is_empty() {
        p.push("plugins: at least one [[plugins]] entry is needed".into());
    }
    let mut names = HashSet::new();
    let mut event_owner: HashMap<&str, &str> = HashMap::new();
    let mut table_owner: HashMap<String, &str> = HashMap::new();
    for (i, pl) in plugins.iter().enumerate() {
        let key = format!("plugins[{i}]");
        let name = pl.name.as_str();
        if !valid_name(name) {
            p.push(format!(
                "{key}.name `{name}` must be 1 to 64 letters, digits, `-` or `_`"
            ));
        } else if !names.insert(name) {
            p.push(format!("{key}.name `{name}` is used by another plugin"));
        }
        if pl.path.as_os_str().is_empty() {
            p.push(format!("{key}.path (plugin `{name}`) must not be empty"));
        }
        if pl.events.is_empty() {
            p.push(format!(
                "{key}.events (plugin `{name}`) must list at least one event type"
            ));
        }
        for ev in &pl.events {
            if ev.trim().is_empty() {
                p.push(format!(
                    "{key}.events (plugin `{name}`) has an empty event type"
                ));
            } else if let Some(other) = event_owner.insert(ev, name) {
                p.push(format!(
                    "{key}.events: event type `{ev}` is claimed by both `{other}` and `{name}`; each type has one handler"
                ));
            }
        }
        for t in &pl.tables {
            let lower = t.to_ascii_lowercase();
            if !valid_table(t) {
                p.push(format!(
                    "{key}.tables: `{t}` is not a plain table name (letters, digits, `_`)"
                ));
            } else if lower.starts_with("ferry_") || lower.starts_with("sqlite_") {
                p.push(format!(
                    "{key}.tables: `{t}` is reserved (ferry_* and sqlite_* tables cannot be granted)"
                ));
            } else if let Some(other) = table_owner.insert(lower, name)
                && other != name
            {
                p.push(format!(
                    "{key}.tables: table `{t}` is granted to both `{other}` and `{name}`; a table belongs to one plugin"
                ));
            }
        }
        if !(1..=600_000).contains(&pl.timeout_ms) {
            p.push(format!(
                "{key}.timeout_ms (plugin `{name}`) must be between 1 and 600000, not {}",
                pl.timeout_ms
            ));
        }
        if !(1..=4_096).contains(&pl.memory_mb) {
            p.push(format!(
                "{key}.memory_mb (plugin `{name}`) must be between 1 and 4096, not {}",
                pl.memory_mb
            ));
        }
        if pl.max_attempts == 0 {
            p.push(format!(
                "{key}.max_attempts (plugin `{name}`) must be at least 1"
            ));
        }
        if pl.max_retryable_attempts == Some(0) {
            p.push(format!(
                "{key}.max_retryable_attempts (plugin `{name}`) must be at least 1 when set"
            ));
        }
        if let Some(r) = &pl.auto_rollback {
            if !(1..=1_000_000).contains(&r.events) {
                p.push(format!(
                    "{key}.auto_rollback.events (plugin `{name}`) must be between 1 and 1000000, not {}",
                    r.events
                ));
            }
            if !(0.0..=1.0).contains(&r.max_error_rate) {
                p.push(format!(
                    "{key}.auto_rollback.max_error_rate (plugin `{name}`) must be between 0 and 1, not {}",
                    r.max_error_rate
                ));
            }
        }
    }
}
