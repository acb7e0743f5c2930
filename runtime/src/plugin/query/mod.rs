//! Read-only query functions a plugin may export for the read API.
//!
//! A plugin exports them in an interface of its own package named
//! `queries` (e.g. `games:projection/queries`), each an ordinary WIT
//! function. The host discovers them from the component's type, calls
//! them dynamically on an instance whose `store` import is bound to a
//! read-only connection (one snapshot per call), converts the request's
//! parameters to the declared parameter types by name, and the result to
//! JSON. A top-level `option` result of `none` means "not found".

use std::sync::Arc;

use serde_json::Value as Json;
use wasmtime::Store;
use wasmtime::component::{Func, Instance, Val};

mod convert;

pub use convert::to_json;
use convert::{describe, param_value};

use super::{LoadedPlugin, engine, new_store};
use crate::failure::{Failure, FailureKind};
use crate::host::HostState;
use crate::host::call::Purpose;
use crate::store::{AuthScope, Grant, SharedConn};

/// One query function as declared.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct QueryFn {
    /// The exported interface (e.g. `games:projection/queries`).
    pub interface: String,
    /// Function name (e.g. `get-game`).
    pub name: String,
    /// Parameter names and types, in order.
    pub params: Vec<(String, String)>,
    /// Result type, if any.
    pub result: Option<String>,
}

/// Whether an exported interface name is a queries interface.
pub fn is_queries_interface(name: &str) -> bool {
    let base = name.split('@').next().unwrap_or(name);
    base.rsplit('/').next() == Some("queries") && base.contains(':')
}

/// The query functions a component exports.
pub fn discover(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Vec<QueryFn> {
    use wasmtime::component::types::ComponentItem;
    let mut out = Vec::new();
    for (iface, item) in component.component_type().exports(engine) {
        let ComponentItem::ComponentInstance(inst) = item.ty else {
            continue;
        };
        if !is_queries_interface(iface) {
            continue;
        }
        for (name, item) in inst.exports(engine) {
            if let ComponentItem::ComponentFunc(f) = item.ty {
                out.push(QueryFn {
                    interface: iface.to_owned(),
                    name: name.to_owned(),
                    params: f
                        .params()
                        .map(|(n, t)| (n.to_owned(), describe(&t)))
                        .collect(),
                    result: f.results().next().map(|t| describe(&t)),
                });
            }
        }
    }
    out
}

/// The answer of a query function.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A value (the function's result as JSON).
    Found(Json),
    /// `none`: not found.
    NotFound,
    /// `result::err`: the function rejected the request.
    Rejected(Json),
}

/// Why a query could not be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// No such function.
    #[error("plugin `{plugin}` has no query function `{name}` (its query functions: {available})")]
    Unknown {
        /// Plugin name.
        plugin: String,
        /// Asked-for function.
        name: String,
        /// The functions it has.
        available: String,
    },
    /// A parameter is missing or does not parse as its declared type.
    #[error("parameter `{name}`: {problem}")]
    Param {
        /// Parameter name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The call failed (trap, deadline, memory, denied SQL).
    #[error("the query failed: {0}")]
    Failed(Failure),
}

/// An instance of a plugin for queries, bound to a read-only connection.
pub struct QueryInstance {
    plugin: Arc<LoadedPlugin>,
    conn: SharedConn,
    store: Store<HostState>,
    instance: Instance,
}

impl std::fmt::Debug for QueryInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryInstance")
            .field("plugin", &self.plugin.name)
            .finish_non_exhaustive()
    }
}

impl QueryInstance {
    /// Instantiates `plugin` with its `store` import bound to `conn` (a
    /// read-only connection whose authorizer is `scope`) under a read-only
    /// grant of `tables`.
    pub fn new(
        plugin: Arc<LoadedPlugin>,
        conn: SharedConn,
        scope: AuthScope,
        tables: &[String],
    ) -> Result<Self, Failure> {
        let grant = Arc::new(Grant::reader(&plugin.name, tables));
        let mut store = new_store(
            &plugin.engine,
            &plugin.name,
            &plugin.digest,
            Some(Arc::clone(&conn)),
            scope,
            &grant,
            plugin.limits,
            crate::host::held::Output::new(Arc::clone(&plugin.name)),
        );
        let instance = plugin
            .pre
            .instance_pre()
            .instantiate(&mut store)
            .map_err(|e| {
                Failure::new(
                    FailureKind::Trap,
                    format!("instantiating the plugin for a query failed: {e:#}"),
                )
            })?;
        Ok(Self {
            plugin,
            conn,
            store,
            instance,
        })
    }

