//! librdkafka client settings for a Kafka source: ferry's fixed choices,
//! sensible bounded-memory defaults, then the user's pass-through table.

use rdkafka::ClientConfig;

use crate::config::{KafkaSourceConfig, StartFrom};

/// The client configuration for `source`, connecting to `bootstrap`.
pub fn client_config(
    source: &KafkaSourceConfig,
    bootstrap: &str,
    stats_interval_ms: u64,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    // Defaults a user may override through `librdkafka`:
    c.set("client.id", format!("ferry-{}", source.name))
        // Bounded prefetch: at most 16 MiB of fetched-but-unconsumed
        // messages, however large the topic. (`queued.min.messages` stays
        // at librdkafka's default: lowering it to 10000 cut throughput on
        // the benchmark from ~90k to ~20k events/s, the consumer starving
        // between fetches; memory is bounded by the kbytes cap anyway.)
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.wait.max.ms", "100")
        .set(
            "auto.offset.reset",
            match source.start_without_checkpoint {
                StartFrom::Latest => "latest",
                StartFrom::Earliest | StartFrom::Committed => "earliest",
            },
        )
        .set("statistics.interval.ms", stats_interval_ms.to_string());
    for (k, v) in &source.librdkafka {
        c.set(k, v);
    }
    // ferry's own, never overridable (validation refuses them in the
    // pass-through table): SQLite owns progress.
    c.set("bootstrap.servers", bootstrap)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    // librdkafka needs a group id even to assign partitions by hand; in
    // replica mode without one, a private id is used and never committed.
    let group = source.group_id.clone().unwrap_or_else(|| {
        format!(
            "ferry-replica-{}-{}-{}",
            source.name,
            std::process::id(),
            crate::event::now_ms()
        )
    });
    c.set("group.id", group);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ferry_owns_commits_and_the_user_tunes_the_rest() {
        let mut src: KafkaSourceConfig = toml::from_str(
            r#"name = "s"
brokers = "b:9092"
topics = ["t"]
group_id = "g"
librdkafka = { "security.protocol" = "ssl", "queued.max.messages.kbytes" = "1024" }"#,
        )
        .unwrap();
        src.librdkafka
            .insert("enable.auto.commit".into(), "true".into());
        let c = client_config(&src, "b:9092", 1000);
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("security.protocol"), Some("ssl"));
        assert_eq!(c.get("queued.max.messages.kbytes"), Some("1024"));
        assert_eq!(c.get("group.id"), Some("g"));
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
    }
}
