//! `[runtime]`: the component cache, plugin file watching, progress lines.

use std::path::PathBuf;

use serde::Deserialize;

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
    #[serde(default = "super::default_true")]
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

impl RuntimeConfig {
    /// Adds every problem of this section to `p`, each naming its key.
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if !(10..=60_000).contains(&self.watch_interval_ms) {
            p.push(format!(
                "runtime.watch_interval_ms must be between 10 and 60000, not {}",
                self.watch_interval_ms
            ));
        }
    }
}
