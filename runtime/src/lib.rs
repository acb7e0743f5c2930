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
//! - [`source`]: event sources (`replay`, `kafka`, the `embedded` broker).
//! - [`run`]: `ferry run`'s main loop.
//! - [`api`]: the HTTP API (health, metrics, sources, plugins).
//! - [`app`]: assembling a pipeline from a config.
//! - [`cli`]: the `ferry` command line.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod event;
pub mod host;
pub mod pipeline;
pub mod plugin;
pub mod router;
pub mod run;
pub mod source;
pub mod store;

pub use config::Config;
pub use event::Event;
pub use pipeline::Pipeline;
