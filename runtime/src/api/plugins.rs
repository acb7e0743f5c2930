//! `/plugins`: list, one plugin, deploy a new version (`PUT` with the
//! component bytes), roll back, and the plugin history.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::{answer, authorize, control_error, error};
use crate::control::{Command, ControlError, Request};
use crate::store::history::{self, Trigger};

/// Every plugin: name, kind, version, digest, activated-at, events routed,
/// tables, counters, previous version, probation, last refusal.
pub(super) async fn list(State(c): State<Arc<ApiState>>) -> Response {
    axum::Json(c.status.plugins()).into_response()
}

/// One plugin, with its query functions.
pub(super) async fn one(State(c): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    let Some(view) = c.status.plugins().into_iter().find(|p| p.info.name == name) else {
        return error(StatusCode::NOT_FOUND, format!("no plugin named `{name}`"));
    };
    let queries = c
        .status
        .component(&name)
        .map(|(p, _)| p.queries.clone())
        .unwrap_or_default();
    let mut body = serde_json::to_value(&view).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "queries".into(),
            serde_json::to_value(queries).unwrap_or_default(),
        );
    }
    axum::Json(body).into_response()
}

/// `PUT /plugins/{name}` with the component as the body: compiled and
/// validated off the hot path, migrated and activated at a batch boundary,
/// then written over the plugin's configured file (so a restart keeps it).
/// 200 with the activation, 422 when refused (the running version keeps
/// running), 404 for an unknown plugin.
pub(super) async fn deploy(
    State(c): State<Arc<ApiState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&c, &headers) {
        return *r;
    }
    if body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "the request body must be the component (.wasm) bytes",
        );
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = c.requests.send(Request::Deploy {
        origin: format!("the body of PUT /plugins/{name}"),
        name,
        bytes: body.to_vec(),
        trigger: Trigger::Api,
        persist: true,
        reply: Some(tx),
    });
    if sent.is_err() {
        return control_error(ControlError::unavailable());
    }
    match answer(rx).await {
        Ok(a) => axum::Json(a).into_response(),
        Err(e) => control_error(e),
    }
}

/// `POST /plugins/{name}/rollback`: back to the version the active one
/// replaced (409 when there is none in this process).
pub(super) async fn rollback(
    State(c): State<Arc<ApiState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&c, &headers) {
        return *r;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    if c.commands
        .send(Command::Rollback {
            name,
            reply: Some(tx),
        })
        .is_err()
    {
        return control_error(ControlError::unavailable());
    }
    match answer(rx).await {
        Ok(a) => axum::Json(a).into_response(),
        Err(e) => control_error(e),
    }
}

/// `GET /plugins/{name}/history[?limit=N]`: activations, swaps, rollbacks
/// and refusals, newest first.
pub(super) async fn history(
    State(c): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .min(10_000);
    let db = c.db_path.clone();
    let entries = tokio::task::spawn_blocking(move || {
        let conn = crate::store::open_read_only(&db).map_err(|e| e.to_string())?;
        history::list(&conn, Some(&name), limit).map_err(|e| e.to_string())
    })
    .await;
    match entries {
        Ok(Ok(e)) => axum::Json(e).into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
