//! `[api]`: the HTTP listener of `ferry run` (health, metrics, sources).

use serde::Deserialize;

/// `[api]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Whether `ferry run` serves the HTTP API.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Address the API listens on (`host:port`; port 0 picks a free one,
    /// printed at start).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `/health/live` fails when the loop has not turned, or events are
    /// waiting and nothing was committed, for this long (milliseconds).
    #[serde(default = "default_stuck_after_ms")]
    pub stuck_after_ms: u64,
    /// `/health/ready` needs every partition's lag at or below this many
    /// events.
    #[serde(default = "default_ready_max_lag")]
    pub ready_max_lag: u64,
}

fn default_enabled() -> bool {
    true
}
fn default_listen() -> String {
    "127.0.0.1:9464".to_owned()
}
fn default_stuck_after_ms() -> u64 {
    60_000
}
fn default_ready_max_lag() -> u64 {
    1_000
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            listen: default_listen(),
            stuck_after_ms: default_stuck_after_ms(),
            ready_max_lag: default_ready_max_lag(),
        }
    }
}

impl ApiConfig {
    /// Adds the problems of `[api]` to `p`.
    pub fn validate(&self, p: &mut Vec<String>) {
        if self.enabled && self.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!(
                "api.listen must be an IP address and port such as \"127.0.0.1:9464\", not {:?}",
                self.listen
            ));
        }
        if !(100..=3_600_000).contains(&self.stuck_after_ms) {
            p.push(format!(
                "api.stuck_after_ms must be between 100 and 3600000, not {}",
                self.stuck_after_ms
            ));
        }
    }
}
