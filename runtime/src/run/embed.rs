//! Embedding ferry: [`Runtime`] runs the same loop as `ferry run` inside a
//! host program, with or without Kafka (the HTTP feed needs no broker).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let runtime = ferry::Runtime::builder()
//!     .config_toml(r#"
//!         [[plugins]]
//!         name = "game-projection"
//!         path = "dist/plugins/game_projection.wasm"
//!         events = ["GameCreated", "GameUpdated", "GameDeleted"]
//!         tables = ["games"]
//!
//!         [[sources]]
//!         name = "catalog"
//!         kind = "http-feed"
//!         url = "http://127.0.0.1:5000/events"
//!     "#, ".")?
//!     .store_path("edge.db")
//!     .build()?;
//! let handle = runtime.handle();
//! let task = tokio::spawn(runtime.run());
//! handle.wait_running().await?;
//! let games: i64 = handle.read_only()?.query_row("SELECT count(*) FROM games", [], |r| r.get(0))?;
//! handle.stop();
//! task.await??;
//! # Ok(()) }
//! ```
//!
//! The loop runs on its own thread (SQLite and the plugins are blocking);
//! [`Runtime::run`] is a future that completes when it stops, usable from
//! any async runtime. The HTTP API is off unless [`RuntimeBuilder::serve_api`]
//! or `api.enabled = true` turns it on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;

use super::Launch;
use super::handle::RuntimeHandle;
use crate::config::{Config, ConfigError, PluginConfig, SourceConfig};
use crate::control::{Control, Inbox, Status};
use crate::pipeline::Stats;
use crate::plugin::NativeProjection;

/// Builds a [`Runtime`].
#[derive(Default)]
pub struct RuntimeBuilder {
    config: Option<Config>,
    config_path: Option<PathBuf>,
    store_path: Option<PathBuf>,
    plugins: Vec<PluginConfig>,
    sources: Vec<SourceConfig>,
    natives: Vec<(PluginConfig, Box<dyn NativeProjection>)>,
    serve_api: Option<bool>,
    announce: bool,
    stop: Option<Arc<AtomicBool>>,
    reload: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("config_path", &self.config_path)
            .field("store_path", &self.store_path)
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// Uses `config` (validated in [`Self::build`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Parses TOML text; relative paths resolve against `base_dir`.
    pub fn config_toml(mut self, text: &str, base_dir: impl AsRef<Path>) -> anyhow::Result<Self> {
        self.config = Some(Config::parse(text, base_dir.as_ref()).map_err(anyhow::Error::msg)?);
        Ok(self)
    }

