//! RFC 9457 problem details: every error answer of the API is
//! `application/problem+json` with `type`, `title`, `status` and `detail`,
//! plus extensions. The fields the API answered before problem details
//! (`error`, and `kind` for refused commands) stay in the body, so clients
//! written against them keep working.
//!
//! Handlers build a [`Problem`]; [`problem_layer`] turns every other error
//! answer (axum's own rejections of a malformed path, query or body, an
//! unknown route, a wrong method, an oversized body) into one as well.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// The media type of a problem details body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `type` of the read API's "not there yet" answer.
pub const NOT_READY_TYPE: &str = "urn:ferry:problem:projection-not-ready";

/// The members RFC 9457 defines; an extension never replaces one.
const STANDARD: [&str; 5] = ["type", "title", "status", "detail", "instance"];

/// One problem details answer (RFC 9457), as it is sent.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `about:blank` (then `title` is the
    /// HTTP status's reason phrase) or one of ferry's
    /// `urn:ferry:problem:…` types.
    #[serde(rename = "type")]
    kind: String,
    /// A short summary of the kind of problem.
    title: String,
    /// The HTTP status code.
    status: u16,
    /// What went wrong this time, in words.
    detail: String,
    /// The field every error answer had before problem details: the
    /// `detail` again (or, for a query function's `err`, its value).
    error: Value,
    /// Extensions of the kind of problem (for example `retryAfterSeconds`
    /// and `lag` of "Projection not ready.", `kind` of a refused command).
    #[serde(flatten)]
    extensions: Map<String, Value>,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem of the generic type `about:blank` (the title is the
    /// status's reason phrase), with `detail` saying what went wrong.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            error: Value::String(detail.clone()),
            detail,
            extensions: Map::new(),
            retry_after: None,
        }
    }

    /// A problem of its own type (a URI) and title.
    pub fn typed(mut self, kind: &str, title: &str) -> Self {
        kind.clone_into(&mut self.kind);
        title.clone_into(&mut self.title);
        self
    }

    /// Adds an extension member; RFC 9457's own members cannot be replaced
    /// this way, and `error` replaces the old field's value.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        if name == "error" {
            self.error = value.into();
        } else if !STANDARD.contains(&name) {
            self.extensions.insert(name.to_owned(), value.into());
        }
        self
    }

    /// Sets the `Retry-After` header (seconds) and the `retryAfterSeconds`
    /// extension the seed's frontends read.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self.with("retryAfterSeconds", seconds)
    }

    /// The body, as it is sent.
    pub fn body(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, body).into_response();
        let headers = r.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// How a request that changes something can be refused before it is
/// carried out (described in the OpenAPI document only).
#[derive(utoipa::IntoResponses)]
pub enum Guarded {
    /// `api.admin_token` is set and the request does not carry it.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Protected mode: the API listens on a non-loopback address without
    /// `api.admin_token`.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
}

/// Largest body of an error answer that [`problem_layer`] reads to use as
/// the problem's `detail`.
const MAX_DETAIL: usize = 16 * 1024;

/// Turns an error answer that is not problem details yet (axum's own
/// rejections, a missing route, a wrong method) into one; the text it had
/// becomes the `detail`. Other answers pass unchanged.
pub async fn problem_layer(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_DETAIL)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        match status {
            StatusCode::NOT_FOUND => "no such endpoint: see GET /openapi.json".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED => {
                "this endpoint does not take that method: see GET /openapi.json".to_owned()
            }
            s => s.canonical_reason().unwrap_or("error").to_owned(),
        }
    } else {
        text
    };
    let mut out = Problem::new(status, detail).into_response();
    // Headers such as `Allow` (405) or `WWW-Authenticate` (401) stay.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// A fallback answer for paths no route serves.
pub async fn no_route() -> Response {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no such endpoint: see GET /openapi.json",
    )
    .into_response()
}

/// Reads a response body as JSON (for tests).
#[cfg(test)]
pub(crate) async fn json_of(r: Response) -> Value {
    let b = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    serde_json::from_slice(&b).unwrap_or(Value::Null)
}

/// An empty body, for tests.
#[cfg(test)]
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_problem_has_the_rfc_9457_members_and_keeps_the_old_error_field() {
        let r = Problem::new(StatusCode::NOT_FOUND, "no plugin named `x`")
            .with("kind", "not-found")
            .into_response();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = block(json_of(r));
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Not Found");
        assert_eq!(body["status"], 404);
        assert_eq!(body["detail"], "no plugin named `x`");
        assert_eq!(body["error"], "no plugin named `x`");
        assert_eq!(body["kind"], "not-found");
    }

    #[test]
    fn retry_after_sets_the_header_and_the_extension() {
        let r = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "behind")
            .typed(NOT_READY_TYPE, "Projection not ready.")
            .retry_after(5)
            .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        let body = block(json_of(r));
        assert_eq!(body["title"], "Projection not ready.");
        assert_eq!(body["retryAfterSeconds"], 5);
        assert_eq!(body["type"], NOT_READY_TYPE);
    }

    #[test]
    fn an_extension_cannot_replace_a_standard_member() {
        let body = Problem::new(StatusCode::BAD_REQUEST, "d")
            .with("status", 200)
            .body();
        assert_eq!(body["status"], 400);
    }

    #[test]
    fn plain_error_answers_become_problems_and_others_pass() {
        let plain = (StatusCode::BAD_REQUEST, "Failed to parse the request body").into_response();
        let r = block(problem_layer(plain));
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = block(json_of(r));
        assert_eq!(body["status"], 400);
        assert_eq!(body["detail"], "Failed to parse the request body");

        let mut allow = empty(StatusCode::METHOD_NOT_ALLOWED);
        allow
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        let r = block(problem_layer(allow));
        assert_eq!(r.headers()[header::ALLOW], "GET");
        assert!(
            block(json_of(r))["detail"]
                .as_str()
                .is_some_and(|d| d.contains("method"))
        );

        let ok = (StatusCode::OK, "fine").into_response();
        let r = block(problem_layer(ok));
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}
