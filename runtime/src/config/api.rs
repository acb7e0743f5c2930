//! `[api]`: the HTTP listener (health, metrics, sources, plugins, dead
//! letters, read API).

use serde::Deserialize;

/// `[api]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Whether the HTTP API is served. Unset: on in `ferry run`, off when
    /// ferry is embedded as a library.
    #[serde(default)]
    pub enabled: Option<bool>,
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
    /// If set, requests that change something (`PUT /plugins/{name}`,
    /// rollbacks, dead-letter retries and purges) need the header
    /// `Authorization: Bearer <token>`. Reads never do.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Largest component `PUT /plugins/{name}` accepts, in MiB.
    #[serde(default = "default_max_upload_mb")]
    pub max_upload_mb: u64,
}

fn default_max_upload_mb() -> u64 {
    64
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
            enabled: None,
            listen: default_listen(),
            stuck_after_ms: default_stuck_after_ms(),
            ready_max_lag: default_ready_max_lag(),
            admin_token: None,
            max_upload_mb: default_max_upload_mb(),
        }
    }
}

impl ApiConfig {
    /// Adds the problems of `[api]` to `p`.
    pub fn validate(&self, p: &mut Vec<String>) {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
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
        if self
            .admin_token
            .as_ref()
            .is_some_and(|t| t.trim().is_empty())
        {
            p.push("api.admin_token must not be empty when set".into());
        }
        if !(1..=1_024).contains(&self.max_upload_mb) {
            p.push(format!(
                "api.max_upload_mb must be between 1 and 1024, not {}",
                self.max_upload_mb
            ));
        }
    }
}
