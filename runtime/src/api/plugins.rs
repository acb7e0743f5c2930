//! `/plugins`: list, one plugin, deploy a new version (`PUT` with the
//! component bytes), roll back, and the plugin history.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::{Guarded, Problem, answer, authorize, control_error, error};
use crate::control::PluginView;
use crate::control::{Command, ControlError, Request};
use crate::pipeline::Activation;
use crate::plugin::query::QueryFn;
use crate::store::history::Entry as HistoryEntry;
use crate::store::history::{self, Trigger};

/// Every plugin: name, kind, version, digest, activated-at, events routed,
/// tables, counters, previous version, probation, last refusal.
#[utoipa::path(get, path = "/plugins", tag = "plugins",
    responses((status = 200, description = "Every plugin.", body = [PluginView])))]
pub(super) async fn list(State(c): State<Arc<ApiState>>) -> Response {
    axum::Json(c.status.plugins()).into_response()
}

/// One plugin, with its query functions.
#[utoipa::path(get, path = "/plugins/{name}", tag = "plugins", params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "The plugin, with its query functions and their WIT signatures.", body = PluginDetail),
        (status = 404, description = "No plugin of that name.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn one(State(c): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    let Some(view) = c.status.plugins().into_iter().find(|p| p.info.name == name) else {
        return error(StatusCode::NOT_FOUND, format!("no plugin named `{name}`"));
    };
    let queries = c
        .status
        .component(&name)
        .map(|(p, _)| p.queries.clone())
        .unwrap_or_default();
    axum::Json(PluginDetail { view, queries }).into_response()
}

/// The body of `PUT /plugins/{name}`: a component's bytes (described only).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[expect(
    dead_code,
    reason = "it describes the raw body, which the handler reads as bytes"
)]
pub(super) struct ComponentBytes(Vec<u8>);

/// A plugin as `GET /plugins/{name}` shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct PluginDetail {
    #[serde(flatten)]
    view: PluginView,
    /// Its query functions (the read API), with their WIT signatures.
    queries: Vec<QueryFn>,
}

/// `PUT /plugins/{name}` with the component as the body: compiled and
/// validated off the hot path, migrated and activated at a batch boundary,
/// then written over the plugin's configured file (so a restart keeps it).
/// 200 with the activation, 422 when refused (the running version keeps
/// running), 404 for an unknown plugin.
#[utoipa::path(put, path = "/plugins/{name}", tag = "plugins", params(("name" = String, Path, description = "The plugin's name.")), security(("admin_token" = [])),
    request_body(content((ComponentBytes = "application/wasm"), (ComponentBytes = "application/octet-stream")), description = "The component (.wasm) bytes, as `application/wasm` or `application/octet-stream` (the content type is not checked)."),
    responses(
        (status = 200, description = "The new version took over.", body = Activation),
        (status = 400, description = "The body is empty.", body = Problem, content_type = "application/problem+json"),
        Guarded,
        (status = 404, description = "No plugin of that name.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A native projection: it cannot be swapped.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than `api.max_upload_mb`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Refused (not a component, wrong contract, `migrate` failed): the running version goes on.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "ferry is not running.", body = Problem, content_type = "application/problem+json"),
    ))]
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
    if crate::plugin::aot::is_artifact(&body) && c.api.admin_token.is_none() {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "a precompiled artifact is native code, not sandboxed bytecode: ferry accepts one over \
             the API only from a client holding api.admin_token (set one), or from the plugin's \
             configured file",
        )
        .typed(
            "urn:ferry:problem:artifact-needs-token",
            "Artifacts need the admin token.",
        )
        .into_response();
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
#[utoipa::path(post, path = "/plugins/{name}/rollback", tag = "plugins", params(("name" = String, Path, description = "The plugin's name.")), security(("admin_token" = [])),
    responses(
        (status = 200, description = "The previous version took over again.", body = Activation),
        Guarded,
        (status = 404, description = "No plugin of that name.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No previous version to go back to.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The previous version was refused.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "ferry is not running.", body = Problem, content_type = "application/problem+json"),
    ))]
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
#[utoipa::path(get, path = "/plugins/{name}/history", tag = "plugins",
    params(
        ("name" = String, Path, description = "The plugin's name."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "At most this many entries (default 100)."),
    ),
    responses(
        (status = 200, description = "Activations, swaps, rollbacks, rebuilds and refusals, newest first.", body = [HistoryEntry]),
        (status = 400, description = "`limit` is not a whole number from 1 to 10000.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store could not be read.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn history(
    State(c): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if (1..=10_000).contains(&l) => l,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "`limit` must be a whole number from 1 to 10000",
            );
        }
    };
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
