//! ferry keeps local read models (projections) of other services' data up
//! to date from their event streams. The host owns delivery and SQLite
//! storage; projection logic runs in sandboxed WebAssembly components
//! written against the WIT contract in `wit/`.
//!
//! # Layout
//!
//! - [`config`]: `config.toml` structs and validation.
//! - [`event`]: the host's event type.
//! - [`router`]: event type extraction and routing to plugins.
//! - [`pipeline`]: batch → route → handle → checkpoint → commit; retries,
//!   dead letters, counters.
//! - [`plugin`]: wasmtime engine, loading and validating components,
//!   compiled-component cache, instances with deadlines and memory caps.
//! - [`host`]: one module per WIT interface the host provides (`store`,
//!   `log`, `clock`) plus WASI stdio into the log.
//! - [`store`]: SQLite: transactions, checkpoints, dead letters, plugin
//!   registry, the authorizer.
//! - [`source`]: event sources (`replay`, `kafka`, `http_feed`, the
//!   `embedded` broker).
//! - [`run`]: the run loop (batches, control requests between them, the
//!   deploy worker and the plugin file watcher).
//! - [`runtime`]: the embedding API, [`Runtime`].
//! - [`api`]: the HTTP API (health, metrics, sources, plugins, dead
//!   letters, the read API).
//! - [`rebuild`]: re-projecting a plugin's tables into a shadow copy and
//!   cutting over.
//! - [`app`]: assembling a pipeline from a config.
//! - [`cli`]: the `ferry` command line.
//!
//! # Features
//!
//! - `kafka` (default): Kafka sources, the embedded broker, dead-letter
//!   topics (librdkafka).
//! - `http-feed` (default): the HTTP event feed source.
//!
//! An edge build without a broker: `--no-default-features --features
//! http-feed`.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod event;
pub mod host;
pub mod pipeline;
pub mod plugin;
pub mod rebuild;
pub mod router;
pub mod run;
pub mod runtime;
pub mod source;
pub mod store;

pub use config::Config;
pub use event::Event;
pub use pipeline::Pipeline;
pub use plugin::NativeProjection;
pub use runtime::{Runtime, RuntimeBuilder, RuntimeHandle};
