//! The read API: `GET /plugins/{name}/query/{function}?…` runs one of a
//! plugin's query functions on a read-only connection and returns its JSON,
//! with the "projection not ready" contract: when the answer is "not
//! found" and a source is still behind, 503 with `Retry-After` (computed
//! from the lag and the recent apply rate); when every source has caught
//! up, 404.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

use super::ApiState;
use super::error;
use super::ops::retry_after;
use super::problem::{NOT_READY_TYPE, Problem};
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
#[utoipa::path(get, path = "/plugins/{name}/query/{function}", tag = "read",
    params(
        ("name" = String, Path, description = "The plugin's name."),
        ("function" = String, Path, description = "One of its query functions (`GET /plugins/{name}` lists them with their WIT signatures)."),
        ("params" = Option<std::collections::HashMap<String, String>>, Query, style = Form, explode, description = "The function's parameters by name: strings, numbers, booleans, chars and enums as text, `list<…>` repeated or comma-separated, `option<…>` may be left out, anything else as JSON."),
    ),
    responses(
        (status = 200, description = "The function's result as JSON: records are objects with their WIT field names, options `null` or the value, variants `{\"case\": payload}`.", body = serde_json::Value),
        (status = 400, description = "A parameter is missing or does not parse, or the function returned `err` (its value is in `error`).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not found, and every source has caught up; or no such plugin or function.", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The query call failed (a trap, its deadline, its memory cap).", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Projection not ready: not found while a source is behind (`retryAfterSeconds`, `lag`, `Retry-After`).", body = Problem, content_type = "application/problem+json"),
    ))]
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
            let detail = match &e {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Problem::new(StatusCode::BAD_REQUEST, detail)
                .typed(
                    "urn:ferry:problem:query-rejected",
                    "The query function rejected the request.",
                )
                .with("error", e)
                .into_response()
        }
        Ok(Answer::NotFound) => not_found(&c, &name),
        Err(e @ QueryError::Unknown { .. }) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ QueryError::Param { .. }) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ QueryError::Failed(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// "Not found": 404 once every source has caught up, else 503 "Projection
/// not ready." with `Retry-After` (the projection may not have it yet).
fn not_found(c: &Control, plugin: &str) -> Response {
    if c.status.caught_up() {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    let lag = c.status.total_lag();
    let retry = retry_after(c, lag.unwrap_or(1).max(1));
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "not found yet: the {plugin} projection is still catching up ({} events behind)",
            lag.map_or_else(|| "an unknown number of".to_owned(), |l| l.to_string())
        ),
    )
    .typed(NOT_READY_TYPE, "Projection not ready.")
    .retry_after(retry)
    .with("plugin", plugin)
    .with("lag", lag)
    .with("retry_after_s", retry)
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
