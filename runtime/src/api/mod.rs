//! The HTTP API, one listener: health, Prometheus metrics, sources and
//! consistency-token waits, plugins (list, deploy, rollback, history), the
//! read API over plugins' query functions, dead letters, the OpenAPI
//! document and the status page.
//!
//! It runs on its own thread with a single-threaded Tokio runtime; reads
//! come from the [`Status`] the loop publishes (a slow client never
//! touches the pipeline), changes go to the loop as commands carried out
//! between batches, queries run on read-only connections off the reactor.

mod dead_letters;
pub mod metrics;
pub mod openapi;
mod ops;
mod plugins;
pub mod problem;
pub mod query;
mod status_page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use problem::{Guarded, Problem};

use crate::control::{Control, ControlError, ControlErrorKind};

pub use crate::control::{
    PartitionView, Phase, PluginView, Refusal, SourceView, Status, StreamView,
};

/// What every handler sees: the loop's [`Control`] (status, commands) and
/// the API's own pool of query instances.
pub(crate) struct ApiState {
    control: Arc<Control>,
    queries: query::QueryPool,
}

impl std::ops::Deref for ApiState {
    type Target = Control;

    fn deref(&self) -> &Control {
        &self.control
    }
}

/// A running API server; dropping it shuts the listener down.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Binds `listen` (synchronously, so a taken port is reported here)
    /// and serves on a background thread.
    pub fn start(listen: &str, control: Arc<Control>) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("binding the HTTP API to {listen} (api.listen)"))?;
        listener
            .set_nonblocking(true)
            .context("configuring the HTTP API listener")?;
        let addr = listener
            .local_addr()
            .context("reading the HTTP API address")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the HTTP API runtime")?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let protected = control.api.protected_mode_reason();
        let app = router(control);
        let thread = std::thread::Builder::new()
            .name("ferry-api".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "The HTTP API listener could not be registered; the API is off.");
                            return;
                        }
                    };
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "The HTTP API stopped with an error.");
                    }
                });
            })
            .context("starting the HTTP API thread")?;
        tracing::info!(%addr, "The HTTP API is listening.");
        if let Some(why) = protected {
            tracing::warn!(%addr, "The HTTP API is in {why}.");
        }
        Ok(Self {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn router(control: Arc<Control>) -> Router {
    let max_upload =
        usize::try_from(control.api.max_upload_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let state = Arc::new(ApiState {
        control,
        queries: query::QueryPool::default(),
    });
    Router::new()
        .route("/", get(status_page::page))
        .route("/openapi.json", get(openapi::document))
        .route("/health/live", get(ops::live))
        .route("/health/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics_text))
        .route("/sources", get(ops::sources))
        .route("/sources/{name}", get(ops::source))
        .route("/sources/{name}/wait", get(ops::wait))
        .route("/plugins", get(plugins::list))
        .route("/plugins/{name}", get(plugins::one).put(plugins::deploy))
        .route("/plugins/{name}/rollback", post(plugins::rollback))
        .route("/plugins/{name}/history", get(plugins::history))
        .route("/plugins/{name}/query/{function}", get(query::handle))
        .route("/dead-letters", get(dead_letters::list))
        .route("/dead-letters/retry", post(dead_letters::retry_many))
        .route(
            "/dead-letters/{id}",
            get(dead_letters::show).delete(dead_letters::purge),
        )
        .route("/dead-letters/{id}/retry", post(dead_letters::retry_one))
        .fallback(problem::no_route)
        .layer(axum::middleware::map_response(problem::problem_layer))
        .layer(DefaultBodyLimit::max(max_upload))
        .with_state(state)
}

/// A problem details answer (`about:blank`) with `status` and `detail`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    Problem::new(status, message).into_response()
}

/// A control error as an HTTP response (problem details, with the error's
/// `kind` as an extension).
pub(crate) fn control_error(e: ControlError) -> Response {
    let status = match e.kind {
        ControlErrorKind::NotFound => StatusCode::NOT_FOUND,
        ControlErrorKind::Conflict => StatusCode::CONFLICT,
        ControlErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ControlErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    let kind = serde_json::to_value(e.kind).unwrap_or_default();
    Problem::new(status, e.message)
        .with("kind", kind)
        .into_response()
}

/// Requests that change something need `Authorization: Bearer <token>`
/// when `api.admin_token` is set (401 otherwise). Without a token, on a
/// listener that other hosts can reach, protected mode refuses them (403)
/// unless `api.protected_mode = false`.
pub(crate) fn authorize(control: &Control, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(token) = &control.api.admin_token else {
        return match control.api.protected_mode_reason() {
            Some(why) => Err(Box::new(
                Problem::new(StatusCode::FORBIDDEN, why)
                    .typed(PROTECTED_TYPE, "Protected mode.")
                    .into_response(),
            )),
            None => Ok(()),
        };
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        Ok(())
    } else {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "this request changes ferry's state and needs `Authorization: Bearer <api.admin_token>`",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"ferry\""),
        );
        Err(Box::new(r))
    }
}

/// `type` of a request refused by protected mode.
pub const PROTECTED_TYPE: &str = "urn:ferry:problem:protected-mode";

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Longest wait for the loop to carry out a control request.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(120);

/// Waits for a control request's answer.
pub(crate) async fn answer<T>(
    rx: tokio::sync::oneshot::Receiver<Result<T, ControlError>>,
) -> Result<T, ControlError> {
    match tokio::time::timeout(CONTROL_TIMEOUT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(ControlError::unavailable()),
        Err(_) => Err(ControlError::new(
            ControlErrorKind::Unavailable,
            "the run loop did not answer within 120 s",
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_in_constant_time_and_exactly() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"abcd"));
    }
}