    /// The plugin version this instance runs.
    pub fn digest(&self) -> &str {
        &self.plugin.digest
    }

    /// Calls query function `name` with `params` (name, value) pairs from a
    /// query string. `Err(Failed)` means the instance must not be reused.
    pub fn call(&mut self, name: &str, params: &[(String, String)]) -> Result<Answer, QueryError> {
        let Some(decl) = self.plugin.queries.iter().find(|q| q.name == name).cloned() else {
            return Err(QueryError::Unknown {
                plugin: self.plugin.name.to_string(),
                name: name.to_owned(),
                available: self
                    .plugin
                    .queries
                    .iter()
                    .map(|q| format!("`{}`", q.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let func = self.func(&decl).ok_or_else(|| {
            QueryError::Failed(Failure::new(
                FailureKind::Trap,
                format!("the query function `{name}` could not be found in the instance"),
            ))
        })?;
        let ty = func.ty(&self.store);
        let mut args = Vec::new();
        for (pname, pty) in ty.params() {
            let values: Vec<&str> = params
                .iter()
                .filter(|(k, _)| k == pname)
                .map(|(_, v)| v.as_str())
                .collect();
            args.push(param_value(pname, &pty, &values)?);
        }
        let mut results = vec![Val::Bool(false); ty.results().len()];
        let fail = |f: Failure| QueryError::Failed(f);
        let timeout = self.plugin.limits.timeout;
        let deadline = std::time::Instant::now() + timeout;
        {
            let data = self.store.data_mut();
            data.limiter.reset();
            data.call
                .begin(Purpose::Query(name.to_owned()), Some(deadline));
            data.store.begin_call(Some(deadline));
        }
        self.store
            .set_epoch_deadline(engine::deadline_ticks(timeout));
        // One snapshot per call: a read transaction around it.
        let _ = self.conn.lock().execute_batch("BEGIN");
        let called = func.call(&mut self.store, &args, &mut results);
        let _ = self.conn.lock().execute_batch("ROLLBACK");
        let report = self.store.data_mut().store.end_call();
        if let Err(e) = called {
            return Err(fail(crate::host::outcome::stopped(
                self.store.data(),
                &e,
                report,
                timeout,
            )));
        }
        if report.timeout.is_some() {
            return Err(fail(crate::host::outcome::deadline_exceeded(timeout)));
        }
        if let Some(m) = report.memory {
            return Err(fail(Failure::new(FailureKind::Memory, m)));
        }
        if let Some(denied) = report.denied {
            return Err(fail(Failure::new(FailureKind::Denied, denied)));
        }
        Ok(match results.into_iter().next() {
            None => Answer::Found(Json::Null),
            Some(Val::Option(None)) => Answer::NotFound,
            Some(Val::Option(Some(v))) => Answer::Found(to_json(&v)),
            Some(Val::Result(Ok(v))) => match v.as_deref() {
                Some(Val::Option(None)) => Answer::NotFound,
                Some(Val::Option(Some(inner))) => Answer::Found(to_json(inner)),
                Some(other) => Answer::Found(to_json(other)),
                None => Answer::Found(Json::Null),
            },
            Some(Val::Result(Err(e))) => Answer::Rejected(e.as_deref().map_or(Json::Null, to_json)),
            Some(v) => Answer::Found(to_json(&v)),
        })
    }

    fn func(&mut self, decl: &QueryFn) -> Option<Func> {
        let iface = self
            .instance
            .get_export_index(&mut self.store, None, &decl.interface)?;
        let f = self
            .instance
            .get_export_index(&mut self.store, Some(&iface), &decl.name)?;
        self.instance.get_func(&mut self.store, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_interfaces_are_recognised_by_name() {
        assert!(is_queries_interface("games:projection/queries"));
        assert!(is_queries_interface("games:projection/queries@1.0.0"));
        assert!(!is_queries_interface("ferry:plugin/handler@0.1.0"));
        assert!(!is_queries_interface("queries"));
    }
}
