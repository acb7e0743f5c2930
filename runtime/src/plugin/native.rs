//! Native projections: projection logic compiled into the host instead of
//! a WebAssembly component, for embedding hosts that trust their own code
//! and for the benchmark that measures what the sandbox costs.
//!
//! A native projection goes through the same pipeline as a component: the
//! same routing, per-event rollback, checkpoint in the batch transaction,
//! retries and dead letters, and the same authorizer confining it to its
//! granted tables. It is not sandboxed otherwise (no deadline, no memory
//! cap): it is the host's own code. A panic fails the event like a trap.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use rusqlite::Connection;

use crate::bindings::{HandleError, Handled};
use crate::event::Event;
use crate::failure::{Failure, FailureKind};
use crate::store::{AuthScope, Grant, SharedConn};

/// Projection logic running natively in the host.
pub trait NativeProjection: Send + 'static {
    /// The projection's version, shown like a plugin's.
    fn version(&self) -> String;
    /// The schema version `migrate` brings its tables to.
    fn schema(&self) -> u32;
    /// Creates or alters its tables (inside the activation transaction).
    fn migrate(&mut self, conn: &Connection, from: Option<u32>) -> Result<(), String>;
    /// Applies one event; an `Err` rolls back its writes (and only those).
    /// Like a component's `handle`, it may be called again for an event
    /// whose first call's writes were rolled back with its batch.
    fn handle(
        &mut self,
        conn: &Connection,
        event: &Event,
        event_type: &str,
    ) -> Result<Handled, HandleError>;
}

/// A native projection bound to the writer connection.
pub struct NativeInstance {
    name: Arc<str>,
    projection: Box<dyn NativeProjection>,
    conn: SharedConn,
    scope: AuthScope,
    grant: Arc<Grant>,
}

impl std::fmt::Debug for NativeInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeInstance")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NativeInstance {
    /// Binds `projection`, named `name` and granted `tables`, to `conn`.
    pub fn new(
        name: &str,
        projection: Box<dyn NativeProjection>,
        tables: &[String],
        conn: SharedConn,
        scope: AuthScope,
    ) -> Self {
        Self {
            name: name.into(),
            grant: Arc::new(Grant::new(name, tables)),
            projection,
            conn,
            scope,
        }
    }

    /// Its version.
    pub fn version(&self) -> String {
        self.projection.version()
    }

    /// Its schema version.
    pub fn schema(&self) -> u32 {
        self.projection.schema()
    }

    /// Runs `handle` under the plugin's grant.
    pub fn handle(&mut self, event: &Event, event_type: &str) -> Result<Handled, Failure> {
        let Self {
            projection,
            conn,
            scope,
            grant,
            ..
        } = self;
        let conn = conn.lock();
        let (result, denial) = scope.as_plugin(grant, || {
            catch_unwind(AssertUnwindSafe(|| {
                projection.handle(&conn, event, event_type)
            }))
        });
        match result {
            Ok(Ok(h)) => Ok(h),
            Ok(Err(e)) => Err(match (e, denial) {
                (HandleError::Retryable(m) | HandleError::Permanent(m), Some(d)) => {
                    Failure::new(FailureKind::Denied, format!("{m} ({d})"))
                }
                (HandleError::Retryable(m), None) => Failure::new(FailureKind::Retryable, m),
                (HandleError::Permanent(m), None) => Failure::new(FailureKind::Permanent, m),
            }),
            Err(panic) => Err(Failure::new(FailureKind::Trap, panic_message(&*panic))),
        }
    }

    /// Runs `migrate` under the plugin's grant.
    pub fn migrate(&mut self, from: Option<u32>) -> Result<(), Failure> {
        let Self {
            projection,
            conn,
            scope,
            grant,
            ..
        } = self;
        let conn = conn.lock();
        let (result, denial) = scope.as_plugin(grant, || {
            catch_unwind(AssertUnwindSafe(|| projection.migrate(&conn, from)))
        });
        match (result, denial) {
            (Ok(Ok(())), _) => Ok(()),
            (Ok(Err(m)), Some(d)) => Err(Failure::new(FailureKind::Denied, format!("{m} ({d})"))),
            (Ok(Err(m)), None) => Err(Failure::new(FailureKind::Permanent, m)),
            (Err(panic), _) => Err(Failure::new(FailureKind::Trap, panic_message(&*panic))),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    format!("the native projection panicked: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, StoreOptions};

    struct Rows;

    impl NativeProjection for Rows {
        fn version(&self) -> String {
            "1".into()
        }
        fn schema(&self) -> u32 {
            1
        }
        fn migrate(&mut self, conn: &Connection, _from: Option<u32>) -> Result<(), String> {
            conn.execute_batch("CREATE TABLE IF NOT EXISTS t(x)")
                .map_err(|e| e.to_string())
        }
        fn handle(
            &mut self,
            conn: &Connection,
            event: &Event,
            event_type: &str,
        ) -> Result<Handled, HandleError> {
            match event_type {
                "Panic" => panic!("boom at {}", event.offset),
                "Secret" => conn
                    .execute("INSERT INTO secret VALUES (1)", [])
                    .map(|_| Handled::Applied)
                    .map_err(|e| HandleError::Permanent(e.to_string())),
                _ => conn
                    .execute("INSERT INTO t VALUES (?1)", [event.offset])
                    .map(|_| Handled::Applied)
                    .map_err(|e| HandleError::Permanent(e.to_string())),
            }
        }
    }

    #[test]
    fn a_native_projection_is_confined_to_its_tables_and_a_panic_is_a_trap() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("n.db"), &StoreOptions::default()).unwrap();
        db.with(|c| c.execute_batch("CREATE TABLE secret(x)"))
            .unwrap();
        let mut n = NativeInstance::new(
            "rows",
            Box::new(Rows),
            &["t".to_owned()],
            db.shared(),
            db.scope(),
        );
        n.migrate(None).unwrap();
        let ev = |ty: &str| Event::new("s".into(), 0, 4, Some(ty.into()), Vec::new());
        assert!(matches!(n.handle(&ev("Add"), "Add"), Ok(Handled::Applied)));
        let denied = n.handle(&ev("Secret"), "Secret").unwrap_err();
        assert_eq!(denied.kind, FailureKind::Denied, "{denied}");
        assert!(denied.message.contains("`secret`"), "{denied}");
        let trap = n.handle(&ev("Panic"), "Panic").unwrap_err();
        assert_eq!(trap.kind, FailureKind::Trap);
        assert!(trap.message.contains("boom at 4"), "{trap}");
    }
}
