//! What the host provides to plugins: one module per WIT interface
//! (`store`, `log`, `clock`, and contract 0.2's `batch`), each serving
//! every contract version; WASI with nothing granted and deterministic
//! clocks and random ([`wasi`]); the call in progress ([`call`]) and what
//! its result means ([`outcome`]); and the per-store state they share
//! ([`HostState`]).

pub mod batch;
pub mod call;
pub mod clock;
pub mod held;
pub mod limits;
pub mod log;
pub mod outcome;
pub mod stdio;
pub mod store;
pub mod wasi;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{v0_1, v0_2};

pub use limits::MemoryLimiter;
pub use store::{CallReport, StoreCtx};

/// Per-instance host state: WASI (empty), the store binding, limits, the
/// call in progress, and the name of the plugin for log lines.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The call in progress: deadline, event time, random numbers.
    pub call: call::CallContext,
    /// Memory cap of this instance.
    pub limiter: MemoryLimiter,
    /// The `store` import's binding to the writer connection.
    pub store: StoreCtx,
    /// Plugin name, for log lines.
    pub plugin: Arc<str>,
    /// The plugin's stderr (its last line explains most traps).
    pub stderr: stdio::LogStream,
    /// Where its log lines and stdout/stderr lines go (held during an
    /// optimistic pass).
    pub output: held::Output,
    /// The events of the `handle-batch` call in progress (contract 0.2).
    pub run: batch::Run,
}

impl HostState {
    /// State for one instance of `plugin`. WASI gets no preopens, no
    /// environment, no arguments, no network; stdout and stderr go to the
    /// host log through `output`; clocks and random come from `call`.
    pub fn new(
        plugin: Arc<str>,
        store: StoreCtx,
        memory_bytes: usize,
        output: held::Output,
        call: call::CallContext,
    ) -> Self {
        let stderr = stdio::LogStream::new(output.clone(), "stderr");
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stdout(stdio::LogStream::new(output.clone(), "stdout"))
            .stderr(stderr.clone())
            .allow_blocking_current_thread(true)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            call,
            limiter: MemoryLimiter::new(memory_bytes),
            store,
            plugin,
            stderr,
            output,
            run: batch::Run::default(),
        }
    }

    /// Prepared statements this instance holds.
    pub fn live_statements(&self) -> usize {
        self.store.live_statements()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl v0_1::ferry::plugin::types::Host for HostState {}
impl v0_2::ferry::plugin::types::Host for HostState {}

/// Adds WASI (with ferry's clocks and random, see [`wasi`]) and ferry's
/// own interfaces, of every contract version, to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    wasi::add_to_linker(linker)?;
    v0_1::Projection::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    v0_2::Projection::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}
