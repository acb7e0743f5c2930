//! Plugins: the wasmtime engine, loading and validating components against
//! the contract version they were built for, the compiled-component cache,
//! and running instances.

pub mod aot;
pub mod cache;
pub mod contract;
pub mod engine;
pub mod instance;
pub mod native;
pub mod query;
mod versions;
mod wit_event;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime::{Engine, Store};

use crate::bindings::{self, Contract};
use crate::host::{self, HostState, StoreCtx};
use crate::store::{AuthScope, Grant};
use versions::Pre;

pub use crate::bindings::{HandleError, Handled};
pub use crate::failure::{Failure, FailureKind};
pub use cache::{ComponentCache, Provenance, digest};
pub use instance::PluginInstance;
pub use native::{NativeInstance, NativeProjection};

/// Errors loading a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component file could not be read.
    #[error("plugin `{name}`: cannot read {path}: {source}")]
    Read {
        /// Plugin name.
        name: String,
        /// Component path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid component.
    #[error("plugin `{name}`: {path} is not a valid WebAssembly component: {reason}")]
    Compile {
        /// Plugin name.
        name: String,
        /// Component path (or `<bytes>`).
        path: String,
        /// What wasmtime said.
        reason: String,
    },
    /// A precompiled artifact that cannot run here, or a component given to
    /// a ferry without a compiler.
    #[error("plugin `{name}`: {path} cannot be loaded: {reason}")]
    Load {
        /// Plugin name.
        name: String,
        /// Artifact path (or `<bytes>`).
        path: String,
        /// Why.
        reason: String,
    },
    /// The component does not match the WIT contract.
    #[error("plugin `{name}`: {path} does not match the ferry:plugin contract: {}", problems.join("; "))]
    Contract {
        /// Plugin name.
        name: String,
        /// Component path (or `<bytes>`).
        path: String,
        /// Every mismatch found.
        problems: Vec<String>,
    },
    /// Instantiating or calling `metadata` failed.
    #[error("plugin `{name}`: {what}: {reason}")]
    Instantiate {
        /// Plugin name.
        name: String,
        /// What was being done.
        what: &'static str,
        /// The error.
        reason: String,
    },
}

pub use crate::config::Limits;

/// The engine, the linker with WASI and ferry's imports, and the cache.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    ticker: Arc<engine::EpochTicker>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// A compiled, validated plugin, ready to instantiate.
pub struct LoadedPlugin {
    /// Plugin name from the config.
    pub name: Arc<str>,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// What the plugin says about itself.
    pub metadata: bindings::Metadata,
    /// The contract version it was built against.
    pub contract: Contract,
    /// Its limits.
    pub limits: Limits,
    /// The tables it may touch.
    pub grant: Arc<Grant>,
    /// Whether it came from the compiled-component cache.
    pub provenance: Provenance,
    /// The read-only query functions it exports (see [`query`]).
    pub queries: Vec<query::QueryFn>,
    engine: Engine,
    pre: Pre,
    _ticker: Arc<engine::EpochTicker>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// An engine and linker; compiled components are cached in `cache_dir`.
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let engine = engine::build_engine()?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker)?;
        let cache = ComponentCache::new(&engine, cache_dir);
        let ticker = engine::EpochTicker::start(&engine)?;
        Ok(Self {
            engine,
            linker,
            cache,
            ticker: Arc::new(ticker),
        })
    }

    /// Reads, compiles (or loads from the cache) and validates the plugin at
    /// `path`.
    pub fn load_file(
        &self,
        name: &str,
        path: &Path,
        tables: &[String],
        limits: Limits,
    ) -> Result<LoadedPlugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            name: name.to_owned(),
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(name, &path.display().to_string(), &bytes, tables, limits)
    }

    /// Compiles (or loads from the cache) and validates a component:
    /// checks its imports and exports against the contract, type-checks it
    /// against the linker, instantiates it once and reads its metadata.
    pub fn load_bytes(
        &self,
        name: &str,
        origin: &str,
        bytes: &[u8],
        tables: &[String],
        limits: Limits,
    ) -> Result<LoadedPlugin, PluginError> {
        let (component, digest, provenance) =
            self.cache.load(&self.engine, bytes).map_err(|e| {
                let (name, path, reason) = (name.to_owned(), origin.to_owned(), format!("{e:#}"));
                if aot::is_artifact(bytes) || !cfg!(feature = "jit") {
                    PluginError::Load { name, path, reason }
                } else {
                    PluginError::Compile { name, path, reason }
                }
            })?;
        let checked = contract::check(&self.engine, &component);
        let queries = query::discover(&self.engine, &component);
        let contract_err = |problems| PluginError::Contract {
            name: name.to_owned(),
            path: origin.to_owned(),
            problems,
        };
        let contract = checked.map_err(contract_err)?;
        let pre = Pre::new(&self.linker, &component, contract)
            .map_err(|e| contract_err(vec![format!("{e:#}")]))?;
        let grant = Arc::new(Grant::new(name, tables));
        let name: Arc<str> = name.into();
        let mut store = new_store(
            &self.engine,
            &name,
            &digest,
            None,
            AuthScope::default(),
            &grant,
            limits,
            crate::host::held::Output::new(Arc::clone(&name)),
        );
        store.data_mut().call.begin(
            crate::host::call::Purpose::Load,
            Some(std::time::Instant::now() + limits.timeout),
        );
        let metadata = pre
            .instantiate(&mut store)
            .map_err(|e| PluginError::Instantiate {
                name: name.to_string(),
                what: "instantiation failed",
                reason: format!("{e:#}"),
            })
            .and_then(|bound| {
                bound
                    .metadata(&mut store)
                    .map_err(|e| PluginError::Instantiate {
                        name: name.to_string(),
                        what: "calling `metadata` failed",
                        reason: format!("{e:#}"),
                    })
            })?;
        tracing::debug!(plugin = %name, %digest, ?provenance, version = %metadata.version,
            "Loaded and validated the plugin.");
        Ok(LoadedPlugin {
            name,
            digest,
            metadata,
            contract,
            limits,
            grant,
            provenance,
            queries,
            engine: self.engine.clone(),
            pre,
            _ticker: Arc::clone(&self.ticker),
        })
    }
}

/// A fresh wasmtime store for one instance of a plugin.
#[expect(
    clippy::too_many_arguments,
    reason = "every part of a plugin's sandbox, named"
)]
fn new_store(
    engine: &Engine,
    name: &Arc<str>,
    digest: &str,
    conn: Option<crate::store::SharedConn>,
    scope: AuthScope,
    grant: &Arc<Grant>,
    limits: Limits,
    output: crate::host::held::Output,
) -> Store<HostState> {
    let ctx = StoreCtx::new(conn, scope, Arc::clone(grant), limits.memory_bytes);
    let call = crate::host::call::CallContext::new(
        digest.into(),
        limits.host_clock,
        limits.memory_bytes as u64,
    );
    let state = HostState::new(Arc::clone(name), ctx, limits.memory_bytes, output, call);
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // The epoch deadline is only where the deadline is looked at: a batch
    // call moves its deadline with every event (see `host::batch`).
    store.epoch_deadline_callback(|ctx| match ctx.data().call.deadline() {
        Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
            Some(left) if !left.is_zero() => Ok(wasmtime::UpdateDeadline::Continue(
                engine::deadline_ticks(left).saturating_sub(1).max(1),
            )),
            _ => Err(wasmtime::Trap::Interrupt.into()),
        },
        None => Err(wasmtime::Trap::Interrupt.into()),
    });
    store.set_epoch_deadline(engine::deadline_ticks(limits.timeout));
    store
}
