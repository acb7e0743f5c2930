//! `/dead-letters`: list, show, retry through the current plugin versions,
//! purge.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::{answer, authorize, control_error, error};
use crate::control::{Command, Control, ControlError};
use crate::store::{DeadLetter, dead_letter, open_read_only};

fn summary(d: &DeadLetter) -> serde_json::Value {
    json!({
        "id": d.id,
        "source": d.event.source.as_ref(),
        "partition": d.event.partition,
        "offset": d.event.offset,
        "event_type": d.event.event_type,
        "plugin": d.plugin,
        "error_class": d.error_class,
        "error_message": d.error_message,
        "attempts": d.attempts,
        "last_failed_at": d.last_failed_at,
    })
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
pub(super) async fn show(State(c): State<Arc<ApiState>>, Path(id): Path<i64>) -> Response {
    match with_db(&c, move |conn| {
        dead_letter::get(conn, id).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(Some(d)) => {
            let mut body = summary(&d);
            let text = |b: &[u8]| match std::str::from_utf8(b) {
                Ok(t) => json!({ "text": t }),
                Err(_) => json!({ "hex": hex::encode(b) }),
            };
            if let Some(o) = body.as_object_mut() {
                o.insert("payload".into(), text(&d.event.payload));
                o.insert(
                    "key".into(),
                    d.event.key.as_deref().map_or(json!(null), text),
                );
                o.insert(
                    "headers".into(),
                    d.event
                        .headers
                        .iter()
                        .map(|(k, v)| json!({ "name": k, "value": text(v) }))
                        .collect(),
                );
                o.insert("plugin_digest".into(), json!(d.plugin_digest));
                o.insert("first_failed_at".into(), json!(d.first_failed_at));
                o.insert("timestamp_ms".into(), json!(d.event.timestamp_ms));
            }
            axum::Json(body).into_response()
        }
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

/// Body of `POST /dead-letters/retry`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetryMany {
    /// Dead letter ids; absent with `all: true` for every one.
    #[serde(default)]
    ids: Vec<i64>,
    /// Every dead letter (of `source`, if given).
    #[serde(default)]
    all: bool,
    /// With `all`: only this source.
    #[serde(default)]
    source: Option<String>,
}

/// `POST /dead-letters/retry` with `{"ids": […]}` or `{"all": true,
/// "source": …}`: retried in offset order per key; a key whose dead letter
/// fails again holds back its later ones.
pub(super) async fn retry_many(
    State(c): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: axum::Json<RetryMany>,
) -> Response {
    if let Err(r) = authorize(&c, &headers) {
        return *r;
    }
    let RetryMany { ids, all, source } = body.0;
    if all != ids.is_empty() {
        return error(StatusCode::BAD_REQUEST, "give either `ids` or `all: true`");
    }
    let ids = if all {
        match with_db(&c, move |conn| {
            dead_letter::list(conn, source.as_deref()).map_err(|e| e.to_string())
        })
        .await
        {
            Ok(all) => all.into_iter().map(|d| d.id).collect(),
            Err(r) => return r,
        }
    } else {
        ids
    };
    redrive(&c, ids).await
}

/// `DELETE /dead-letters/{id}`.
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
        Ok(Ok(true)) => axum::Json(json!({ "purged": id })).into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
