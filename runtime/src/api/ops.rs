//! Operations endpoints: health, metrics, sources, and waiting for a
//! consistency token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::{Problem, error, metrics};
use crate::control::{Control, PartitionView, StreamView};

/// 200 `ok` (text, for probes), or 503 problem details saying why not.
fn verdict(r: Result<(), String>, title: &str) -> Response {
    match r {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, why)
            .typed("urn:ferry:problem:unhealthy", title)
            .into_response(),
    }
}

#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses(
        (status = 200, description = "The loop makes progress.", body = String, content_type = "text/plain"),
        (status = 503, description = "The loop has not turned, or nothing was committed while events wait, for `api.stuck_after_ms`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn live(State(c): State<Arc<ApiState>>) -> Response {
    verdict(c.status.live(), "ferry is not live.")
}

#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Live, partitions assigned, none stopped, fenced or failing, every lag known and within `api.ready_max_lag`.", body = String, content_type = "text/plain"),
        (status = 503, description = "Not ready; `detail` names every partition that is not.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn ready(State(c): State<Arc<ApiState>>) -> Response {
    verdict(c.status.ready(), "ferry is not ready.")
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4.", body = String, content_type = "text/plain; version=0.0.4")))]
pub(super) async fn metrics_text(State(c): State<Arc<ApiState>>) -> Response {
    let db = c.db_path.clone();
    let counts = tokio::task::spawn_blocking(move || metrics::store_counts(&db))
        .await
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&c.status, &counts),
    )
        .into_response()
}

/// Every partition of every source (checkpoint, lag, state).
#[utoipa::path(get, path = "/sources", tag = "operations",
    responses((status = 200, description = "Every partition of every source.", body = [PartitionView])))]
pub(super) async fn sources(State(c): State<Arc<ApiState>>) -> Response {
    axum::Json(c.status.partitions()).into_response()
}

/// One source: kind, streams (topics and checkpoint keys), partitions.
#[utoipa::path(get, path = "/sources/{name}", tag = "operations",
    params(("name" = String, Path, description = "The source's name.")),
    responses(
        (status = 200, description = "The source.", body = SourceDetail),
        (status = 404, description = "No source of that name.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn source(State(c): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    let Some(s) = c.status.sources().into_iter().find(|s| s.name == name) else {
        return error(StatusCode::NOT_FOUND, format!("no source named `{name}`"));
    };
    let keys: Vec<&str> = s.streams.iter().map(|st| st.key.as_str()).collect();
    let partitions: Vec<_> = c
        .status
        .partitions()
        .into_iter()
        .filter(|p| keys.contains(&p.source.as_str()))
        .collect();
    axum::Json(SourceDetail {
        name: s.name,
        kind: s.kind,
        streams: s.streams,
        partitions,
    })
    .into_response()
}

/// One source as `GET /sources/{name}` shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct SourceDetail {
    /// Its name.
    name: String,
    /// `kafka` or `http-feed`.
    kind: String,
    /// Its streams: Kafka topics with their checkpoint keys, or the feed.
    streams: Vec<StreamView>,
    /// Its partitions.
    partitions: Vec<PartitionView>,
}

/// The answer of a wait whose offset was applied.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Applied {
    /// Always `true`.
    applied: bool,
    /// The source.
    source: String,
    /// The partition waited on.
    partition: i32,
    /// The offset waited for.
    offset: i64,
    /// The partition's checkpoint, at or past `offset`.
    checkpoint: Option<i64>,
}

/// Parses `5000`, `5000ms`, `5s` or `1.5s` (exactly the pattern the OpenAPI
/// document gives `timeout`); a value too large to hold is the longest wait.
fn parse_timeout(v: &str) -> Option<Duration> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let millis = |s: &str| Duration::from_millis(s.parse().unwrap_or(u64::MAX));
    if let Some(ms) = v.strip_suffix("ms") {
        return digits(ms).then(|| millis(ms));
    }
    if let Some(s) = v.strip_suffix('s') {
        let (whole, fraction) = s.split_once('.').unwrap_or((s, "0"));
        if !(digits(whole) && digits(fraction)) {
            return None;
        }
        let secs = s.parse::<f64>().ok()?.min(MAX_WAIT.as_secs_f64());
        return Some(Duration::from_secs_f64(secs));
    }
    digits(v).then(|| millis(v))
}

