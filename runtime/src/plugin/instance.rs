//! A running plugin instance: reused across events, re-created after a
//! trap, with a deadline per call and the store import bound to the
//! writer connection only while the host is inside `handle` or `migrate`.

use std::sync::Arc;

use wasmtime::{Store, Trap};

use super::bindings::{HandleError, Handled, Header, Projection, WitEvent};
use super::failure::{Failure, FailureKind};
use super::{LoadedPlugin, engine, new_store};
use crate::event::Event;
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
        let store = Self::fresh_store(&plugin, &conn, &scope);
        Self {
            plugin,
            conn,
            scope,
            store,
            bindings: None,
            instantiations: 0,
        }
    }

    fn fresh_store(
        plugin: &LoadedPlugin,
        conn: &SharedConn,
        scope: &AuthScope,
    ) -> Store<HostState> {
        new_store(
            &plugin.engine,
            &plugin.name,
            Some(Arc::clone(conn)),
            scope.clone(),
            &plugin.grant,
            plugin.limits,
        )
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
            self.store = Self::fresh_store(&self.plugin, &self.conn, &self.scope);
        }
        self.store
            .set_epoch_deadline(engine::deadline_ticks(self.plugin.limits.timeout));
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

    fn before_call(&mut self, position: Option<String>) {
        let data = self.store.data_mut();
        data.limiter.reset();
        data.current_event = position;
        data.stderr.take_recent();
        data.store.begin_call();
        self.store
            .set_epoch_deadline(engine::deadline_ticks(self.plugin.limits.timeout));
    }

    fn after_call(&mut self) -> CallReport {
        let data = self.store.data_mut();
        data.current_event = None;
        data.store.end_call()
    }

    /// Classifies an error raised by wasmtime during a call (a trap) and
    /// drops the instance so the next call starts fresh.
    fn trapped(&mut self, e: wasmtime::Error) -> Failure {
        self.bindings = None;
        let data = self.store.data();
        let stderr = data.stderr.take_recent();
        if let Some(asked) = data.limiter.exceeded() {
            return Failure::new(
                FailureKind::Memory,
                format!(
                    "memory cap exceeded: the plugin asked for {asked} bytes of linear memory, its cap is {} bytes",
                    data.limiter.max_bytes()
                ),
            );
        }
        if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return Failure::new(
                FailureKind::Timeout,
                format!(
                    "deadline exceeded: the call ran longer than {} ms",
                    self.plugin.limits.timeout.as_millis()
                ),
            );
        }
        let what = match e.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{e}"),
        };
        let message = match stderr {
            Some(line) => format!("{what} (plugin stderr: {line})"),
            None => what,
        };
        Failure::new(FailureKind::Trap, message)
    }

    /// Runs `handle` for one event. The caller has opened the event's
    /// savepoint; on `Err` it must roll it back.
    pub fn handle(&mut self, event: &Event, event_type: &str) -> Result<Handled, Failure> {
        self.ensure_instantiated()?;
        let wit = to_wit(event, event_type);
        self.before_call(Some(event.position()));
        let Some(bindings) = &self.bindings else {
            return Err(Self::not_instantiated());
        };
        let result = bindings
            .ferry_plugin_handler()
            .call_handle(&mut self.store, &wit);
        let report = self.after_call();
        match result {
            Ok(Ok(handled)) => Ok(handled),
            Ok(Err(err)) => Err(classify(err, report)),
            Err(trap) => Err(self.trapped(trap)),
        }
    }

    /// Runs `migrate(from)` inside the caller's transaction.
    pub fn migrate(&mut self, from: Option<u32>) -> Result<(), Failure> {
        self.ensure_instantiated()?;
        self.before_call(None);
        let Some(bindings) = &self.bindings else {
            return Err(Self::not_instantiated());
        };
        let result = bindings
            .ferry_plugin_handler()
            .call_migrate(&mut self.store, from);
        let report = self.after_call();
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(match report.denied {
                Some(denied) => Failure::new(FailureKind::Denied, format!("{message} ({denied})")),
                None => Failure::new(FailureKind::Permanent, message),
            }),
            Err(trap) => Err(self.trapped(trap)),
        }
    }
}

/// Turns the plugin's own error plus what the store saw into a failure.
fn classify(err: HandleError, report: CallReport) -> Failure {
    match (err, report) {
        (
            HandleError::Permanent(m),
            CallReport {
                denied: Some(d), ..
            },
        ) => {
            let message = if m.contains(&d) {
                m
            } else {
                format!("{m} ({d})")
            };
            Failure::new(FailureKind::Denied, message)
        }
        (
            HandleError::Permanent(m) | HandleError::Retryable(m),
            CallReport {
                transient: Some(t), ..
            },
        ) => Failure::new(FailureKind::HostTransient, format!("{m} ({t})")),
        (HandleError::Retryable(m), _) => Failure::new(FailureKind::Retryable, m),
        (HandleError::Permanent(m), _) => Failure::new(FailureKind::Permanent, m),
    }
}

fn to_wit(e: &Event, event_type: &str) -> WitEvent {
    WitEvent {
        source: e.source.to_string(),
        partition: e.partition,
        offset: e.offset,
        key: e.key.clone(),
        event_type: event_type.to_owned(),
        payload: e.payload.clone(),
        headers: e
            .headers
            .iter()
            .map(|(name, value)| Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        timestamp_ms: e.timestamp_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_outranks_the_plugins_own_words() {
        let f = classify(
            HandleError::Permanent("insert failed".into()),
            CallReport {
                denied: Some("table `x` is not granted".into()),
                transient: None,
            },
        );
        assert_eq!(f.kind, FailureKind::Denied);
        assert!(f.message.contains("`x`"));
        let f = classify(
            HandleError::Permanent("db".into()),
            CallReport {
                denied: None,
                transient: Some("database is locked".into()),
            },
        );
        assert_eq!(f.kind, FailureKind::HostTransient);
        let f = classify(
            HandleError::Retryable("later".into()),
            CallReport::default(),
        );
        assert_eq!(f.kind, FailureKind::Retryable);
    }
}
