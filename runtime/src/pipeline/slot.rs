//! One configured plugin inside the pipeline: its active handler (a
//! WebAssembly instance or a native projection), the version it replaced
//! (kept for rollback and for probation), and its latency histogram.

use std::sync::Arc;

use super::histogram::Histogram;
use super::probation::Probation;
use crate::config::PluginConfig;
use crate::event::Event;
use crate::plugin::{
    Failure, Handled, LoadedPlugin, NativeInstance, NativeProjection, PluginInstance,
};
use crate::store::Db;

/// The code of a plugin, before it is bound to the store.
pub enum PluginCode {
    /// A compiled, validated WebAssembly component.
    Wasm(Arc<LoadedPlugin>),
    /// Projection logic compiled into the host.
    Native(Box<dyn NativeProjection>),
}

impl std::fmt::Debug for PluginCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginCode::Wasm(p) => f.debug_tuple("Wasm").field(&p.digest).finish(),
            PluginCode::Native(_) => f.write_str("Native"),
        }
    }
}

/// A plugin's code bound to the writer connection.
pub(crate) enum Handler {
    Wasm(Box<PluginInstance>),
    Native(NativeInstance),
}

impl Handler {
    pub(crate) fn new(config: &PluginConfig, code: PluginCode, db: &Db) -> Self {
        match code {
            PluginCode::Wasm(p) => {
                Handler::Wasm(Box::new(PluginInstance::new(p, db.shared(), db.scope())))
            }
            PluginCode::Native(p) => Handler::Native(NativeInstance::new(
                &config.name,
                p,
                &config.tables,
                db.shared(),
                db.scope(),
            )),
        }
    }

    pub(crate) fn handle(&mut self, event: &Event, event_type: &str) -> Result<Handled, Failure> {
        match self {
            Handler::Wasm(i) => i.handle(event, event_type),
            Handler::Native(n) => n.handle(event, event_type),
        }
    }

    /// Whether it handles many events per call (a contract 0.2 component).
    pub(crate) fn batches(&self) -> bool {
        matches!(self, Handler::Wasm(i) if i.batches())
    }

    /// Runs `events` in one batch call (see [`PluginInstance::handle_run`]);
    /// native code runs them one by one, stopping at the first failure.
    pub(crate) fn handle_run(
        &mut self,
        events: &[(&Event, &str)],
        careful: bool,
    ) -> Result<Vec<crate::host::batch::Done>, Failure> {
        match self {
            Handler::Wasm(i) => i.handle_run(events, careful),
            Handler::Native(n) => {
                let mut done = Vec::with_capacity(events.len());
                for (ev, ty) in events {
                    let started = std::time::Instant::now();
                    let r = n.handle(ev, ty);
                    let failed = r.is_err();
                    done.push((r, started.elapsed()));
                    if failed {
                        break;
                    }
                }
                Ok(done)
            }
        }
    }

    /// Drops what the version holds in its instance (prepared statements)
    /// when another version takes its place.
    pub(crate) fn retire(&mut self) {
        if let Handler::Wasm(i) = self {
            i.retire();
        }
    }

    /// The contract version of a component (`None` for native code).
    pub(crate) fn contract(&self) -> Option<crate::bindings::Contract> {
        match self {
            Handler::Wasm(i) => Some(i.plugin().contract),
            Handler::Native(_) => None,
        }
    }

    /// Prepared statements it holds.
    pub(crate) fn live_statements(&self) -> usize {
        match self {
            Handler::Wasm(i) => i.live_statements(),
            Handler::Native(_) => 0,
        }
    }

    pub(crate) fn migrate(&mut self, from: Option<u32>) -> Result<(), Failure> {
        match self {
            Handler::Wasm(i) => i.migrate(from),
            Handler::Native(n) => n.migrate(from),
        }
    }

    /// `sha256:<hex>` of a component, `native:<version>` for native code.
    pub(crate) fn digest(&self) -> String {
        match self {
            Handler::Wasm(i) => i.plugin().digest.clone(),
            Handler::Native(n) => format!("native:{}", n.version()),
        }
    }

    pub(crate) fn version(&self) -> String {
        match self {
            Handler::Wasm(i) => i.plugin().metadata.version.clone(),
            Handler::Native(n) => n.version(),
        }
    }

