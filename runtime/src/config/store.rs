//! `[store]`: the SQLite file and how it is opened.

use std::path::PathBuf;

use serde::Deserialize;

/// How durable a commit is.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// WAL with `synchronous=NORMAL`: survives a process crash; a power loss
    /// may roll back the newest transactions (effect and checkpoint together,
    /// so the projection stays consistent and the events are re-consumed).
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced.
    Full,
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
    /// Adds every problem of this section to `p`, each naming its key.
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if self.checkpoint_interval_ms > 60_000 {
            p.push(format!(
                "store.checkpoint_interval_ms must be at most 60000, not {}",
                self.checkpoint_interval_ms
            ));
        }
        if self.path.as_os_str().is_empty() {
            p.push("store.path must not be empty".into());
        }
    }
}
