//! The wasmtime engine: Component Model, epoch interruption for per-call
//! deadlines (driven by a ticker thread), and no component-model async
//! (which would make every synchronous call ~3× slower).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the epoch advances; deadlines are rounded up to it.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Builds the engine every plugin runs on.
pub fn build_engine() -> anyhow::Result<Engine> {
    build_engine_for(None)
}

/// Builds an engine with ferry's settings; with a target triple, one that
/// compiles for that target (for `ferry compile`; the code it makes runs on
/// any CPU of that architecture, as no host features are assumed).
pub fn build_engine_for(target: Option<&str>) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    #[cfg(feature = "jit")]
    if let Some(t) = target {
        config.target(t)?;
    }
    #[cfg(not(feature = "jit"))]
    if let Some(t) = target {
        anyhow::bail!(
            "this ferry has no compiler (a runtime-only build): it cannot compile for {t}"
        );
    }
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.concurrency_support(false);
    config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
    // `FERRY_WASM_PROFILE=perfmap` writes /tmp/perf-<pid>.map so `perf`
    // names plugin functions (for profiling a plugin; off by default).
    if std::env::var("FERRY_WASM_PROFILE").is_ok_and(|v| v == "perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config).map_err(anyhow::Error::from)
}

/// Epoch ticks for a deadline of `timeout` (at least one full tick).
pub fn deadline_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    (timeout.as_micros().div_ceil(tick) as u64).max(1) + 1
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EpochTicker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochTicker").finish_non_exhaustive()
    }
}

impl EpochTicker {
    /// Starts ticking `engine`'s epoch.
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ferry-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_whole_ticks() {
        assert_eq!(deadline_ticks(Duration::from_millis(0)), 2);
        assert_eq!(deadline_ticks(Duration::from_millis(5)), 2);
        assert_eq!(deadline_ticks(Duration::from_millis(6)), 3);
        assert_eq!(deadline_ticks(Duration::from_secs(1)), 201);
    }
}
