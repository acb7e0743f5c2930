//! `/dead-letters`: list, show, retry through the current plugin versions,
//! purge.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::{Guarded, Problem, answer, authorize, control_error, error};
use crate::control::Redriven;
use crate::control::{Command, Control, ControlError};
use crate::store::{DeadLetter, dead_letter, open_read_only};

/// One dead letter as `GET /dead-letters` lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct DeadLetterSummary {
    /// Its id.
    id: i64,
    /// The checkpoint key of the source it came from.
    source: String,
    /// Partition.
    partition: i32,
    /// Offset (or feed sequence number).
    offset: i64,
    /// The event type it was routed by, when known.
    event_type: Option<String>,
    /// The plugin that failed it, if any.
    plugin: Option<String>,
    /// Failure class (`permanent`, `retryable`, `trap`, `timeout`,
    /// `memory`, `gap`, …).
    error_class: String,
    /// What went wrong.
    error_message: String,
    /// Attempts made.
    attempts: u32,
    /// Last failure (RFC 3339).
    last_failed_at: String,
}

/// Bytes as text when they are UTF-8, else as hex.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Bytes {
    /// UTF-8 text.
    Text(String),
    /// Anything else, base 16.
    Hex(String),
}

impl Bytes {
    fn of(b: &[u8]) -> Self {
        match std::str::from_utf8(b) {
            Ok(t) => Self::Text(t.to_owned()),
            Err(_) => Self::Hex(hex::encode(b)),
        }
    }
}

/// One header of a dead letter's event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct HeaderView {
    /// Header name.
    name: String,
    /// Its value.
    value: Bytes,
}

/// Everything recorded about one dead letter (`GET /dead-letters/{id}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct DeadLetterDetail {
    #[serde(flatten)]
    summary: DeadLetterSummary,
    /// The payload.
    payload: Bytes,
    /// The record key, if any.
    key: Option<Bytes>,
    /// The headers, in delivery order.
    headers: Vec<HeaderView>,
    /// Digest of the plugin version that failed it.
    plugin_digest: Option<String>,
    /// First failure (RFC 3339).
    first_failed_at: String,
    /// The event's time (milliseconds since the Unix epoch), if known.
    timestamp_ms: Option<i64>,
}

/// What `DELETE /dead-letters/{id}` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Purged {
    /// The id of the dead letter deleted.
    purged: i64,
}

fn summary(d: &DeadLetter) -> DeadLetterSummary {
    DeadLetterSummary {
        id: d.id,
        source: d.event.source.to_string(),
        partition: d.event.partition,
        offset: d.event.offset,
        event_type: d.event.event_type.clone(),
        plugin: d.plugin.clone(),
        error_class: d.error_class.clone(),
        error_message: d.error_message.clone(),
        attempts: d.attempts,
        last_failed_at: d.last_failed_at.clone(),
    }
}

fn detail(d: &DeadLetter) -> DeadLetterDetail {
    DeadLetterDetail {
        summary: summary(d),
        payload: Bytes::of(&d.event.payload),
        key: d.event.key.as_deref().map(Bytes::of),
        headers: d
            .event
            .headers
            .iter()
            .map(|(k, v)| HeaderView {
                name: k.clone(),
                value: Bytes::of(v),
            })
            .collect(),
        plugin_digest: d.plugin_digest.clone(),
        first_failed_at: d.first_failed_at.clone(),
        timestamp_ms: d.event.timestamp_ms,
    }
}