/// Longest `timeout` a wait accepts.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// `timeout` when none is given.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// `GET /sources/{name}/wait?offset=N[&partition=P][&topic=T][&timeout=…]`:
/// returns 200 as soon as the source's checkpoint of that partition is at
/// or past `offset` (a Kafka offset or feed sequence number the caller
/// knows it produced), or 503 with `Retry-After` when `timeout` (default
/// 10 s; milliseconds, or `…ms` / `…s`) passes first.
#[utoipa::path(get, path = "/sources/{name}/wait", tag = "operations",
    params(
        ("name" = String, Path, description = "The source's name."),
        ("offset" = i64, Query, minimum = 0, description = "The Kafka offset or feed sequence number to wait for."),
        ("partition" = Option<i32>, Query, minimum = 0, description = "The partition (default 0)."),
        ("topic" = Option<String>, Query, description = "The topic, when the source has several."),
        ("timeout" = Option<String>, Query, pattern = "^([0-9]+(ms|s)?|[0-9]+[.][0-9]+s)$", description = "How long to wait: milliseconds, or a number followed by `ms` or `s` (default 10 s, at most 300 s)."),
    ),
    responses(
        (status = 200, description = "The offset is applied.", body = Applied),
        (status = 400, description = "A parameter is missing or does not parse.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such source or topic.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not applied within the timeout (or ferry stopped): `applied: false`, the checkpoint, and `Retry-After`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn wait(
    State(c): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(offset) = q
        .get("offset")
        .and_then(|o| o.parse::<i64>().ok())
        .filter(|o| *o >= 0)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "`offset` is required: the Kafka offset or feed sequence number to wait for (0 or more)",
        );
    };
    let partition = match q.get("partition").map(|p| p.parse::<i32>()) {
        None => 0,
        Some(Ok(p)) if p >= 0 => p,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "`partition` must be a whole number, 0 or more",
            );
        }
    };
    let timeout = match q.get("timeout").map(|t| parse_timeout(t)) {
        None => DEFAULT_WAIT,
        Some(Some(t)) => t.min(MAX_WAIT),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "`timeout` must be milliseconds, or a number followed by `ms` or `s`",
            );
        }
    };
    let Some(source) = c.status.sources().into_iter().find(|s| s.name == name) else {
        return error(StatusCode::NOT_FOUND, format!("no source named `{name}`"));
    };
    let topic = q.get("topic");
    let stream = match topic {
        Some(t) => source
            .streams
            .iter()
            .find(|s| s.topic.as_deref() == Some(t.as_str())),
        None if source.streams.len() == 1 => source.streams.first(),
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("source `{name}` has several topics: name one with `topic`"),
            );
        }
    };
    let Some(stream) = stream else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "source `{name}` has no topic `{}`",
                topic.map_or("", String::as_str)
            ),
        );
    };
    let key = stream.key.clone();
    let deadline = Instant::now() + timeout;
    let mut commits = c.status.commits();
    loop {
        let checkpoint = c.status.checkpoint(&key, partition);
        if checkpoint.is_some_and(|cp| cp >= offset) {
            return axum::Json(Applied {
                applied: true,
                source: name,
                partition,
                offset,
                checkpoint,
            })
            .into_response();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let stopped = matches!(c.status.phase(), super::Phase::Stopped(_));
        if left.is_zero() || stopped {
            let retry = retry_after(
                &c,
                checkpoint.map_or(offset.saturating_add(1), |cp| offset.saturating_sub(cp)),
            );
            let detail = if stopped {
                "ferry stopped before the offset was applied"
            } else {
                "the offset was not applied within the timeout"
            };
            return Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail)
                .typed(
                    "urn:ferry:problem:not-applied-yet",
                    "Offset not applied yet.",
                )
                .retry_after(retry)
                .with("applied", false)
                .with("source", name)
                .with("partition", partition)
                .with("offset", offset)
                .with("checkpoint", checkpoint)
                .into_response();
        }
        let _ = tokio::time::timeout(left, commits.changed()).await;
    }
}

/// Seconds a caller should wait for `behind` events to be applied, from
/// the recent apply rate (at least 1, at most 60).
pub(crate) fn retry_after(c: &Control, behind: i64) -> u64 {
    let behind = behind.max(1) as f64;
    let secs = match c.status.apply_rate() {
        Some(rate) if rate > 0.0 => (behind / rate).ceil(),
        _ => 1.0,
    };
    (secs as u64).clamp(1, 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_with_and_without_units() {
        assert_eq!(parse_timeout("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("soon"), None);
        assert_eq!(parse_timeout("-1s"), None);
        assert_eq!(parse_timeout(" 5"), None);
        assert_eq!(parse_timeout("1e3s"), None);
        assert_eq!(parse_timeout("1.s"), None);
        assert_eq!(parse_timeout(""), None);
        assert_eq!(
            parse_timeout("99999999999999999999999"),
            Some(Duration::from_millis(u64::MAX))
        );
        assert_eq!(parse_timeout("99999999999999999999999s"), Some(MAX_WAIT));
    }

    /// The form of `timeout` the parser takes: milliseconds, `…ms`, or
    /// seconds `…s` (with a fraction).
    const TIMEOUT_PATTERN: &str = "^([0-9]+(ms|s)?|[0-9]+[.][0-9]+s)$";

    #[test]
    fn the_openapi_document_gives_the_timeout_form_that_is_parsed() {
        let doc: serde_json::Value = serde_json::from_str(&crate::api::openapi::json()).unwrap();
        let params = doc["paths"]["/sources/{name}/wait"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let timeout = params.iter().find(|p| p["name"] == "timeout").unwrap();
        assert_eq!(timeout["schema"]["pattern"], TIMEOUT_PATTERN);
    }
}
