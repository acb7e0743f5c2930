//! `/metrics`: Prometheus text exposition format 0.0.4, written by the
//! `prometheus-client` crate from what the loop publishes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::control::Status;
use crate::pipeline::{Histogram, Outcome};

/// Resident set size of this process in bytes (Linux), if known.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Row counts read from the store for a scrape.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreCounts {
    /// Rows in `ferry_dead_letters`.
    pub dead_letters: Option<u64>,
    /// Rows in `ferry_outbox` (dead letters not yet on their topic).
    pub outbox: Option<u64>,
}

/// Counts dead letters and outbox rows (read-only; `None` on error).
pub fn store_counts(db: &Path) -> StoreCounts {
    let Ok(c) = crate::store::open_read_only(db) else {
        return StoreCounts::default();
    };
    let _ = c.busy_timeout(std::time::Duration::from_millis(500));
    let rows = |n: Result<i64, _>| n.ok().map(|n: i64| n.max(0) as u64);
    StoreCounts {
        dead_letters: rows(crate::store::dead_letter::count(&c)),
        outbox: rows(crate::store::outbox::pending(&c)),
    }
}

/// Labels of one sample, in order.
type Labels = Vec<(&'static str, String)>;

/// Every metric, read from the loop's [`Status`] and the store at scrape
/// time, as a prometheus-client collector.
#[derive(Debug)]
struct Scrape {
    status: Arc<Status>,
    store: StoreCounts,
}

/// Encodes one family of `metric_type` with a sample per `(labels, value)`.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counters(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let samples = samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
    family(encoder, name, help, MetricType::Counter, samples)
}