async fn with_db<T: Send + 'static>(
    c: &Control,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    let db = c.db_path.clone();
    match tokio::task::spawn_blocking(move || {
        let conn = open_read_only(&db).map_err(|e| e.to_string())?;
        f(&conn)
    })
    .await
    {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// `GET /dead-letters[?source=S]`: one summary per dead letter.
#[utoipa::path(get, path = "/dead-letters", tag = "dead-letters",
    params(("source" = Option<String>, Query, description = "Only dead letters of this source (its checkpoint key).")),
    responses(
        (status = 200, description = "One summary per dead letter.", body = [DeadLetterSummary]),
        (status = 503, description = "The store could not be read.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn list(
    State(c): State<Arc<ApiState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let source = q.get("source").cloned();
    match with_db(&c, move |conn| {
        dead_letter::list(conn, source.as_deref()).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(all) => axum::Json(all.iter().map(summary).collect::<Vec<_>>()).into_response(),
        Err(r) => r,
    }
}

/// `GET /dead-letters/{id}`: everything recorded, payload as text (or
/// base16 when not UTF-8).
#[utoipa::path(get, path = "/dead-letters/{id}", tag = "dead-letters",
    params(("id" = i64, Path, description = "The dead letter's id.")),
    responses(
        (status = 200, description = "Everything recorded about it.", body = DeadLetterDetail),
        (status = 400, description = "The id is not an integer.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No dead letter with that id.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store could not be read.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn show(State(c): State<Arc<ApiState>>, Path(id): Path<i64>) -> Response {
    match with_db(&c, move |conn| {
        dead_letter::get(conn, id).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(Some(d)) => axum::Json(detail(&d)).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {id}"),
        ),
        Err(r) => r,
    }
}

async fn redrive(c: &Control, ids: Vec<i64>) -> Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if c.commands
        .send(Command::Redrive { ids, reply: tx })
        .is_err()
    {
        return control_error(ControlError::unavailable());
    }
    match answer(rx).await {
        Ok(results) => axum::Json(results).into_response(),
        Err(e) => control_error(e),
    }
}

/// `POST /dead-letters/{id}/retry`.
#[utoipa::path(post, path = "/dead-letters/{id}/retry", tag = "dead-letters",
    params(("id" = i64, Path, description = "The dead letter's id.")), security(("admin_token" = [])),
    responses(
        (status = 200, description = "What became of it.", body = [Redriven]),
        (status = 400, description = "The id is not an integer.", body = Problem, content_type = "application/problem+json"),
        Guarded,
        (status = 404, description = "No dead letter with that id.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "ferry is not running.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn retry_one(
    State(c): State<Arc<ApiState>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&c, &headers) {
        return *r;
    }
    redrive(&c, vec![id]).await
}

/// Body of `POST /dead-letters/retry`: the dead letters named by `ids`,
/// and with `all: true` every one (of `source`, if given). `{}` names none.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RetryMany {
    /// Dead letter ids.
    #[serde(default, deserialize_with = "whole_numbers")]
    ids: Vec<i64>,
    /// Every dead letter (of `source`, if given) as well.
    #[serde(default)]
    all: bool,
    /// With `all`: only this source (its checkpoint key).
    #[serde(default)]
    source: Option<String>,
}

/// Ids as JSON numbers with no fraction: `7` and `7.0` alike (JSON Schema
/// counts both as integers).
fn whole_numbers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    use serde::de::Error as _;
    Vec::<serde_json::Number>::deserialize(d)?
        .iter()
        .map(|n| {
            n.as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| D::Error::custom(format!("{n} is not a dead letter id")))
        })
        .collect()
}

/// `POST /dead-letters/retry` with `{"ids": […]}` and/or `{"all": true,
/// "source": …}`: retried in offset order per key; a key whose dead letter
/// fails again holds back its later ones.
#[utoipa::path(post, path = "/dead-letters/retry", tag = "dead-letters", security(("admin_token" = [])),
    request_body(content = RetryMany, description = "The dead letters named by `ids`, and with `all: true` every one (of `source`, if given)."),
    responses(
        (status = 200, description = "What became of each, in the order retried.", body = [Redriven]),
        (status = 400, description = "The body is not JSON.", body = Problem, content_type = "application/problem+json"),
        Guarded,
        (status = 404, description = "An id names no dead letter.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The JSON does not have the documented shape.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "ferry is not running, or the store could not be read.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn retry_many(
    State(c): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // Authorized before the body is read: a client without the token
    // learns nothing about the body's shape.
    if let Err(r) = authorize(&c, &headers) {
        return *r;
    }
    let RetryMany {
        mut ids,
        all,
        source,
    } = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let status = if e.is_data() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::BAD_REQUEST
            };
            return error(status, format!("the body is not a retry request: {e}"));
        }
    };
    if all {
        match with_db(&c, move |conn| {
            dead_letter::list(conn, source.as_deref()).map_err(|e| e.to_string())
        })
        .await
        {
            Ok(every) => ids.extend(every.into_iter().map(|d| d.id)),
            Err(r) => return r,
        }
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return axum::Json(Vec::<Redriven>::new()).into_response();
    }
    redrive(&c, ids).await
}

/// `DELETE /dead-letters/{id}`.
#[utoipa::path(delete, path = "/dead-letters/{id}", tag = "dead-letters",
    params(("id" = i64, Path, description = "The dead letter's id.")), security(("admin_token" = [])),
    responses(
        (status = 200, description = "Deleted.", body = Purged),
        (status = 400, description = "The id is not an integer.", body = Problem, content_type = "application/problem+json"),
        Guarded,
        (status = 404, description = "No dead letter with that id.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is busy or could not be written.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn purge(
    State(c): State<Arc<ApiState>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&c, &headers) {
        return *r;
    }
    let db = c.db_path.clone();
    let busy = c.api.stuck_after_ms.min(30_000);
    let deleted = tokio::task::spawn_blocking(move || -> Result<bool, String> {
        let conn = rusqlite::Connection::open(&db).map_err(|e| e.to_string())?;
        conn.busy_timeout(std::time::Duration::from_millis(busy))
            .map_err(|e| e.to_string())?;
        dead_letter::delete(&conn, id).map_err(|e| e.to_string())
    })
    .await;
    match deleted {
        Ok(Ok(false)) => error(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {id}"),
        ),
        Ok(Ok(true)) => axum::Json(Purged { purged: id }).into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
