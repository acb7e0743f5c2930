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
    /// Protected mode (on by default): when `listen` is not a loopback
    /// address and no `admin_token` is set, requests that change something
    /// are refused with 403, because anyone who reaches the port could
    /// otherwise replace projection code. `false` serves them to every
    /// client that reaches the port.
    #[serde(default = "default_protected_mode")]
    pub protected_mode: bool,
}

fn default_protected_mode() -> bool {
    true
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
            protected_mode: default_protected_mode(),
        }
    }
}

impl ApiConfig {
    /// Why protected mode refuses requests that change something, or
    /// `None` when it does not: `listen` is a loopback address, an
    /// `admin_token` is set, or `protected_mode = false`.
    pub fn protected_mode_reason(&self) -> Option<String> {
        if !self.protected_mode || self.admin_token.is_some() {
            return None;
        }
        let ip = self.listen.parse::<std::net::SocketAddr>().ok()?.ip();
        if ip.is_loopback() {
            return None;
        }
        Some(format!(
            "protected mode: the HTTP API listens on {} (not a loopback address) and api.admin_token \
             is not set, so requests that change ferry's state are refused; set api.admin_token \
             (and send `Authorization: Bearer <token>`), listen on 127.0.0.1, or set \
             api.protected_mode = false to serve them to anyone who reaches the port",
            self.listen
        ))
    }

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

#[cfg(test)]
mod tests {
    use super::ApiConfig;

    fn api(listen: &str, token: Option<&str>, protected_mode: bool) -> ApiConfig {
        ApiConfig {
            listen: listen.into(),
            admin_token: token.map(str::to_owned),
            protected_mode,
            ..ApiConfig::default()
        }
    }

    #[test]
    fn protected_mode_holds_only_on_a_reachable_listener_without_a_token() {
        let reason = api("0.0.0.0:9464", None, true).protected_mode_reason();
        assert!(
            reason.as_deref().is_some_and(|r| r.contains("0.0.0.0:9464")
                && r.contains("api.admin_token")
                && r.contains("api.protected_mode = false")),
            "{reason:?}"
        );
        assert!(
            api("[::]:9464", None, true)
                .protected_mode_reason()
                .is_some()
        );
        assert!(
            api("10.1.2.3:80", None, true)
                .protected_mode_reason()
                .is_some()
        );
        assert_eq!(
            api("127.0.0.1:9464", None, true).protected_mode_reason(),
            None
        );
        assert_eq!(api("[::1]:9464", None, true).protected_mode_reason(), None);
        assert_eq!(
            api("0.0.0.0:9464", Some("t"), true).protected_mode_reason(),
            None
        );
        assert_eq!(
            api("0.0.0.0:9464", None, false).protected_mode_reason(),
            None
        );
    }
}
