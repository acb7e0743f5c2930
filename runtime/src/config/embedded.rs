//! `[embedded]`: the in-process broker and its sample publisher.

use serde::Deserialize;

/// `[embedded]`: librdkafka's in-process mock cluster and a sample
/// publisher playing Catalog, for sources with `brokers = "embedded"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Partitions of each topic created on the embedded broker.
    #[serde(default = "default_embedded_partitions")]
    pub partitions: i32,
    /// Whether the sample publisher runs.
    #[serde(default = "super::default_true")]
    pub publisher: bool,
    /// Events per second the sample publisher produces.
    #[serde(default = "default_publish_rate")]
    pub publish_rate: u32,
    /// Distinct games (keys) the sample publisher creates, updates and
    /// deletes.
    #[serde(default = "default_games")]
    pub games: u32,
}

fn default_embedded_partitions() -> i32 {
    8
}
fn default_publish_rate() -> u32 {
    200
}
fn default_games() -> u32 {
    1_000
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            partitions: default_embedded_partitions(),
            publisher: true,
            publish_rate: default_publish_rate(),
            games: default_games(),
        }
    }
}

impl EmbeddedConfig {
    /// Adds every problem of this section to `p`, each naming its key.
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if !(1..=1_000).contains(&self.partitions) {
            p.push(format!(
                "embedded.partitions must be between 1 and 1000, not {}",
                self.partitions
            ));
        }
        if self.publish_rate > 1_000_000 {
            p.push(format!(
                "embedded.publish_rate must be at most 1000000 events/s, not {}",
                self.publish_rate
            ));
        }
        if self.games == 0 {
            p.push("embedded.games must be at least 1".into());
        }
    }
}
