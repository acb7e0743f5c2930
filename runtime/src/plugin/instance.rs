//! A running plugin instance: reused across events, re-created after a
//! trap, with a deadline per call (per event in a 0.2 batch call) and the
//! store import bound to the writer connection only while the host is
//! inside `handle`, `handle-batch` or `migrate`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::Resource;

use super::versions::Bound;
use super::wit_event::{empty, fill_wit};
use super::{LoadedPlugin, engine, new_store};
use crate::bindings::{HandleError, Handled, WitEvent};
use crate::event::Event;
use crate::failure::{Failure, FailureKind, clip_owned};
use crate::host::batch::{Done, incomplete};
use crate::host::call::Purpose;
use crate::host::held::Output;
use crate::host::outcome::classify;
use crate::host::{CallReport, HostState};
use crate::store::{AuthScope, SharedConn};

/// One live instance of a loaded plugin.
pub struct PluginInstance {
    plugin: Arc<LoadedPlugin>,
    conn: SharedConn,
    scope: AuthScope,
    store: Store<HostState>,
    bindings: Option<Bound>,
    instantiations: u64,
    /// Where its output goes; kept across re-instantiations.
    output: Output,
    /// The 0.1 event record handed to `handle`, refilled for every event.
    scratch: WitEvent,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("plugin", &self.plugin.name)
            .finish_non_exhaustive()
    }
}

impl PluginInstance {
    /// An instance of `plugin` whose store import writes through `conn`.
    /// Instantiation happens on first use.
    pub fn new(plugin: Arc<LoadedPlugin>, conn: SharedConn, scope: AuthScope) -> Self {
        let output = Output::new(Arc::clone(&plugin.name));
        let store = Self::fresh_store(&plugin, &conn, &scope, &output);
        Self {
            plugin,
            conn,
            scope,
            store,
            bindings: None,
            instantiations: 0,
            output,
            scratch: empty(),
        }
    }

    fn fresh_store(
        plugin: &LoadedPlugin,
        conn: &SharedConn,
        scope: &AuthScope,
        output: &Output,
    ) -> Store<HostState> {
        new_store(
            &plugin.engine,
            &plugin.name,
            &plugin.digest,
            Some(Arc::clone(conn)),
            scope.clone(),
            &plugin.grant,
            plugin.limits,
            output.clone(),
        )
    }

    /// Its log and stdout/stderr lines (see [`Output::hold`]).
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// How many times the instance was (re-)created.
    pub fn instantiations(&self) -> u64 {
        self.instantiations
    }

    /// Prepared statements it holds now (contract 0.2).
    pub fn live_statements(&self) -> usize {
        self.store.data().live_statements()
    }

    /// Whether it handles many events per call (contract 0.2).
    pub fn batches(&self) -> bool {
        self.plugin.contract == crate::bindings::Contract::V0_2
    }

    /// Drops the running instance and everything it holds (its prepared
    /// statements are finalized); the next call starts a fresh one. Done to
    /// a version when another takes its place.
    pub fn retire(&mut self) {
        self.bindings = None;
        self.store = Self::fresh_store(&self.plugin, &self.conn, &self.scope, &self.output);
    }

    fn ensure_instantiated(&mut self) -> Result<(), Failure> {
        if self.bindings.is_some() {
            return Ok(());
        }
        // A trapped instance may hold corrupt state: start from a new store.
        if self.instantiations > 0 {
            self.store = Self::fresh_store(&self.plugin, &self.conn, &self.scope, &self.output);
        }
        self.store
            .set_epoch_deadline(engine::deadline_ticks(self.plugin.limits.timeout));
        let deadline = Instant::now() + self.plugin.limits.timeout;
        self.store
            .data_mut()
            .call
            .begin(Purpose::Load, Some(deadline));
        let b = self.plugin.pre.instantiate(&mut self.store).map_err(|e| {
            Failure::new(
                FailureKind::Trap,
                format!("instantiating the plugin failed: {e:#}"),
            )
        })?;
        self.instantiations += 1;
        self.bindings = Some(b);
        Ok(())
    }

    fn not_instantiated() -> Failure {
        Failure::new(FailureKind::Trap, "the plugin instance is not available")
    }

    fn before_call(&mut self, purpose: Purpose) {
        let deadline = Instant::now() + self.plugin.limits.timeout;
        let data = self.store.data_mut();
        data.limiter.reset();
        data.call.begin(purpose, Some(deadline));
        data.stderr.take_recent();
        data.store.begin_call(Some(deadline));
        self.store
            .set_epoch_deadline(engine::deadline_ticks(self.plugin.limits.timeout));
    }

    fn after_call(&mut self) -> CallReport {
        self.store.data_mut().store.end_call()
    }

