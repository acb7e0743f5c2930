//! ferry keeps local read models (projections) of other services' data up
//! to date from their event streams. The host owns delivery and SQLite
//! storage; projection logic runs in sandboxed WebAssembly components
//! written against the WIT contract in `wit/`.
//!
//! # Layout
//!
//! From the bottom up; a module imports only from the layers below it (a
//! test, `tests/tests/it/architecture.rs`, reads every `crate::` path and
//! keeps this true: no cycle between top-level modules, `source` imports
//! neither `store` nor `plugin`, `store` imports neither `plugin`,
//! `pipeline` nor `source`, `api` never imports `run`).
//!
//! - Plain types, importing nothing of ferry but each other:
//!   [`event`] (the host's event), [`failure`] (how an event failed, the
//!   text limit), [`delivery`] (checkpoint keys, fences, verdicts a source
//!   follows), [`backoff`] (retry delays).
//! - [`bindings`]: the generated WIT bindings, a neutral home for the host
//!   and the plugin loader.
//! - [`config`]: `config.toml` structs by section; `validate()` lists every
//!   problem.
//! - [`store`]: SQLite, every statement on ferry's tables: transactions,
//!   checkpoints, dead letters, outbox, registry, history, fences, the
//!   authorizer, rebuild's cut-over.
//! - [`host`]: one module per WIT interface the host provides (`store`,
//!   `log`, `clock`), WASI shadowed and stdio into the log, the call's
//!   deadline and memory cap.
//! - [`plugin`]: wasmtime engine, loading and validating components,
//!   compiled-component cache, precompiled artifacts (`ferry compile`),
//!   native projections, query functions.
//! - [`pipeline`]: batch → route → handle → checkpoint → commit; retries,
//!   dead letters, the flood guard, swaps and probation, counters. The only
//!   committer.
//! - [`source`]: event sources behind one trait (`kafka`, `http_feed`,
//!   `replay`; the `embedded` broker), built by one factory; positions and
//!   the dead-letter outbox come through ports, never SQLite.
//! - [`control`]: the loop's published status and the commands an operator
//!   can send; used by `api` and the embedding handle, importing neither.
//! - [`api`]: the HTTP API (health, metrics, sources, plugins, dead
//!   letters, the read API).
//! - [`run`]: the run loop wiring sources, pipeline, control and the API;
//!   rebuild, replay, the deploy worker, the file watcher, and the
//!   embedding API ([`Runtime`], [`RuntimeHandle`]).
//!
//! The `ferry` binary (`src/bin/ferry/`) is the command line over this
//! public API.
//!
//! # Features
//!
//! - `kafka` (default): Kafka sources, the embedded broker, dead-letter
//!   topics (librdkafka).
//! - `http-feed` (default): the HTTP event feed source.
//! - `jit` (default): wasmtime's compiler (Cranelift): components are
//!   compiled at load, and `ferry compile` makes precompiled artifacts for
//!   any target. Without it ferry loads only precompiled artifacts.
//!
//! An edge build without a broker: `--no-default-features --features
//! http-feed,jit`; a runtime-only build, without a compiler either:
//! `--no-default-features --features http-feed`.

pub mod api;
pub mod backoff;
pub mod bindings;
pub mod config;
pub mod control;
pub mod delivery;
pub mod event;
pub mod failure;
pub mod host;
pub mod pipeline;
pub mod plugin;
pub mod run;
pub mod source;
pub mod store;

pub use config::Config;
pub use event::Event;
pub use pipeline::Pipeline;
pub use plugin::NativeProjection;
pub use run::{Runtime, RuntimeBuilder, RuntimeHandle};
