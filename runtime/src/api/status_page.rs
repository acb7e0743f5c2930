//! `GET /`: the status page, one dependency-free HTML file
//! (`status.html`, compiled in). It shows sources and partitions,
//! plugins, recent swaps and refusals, dead letters with retry and purge,
//! and a lag sparkline it samples itself, all read from this API; its
//! actions send the admin token typed into it, so protected mode and the
//! token apply to them as to any client.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page.
const PAGE: &str = include_str!("status.html");

/// `GET /`: the status page.
#[utoipa::path(get, path = "/", tag = "operations",
    responses((status = 200, description = "The status page (HTML; it reads this API from the browser).", body = String, content_type = "text/html")))]
pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}
