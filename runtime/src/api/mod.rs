//! The HTTP API of `ferry run` on one listener: `/health/live`,
//! `/health/ready`, `/metrics` (Prometheus text) and `/sources`.
//!
//! It runs on its own thread with a single-threaded Tokio runtime and only
//! reads the [`Status`] the loop publishes; a slow client never touches the
//! pipeline.

mod histogram;
pub mod metrics;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use histogram::Histogram;
pub use status::{PartitionView, PluginView, Status};

/// A running API server; dropping it shuts the listener down.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Binds `listen` (synchronously, so a taken port is reported here)
    /// and serves `status` on a background thread.
    pub fn start(listen: &str, status: Arc<Status>) -> anyhow::Result<Self> {
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
        let app = router(status);
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

fn router(status: Arc<Status>) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/sources", get(sources))
        .route("/plugins", get(plugins))
        .with_state(status)
}

fn verdict(r: Result<(), String>) -> Response {
    match r {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn live(State(s): State<Arc<Status>>) -> Response {
    verdict(s.live())
}

async fn ready(State(s): State<Arc<Status>>) -> Response {
    verdict(s.ready())
}

async fn metrics_text(State(s): State<Arc<Status>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&s),
    )
        .into_response()
}

async fn sources(State(s): State<Arc<Status>>) -> Response {
    axum::Json(s.partitions()).into_response()
}

async fn plugins(State(s): State<Arc<Status>>) -> Response {
    axum::Json(s.plugins()).into_response()
}
