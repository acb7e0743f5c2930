//! What the host provides to plugins: one module per WIT interface
//! (`store`, `log`, `clock`), WASI with nothing granted, and the per-store
//! state they share ([`HostState`]).

pub mod clock;
pub mod held;
pub mod limits;
pub mod log;
pub mod stdio;
pub mod store;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::plugin::bindings::Projection;

pub use limits::MemoryLimiter;
pub use store::{CallReport, StoreCtx};

/// Per-instance host state: WASI (empty), the store binding, limits, and
/// the name of the plugin for log lines.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory cap of this instance.
    pub limiter: MemoryLimiter,
    /// The `store` import's binding to the writer connection.
    pub store: StoreCtx,
    /// Plugin name, for log lines.
    pub plugin: Arc<str>,
    /// Position of the event being handled, for log lines.
    pub current_event: Option<crate::event::Position>,
    /// The plugin's stderr (its last line explains most traps).
    pub stderr: stdio::LogStream,
    /// Where its log lines and stdout/stderr lines go (held during an
    /// optimistic pass).
    pub output: held::Output,
}

impl HostState {
    /// State for one instance of `plugin`. WASI gets no preopens, no
    /// environment, no arguments, no network; stdout and stderr go to the
    /// host log through `output`.
    pub fn new(
        plugin: Arc<str>,
        store: StoreCtx,
        memory_bytes: usize,
        output: held::Output,
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
            limiter: MemoryLimiter::new(memory_bytes),
            store,
            plugin,
            current_event: None,
            stderr,
            output,
        }
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

impl crate::plugin::bindings::ferry::plugin::types::Host for HostState {}

/// Adds WASI and ferry's own interfaces to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    Projection::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}