    pub(crate) fn schema(&self) -> u32 {
        match self {
            Handler::Wasm(i) => i.plugin().metadata.schema,
            Handler::Native(n) => n.schema(),
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Handler::Wasm(_) => "wasm",
            Handler::Native(_) => "native",
        }
    }

    /// Its output while the pipeline runs a pass it may abandon: `Some`
    /// for a component (whose log lines are then held), `None` for native
    /// code (which logs through the host's own `tracing`).
    pub(crate) fn output(&self) -> Option<&crate::host::held::Output> {
        match self {
            Handler::Wasm(i) => Some(i.output()),
            Handler::Native(_) => None,
        }
    }

    pub(crate) fn wasm(&self) -> Option<&Arc<LoadedPlugin>> {
        match self {
            Handler::Wasm(i) => Some(i.plugin()),
            Handler::Native(_) => None,
        }
    }
}

/// The `name@digest` stamp written into checkpoint rows.
pub(crate) fn stamp(name: &str, handler: &Handler) -> Arc<str> {
    format!("{name}@{}", handler.digest()).into()
}

/// One plugin in the pipeline.
pub(crate) struct Slot {
    pub(crate) config: PluginConfig,
    pub(crate) name: Arc<str>,
    pub(crate) active: Handler,
    pub(crate) stamp: Arc<str>,
    pub(crate) activated_at: String,
    /// The version the active one replaced, with its stamp.
    pub(crate) previous: Option<(Handler, Arc<str>)>,
    pub(crate) latency: Arc<Histogram>,
}

impl Slot {
    pub(crate) fn new(
        config: PluginConfig,
        active: Handler,
        activated_at: String,
        latency: Arc<Histogram>,
    ) -> Self {
        let name: Arc<str> = config.name.as_str().into();
        Self {
            stamp: stamp(&name, &active),
            name,
            config,
            active,
            activated_at,
            previous: None,
            latency,
        }
    }
}

/// What the pipeline tells about one of its plugins.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PluginInfo {
    /// Plugin name.
    pub name: String,
    /// `wasm` or `native`.
    pub kind: &'static str,
    /// The version it reports.
    pub version: String,
    /// Content digest of the active version.
    pub digest: String,
    /// The plugin contract it was built against (`ferry:plugin@0.2.0`);
    /// `None` for native code.
    pub contract: Option<crate::bindings::Contract>,
    /// Prepared statements its instance holds (contract 0.2).
    pub statements: usize,
    /// When it was activated (RFC 3339, UTC).
    pub activated_at: String,
    /// Event types routed to it.
    pub events: Vec<String>,
    /// Tables it is granted.
    pub tables: Vec<String>,
    /// The version it replaced, if still loaded (`ferry plugins rollback`
    /// goes back to it).
    pub previous: Option<PreviousVersion>,
    /// Probation of a freshly swapped-in version.
    pub probation: Option<ProbationInfo>,
}

/// A version kept for rollback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PreviousVersion {
    /// Its digest.
    pub digest: String,
    /// Its version.
    pub version: String,
    /// Prepared statements it still holds: none, since its instance is
    /// retired when it is replaced (it prepares them again if it comes
    /// back).
    pub statements: usize,
}

/// Where a probation stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ProbationInfo {
    /// Calls made by the new version so far.
    pub calls: u32,
    /// Events it failed that the previous version applied.
    pub regressions: u32,
    /// Calls on probation.
    pub window: u32,
    /// Tolerated share of regressions.
    pub max_error_rate: f64,
}

impl Slot {
    /// What the pipeline tells about this plugin; `probation` is its
    /// probation, if it has one.
    pub(crate) fn info(&self, probation: Option<&Probation>) -> PluginInfo {
        PluginInfo {
            name: self.name.to_string(),
            kind: self.active.kind(),
            version: self.active.version(),
            digest: self.active.digest(),
            contract: self.active.contract(),
            statements: self.active.live_statements(),
            activated_at: self.activated_at.clone(),
            events: self.config.events.clone(),
            tables: self.config.tables.clone(),
            previous: self.previous.as_ref().map(|(h, _)| PreviousVersion {
                digest: h.digest(),
                version: h.version(),
                statements: h.live_statements(),
            }),
            probation: probation.map(Probation::info),
        }
    }
}
