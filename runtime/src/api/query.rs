//! The read API: `GET /plugins/{name}/query/{function}?…` runs one of a
//! plugin's query functions on a read-only connection and returns its JSON,
//! with the "projection not ready" contract: when the answer is "not
//! found" and a source is still behind, 503 with `Retry-After` (computed
//! from the lag and the recent apply rate); when every source has caught
//! up, 404.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::json;

use super::ApiState;
use super::error;
use super::ops::retry_after;
use crate::control::Control;
use crate::plugin::LoadedPlugin;
use crate::plugin::query::{Answer, QueryError, QueryInstance};

/// Idle query instances kept per plugin.
const KEEP_IDLE: usize = 4;

/// Query instances of each plugin, reused across requests while the plugin
/// version they run is still the active one.
#[derive(Debug, Default)]
pub struct QueryPool {
    idle: Mutex<HashMap<String, Vec<QueryInstance>>>,
}

impl QueryPool {
    fn take(&self, plugin: &str, digest: &str) -> Option<QueryInstance> {
        let mut idle = self.idle.lock();
        let list = idle.get_mut(plugin)?;
        list.retain(|q| q.digest() == digest);
        list.pop()
    }

    fn give_back(&self, plugin: &str, q: QueryInstance) {
        let mut idle = self.idle.lock();
        let list = idle.entry(plugin.to_owned()).or_default();
        if list.len() < KEEP_IDLE {
            list.push(q);
        }
    }

    /// Runs `function` of `plugin` with `params`.
    pub fn run(
        &self,
        control: &Control,
        plugin: &Arc<LoadedPlugin>,
        tables: &[String],
        function: &str,
        params: &[(String, String)],
    ) -> Result<Answer, QueryError> {
        let name = plugin.name.to_string();
        let mut instance = match self.take(&name, &plugin.digest) {
            Some(i) => i,
            None => {
                let (conn, scope) =
                    crate::store::open_reader(&control.db_path, 5_000).map_err(|e| {
                        QueryError::Failed(crate::failure::Failure::new(
                            crate::plugin::FailureKind::HostTransient,
                            e.to_string(),
                        ))
                    })?;
                QueryInstance::new(Arc::clone(plugin), conn, scope, tables)
                    .map_err(QueryError::Failed)?
            }
        };
        let result = instance.call(function, params);
        if !matches!(result, Err(QueryError::Failed(_))) {
            self.give_back(&name, instance);
        }
        result
    }
}

fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(url_pairs).unwrap_or_default()
}

/// `application/x-www-form-urlencoded` pairs.
fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /plugins/{name}/query/{function}?param=value&…`.
pub(super) async fn handle(
    State(c): State<Arc<ApiState>>,
    Path((name, function)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some((plugin, tables)) = c.status.component(&name) else {
        let known = c.status.plugins().iter().any(|p| p.info.name == name);
        return if known {
            error(
                StatusCode::NOT_FOUND,
                format!("plugin `{name}` is not a WebAssembly plugin and has no query functions"),
            )
        } else {
            error(StatusCode::NOT_FOUND, format!("no plugin named `{name}`"))
        };
    };
    let params = parse_query(raw.as_deref());
    let state = Arc::clone(&c);
    let answer = tokio::task::spawn_blocking(move || {
        state
            .queries
            .run(&state.control, &plugin, &tables, &function, &params)
    })
    .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match answer {
        Ok(Answer::Found(v)) => axum::Json(v).into_response(),
        Ok(Answer::Rejected(e)) => {
            (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": e }))).into_response()
        }
        Ok(Answer::NotFound) => not_found(&c),
        Err(e @ QueryError::Unknown { .. }) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ QueryError::Param { .. }) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ QueryError::Failed(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// "Not found": 404 once every source has caught up, else 503 with
/// `Retry-After` (the projection may not have it yet).
fn not_found(c: &Control) -> Response {
    if c.status.caught_up() {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    let behind = c.status.total_lag().unwrap_or(1).max(1);
    let retry = retry_after(c, behind);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, retry.to_string())],
        axum::Json(json!({
            "error": "not found yet: the projection is still catching up",
            "lag": c.status.total_lag(),
            "retry_after_s": retry,
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            url_pairs("id=a%20b&ids=1,2&x=%E2%9C%93&flag&p=a+b"),
            vec![
                ("id".into(), "a b".into()),
                ("ids".into(), "1,2".into()),
                ("x".into(), "✓".into()),
                ("flag".into(), String::new()),
                ("p".into(), "a b".into()),
            ]
        );
        assert_eq!(decode("%zz%4"), "%zz%4");
    }
}
