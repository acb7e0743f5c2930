//! A running plugin instance: reused across events, re-created after a
//! trap, with a deadline per call and the store import bound to the
//! writer connection only while the host is inside `handle` or `migrate`.

use std::sync::Arc;

use wasmtime::Store;

use super::outcome::classify;
use super::{LoadedPlugin, engine, new_store};
use crate::bindings::{HandleError, Handled, Header, Projection, WitEvent};
use crate::event::Event;
use crate::failure::{Failure, FailureKind, clip_owned};
use crate::host::call::Purpose;
use crate::host::held::Output;
use crate::host::{CallReport, HostState};
use crate::store::{AuthScope, SharedConn};

/// One live instance of a loaded plugin.
pub struct PluginInstance {
    plugin: Arc<LoadedPlugin>,
    conn: SharedConn,
    scope: AuthScope,
    store: Store<HostState>,
    bindings: Option<Projection>,
    instantiations: u64,
    /// Where its output goes; kept across re-instantiations.
    output: Output,
    /// The WIT event handed to `handle`, refilled for every event so its
    /// buffers are reused instead of allocated per event.
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
            scratch: WitEvent {
                source: String::new(),
                partition: 0,
                offset: 0,
                key: None,
                event_type: String::new(),
                payload: Vec::new(),
                headers: Vec::new(),
                timestamp_ms: None,
            },
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
        let deadline = std::time::Instant::now() + self.plugin.limits.timeout;
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
        let deadline = std::time::Instant::now() + self.plugin.limits.timeout;
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
        super::outcome::stopped(self.store.data(), &e, report, self.plugin.limits.timeout)
    }

    /// Runs `handle` for one event. On `Err` the caller must discard the
    /// event's writes (its savepoint, or the whole optimistic pass).
    pub fn handle(&mut self, event: &Event, event_type: &str) -> Result<Handled, Failure> {
        self.ensure_instantiated()?;
        fill_wit(&mut self.scratch, event, event_type);
        self.before_call(Purpose::Event(event.at(), event.timestamp_ms));
        let Some(bindings) = &self.bindings else {
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

    /// Runs `migrate(from)` inside the caller's transaction.
    pub fn migrate(&mut self, from: Option<u32>) -> Result<(), Failure> {
        self.ensure_instantiated()?;
        self.before_call(Purpose::Migrate);
        let Some(bindings) = &self.bindings else {
            return Err(Self::not_instantiated());
        };
        let result = bindings
            .ferry_plugin_handler()
            .call_migrate(&mut self.store, from);
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

/// Largest buffer kept between events; a bigger one is released after use.
const KEEP_BYTES: usize = 1 << 20;

/// Refills the reusable WIT event with `e` (reusing its allocations).
fn fill_wit(w: &mut WitEvent, e: &Event, event_type: &str) {
    if w.source != *e.source {
        w.source.clear();
        w.source.push_str(&e.source);
    }
    w.partition = e.partition;
    w.offset = e.offset;
    match (&mut w.key, &e.key) {
        (Some(k), Some(src)) => {
            k.clear();
            k.extend_from_slice(src);
        }
        (slot, src) => *slot = src.clone(),
    }
    w.event_type.clear();
    w.event_type.push_str(event_type);
    if w.payload.capacity() > KEEP_BYTES {
        w.payload = Vec::new();
    }
    w.payload.clear();
    w.payload.extend_from_slice(&e.payload);
    w.headers.truncate(e.headers.len());
    for (i, (name, value)) in e.headers.iter().enumerate() {
        match w.headers.get_mut(i) {
            Some(h) => {
                h.name.clear();
                h.name.push_str(name);
                h.value.clear();
                h.value.extend_from_slice(value);
            }
            None => w.headers.push(Header {
                name: name.clone(),
                value: value.clone(),
            }),
        }
    }
    w.timestamp_ms = e.timestamp_ms;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scratch_event_is_refilled_exactly() {
        let mut w = WitEvent {
            source: String::new(),
            partition: 0,
            offset: 0,
            key: None,
            event_type: String::new(),
            payload: Vec::new(),
            headers: Vec::new(),
            timestamp_ms: None,
        };
        let mut e = Event::new("s/t".into(), 3, 9, Some("A".into()), b"{\"x\":1}".to_vec());
        e.key = Some(b"k".to_vec());
        e.headers = vec![("h1".into(), b"v1".to_vec()), ("h2".into(), b"v2".to_vec())];
        e.timestamp_ms = Some(7);
        fill_wit(&mut w, &e, "A");
        assert_eq!((w.source.as_str(), w.partition, w.offset), ("s/t", 3, 9));
        assert_eq!(w.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(w.headers.len(), 2);
        let mut f = Event::new("s/u".into(), 1, 10, Some("B".into()), b"[]".to_vec());
        f.headers = vec![("only".into(), b"x".to_vec())];
        fill_wit(&mut w, &f, "B");
        assert_eq!((w.source.as_str(), w.event_type.as_str()), ("s/u", "B"));
        assert_eq!(w.key, None);
        assert_eq!(w.payload, b"[]");
        assert_eq!(w.headers.len(), 1);
        assert_eq!(
            (w.headers[0].name.as_str(), &w.headers[0].value[..]),
            ("only", &b"x"[..])
        );
        assert_eq!(w.timestamp_ms, None);
    }
}