    /// Classifies an error raised by wasmtime during a call (a trap) and
    /// drops the instance so the next call starts fresh.
    fn trapped(&mut self, e: wasmtime::Error, report: CallReport) -> Failure {
        self.bindings = None;
        crate::host::outcome::stopped(self.store.data(), &e, report, self.plugin.limits.timeout)
    }

    /// Runs one event. On `Err` the caller must discard the event's writes
    /// (its savepoint, or the whole optimistic pass).
    pub fn handle(&mut self, event: &Event, event_type: &str) -> Result<Handled, Failure> {
        if self.batches() {
            let mut done = self.handle_run(&[(event, event_type)], false)?;
            return match done.pop() {
                Some((result, _)) => result,
                None => Err(incomplete(None)),
            };
        }
        self.ensure_instantiated()?;
        fill_wit(&mut self.scratch, event, event_type);
        self.before_call(Purpose::Event(event.at(), event.timestamp_ms));
        let Some(Bound::V0_1(bindings)) = &self.bindings else {
            return Err(Self::not_instantiated());
        };
        let result = bindings
            .ferry_plugin_handler()
            .call_handle(&mut self.store, &self.scratch);
        let report = self.after_call();
        match result {
            Ok(Ok(Handled::Skipped(reason))) => Ok(Handled::Skipped(clip_owned(reason))),
            Ok(Ok(handled)) => Ok(handled),
            Ok(Err(err)) => Err(classify(err, report, self.plugin.limits.timeout)),
            Err(trap) => Err(self.trapped(trap, report)),
        }
    }

    /// Runs `events` (each with the type it was routed by) in one
    /// `handle-batch` call (contract 0.2). Returns the outcome of every
    /// event the plugin completed, in order, followed by the failure of the
    /// event it was handling if the call ended there (a trap, an early
    /// return); the call stops at the first failure, so events after the
    /// returned ones were not handled. `careful`: the host opens a
    /// savepoint per event and keeps or discards each event's writes
    /// itself (otherwise the caller decides about the whole pass). An `Err`
    /// is a failure of the whole call: the batch cannot commit.
    pub fn handle_run(
        &mut self,
        events: &[(&Event, &str)],
        careful: bool,
    ) -> Result<Vec<Done>, Failure> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if let Err(f) = self.ensure_instantiated() {
            return Ok(vec![(Err(f), Duration::ZERO)]);
        }
        let timeout = self.plugin.limits.timeout;
        self.store.data_mut().run.load(events, careful, timeout);
        self.store
            .set_epoch_deadline(engine::deadline_ticks(timeout));
        self.store.data_mut().call.begin(
            Purpose::Event(events[0].0.at(), events[0].0.timestamp_ms),
            Some(Instant::now() + timeout),
        );
        let Some(Bound::V0_2(bindings)) = &self.bindings else {
            return Ok(vec![(Err(Self::not_instantiated()), Duration::ZERO)]);
        };
        let result = bindings
            .ferry_plugin_handler()
            .call_handle_batch(&mut self.store, Resource::new_borrow(0));
        let finished = self.store.data_mut().run.finish();
        let mut done = finished.done;
        if finished.current {
            let took = self.store.data().event_took();
            let report = self.after_call();
            let failure = match result {
                Err(trap) => self.trapped(trap, report),
                Ok(()) => incomplete(finished.violation),
            };
            if finished.careful {
                self.store.data_mut().settle_event(false);
            }
            done.push((Err(failure), took));
        } else {
            self.after_call();
            if let Err(trap) = result {
                // A trap between events (no event current): the next one
                // would have been handed out; it is not handled.
                let failure = self.trapped(trap, CallReport::default());
                done.push((Err(failure), Duration::ZERO));
            } else if let Some(v) = finished.violation {
                done.push((Err(incomplete(Some(v))), Duration::ZERO));
            }
        }
        let store_error = self.store.data_mut().run.finish().store_error;
        if let Some(e) = finished.store_error.or(store_error) {
            return Err(Failure::new(FailureKind::HostTransient, e));
        }
        Ok(done)
    }

    /// Runs `migrate(from)` inside the caller's transaction.
    pub fn migrate(&mut self, from: Option<u32>) -> Result<(), Failure> {
        self.ensure_instantiated()?;
        self.before_call(Purpose::Migrate);
        let Some(bindings) = &self.bindings else {
            return Err(Self::not_instantiated());
        };
        let result = bindings.migrate(&mut self.store, from);
        let report = self.after_call();
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(classify(
                HandleError::Permanent(message),
                report,
                self.plugin.limits.timeout,
            )),
            Err(trap) => Err(self.trapped(trap, report)),
        }
    }
}