fn gauges(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, i64)>,
) -> Result<(), std::fmt::Error> {
    let samples = samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
    family(encoder, name, help, MetricType::Gauge, samples)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let status = &self.status;
        let snapshot = status.stats().snapshot();
        let mut retries: BTreeMap<String, u64> = BTreeMap::new();
        let mut dead: BTreeMap<String, u64> = BTreeMap::new();
        for (k, v) in &snapshot {
            match k.outcome {
                Outcome::Retried => *retries.entry(k.plugin.clone()).or_default() += v,
                Outcome::DeadLettered => *dead.entry(k.plugin.clone()).or_default() += v,
                _ => {}
            }
        }
        counters(
            &mut e,
            "ferry_events",
            "Events by plugin, event type and outcome (retried counts failed attempts).",
            snapshot.iter().map(|(k, v)| {
                let labels = vec![
                    ("plugin", k.plugin.clone()),
                    ("event_type", k.event_type.clone()),
                    ("outcome", k.outcome.as_str().to_owned()),
                ];
                (labels, *v)
            }),
        )?;
        counters(
            &mut e,
            "ferry_retries",
            "Failed attempts that were retried, by plugin.",
            retries.into_iter().map(|(p, v)| (vec![("plugin", p)], v)),
        )?;
        counters(
            &mut e,
            "ferry_dead_letters",
            "Events recorded as dead letters by this process, by plugin (`-`: no plugin).",
            dead.into_iter().map(|(p, v)| (vec![("plugin", p)], v)),
        )?;
        if let Some(n) = self.store.dead_letters {
            gauge(
                &mut e,
                "ferry_dead_letters",
                "Dead letters stored (ferry_dead_letters rows).",
                clamp(n),
            )?;
        }
        if let Some(n) = self.store.outbox {
            gauge(
                &mut e,
                "ferry_outbox_pending",
                "Dead letters queued for their dead-letter topic and not yet acknowledged.",
                clamp(n),
            )?;
        }
        family(
            &mut e,
            "ferry_handler_seconds",
            "Duration of one plugin `handle` call.",
            MetricType::Histogram,
            status
                .stats()
                .latencies()
                .into_iter()
                .map(|(plugin, h)| (vec![("plugin", plugin)], Histogram::clone(&h))),
        )?;
        let batch = e.encode_descriptor(
            "ferry_batch_commit_seconds",
            "Duration of one batch transaction, from BEGIN to COMMIT.",
            None,
            MetricType::Histogram,
        )?;
        status.batch_seconds.encode(batch)?;
        let reruns = e.encode_descriptor(
            "ferry_batch_reruns",
            "Batches applied a second time, with a savepoint per event, because a plugin failed one of their events.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(status.stats().reruns()).encode(reruns)?;
        let parts = status.partitions();
        let at = |p: &crate::control::PartitionView| {
            vec![
                ("source", p.source.clone()),
                ("partition", p.partition.to_string()),
            ]
        };
        gauges(
            &mut e,
            "ferry_partition_lag",
            "Events in the partition not applied yet.",
            parts.iter().filter_map(|p| p.lag.map(|l| (at(p), l))),
        )?;
        gauges(
            &mut e,
            "ferry_partition_checkpoint",
            "Last applied offset (or feed sequence number) of the partition, from SQLite.",
            parts
                .iter()
                .filter_map(|p| p.checkpoint.map(|c| (at(p), c))),
        )?;
        gauges(
            &mut e,
            "ferry_partition_state",
            "1 for the partition's current state (running, retrying, stopped, fenced, failing).",
            parts.iter().map(|p| {
                let mut l = at(p);
                l.push(("state", p.state.clone()));
                (l, 1)
            }),
        )?;
        gauges(
            &mut e,
            "ferry_plugin_info",
            "The active version of each plugin.",
            status.plugins().into_iter().map(|p| {
                let labels = vec![
                    ("plugin", p.info.name),
                    ("version", p.info.version),
                    ("digest", p.info.digest),
                    ("kind", p.info.kind.to_owned()),
                ];
                (labels, 1)
            }),
        )?;
        counters(
            &mut e,
            "ferry_plugin_swaps",
            "Plugin version changes by outcome: activated, refused, rolled-back.",
            status.swaps().into_iter().map(|((plugin, result), n)| {
                (vec![("plugin", plugin), ("result", result.to_owned())], n)
            }),
        )?;
        gauge(
            &mut e,
            "ferry_live",
            "1 when /health/live passes.",
            i64::from(status.live().is_ok()),
        )?;
        gauge(
            &mut e,
            "ferry_ready",
            "1 when /health/ready passes.",
            i64::from(status.ready().is_ok()),
        )?;
        if let Some(rss) = rss_bytes() {
            gauge(
                &mut e,
                "ferry_resident_memory_bytes",
                "Resident set size of the process.",
                clamp(rss),
            )?;
        }
        Ok(())
    }
}

/// Every metric in the Prometheus text format 0.0.4 (prometheus-client's
/// encoder: names, label escaping, histogram buckets, `_total` suffixes).
pub fn render(status: &Arc<Status>, store: &StoreCounts) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        status: Arc::clone(status),
        store: store.clone(),
    }));
    let mut out = String::with_capacity(8192);
    if let Err(e) = prometheus_text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "Encoding the metrics failed; the scrape is cut short.");
    }
    out
}

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::ApiConfig;
    use crate::pipeline::Stats;

    #[test]
    fn counters_and_escaped_labels() {
        let stats = Arc::new(Stats::default());
        stats.add("p", "Odd\"Type", Outcome::Applied, 3);
        stats.add("p", "A", Outcome::Retried, 2);
        stats.latency("p").observe(0.000_004);
        let s = Arc::new(Status::new(&ApiConfig::default(), stats));
        let text = render(
            &s,
            &StoreCounts {
                dead_letters: Some(4),
                outbox: Some(0),
            },
        );
        assert!(
            text.contains(
                "ferry_events_total{plugin=\"p\",event_type=\"Odd\\\"Type\",outcome=\"applied\"} 3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("ferry_retries_total{plugin=\"p\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("ferry_dead_letters 4\n"), "{text}");
        assert!(
            text.contains("ferry_handler_seconds_bucket{plugin=\"p\",le=\"5e-06\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE ferry_batch_commit_seconds histogram"));
    }
}