    /// Reads and validates a config file; `reload` re-reads it.
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        self.config = Some(Config::load(path.as_ref())?);
        self.config_path = Some(path.as_ref().to_owned());
        Ok(self)
    }

    /// The SQLite file (overrides `store.path`).
    pub fn store_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.store_path = Some(path.into());
        self
    }

    /// Adds a WebAssembly plugin.
    pub fn plugin(mut self, plugin: PluginConfig) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Adds a source.
    pub fn source(mut self, source: SourceConfig) -> Self {
        self.sources.push(source);
        self
    }

    /// Adds a native projection (the host's own trusted code) handling
    /// `events` with `tables`, with the default limits and policies.
    pub fn native_plugin(
        mut self,
        name: &str,
        events: &[&str],
        tables: &[&str],
        projection: impl NativeProjection,
    ) -> Self {
        let config = PluginConfig {
            name: name.to_owned(),
            path: PathBuf::new(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            tables: tables.iter().map(|t| (*t).to_owned()).collect(),
            timeout_ms: 1_000,
            memory_mb: 64,
            max_attempts: 3,
            max_retryable_attempts: None,
            on_failure: crate::config::FailurePolicy::DeadLetter,
            auto_rollback: None,
            clock: crate::config::ClockGrant::Event,
        };
        self.natives.push((config, Box::new(projection)));
        self
    }

    /// Serves the HTTP API (`api.listen`). Default: `api.enabled`, which
    /// is off when embedding unless the config sets it.
    pub fn serve_api(mut self, on: bool) -> Self {
        self.serve_api = Some(on);
        self
    }

    /// Prints the broker and API addresses on stdout (what `ferry run`
    /// does).
    pub fn announce(mut self, on: bool) -> Self {
        self.announce = on;
        self
    }

    /// Stops the loop when `flag` becomes true (for signal handlers),
    /// besides [`RuntimeHandle::stop`].
    pub fn stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// Re-reads the config file (see [`Self::config_file`]) when `flag`
    /// becomes true (`SIGHUP`); the loop clears it.
    pub fn reload_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.reload = Some(flag);
        self
    }

    /// Validates everything and returns the runtime (nothing runs yet).
    pub fn build(self) -> anyhow::Result<Runtime> {
        let mut config = match self.config {
            Some(c) => c,
            None => Config::parse("", Path::new(".")).map_err(anyhow::Error::msg)?,
        };
        config.plugins.extend(self.plugins);
        config.sources.extend(self.sources);
        let mut problems = config.validate();
        if !self.natives.is_empty() {
            problems.retain(|p| !p.starts_with("plugins: at least one"));
        }
        let mut events: std::collections::HashSet<&str> = config
            .plugins
            .iter()
            .flat_map(|p| p.events.iter().map(String::as_str))
            .collect();
        for (n, _) in &self.natives {
            if config.plugins.iter().any(|p| p.name == n.name) {
                problems.push(format!(
                    "native plugin `{}`: the name is used by another plugin",
                    n.name
                ));
            }
            for e in &n.events {
                if !events.insert(e) {
                    problems.push(format!(
                        "native plugin `{}`: event type `{e}` already has a handler",
                        n.name
                    ));
                }
            }
        }
        if !problems.is_empty() {
            anyhow::bail!(
                "the configuration has {} problem(s):\n  - {}",
                problems.len(),
                problems.join("\n  - ")
            );
        }
        let db_path = self.store_path.unwrap_or_else(|| config.db_path());
        let serve_api = self.serve_api.or(config.api.enabled).unwrap_or(false);
        let stats = Arc::new(Stats::default());
        let status = Arc::new(Status::new(&config.api, stats));
        let (commands_tx, commands) = std::sync::mpsc::channel();
        let (requests_tx, requests) = std::sync::mpsc::channel();
        let control = Arc::new(Control {
            status,
            stop: self.stop.unwrap_or_default(),
            reload: self.reload.unwrap_or_default(),
            commands: commands_tx,
            requests: requests_tx,
            db_path,
            api_addr: parking_lot::Mutex::new(None),
            api: config.api.clone(),
        });
        Ok(Runtime {
            launch: Launch {
                config,
                config_path: self.config_path,
                natives: self.natives,
                serve_api,
                announce: self.announce,
            },
            inbox: Inbox { commands, requests },
            control,
        })
    }
}

/// A configured ferry, ready to run.
pub struct Runtime {
    launch: Launch,
    inbox: Inbox,
    control: Arc<Control>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("db", &self.control.db_path)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A builder.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// A handle to stop, swap plugins, read status and the store.
    pub fn handle(&self) -> RuntimeHandle {
        RuntimeHandle::new(Arc::clone(&self.control))
    }

    /// Runs on the calling thread until stopped.
    pub fn run_blocking(self) -> anyhow::Result<()> {
        super::run(self.launch, self.control, self.inbox)
    }

    /// Runs on a thread of its own; completes when stopped (or when
    /// starting failed). Works with any async executor.
    pub async fn run(self) -> anyhow::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("ferry-loop".into())
            .spawn(move || {
                let _ = tx.send(self.run_blocking());
            })
            .context("starting ferry's loop thread")?;
        rx.await
            .context("ferry's loop thread ended without a result")?
    }
}
