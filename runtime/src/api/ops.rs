//! Operations endpoints: health, metrics, sources, and waiting for a
//! consistency token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::{error, metrics};
use crate::control::Control;

fn verdict(r: Result<(), String>) -> Response {
    match r {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

pub(super) async fn live(State(c): State<Arc<ApiState>>) -> Response {
    verdict(c.status.live())
}

pub(super) async fn ready(State(c): State<Arc<ApiState>>) -> Response {
    verdict(c.status.ready())
}

pub(super) async fn metrics_text(State(c): State<Arc<ApiState>>) -> Response {
    let db = c.db_path.clone();
    let counts = tokio::task::spawn_blocking(move || metrics::store_counts(&db))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&c.status, &counts),
    )
        .into_response()
}

/// Every partition of every source (checkpoint, lag, state).
pub(super) async fn sources(State(c): State<Arc<ApiState>>) -> Response {
    axum::Json(c.status.partitions()).into_response()
}

/// One source: kind, streams (topics and checkpoint keys), partitions.
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
    axum::Json(serde_json::json!({
        "name": s.name,
        "kind": s.kind,
        "streams": s.streams,
        "partitions": partitions,
    }))
    .into_response()
}

/// Parses `5000`, `5000ms` or `5s`.
fn parse_timeout(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Some(ms) = v.strip_suffix("ms") {
        return ms.trim().parse().ok().map(Duration::from_millis);
    }
    if let Some(s) = v.strip_suffix('s') {
        return s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
    }
    v.parse().ok().map(Duration::from_millis)
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
pub(super) async fn wait(
    State(c): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(offset) = q.get("offset").and_then(|o| o.parse::<i64>().ok()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "`offset` is required: the Kafka offset or feed sequence number to wait for",
        );
    };
    let partition = match q.get("partition").map(|p| p.parse::<i32>()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "`partition` must be an integer"),
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
            return axum::Json(serde_json::json!({
                "applied": true, "source": name, "partition": partition,
                "offset": offset, "checkpoint": checkpoint,
            }))
            .into_response();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let stopped = matches!(c.status.phase(), super::Phase::Stopped(_));
        if left.is_zero() || stopped {
            let retry = retry_after(&c, checkpoint.map_or(offset + 1, |cp| offset - cp));
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, retry.to_string())],
                axum::Json(serde_json::json!({
                    "applied": false, "source": name, "partition": partition,
                    "offset": offset, "checkpoint": checkpoint,
                    "error": if stopped { "ferry stopped before the offset was applied" } else { "the offset was not applied within the timeout" },
                })),
            )
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
    }
}
