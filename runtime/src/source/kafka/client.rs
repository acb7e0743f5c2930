//! librdkafka client settings for a Kafka source: ferry's fixed choices,
//! sensible bounded-memory defaults, then the user's pass-through table.

use rdkafka::ClientConfig;
use rdkafka::topic_partition_list::Offset;

use crate::config::KafkaSourceConfig;

/// The client configuration for `source`, connecting to `bootstrap`.
pub fn client_config(
    source: &KafkaSourceConfig,
    bootstrap: &str,
    stats_interval_ms: u64,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    // Defaults a user may override through `librdkafka`:
    c.set("client.id", format!("ferry-{}", source.name))
        // Bounded prefetch: at most 4 MiB of fetched-but-unconsumed
        // messages, fetch responses of at most 4 MiB (256 KiB a
        // partition), however large the topic. A queued message keeps its
        // whole fetch response alive, so these bound resident memory: the
        // 10M-event soak stays near 50 MiB with them and near 95 MiB with
        // librdkafka's defaults (64 MiB, 1 MiB, 50 MiB), at the same
        // throughput (`scripts/bench`). `queued.min.messages` stays at
        // librdkafka's default: lowering it to 10000 starved the consumer
        // between fetches (~20k events/s).
        .set("queued.max.messages.kbytes", "4096")
        .set("max.partition.fetch.bytes", "262144")
        .set("fetch.max.bytes", "4194304")
        // When that cap is reached, librdkafka stops fetching for
        // `fetch.queue.backoff.ms` (1 s by default): ferry applies a batch
        // between two polls, so the cap is reached routinely and the
        // default stalled consumption (measured on the mock cluster: 1.7 s
        // instead of 1.2 s for 120k events with 25 ms of work per 5000).
        .set("fetch.queue.backoff.ms", "10")
        // How long a broker may hold a fetch when it has nothing new.
        // Brokers that answer as soon as data arrives make this a bound on
        // idle polling only; librdkafka's mock cluster holds every fetch
        // this long, so 100 put ~55 ms (p50) into every event's latency
        // there, 10 puts ~8 ms (`scripts/bench`, scenario 5).
        .set("fetch.wait.max.ms", "10")
        .set("statistics.interval.ms", stats_interval_ms.to_string());
    for (k, v) in &source.librdkafka {
        c.set(k, v);
    }
    // ferry's own, never overridable (validation refuses them in the
    // pass-through table): SQLite owns progress.
    c.set("bootstrap.servers", bootstrap)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Records of aborted transactions are never delivered, so never
        // applied; offsets that hold no event (transaction markers) are
        // passed by the consumer's position (see `status`).
        .set("isolation.level", "read_committed")
        // An offset out of range is reported to ferry instead of moving
        // the partition: a partition with a checkpoint must never jump
        // (see `out_of_range`); one without starts where
        // `start_without_checkpoint` says (`start_offset`).
        .set("auto.offset.reset", "error");
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

/// Where a partition without a checkpoint or committed group offset
/// starts under `start_without_checkpoint = "committed"`: the earliest
/// offset, or the end when the `librdkafka` passthrough sets
/// `auto.offset.reset` to `latest` (ferry itself runs librdkafka with
/// `error`, see [`client_config`]).
pub fn fallback_start(source: &KafkaSourceConfig) -> Offset {
    match source
        .librdkafka
        .get("auto.offset.reset")
        .map(String::as_str)
    {
        Some("latest" | "largest" | "end") => Offset::End,
        _ => Offset::Beginning,
    }
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
librdkafka = { "security.protocol" = "ssl", "queued.max.messages.kbytes" = "1024", "auto.offset.reset" = "latest" }"#,
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
        assert_eq!(c.get("auto.offset.reset"), Some("error"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
    }
}
