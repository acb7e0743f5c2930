//! `config.toml`: serde structs (unknown keys are refused) and a
//! `validate()` that lists every problem at once, each naming its key.

mod api;
mod embedded;
mod feed;
mod keys;
mod pipeline;
mod plugins;
mod runtime;
mod sources;
mod store;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use api::ApiConfig;
pub use embedded::EmbeddedConfig;
pub use pipeline::{DeadLetterGuard, PipelineConfig, RetryConfig, UnknownEventPolicy};
pub use plugins::{AutoRollback, ClockGrant, FailurePolicy, Limits, PluginConfig};
pub use runtime::RuntimeConfig;
pub use sources::{
    EMBEDDED, EventTypeFrom, FORBIDDEN_LIBRDKAFKA, GapPolicy, HttpFeedSourceConfig, KafkaMode,
    KafkaSourceConfig, OutOfRange, SourceConfig, StartFrom,
};
pub use store::{StoreConfig, Synchronous};

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

fn default_true() -> bool {
    true
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
    /// Reads, parses and validates a config file. Unknown keys are
    /// reported together with every other problem, each naming its key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let parse_error = |message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let (mut config, mut problems) = match keys::parse::<Config>(&text).map_err(parse_error)? {
            keys::Parsed::Value(config, problems) => (config, problems),
            keys::Parsed::Invalid(problems) => {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    problems,
                });
            }
        };
        config.base_dir = base.to_owned();
        problems.extend(config.validate());
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
    /// not validate, and refuses the first unknown key (see [`Self::load`]
    /// for every problem at once).
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, String> {
        let mut config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.base_dir = base_dir.to_owned();
        Ok(config)
    }

    /// Parses TOML text leaving unknown keys out: the configuration and one
    /// problem per unknown key (for `ferry check`, which goes on to load
    /// the plugins of a configuration with problems).
    pub fn parse_tolerant(text: &str, base_dir: &Path) -> Result<(Self, Vec<String>), String> {
        match keys::parse::<Config>(text)? {
            keys::Parsed::Value(mut config, unknown) => {
                config.base_dir = base_dir.to_owned();
                Ok((config, unknown))
            }
            keys::Parsed::Invalid(problems) => Err(problems.join("; ")),
        }
    }

    /// Every problem in the configuration, each naming its key. Empty when
    /// the configuration is usable.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        self.store.validate(&mut p);
        self.runtime.validate(&mut p);
        self.pipeline.validate(&mut p);
        self.embedded.validate(&mut p);
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
