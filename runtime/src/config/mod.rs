//! `config.toml`: serde structs (unknown keys are refused) and a
//! `validate()` that lists every problem at once, each naming its key.

mod api;
mod feed;
mod plugins;
mod sources;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::store::{StoreOptions, Synchronous};

pub use api::ApiConfig;
pub use plugins::{AutoRollback, ClockGrant, FailurePolicy, PluginConfig};
pub use sources::{
    EventTypeFrom, FORBIDDEN_LIBRDKAFKA, GapPolicy, HttpFeedSourceConfig, KafkaMode,
    KafkaSourceConfig, OutOfRange, SourceConfig, StartFrom,
};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The SQLite database holding the projections and ferry's own tables.
    #[serde(default)]
    pub store: StoreConfig,
    /// Runtime settings (compiled-component cache).
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Batching, routing and retry settings of the pipeline.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// The plugins, each handling a set of event types.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Where events come from.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// The embedded broker and sample publisher used by sources whose
    /// `brokers = "embedded"`.
    #[serde(default)]
    pub embedded: EmbeddedConfig,
    /// The HTTP API: health, metrics, sources, plugins, dead letters and
    /// the read API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Directory relative paths are resolved against (the config file's
    /// directory); not a key of the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Path of the SQLite file (relative to the config file). `--db` on the
    /// command line overrides it.
    #[serde(default = "default_db_path")]
    pub path: PathBuf,
    /// Commit durability: `normal` (WAL, survives process crashes; the
    /// default) or `full` (fsync on every commit).
    #[serde(default)]
    pub synchronous: Synchronous,
    /// How long a statement waits for a locked database, in milliseconds.
    #[serde(default = "default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
    /// SQLite page cache in KiB.
    #[serde(default = "default_cache_size_kib")]
    pub cache_size_kib: u64,
    /// WAL checkpoints (copying committed pages into the database file,
    /// with an fsync) run on a background thread every this many
    /// milliseconds, so commits never wait for them; 0 leaves them to
    /// SQLite, inline in a commit every 1000 pages.
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
}

fn default_checkpoint_interval_ms() -> u64 {
    100
}

fn default_db_path() -> PathBuf {
    PathBuf::from("ferry.db")
}
fn default_busy_timeout_ms() -> u64 {
    5_000
}
fn default_cache_size_kib() -> u64 {
    65_536
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: default_db_path(),
            synchronous: Synchronous::default(),
            busy_timeout_ms: default_busy_timeout_ms(),
            cache_size_kib: default_cache_size_kib(),
            checkpoint_interval_ms: default_checkpoint_interval_ms(),
        }
    }
}

impl StoreConfig {
    /// Options for [`crate::store::Db::open`].
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            synchronous: self.synchronous,
            busy_timeout_ms: self.busy_timeout_ms,
            cache_size_kib: self.cache_size_kib,
            checkpoint_interval_ms: self.checkpoint_interval_ms,
        }
    }
}

/// `[runtime]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Directory for precompiled components, keyed by content digest
    /// (relative to the config file). Default: `.ferry-cache` next to the
    /// database. Set to an empty string to compile on every start.
    #[serde(default)]
    pub component_cache: Option<PathBuf>,
    /// How often `ferry run` logs a progress line (events/s, lag per
    /// partition, outcomes), in milliseconds; 0 turns it off.
    #[serde(default = "default_progress_interval_ms")]
    pub progress_interval_ms: u64,
    /// Watch every plugin's file and hot-swap a new version when it
    /// changes (deploy with an atomic rename).
    #[serde(default = "default_true")]
    pub watch_plugins: bool,
    /// How often plugin files are checked, in milliseconds; a change is
    /// acted on once the file has stayed the same for one more interval.
    #[serde(default = "default_watch_interval_ms")]
    pub watch_interval_ms: u64,
}

fn default_watch_interval_ms() -> u64 {
    500
}

