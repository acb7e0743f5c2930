//! The feed's HTTP side: `GET {url}?start=S&end=E` with timeouts,
//! redirects and TLS (ureq with rustls), and what each answer means.

use std::time::Duration;

use crate::config::HttpFeedSourceConfig;

/// Largest page body read (a bigger one is an error, not a memory blow-up).
const MAX_PAGE_BYTES: u64 = 256 << 20;

/// Why a page could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FetchError {
    /// 429 or 503: come back after `retry_after` (from the header) or the
    /// backoff.
    Throttled {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// Connection refused, timeout, 5xx, a broken body: retry with backoff.
    Transient(String),
    /// Another 4xx (or a redirect not followed): the source stops.
    Fatal(String),
}

/// The feed's HTTP client.
pub(super) struct Client {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
}

impl Client {
    pub(super) fn new(c: &HttpFeedSourceConfig) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(c.timeout_ms)))
            .max_redirects(c.max_redirects)
            .http_status_as_error(false)
            .user_agent(format!("ferry/{}", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: ureq::Agent::new_with_config(config),
            url: c.url.clone(),
            headers: c
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The body of the page `[start, end]`.
    pub(super) fn page(&self, start: i64, end: i64) -> Result<Vec<u8>, FetchError> {
        let mut req = self
            .agent
            .get(&self.url)
            .query("start", start.to_string())
            .query("end", end.to_string())
            .header("Accept", "application/json");
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed) => {
                return Err(FetchError::Fatal(format!(
                    "{} redirected more than max_redirects allows (or to an unusable address)",
                    self.url
                )));
            }
            Err(ureq::Error::BadUri(u)) => {
                return Err(FetchError::Fatal(format!(
                    "the feed address is not usable: {u}"
                )));
            }
            Err(e) => return Err(FetchError::Transient(e.to_string())),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        match status {
            200..=299 => resp
                .body_mut()
                .with_config()
                .limit(MAX_PAGE_BYTES)
                .read_to_vec()
                .map_err(|e| FetchError::Transient(format!("reading the page failed: {e}"))),
            429 | 503 => Err(FetchError::Throttled {
                status,
                retry_after,
            }),
            300..=399 => Err(FetchError::Fatal(format!(
                "the feed answered {status} (a redirect ferry did not follow: raise max_redirects or fix the url)"
            ))),
            400..=499 => {
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(4096)
                    .read_to_string()
                    .unwrap_or_default();
                Err(FetchError::Fatal(format!(
                    "the feed answered {status}{}{}",
                    if body.trim().is_empty() { "" } else { ": " },
                    body.trim().chars().take(300).collect::<String>()
                )))
            }
            _ => Err(FetchError::Transient(format!("the feed answered {status}"))),
        }
    }
}

/// `Retry-After`: seconds, or an HTTP date (at most one hour away).
pub(super) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(v).ok()?;
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(d.min(Duration::from_secs(3_600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("99999"), Some(Duration::from_secs(3_600)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let d = parse_retry_after(&soon).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