fn default_progress_interval_ms() -> u64 {
    5_000
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            component_cache: None,
            progress_interval_ms: default_progress_interval_ms(),
            watch_plugins: true,
            watch_interval_ms: default_watch_interval_ms(),
        }
    }
}

/// `[embedded]`: librdkafka's in-process mock cluster and a sample
/// publisher playing Catalog, for sources with `brokers = "embedded"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Partitions of each topic created on the embedded broker.
    #[serde(default = "default_embedded_partitions")]
    pub partitions: i32,
    /// Whether the sample publisher runs.
    #[serde(default = "default_true")]
    pub publisher: bool,
    /// Events per second the sample publisher produces.
    #[serde(default = "default_publish_rate")]
    pub publish_rate: u32,
    /// Distinct games (keys) the sample publisher creates, updates and
    /// deletes.
    #[serde(default = "default_games")]
    pub games: u32,
}

fn default_embedded_partitions() -> i32 {
    8
}
fn default_true() -> bool {
    true
}
fn default_publish_rate() -> u32 {
    200
}
fn default_games() -> u32 {
    1_000
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            partitions: default_embedded_partitions(),
            publisher: true,
            publish_rate: default_publish_rate(),
            games: default_games(),
        }
    }
}

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

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// The values are inconsistent; every problem is listed.
    #[error("{path} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// One sentence per problem, each naming its key.
        problems: Vec<String>,
    },
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let config = Self::parse(&text, base).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// Parses TOML text; relative paths resolve against `base_dir`. Does
    /// not validate.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, String> {
        let mut config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.base_dir = base_dir.to_owned();
        Ok(config)
    }

    /// Every problem in the configuration, each naming its key. Empty when
    /// the configuration is usable.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let pl = &self.pipeline;
        if !(1..=100_000).contains(&pl.batch_size) {
            p.push(format!(
                "pipeline.batch_size must be between 1 and 100000, not {}",
                pl.batch_size
            ));
        }
        if pl.linger_ms > 60_000 {
            p.push(format!(
                "pipeline.linger_ms must be at most 60000, not {}",
                pl.linger_ms
            ));
        }
        let r = &pl.retry;
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
        let g = &pl.dead_letter_guard;
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
        if !(10..=60_000).contains(&self.runtime.watch_interval_ms) {
            p.push(format!(
                "runtime.watch_interval_ms must be between 10 and 60000, not {}",
                self.runtime.watch_interval_ms
            ));
        }
        if self.store.checkpoint_interval_ms > 60_000 {
            p.push(format!(
                "store.checkpoint_interval_ms must be at most 60000, not {}",
                self.store.checkpoint_interval_ms
            ));
        }
        if self.store.path.as_os_str().is_empty() {
            p.push("store.path must not be empty".into());
        }
        let e = &self.embedded;
        if !(1..=1_000).contains(&e.partitions) {
            p.push(format!(
                "embedded.partitions must be between 1 and 1000, not {}",
                e.partitions
            ));
        }
        if e.publish_rate > 1_000_000 {
            p.push(format!(
                "embedded.publish_rate must be at most 1000000 events/s, not {}",
                e.publish_rate
            ));
        }
        if e.games == 0 {
            p.push("embedded.games must be at least 1".into());
        }
        self.api.validate(&mut p);
        plugins::validate(&self.plugins, &mut p);
        sources::validate(&self.sources, &mut p);
        p
    }

    /// Resolves a path from the file against its directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base_dir.join(path)
        }
    }

    /// The database path (resolved).
    pub fn db_path(&self) -> PathBuf {
        self.resolve(&self.store.path)
    }

    /// The compiled-component cache directory (resolved), or `None` if
    /// caching is off.
    pub fn component_cache_dir(&self, db_path: &Path) -> Option<PathBuf> {
        match &self.runtime.component_cache {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(self.resolve(p)),
            None => Some(
                db_path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(".ferry-cache"),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
